"""L-BFGS: SciPy's L-BFGS-B on the host, with the loss and gradient from the device.

The parameters travel as one float64 vector: one P-sized copy to the device and
one back per evaluation, plus one small read (the loss, the objective and the
right count). This is a host-side module: it names NumPy and SciPy, the
well-kept line search and curvature updates that we do not rewrite.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from backends import to_numpy_any

from .._typing import Array
from ..optimizers import count, non_negative, register
from ..second_order import FullBatch
from ..training import TrainingDiverged
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

    def run(self, epochs: Any, span: range, X: Array, T: Array, labels: Array | None,
            S: Array | None = None) -> None:
        from scipy.optimize import minimize  # here: SciPy's optimizer costs 0.2 s to import, for lbfgs only

        step, model = epochs.step, epochs.step.model
        xp, loss, backend = model.xp, step.loss, model.backend
        f64 = backend.dtype("float64")
        decayed = [p.ndim >= 2 for p in model.parameter_list()]
        last: dict[str, Any] = {}
        comm = getattr(epochs, "comm", None)
        comm = comm if comm is not None and comm.size > 1 else None

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            model.set_flat_parameters(theta)
            if comm is None:
                value, Z, grads = step.gradients(X, T, S)
                right = loss.correct(xp, Z, T, labels)
            else:  # every rank its part, one all-reduce: the same value and gradient everywhere
                value, grads, right = full_batch_gradients(step, comm, X, T, labels, S)
            grads = step.hooked(grads)  # the seam, as in every step
            params = model.parameter_list()
            penalty = 0.0
            if self.weight_decay:
                grads = [g + self.weight_decay * p if d else g for g, p, d in zip(grads, params, decayed)]
                penalty = sum(0.5 * self.weight_decay * xp.sum(p * p) for p, d in zip(params, decayed) if d)
            parts = [xp.astype(value, f64, copy=False), xp.astype(value + penalty, f64, copy=False)]
            if right is not None:
                parts.append(xp.astype(right, f64, copy=False))
            host = to_numpy_any(xp.stack(parts))  # one read: loss, objective (and right count)
            flat = xp.concat([xp.reshape(g, (-1,)) for g in grads])
            gradient = to_numpy_any(xp.astype(flat, f64, copy=False))
            last.update(theta=theta.copy(), value=float(host[0]), right=None if right is None else host[2])
            if not np.isfinite(host[1]) and not done["first"]:
                raise TrainingDiverged(f"the loss is {host[1]} at the starting weights: standardize the "
                                       "inputs, or start from other weights")
            done["first"] = True
            return float(host[1]), np.asarray(gradient, dtype=np.float64)

        iterations = iter(span)
        stopped = {"by": None}
        done = {"first": False}
        # SciPy reports an iteration after computing it: the epoch's clock and its
        # divergence backup are taken at the end of the one before.
        def snapshot() -> list:
            return [xp.asarray(p, copy=True) for p in model.parameter_list()]

        previous = {"at": time.perf_counter(), "params": snapshot()}

        def each_iteration(intermediate_result: Any) -> None:
            epoch = next(iterations, None)
            if epoch is None:
                raise StopIteration
            epochs.begin(epoch)
            epochs.started, epochs.safe = previous["at"], previous["params"]
            theta = np.asarray(intermediate_result.x)
            if "theta" not in last or not np.array_equal(last["theta"], theta):
                objective(theta)  # the accepted point was not the last one evaluated
            self.t += 1
            n = X.shape[0]
            total = last["value"] * (n if loss.reduction == "mean" else 1)
            right = last["right"]
            device = model.backend.device  # float64 given: torch would make a Python float float32
            stop = epochs.end(xp.asarray(total, dtype=f64, device=device),
                              None if right is None else xp.asarray(right, dtype=f64, device=device))
            previous.update(at=time.perf_counter(), params=snapshot())
            if stop:
                stopped["by"] = "fit"
                raise StopIteration

        if len(span) == 0:
            return
        theta0 = np.asarray(to_numpy_any(model.flat_parameters()), dtype=np.float64)
        result = minimize(objective, theta0, jac=True, method="L-BFGS-B", callback=each_iteration,
                          options={"maxiter": len(span), "maxfun": self.max_fun, "gtol": self.tol,
                                   "maxcor": self.memory})
        final = np.asarray(result.x)
        model.set_flat_parameters(final)
        if stopped["by"] is None and result.nit < len(span):
            message = result.message if isinstance(result.message, str) else str(result.message)
            epochs.history.converged = f"L-BFGS: {message.lower()}"
        elif stopped["by"] is None and result.nfev >= self.max_fun:
            epochs.history.converged = f"L-BFGS used its max_fun of {self.max_fun} evaluations"



register("lbfgs", LBFGS, aliases=("l-bfgs", "l_bfgs"))
