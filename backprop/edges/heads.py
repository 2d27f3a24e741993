"""How a task meets the network: the output head, and scores in the data's own terms.

A *head* says how many outputs a network has for a task, which loss trains them,
which output activation (if any) ends the network, and how labels become the
loss's targets. Host NumPy in and out: this is the edge where a data set's labels
and units meet the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import array_api_compat.numpy as np_xp
import numpy as np

from .. import losses
from ..errors import ConfigError
from ..evaluation import regression_scores
from .preprocessing import Transform


@dataclass
class Head:
    """The output side of a network for one task.

    loss : training loss name; outputs : network outputs; activation : output
    activation layer (None: a linear output / logits); encoding : how class
    indices or real targets become the loss's targets (``"index"``, ``"binary"``,
    ``"onehot"`` or ``"real"``).
    """

    loss: str
    outputs: int
    activation: str | None
    encoding: str

    @classmethod
    def make(cls, transform: Transform, loss: str) -> Head:
        """The head for ``transform``'s task trained with ``loss`` (a name, or ``"auto"``)."""
        return cls.for_task(transform.task, transform.n_targets, loss)

    @classmethod
    def for_task(cls, task: str, k: int, loss: str) -> Head:
        """The head for ``task`` (``"classification"`` with ``k`` classes, or ``"regression"``
        with ``k`` targets) trained with ``loss`` (a name, or ``"auto"``)."""
        chosen = None if loss == "auto" else losses.get(loss)
        if task == "classification":
            if chosen is None or chosen.task == "multiclass":
                return cls("ce", k, None, "index")
            if chosen.task == "binary":
                return cls(chosen.name, 1, None, "binary") if k == 2 else cls(chosen.name, k, None, "onehot")
            if chosen.link is not None:  # it reads its own link's inputs (poisson: log-means), not classes
                raise ConfigError(f"loss {chosen.name} needs real-valued targets but the target was read as "
                                  "class labels: give task regression (--task regression)")
            # Squared error on classes, the textbook way: sigmoid outputs against 0/1 targets.
            return (cls(chosen.name, 1, "sigmoid", "binary") if k == 2
                    else cls(chosen.name, k, "sigmoid", "onehot"))
        if chosen is not None and chosen.classification:
            raise ConfigError(f"loss {loss} needs class labels but the target is real-valued: use mse, "
                              "or task classification if its values are classes")
        return cls("mse" if chosen is None else chosen.name, k, None, "real")

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Class indices (N,) or real targets (N, T) -> what the loss compares with."""
        if self.encoding == "onehot":
            return np.eye(self.outputs)[y]
        if self.encoding == "binary" and not losses.get(self.loss).classification:
            return y.astype(np.float64)  # squared error against 0/1
        return y

    def class_scores(self, model, X: np.ndarray) -> np.ndarray:
        """Per-class scores (N, K) of a classifier: probabilities for ce/bce, outputs otherwise."""
        if losses.get(self.loss).classification:  # the head's loss: right before the first fit too
            P = np.asarray(model.predict_proba(X, loss=self.loss), dtype=np.float64)
        else:
            P = np.asarray(model.predict(X, loss=self.loss), dtype=np.float64).reshape(len(X), -1)
        return np.concatenate([1.0 - P, P], axis=1) if P.shape[1] == 1 else P


def scores(model, head: Head, transform: Transform, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Loss (in training units) and accuracy, or MSE/MAE/R^2 in the target's units.

    ``X`` raw inputs (N, F); ``y`` raw targets (labels or values).
    """
    Xn = transform.inputs(X)
    yn = transform.targets(y)
    out = {"loss": model.evaluate(Xn, head.targets(yn), loss=head.loss)["loss"]}
    if transform.task == "classification":
        out["accuracy"] = float(np.mean(np.argmax(head.class_scores(model, Xn), axis=1) == yn))
        return out
    predicted = transform.outputs(np.asarray(model.predict(Xn)))
    truth = y.reshape(len(y), -1).astype(np.float64)
    with np.errstate(over="ignore"):  # an MSE past the float range is reported as inf, no warning
        out.update({k: float(v) for k, v in regression_scores(np_xp, predicted, truth).items()})
    return out
