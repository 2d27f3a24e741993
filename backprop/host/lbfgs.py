"""L-BFGS: SciPy's L-BFGS-B on the host, with the loss and gradient from the device.

The parameters travel as one float64 vector: one P-sized copy to the device and
one back per evaluation, plus one small read (the loss, the objective and the
right count). This is a host-side module: it names NumPy and SciPy, the
well-kept line search and curvature updates that we do not rewrite.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from backends import to_numpy_any

from .. import flat
from ..callbacks import TrainingDiverged
from ..layers import require_deterministic
from ..optimizers import count, non_negative, penalized, register
from ..second_order import FullBatch
from .distributed import full_batch_gradients


class LBFGS(FullBatch):
    """L-BFGS (SciPy's L-BFGS-B) over the flat parameters, for any loss.

    Parameters mean what they mean in ``MLPClassifier(solver="lbfgs")``: one
    iteration per epoch (``epochs`` is ``max_iter``), ``max_fun`` loss evaluations
    at most per fit, and ``tol`` SciPy's ``gtol`` (stop when every gradient entry is
    below it). ``weight_decay`` adds ½·wd·‖W‖² over the weight matrices (not biases)
    to the objective, as the first-order optimizers add wd·W to the gradient.

    Carried across fits and checkpoints: the settings and the iteration count.
    Not carried: SciPy's curvature history, which it does not expose; a resumed
    L-BFGS rebuilds it within a few iterations.
    """

    name = "lbfgs"
    hooks_apply = True  # the objective's gradient goes through them
    data_parallel = True  # every rank runs the same minimize on the all-reduced loss and gradient
    # scikit-learn's MLP defaults, which run to convergence
    entry_defaults = {**FullBatch.entry_defaults, "epochs": 200, "early_stopping": None}

    def __init__(self, lr: float | None = None, *, max_fun: int = 15000, tol: float = 1e-4,
                 memory: int = 10, **kwargs: Any) -> None:
        super().__init__(lr, **kwargs)
        self.max_fun, self.memory = count(max_fun, "max_fun"), count(memory, "memory")
        self.tol = non_negative(tol, "tol")

    def config(self) -> dict:
        return {**super().config(), "max_fun": self.max_fun, "tol": self.tol, "memory": self.memory}

    def check(self, model: Any, loss: Any, n_samples: int) -> None:
        super().check(model, loss, n_samples)
        require_deterministic(model.layers, "L-BFGS")  # its line search compares passes

    def run(self, batch: Any, span: range, epochs: Any) -> str | None:
        """SciPy's minimize for the epochs of ``span``, one iteration each, calling ``epochs.begin``
        and ``epochs.end(total, correct) -> stop`` (``fit``'s bookkeeping) around each.

        ``batch`` (:class:`backprop.drivers.FullBatchData`): the Step, the training part and
        the communicator. Returns None, or why L-BFGS stopped by itself."""
        from scipy.optimize import minimize  # here: SciPy's optimizer costs 0.2 s to import, for lbfgs only

        if len(span) == 0:
            return None
        model = batch.step.model
        objective, last = self._objective(batch)
        upcoming = iter(span)
        # SciPy reports an iteration after computing it: each epoch begins (its clock, its
        # divergence backup) at the end of the one before, the first before minimize.
        current = {"epoch": next(upcoming), "stopped": False}
        epochs.begin(current["epoch"])

        def each_iteration(intermediate_result: Any) -> None:
            if current["epoch"] is None:
                raise StopIteration
            theta = np.asarray(intermediate_result.x)
            if "theta" not in last or not np.array_equal(last["theta"], theta):
                # The accepted point was not the last one evaluated: evaluate it into the spare
                # gradient, SciPy still holding the one it was handed.
                objective(theta, spare=True)
            self.t += 1
            stop = self._end(batch, last, epochs)
            current["epoch"] = None if stop else next(upcoming, None)
            if current["epoch"] is not None:
                epochs.begin(current["epoch"])
            if stop:
                current["stopped"] = True
                raise StopIteration

        theta0 = np.array(to_numpy_any(model.flat_parameters()), dtype=np.float64)  # a copy
        result = minimize(objective, theta0, jac=True, method="L-BFGS-B", callback=each_iteration,
                          options={"maxiter": len(span), "maxfun": self.max_fun, "gtol": self.tol,
                                   "maxcor": self.memory})
        model.set_flat_parameters(np.asarray(result.x))
        if current["stopped"]:
            return None
        if result.nit < len(span):
            message = result.message if isinstance(result.message, str) else str(result.message)
            return f"L-BFGS: {message.lower()}"
        if result.nfev >= self.max_fun:
            return f"L-BFGS used its max_fun of {self.max_fun} evaluations"
        return None

    def _end(self, batch: Any, last: dict[str, Any], epochs: Any) -> bool:
        """The epoch's totals at the accepted point to ``epochs.end``; True: stop."""
        model, loss = batch.step.model, batch.step.loss
        xp, f64 = model.xp, model.backend.dtype("float64")
        total = last["value"] * (batch.data.n if loss.reduction == "mean" else 1)
        right = last["right"]
        device = model.backend.device  # float64 given: torch would make a Python float float32
        return epochs.end(xp.asarray(total, dtype=f64, device=device),
                          None if right is None else xp.asarray(right, dtype=f64, device=device))

    def _objective(self, batch: Any) -> tuple[Any, dict[str, Any]]:
        """``(objective, last)``: ``objective(theta) -> (value, gradient)`` of the flat float64
        parameters ``theta`` (P,) for SciPy, and the dict where it leaves the last point's
        ``theta``, loss ``value`` and right count.

        Every evaluation hands SciPy the same host gradient array (P,) float64, refilled
        from the model's flat gradient buffer: no per-evaluation concatenation or new array.
        SciPy keeps a reference to the gradient it got until its next evaluation, so that
        array is never the model's live buffer. ``objective(theta, spare=True)`` fills a
        second one instead, for an evaluation SciPy did not ask for."""
        step, data = batch.step, batch.data
        model, loss = step.model, step.loss
        xp, f64 = model.xp, model.backend.dtype("float64")
        spans = _decayed_spans(model) if self.weight_decay else []
        comm = batch.comm if batch.comm is not None and batch.comm.size > 1 else None
        last: dict[str, Any] = {"seen": np.empty(model.n_params)}  # "theta" once evaluated
        host = {False: np.empty(model.n_params), True: None}  # SciPy's gradient, and the spare
        scratch: dict[str, Any] = {}  # the objective's gradient on the device, with weight decay

        def objective(theta: np.ndarray, spare: bool = False) -> tuple[float, np.ndarray]:
            model.set_flat_parameters(theta)  # into the model's flat buffer, in place
            if comm is None:
                value, Z, grads = step.gradients(data.X, data.T, data.S)
                right = loss.correct(xp, Z, data.T, data.labels)
            else:  # every rank its part, one all-reduce: the same value and gradient everywhere
                value, grads, right = full_batch_gradients(step, comm, data.X, data.T, data.labels, data.S)
            G = _flat_gradient(model, grads, step.hooked(grads))  # the hooks: the seam, as in every step
            penalty = 0.0
            if spans:
                G = _decay(xp, G, model.flat_parameters(), spans, self.weight_decay, scratch)
                penalty = sum(0.5 * self.weight_decay * xp.sum(p * p) for p in _decayed_arrays(model))
            parts = [xp.astype(value, f64, copy=False), xp.astype(value + penalty, f64, copy=False)]
            if right is not None:
                parts.append(xp.astype(right, f64, copy=False))
            read = to_numpy_any(xp.stack(parts))  # one read: loss, objective (and right count)
            if not np.isfinite(read[1]) and "theta" not in last:
                raise TrainingDiverged(f"the loss is {read[1]} at the starting weights: standardize the "
                                       "inputs, or start from other weights")
            if host[spare] is None:
                host[spare] = np.empty(model.n_params)
            host[spare][...] = to_numpy_any(xp.astype(G, f64, copy=False))
            last["seen"][...] = theta
            last.update(theta=last["seen"], value=float(read[0]), right=None if right is None else read[2])
            return float(read[1]), host[spare]

        return objective, last


def _flat_gradient(model: Any, grads: list[Any], hooked: list[Any]) -> Any:
    """The gradients ``hooked`` (the model's, through the gradient hooks) as one vector (P,):
    the model's own flat gradient buffer where they are still its views, else a new one."""
    if hooked is grads and all(g is v for g, v in zip(grads, model.gradient_list())):
        return model.flat_gradients()
    return flat.flatten(model.xp, hooked)


def _decayed_spans(model: Any) -> list[tuple[int, int]]:
    """The ``(start, stop)`` entries of the flat parameters that weight decay reaches: the
    weight matrices' (:func:`backprop.optimizers.penalized`), biases left out."""
    spans, start = [], 0
    for p in model.parameter_list():
        size = math.prod(p.shape)
        if penalized(p):
            spans.append((start, start + size))
        start += size
    return spans


def _decayed_arrays(model: Any) -> list[Any]:
    return [p for p in model.parameter_list() if penalized(p)]


def _decay(xp: Any, G: Any, theta: Any, spans: list[tuple[int, int]], weight_decay: float,
           scratch: dict[str, Any]) -> Any:
    """The objective's gradient (P,): ``G`` plus wd·W over the weight matrices' ``spans`` of the
    flat parameters ``theta`` (P,), in a device buffer reused across evaluations (the same
    sums g + wd·w as array by array). ``G`` itself is left as the backward pass wrote it."""
    if "G" not in scratch:
        scratch["G"] = xp.empty_like(G)
    out = scratch["G"]
    out[...] = G
    for start, stop in spans:
        out[start:stop] += weight_decay * theta[start:stop]
    return out


register("lbfgs", LBFGS, aliases=("l-bfgs", "l_bfgs"))
