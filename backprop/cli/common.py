"""What the commands share: devices, data, the network's output head and metrics.

A *head* is how a task meets the network: how many outputs, which loss, which
output activation, and how labels become targets. Host NumPy in and out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..datafiles import DataError, looks_like_path, read_file
from ..datasets import BUILTIN, Dataset, load_builtin
from ..preprocessing import Transform


class UsageError(ValueError):
    """A command line that cannot work; the message says what to change."""


def device_spec(device: str | None, backend: str | None) -> str:
    """``--device`` and the optional ``--backend`` as one backends spec string."""
    device = (device or "cpu").strip().lower()
    if backend is None:
        return device
    backend = backend.strip().lower()
    where, _, index = device.partition(":")
    if backend == "numpy":
        if where != "cpu":
            raise UsageError(f"--backend numpy runs on the CPU only, not {device!r}: drop --device "
                             "or use --backend cupy")
        return "cpu"
    if backend == "cupy":
        if where == "cpu":
            raise UsageError("--backend cupy needs a GPU: use --device cuda (or cuda:N)")
        return device
    if backend == "torch":
        return "torch" if where == "cpu" else f"torch:cuda{':' + index if index else ''}"
    raise UsageError(f"unknown backend {backend!r}: use numpy, cupy or torch")


def load_data(name: str, target: str | None = None) -> Dataset:
    """A built-in data set by name, or a .csv/.npz file."""
    if name.lower() in BUILTIN and not looks_like_path(name):
        if target is not None:
            raise UsageError("--target is for CSV files; built-in data sets know their target")
        return load_builtin(name)
    if not looks_like_path(name):
        raise DataError(f"unknown data set {name!r}: use one of {', '.join(BUILTIN)}, "
                        "or a path to a .csv or .npz file")
    return read_file(name, target)


@dataclass
class Head:
    """The output side of a network for one task.

    loss : training loss name; outputs : network outputs; activation : output
    activation layer (None: a linear output / logits); encoding : how class
    indices or real targets become the loss's targets ("index", "binary",
    "onehot" or "real").
    """

    loss: str
    outputs: int
    activation: str | None
    encoding: str

    @classmethod
    def make(cls, transform: Transform, loss: str) -> Head:
        k = transform.n_targets
        if transform.task == "classification":
            if loss in ("auto", "ce"):
                return cls("ce", k, None, "index")
            if loss == "bce":
                return cls("bce", 1, None, "binary") if k == 2 else cls("bce", k, None, "onehot")
            # Squared error on classes, the textbook way: sigmoid outputs against 0/1 targets.
            return cls(loss, 1, "sigmoid", "binary") if k == 2 else cls(loss, k, "sigmoid", "onehot")
        if loss in ("ce", "bce"):
            raise UsageError(f"--loss {loss} needs class labels but the target is real-valued: use "
                             "--loss mse, or --task classification if its values are classes")
        return cls("mse" if loss == "auto" else loss, k, None, "real")

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Class indices (N,) or real targets (N, T) -> what the loss compares with."""
        if self.encoding == "onehot":
            return np.eye(self.outputs)[y]
        if self.encoding == "binary":
            return y.astype(np.float64) if self.loss != "bce" else y
        return y

    def class_scores(self, model, X: np.ndarray) -> np.ndarray:
        """Per-class scores (N, K) of a classifier: probabilities for ce/bce, outputs otherwise."""
        if self.loss in ("ce", "bce"):
            P = np.asarray(model.predict_proba(X), dtype=np.float64)
        else:
            P = np.asarray(model.predict(X), dtype=np.float64).reshape(len(X), -1)
        return np.concatenate([1.0 - P, P], axis=1) if P.shape[1] == 1 else P


def metrics(model, head: Head, transform: Transform, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
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
    err = predicted - truth
    out["mse"] = float(np.mean(err**2))
    out["mae"] = float(np.mean(np.abs(err)))
    spread = np.sum((truth - truth.mean(axis=0)) ** 2, axis=0)
    sq = np.sum(err**2, axis=0)
    r2 = np.where(spread > 0, 1.0 - sq / np.where(spread > 0, spread, 1.0), (sq == 0).astype(float))
    out["r2"] = float(np.mean(r2))
    return out


def split_validation(X: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """A seeded random hold-out: ((X_train, y_train), (X_val, y_val))."""
    n = len(X)
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise UsageError(f"--val-split {fraction} of {n} samples leaves no validation or no training "
                         "data: use --val-split 0 or a larger fraction")
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,))).permutation(n)
    return (X[order[n_val:]], y[order[n_val:]]), (X[order[:n_val]], y[order[:n_val]])

