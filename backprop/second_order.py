"""Full-batch training: Levenberg–Marquardt, Bayesian regularization, damped Newton and L-BFGS.

These are optimizers that see the whole training set at once and drive their own
iterations: ``fit``'s full-batch driver hands :meth:`FullBatch.run` the data and its
bookkeeping (``epochs.begin``/``epochs.end``: records, validation, early stopping,
callbacks, divergence), one iteration per epoch; ``run`` returns why it stopped.

Levenberg–Marquardt (MATLAB's ``trainlm``) minimizes a sum of squared residuals
e (N·K,) with the Jacobian J (N·K, P) of the network's outputs:
(JᵀJ + μI) δ = -Jᵀe. μ starts at 0.001, is multiplied by 0.1 after a step that
lowers the error and by 10 (and the step retried) after one that does not.

The solve: the Array API's linalg extension has ``solve``, ``cholesky`` and
``eigh`` but no triangular solve, so a Cholesky factor could not be applied
portably. One ``eigh`` of JᵀJ = QΛQᵀ per iteration makes every μ retry a pair of
matrix-vector products: δ = -Q (Qᵀg / (Λ + μ)). An ``eigh`` costs seven to ten
``solve``s of the same matrix, so from ``Damped.eigh_below`` unknowns on each μ trial
is one ``solve`` of (A + μI) instead (:meth:`Damped.damped_solver`). When N·K < P the
same is done in residual space, with JJᵀ (N·K, N·K): (JᵀJ + μI)⁻¹Jᵀ = Jᵀ(JJᵀ + μI)⁻¹,
which needs far less memory. The solve runs in float64 whatever the model's dtype: forming
JᵀJ squares J's condition number, more than float32's seven digits can hold.

Bayesian regularization (MATLAB's ``trainbr``, :class:`BayesianRegularization`) is
Levenberg–Marquardt on β·E_D + α·E_W, with α and β re-estimated from the evidence after
each step.

L-BFGS is SciPy's L-BFGS-B on the host over the flat parameters in float64; the
loss and gradient come from the device (one P-sized copy each way and one scalar
per evaluation), as scikit-learn's ``MLPClassifier(solver="lbfgs")`` does on NumPy.
"""

from __future__ import annotations

import math
from typing import Any

from backends.linalg import spd_inverse_trace, spd_solve

from . import flat
from ._typing import Array
from .errors import ConfigError
from .hessian import hessian
from .jacobian import jacobian, jacobian_bytes
from .layers import require_second_order
from .namespace import device_of
from .optimizers import Optimizer, count, non_negative, penalized, positive, register


class FullBatch(Optimizer):
    """Base of the optimizers that train on the whole batch and run their own iterations.

    :meth:`run` calls :meth:`iterate` once per epoch; it returns the epoch's loss
    (summed like a batch loss), and None or a reason to stop.
    """

    full_batch = True
    has_lr = False  # the damping or the line search sets the step
    takes_l1 = False  # the loss must be smooth
    data_parallel = False  # the step is formed from the whole batch on one process
    entry_defaults: dict[str, Any] = {"batch_size": "full"}
    default_lr = 1.0  # no learning rate: the damping or the line search sets the step
    evolving: tuple[str, ...] = ()
    hooks_apply = False  # gradient hooks change gradients, which only some of these step along

    def config(self) -> dict:
        config = super().config()
        del config["lr"]
        return config

    def check(self, model: Any, loss: Any, n_samples: int) -> None:
        """Refuse a model, loss or data size this method cannot train; nothing is changed."""

    def run(self, batch: Any, span: range, epochs: Any) -> str | None:
        """The epochs of ``span``, one :meth:`iterate` each, calling ``epochs.begin(epoch)`` before
        and ``epochs.end(total, correct, record) -> stop`` after each (``fit``'s bookkeeping).

        ``batch`` (:class:`backprop.drivers.FullBatchData`): the Step, the training part
        (sample weights ``S`` (N,) scaled to mean 1, or None) and the weights' sum. Returns
        None, or why the method stopped by itself."""
        step, data = batch.step, batch.data
        loss, xp = step.loss, step.model.xp
        if step.hooks and not self.hooks_apply:
            raise ConfigError(f"{self.name} forms its own step from the Jacobian or the Hessian: gradient "
                              "hooks do not apply to it; use lbfgs or a first-order optimizer")
        # The sum of the user's weights, before fit scaled them to mean 1: LM's JᵀJ is the
        # Gauss-Newton matrix of the raw weighted squares, so that a weight of 2 is a repeat.
        self.weight_sum = batch.weight_sum
        work: dict[str, Any] = {}  # buffers reused from iteration to iteration of this fit
        for epoch in span:
            epochs.begin(epoch)
            value, reason = self.iterate(step, data.X, data.T, data.S, work=work)
            total = value * data.n if loss.reduction == "mean" else value
            correct = None
            if loss.classification:
                correct = loss.correct(xp, step.model.forward(data.X, loss=loss)[0], data.T, data.labels)
            stop = epochs.end(total, correct, self.record())
            if reason is not None or stop:
                return reason
        return None

    def record(self) -> dict:
        """What this optimizer adds to an epoch record."""
        return {}

    def iterate(self, step: Any, X: Array, T: Array, S: Array | None = None,
                work: dict[str, Any] | None = None) -> tuple[Array, str | None]:
        """One iteration; ``work``: the fit's buffers, kept from one call to the next (empty at
        first, filled as the method likes), or None for new ones."""
        raise NotImplementedError


class Damped(FullBatch):
    """A Newton-type step (A + μI) δ = -g with ``trainlm``'s μ rules, A symmetric.

    μ starts at ``mu`` (0.001), is multiplied by ``mu_dec`` (0.1, not below ``mu_min``)
    after a step that lowers the loss, and by ``mu_inc`` (10) and the step retried after one that does
    not. Training stops when μ exceeds ``mu_max`` (1e10), when the gradient of the
    loss has a norm below ``min_grad`` (1e-7), or when the loss reaches ``goal`` (0).
    μ evolves and is saved with the optimizer, so a resumed run goes on exactly.
    """

    evolving = ("mu",)
    # As MATLAB's trainlm: float64 and validation-based stopping after 6 failures.
    entry_defaults = {**FullBatch.entry_defaults, "dtype": "float64", "early_stopping": 6}

    @classmethod
    def entry_notes(cls, settings: dict[str, Any]) -> list[str]:
        if settings.get("dtype") != "float32":
            return []
        return [f"{settings['optimizer']}: the model is float32, but its damped system is formed and "
                "solved in float64 (J^T J squares the condition number of J)"]

    def __init__(self, lr: float | None = None, *, mu: float = 1e-3, mu_dec: float = 0.1,
                 mu_inc: float = 10.0, mu_max: float = 1e10, min_grad: float = 1e-7, goal: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(lr, **kwargs)
        self.mu, self.mu_max = positive(mu, "mu"), positive(mu_max, "mu_max")
        self.mu_dec, self.mu_inc = positive(mu_dec, "mu_dec"), positive(mu_inc, "mu_inc")
        if not (self.mu_dec < 1.0 < self.mu_inc):
            raise ConfigError(f"{self.name} needs mu_dec < 1 < mu_inc")
        self.min_grad, self.goal = non_negative(min_grad, "min_grad"), non_negative(goal, "goal")

    def config(self) -> dict:
        return {**super().config(), "mu": self.mu, "mu_dec": self.mu_dec, "mu_inc": self.mu_inc,
                "mu_max": self.mu_max, "min_grad": self.min_grad, "goal": self.goal}

    def record(self) -> dict:
        return {"mu": self.mu}

    def curvature(self, step: Any, X: Array, T: Array, S: Array | None, theta: Array,
                  decayed: Array, work: dict[str, Any]) -> tuple[Array, Array, Any]:
        """``(loss, gradient of the objective (P,), solve)`` at the current parameters, where
        ``solve(mu)`` is the step δ (P,) of (A + μI) δ = -g, in float64. The objective is
        the loss plus ½·wd·‖W‖² over the weight matrices; ``decayed`` (P,) marks their
        entries (1.0) among the flat parameters, ``theta`` (P,) holds those in float64.
        ``work``: the fit's buffers (:meth:`FullBatch.iterate`), which live in the fit, not
        on the optimizer (its lasting state is ``mu`` and ``t``), so a pickle holds no
        device array."""
        raise NotImplementedError

    # Below this many unknowns one eigh per iteration, above it one solve per μ trial. NumPy,
    # float64, one eigh against one solve of the same matrix (ms): n = 100: 0.5 / 0.1,
    # 300: 5.6 / 0.6, 1000: 93 / 13, 2000: 579 / 84. An eigh costs 7-10 solves, more than
    # an iteration's usual μ trials; below ~500 both are a few ms and eigh's free retries win.
    eigh_below = 500

    def damped_solver(self, xp: Any, A: Array, b: Array) -> tuple[Any, Array | None]:
        """``(solve, eigenvalues)`` for symmetric ``A`` (n, n) and ``b`` (n,) or (n, m), float64:
        ``solve(mu)`` is x, shaped as ``b``, with (A + μI) x = b. Small systems take one ``eigh`` now,
        each ``solve(mu)`` then two matrix-vector products, and return A's eigenvalues (n,);
        from ``eigh_below`` unknowns each ``solve(mu)`` is one ``linalg.solve`` and the
        eigenvalues are None (a Cholesky solve where A + μI is positive definite, as JᵀJ + μI
        is, an LU ``linalg.solve`` otherwise). ``A`` is borrowed: each solve shifts its diagonal in place and
        puts it back, so it must not change while ``solve`` is in use."""
        n = A.shape[0]
        if n < self.eigh_below:
            eigenvalues, Q = xp.linalg.eigh(A)
            coords = Q.T @ b
            shift = eigenvalues if b.ndim == 1 else eigenvalues[:, None]
            return (lambda mu: Q @ (coords / (shift + mu))), eigenvalues
        # (n, m) right-hand sides: the standard's 1-d solve is ambiguous
        column, cut = (b[:, None], 0) if b.ndim == 1 else (b, slice(None))
        view = flat.diagonal(xp, A)
        if view is None:
            eye = xp.eye(n, dtype=A.dtype, device=device_of(A))
            return (lambda mu: xp.linalg.solve(A + mu * eye, column)[:, cut]), None
        diagonal = xp.asarray(view, copy=True)

        def solve(mu: float) -> Array:
            # A + μI in A itself, its diagonal restored after: no (n, n) array built per trial
            # (the same sums A_ii + μ, so the same bits as building A + μI). Positive definite
            # for LM's JᵀJ + μI: a Cholesky solve, half an LU's work; an LU where it is not.
            view[...] = diagonal + mu
            try:
                x = spd_solve(xp, A, column)
                return (xp.linalg.solve(A, column) if x is None else x)[:, cut]
            finally:
                view[...] = diagonal

        return solve, None

    # μ never falls below this: where every step succeeds (br's prior keeps each system well
    # posed), ×0.1 would underflow μ to 0, from which ×10 never climbs to mu_max. MATLAB's
    # trainlm and trainbr have the same floor.
    mu_min = 1e-20

    def _accepted(self) -> None:
        """After a step that lowered the objective: μ × mu_dec (not below ``mu_min``), one more step."""
        self.mu = max(self.mu * self.mu_dec, self.mu_min)
        self.t += 1

    def _penalty(self, xp: Any, theta: Array, decayed: Array) -> Array:
        """½·wd·‖W‖² of flat parameters ``theta`` (P,) float64, a 0-d device array."""
        return 0.5 * self.weight_decay * xp.sum(decayed * theta * theta)

    def iterate(self, step: Any, X: Array, T: Array, S: Array | None = None,
                work: dict[str, Any] | None = None) -> tuple[Array, str | None]:
        """One iteration on the full batch ``X`` (N, F), ``T`` (N, K): the loss after it
        (a 0-d device array) and None, or a reason to stop. ``work``: see :meth:`FullBatch.iterate`."""
        model, loss = step.model, step.loss
        xp = model.xp
        f64 = model.backend.dtype("float64")
        work = {} if work is None else work
        theta = xp.asarray(model.flat_parameters(), copy=True)
        theta64 = xp.astype(theta, f64)
        decayed = _decayed(model, f64, work)
        before, g, solve = self.curvature(step, X, T, S, theta64, decayed, work)
        base = xp.astype(before, f64) + self._penalty(xp, theta64, decayed) if self.weight_decay else before
        old = None
        while True:
            trial = theta + xp.astype(solve(self.mu), theta.dtype, copy=False)
            model.set_flat_parameters(trial)
            after = loss.forward(model.forward(X, loss=loss)[0], T, S)[0]
            objective = after
            if self.weight_decay:
                objective = xp.astype(after, f64) + self._penalty(xp, xp.astype(trial, f64), decayed)
            if old is None:
                new, old, reason = self._first_trial(xp, f64, objective, base, g)
                if reason is not None:
                    model.set_flat_parameters(theta)
                    return before, reason
            else:
                new = float(objective)
            if new < old:
                self._accepted()
                return after, (f"the loss {new:.6g} reached the goal {self.goal:g}" if new <= self.goal
                               else None)
            ended = self._rejected(model, theta, before, after, new, old)
            if ended is not None:
                return ended

    def _rejected(self, model: Any, theta: Array, before: Array, after: Array, new: float,
                  old: float) -> tuple[Array, str | None] | None:
        """After a trial whose objective ``new`` did not fall below ``old``: the iteration's
        ``(loss, reason)`` where it ends here, else None to retry at μ × mu_inc. It ends on a
        divergence (both not finite: ``after``, for fit to report) or at μ past mu_max (the
        parameters ``theta`` (P,) put back, and the loss ``before``)."""
        if not math.isfinite(new) and not math.isfinite(old):
            return after, None  # let fit report the divergence
        self.mu *= self.mu_inc
        if self.mu > self.mu_max:
            model.set_flat_parameters(theta)
            return before, f"mu {self.mu:.3g} exceeded mu_max {self.mu_max:g}"
        return None

    def _first_trial(self, xp: Any, f64: Any, objective: Array, base: Array,
                     g: Array) -> tuple[float, float, str | None]:
        """``(new, old, reason)`` after an iteration's first trial, in one read: the objective
        there and before (0-d), and why the iteration stops before stepping (the gradient ``g``
        (P,) below ``min_grad``, or the old loss at the goal), or None."""
        values = xp.stack([xp.astype(objective, f64, copy=False), xp.astype(base, f64, copy=False),
                           xp.linalg.vector_norm(g)])
        new, old, grad_norm = (float(v) for v in _host(values))
        if grad_norm < self.min_grad:
            return new, old, f"the gradient norm {grad_norm:.3g} is below min_grad {self.min_grad:g}"
        if old <= self.goal:
            return new, old, f"the loss {old:.6g} reached the goal {self.goal:g}"
        return new, old, None


class LevenbergMarquardt(Damped):
    """Levenberg–Marquardt for squared-error losses (``mse``, ``sse``): A = JᵀJ, g = Jᵀe
    (scaled as the loss is), with ``trainlm``'s rules (see :class:`Damped`).

    ``max_jacobian_bytes``: refuse problems whose Jacobian (float64) and solve matrix
    would take more device memory than this (256 MiB).
    """

    name = "lm"
    title = "Levenberg–Marquardt"  # what the refusals call the method
    # (side, side) float64 matrices alive at once during a solve: A and the factor's copy
    solve_matrices = 2
    # Squared errors for classes too: sigmoid outputs against 0/1, as trainlm does.
    entry_defaults = {**Damped.entry_defaults, "loss": "mse"}

    def step_work(self, batch: int, model: Any) -> int:
        """JᵀJ: (N·K) × P² multiply-adds, the iteration's largest product."""
        return batch * model.n_outputs * model.n_params ** 2

    def __init__(self, lr: float | None = None, *, max_jacobian_bytes: int = 256 * 2**20,
                 **kwargs: Any) -> None:
        super().__init__(lr, **kwargs)
        self.max_jacobian_bytes = count(max_jacobian_bytes, "max_jacobian_bytes")

    def config(self) -> dict:
        return {**super().config(), "max_jacobian_bytes": self.max_jacobian_bytes}

    def check(self, model: Any, loss: Any, n_samples: int) -> None:
        super().check(model, loss, n_samples)
        require_second_order(model.layers, f"{self.title}'s Jacobian")  # before anything changes
        if not loss.squared_residuals:
            raise ConfigError(f"{self.title} minimizes squared errors (mse, sse), not {loss.name}: "
                              "use lbfgs for other losses")
        rows, params = n_samples * model.n_outputs, model.n_params
        # weight decay on the weights alone needs parameter space
        side = params if self.weight_decay else min(rows, params)
        need = jacobian_bytes(n_samples, model.n_outputs, params) * 2 + 8 * side**2 * self.solve_matrices
        if need > self.max_jacobian_bytes:
            raise ConfigError(
                f"{self.title} would need {need / 2**20:,.0f} MiB for its {rows:,} x {params:,} "
                f"Jacobian and solve (limit {self.max_jacobian_bytes / 2**20:,.0f} MiB): use lbfgs, a "
                "smaller network or fewer samples")

    def residuals(self, step: Any, X: Array, T: Array, S: Array | None,
                  work: dict[str, Any]) -> tuple[Array, Array, Array, float, float]:
        """``(Z, e, J, scale, count)`` at the current parameters: the outputs Z (N, K), the
        residuals e (N·K,) and their Jacobian J (N·K, P) in float64, both times sqrt(w_n) when
        weighted (J in place in ``work``'s buffer); the loss is scale/2·|e|², and ``count`` is
        the number of squares N·K (weighted: the user's weight sum times K)."""
        model, loss = step.model, step.loss
        xp = model.xp
        f64 = model.backend.dtype("float64")
        if "J" not in work:  # (N, K, P), rewritten by every iteration's Jacobian
            work["J"] = xp.empty((X.shape[0], model.n_outputs, model.n_params), dtype=model.dtype,
                                 device=model.backend.device)
        Z, J = jacobian(model, X, out=work["J"])
        n, k = Z.shape
        e = xp.reshape(xp.astype(Z - T, f64, copy=False), (n * k,))
        J = xp.astype(J, f64, copy=False)
        # The loss is scale/2 * |e|^2: its gradient scale * J^T e, its Gauss-Newton matrix
        # scale * J^T J; LM damps J^T J itself, as trainlm does, whatever the scale.
        scale = 2.0 / (n * k) if loss.reduction == "mean" else 1.0
        count = float(n * k)
        if S is not None:  # weighted squares: the residuals and their rows times sqrt(w_n)
            raw = S
            if getattr(self, "weight_sum", None):
                count = float(self.weight_sum * k)
                if loss.reduction == "mean":
                    raw = S * (self.weight_sum / n)  # back to the user's weights: a weight of 2 is a repeat
                    scale = 2.0 / (self.weight_sum * k)
            root = xp.reshape(xp.broadcast_to(xp.sqrt(xp.astype(raw, f64))[:, None], (n, k)), (n * k,))
            e = e * root
            J *= root[:, None]  # in place: J is this fit's buffer (or its float64 copy)
        return Z, e, J, scale, count

    def curvature(self, step: Any, X: Array, T: Array, S: Array | None, theta: Array,
                  decayed: Array, work: dict[str, Any]) -> tuple[Array, Array, Any]:
        xp = step.model.xp
        Z, e, J, scale, _ = self.residuals(step, X, T, S, work)
        n, k = Z.shape
        g = J.T @ e
        # In J's units: the objective scale/2·|e|² + wd/2·|W|² over scale.
        ridge = self.weight_decay / scale
        residual_space = n * k < J.shape[1] and not ridge  # the penalty's diagonal needs parameter space
        if residual_space:
            damped, _ = self.damped_solver(xp, J @ J.T, e)
        else:
            A = J.T @ J
            if ridge:
                g = g + ridge * decayed * theta
                A = _add_diagonal(xp, A, ridge * decayed)
            damped, _ = self.damped_solver(xp, A, g)

        def solve(mu: float) -> Array:
            delta = damped(mu)
            return -(J.T @ delta if residual_space else delta)

        return step.loss.forward(Z, T, S)[0], scale * g, solve


class BayesianRegularization(LevenbergMarquardt):
    """Bayesian regularization, MATLAB's ``trainbr`` (MacKay's evidence framework on the
    Levenberg–Marquardt step): minimize F = β·E_D + α·E_W, E_D the sum of squared errors
    over samples and outputs, E_W the sum of squares of every parameter, biases included.

    The step (βJᵀJ + (α+μ)I) δ = -(βJᵀe + α·w) is solved divided by β, so that JᵀJ's
    one eigendecomposition serves every μ trial and the trace. After each accepted step,
    with JᵀJ and α, β of the step (as ``trainbr``), γ = P - α·tr((βJᵀJ + αI)⁻¹) =
    P - Σ α/(βλ_i + α), the effective number of parameters, then α = γ / (2·E_W) and
    β = (N·K - γ) / (2·E_D) at the new point. μ starts at 0.005, with ``trainlm``'s μ rules
    (:class:`Damped`). The start differs from MATLAB's, which takes γ = P at the initial
    weights (α = P/2E_W, β = (N·K - P)/2E_D): from backprop's initial weights that prior
    took every weight to 0 in 8 of 12 of ``benchmarks/trainbr.py --matlab-start``'s settings.
    Here α starts at 0 and β at 1 (a plain LM step on E_D), and the first update takes the
    fixed point of γ on JᵀJ's eigenvalues (:meth:`evidence`).
    β is kept where N·K ≤ γ. The trace comes from the eigenvalues the solve already has
    (:meth:`_solver`), or, beside per-trial Cholesky solves, from one more factor. μ, α and β
    evolve and are saved with the optimizer, so a resumed run goes on exactly.
    """

    name = "br"
    title = "Bayesian regularization (br)"
    evolving = ("mu", "alpha", "beta")
    solve_matrices = 4  # and, beside Cholesky solves, the trace's A + (α/β)I and its factor
    takes_weight_decay = False  # α is its weight decay, chosen by the evidence
    # As MATLAB's trainbr: no validation stopping, the prior takes its place, and so every
    # training sample is trained on (a validation part asked for is only reported).
    entry_defaults = {**LevenbergMarquardt.entry_defaults, "early_stopping": None, "val_split": 0.0}

    @classmethod
    def entry_notes(cls, settings: dict[str, Any]) -> list[str]:
        notes = super().entry_notes(settings)
        if settings.get("val_split"):
            notes.append(f"{settings['optimizer']}: the validation part is only reported, never a stopping "
                         "rule (as MATLAB's trainbr); val_split 0 trains on all the data")
        return notes

    def __init__(self, lr: float | None = None, *, mu: float = 5e-3, alpha: float = 0.0, beta: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(lr, mu=mu, **kwargs)
        if self.weight_decay:
            raise ConfigError("br chooses its own weight decay (alpha/beta): set weight_decay to 0")
        self.alpha, self.beta = non_negative(alpha, "alpha"), positive(beta, "beta")
        self.gamma: float | None = None  # of the last update, for the records
        self.sum_sq_weights: float | None = None

    def config(self) -> dict:
        return {**super().config(), "alpha": self.alpha, "beta": self.beta}

    def record(self) -> dict:
        if self.gamma is None:
            return super().record()
        return {**super().record(), "gamma": self.gamma, "alpha": self.alpha, "beta": self.beta,
                "sum_sq_weights": self.sum_sq_weights}

    def iterate(self, step: Any, X: Array, T: Array, S: Array | None = None,
                work: dict[str, Any] | None = None) -> tuple[Array, str | None]:
        """One iteration on the full batch ``X`` (N, F), ``T`` (N, K): the loss after it
        (a 0-d device array) and None, or a reason to stop (see :class:`Damped`)."""
        model, loss = step.model, step.loss
        xp = model.xp
        f64 = model.backend.dtype("float64")
        theta = xp.asarray(model.flat_parameters(), copy=True)
        alpha, beta = self.alpha, self.beta
        before, damped, lam, scale, count, (e_d, e_w, grad_norm, trace) = self._start(
            step, X, T, S, {} if work is None else work, xp.astype(theta, f64))
        if grad_norm < self.min_grad:
            return before, f"the gradient norm {grad_norm:.3g} is below min_grad {self.min_grad:g}"
        old = beta * e_d + alpha * e_w
        while True:
            trial = theta - xp.astype(damped((alpha + self.mu) / beta), theta.dtype, copy=False)
            model.set_flat_parameters(trial)
            after = loss.forward(model.forward(X, loss=loss)[0], T, S)[0]
            t64 = xp.astype(trial, f64)
            value, e_w_new = (float(v) for v in _host(xp.stack([xp.astype(after, f64), xp.sum(t64 * t64)])))
            e_d_new = 2.0 * value / scale  # the loss is scale/2·E_D
            new = beta * e_d_new + alpha * e_w_new
            if new < old:
                self._accepted()
                self.evidence(theta.shape[0], count, e_d_new, e_w_new, trace,
                              [] if self.alpha else [float(v) for v in _host(lam)])
                return after, self._stop_after_step(value, theta.shape[0])
            ended = self._rejected(model, theta, before, after, new, old)
            if ended is not None:
                return ended

    # Below this γ, α/β dwarfs JᵀJ's eigenvalues and each step shrinks the weights further; at
    # w = 0 (for odd activations a stationary point of E_D, as on XOR) none brings them back.
    min_gamma = 1e-2

    def _stop_after_step(self, loss: float, params: int) -> str | None:
        """Why training stops after an accepted step with loss ``loss``, or None."""
        if loss <= self.goal:
            return f"the loss {loss:.6g} reached the goal {self.goal:g}"
        if self.gamma is not None and self.gamma < self.min_gamma:
            return (f"the prior took every weight to 0 (gamma {self.gamma:.2g} of {params} parameters): "
                    "too few samples for Bayesian regularization to keep any; use lm, or more data")
        return None

    def _start(self, step: Any, X: Array, T: Array, S: Array | None, work: dict[str, Any],
               w: Array) -> tuple[Array, Any, Array, float, float, tuple[float, ...]]:
        """``(loss, solve, eigenvalues, scale, count, (E_D, E_W, |∇F|, trace))`` at the current
        parameters ``w`` (P,) float64: ``solve(m)`` is δ (P,) with (JᵀJ + mI) δ = Jᵀe + (α/β)·w,
        the eigenvalues JᵀJ's (:meth:`_solver`), clipped at 0, or None where the trace came
        from a Cholesky factor; the four numbers in one read."""
        xp = step.model.xp
        Z, e, J, scale, count = self.residuals(step, X, T, S, work)
        alpha, beta = self.alpha, self.beta
        g = J.T @ e + (alpha / beta) * w  # ∇F / (2β)
        damped, lam, A = self._solver(xp, J, e, w, g)
        # A is JᵀJ, or JJᵀ (R, R) whose eigenvalues are JᵀJ's but for P - R zeros, each 1/α more
        unseen = J.shape[1] - A.shape[0]
        trace = None
        if lam is None and alpha:  # a Cholesky solve per μ trial: the trace from one more factor
            eye = xp.eye(A.shape[0], dtype=A.dtype, device=device_of(A))
            trace = spd_inverse_trace(xp, A + (alpha / beta) * eye)
            trace = None if trace is None else trace / beta + unseen / alpha
        if trace is None:
            lam = xp.linalg.eigvalsh(A) if lam is None else lam
            lam = xp.where(lam > 0.0, lam, xp.zeros_like(lam))  # JᵀJ is semidefinite: rounding aside
            trace = xp.sum(1.0 / (beta * lam + alpha)) + unseen / alpha if alpha else xp.sum(lam * 0.0)
        reads = _host(xp.stack([xp.sum(e * e), xp.sum(w * w), 2.0 * beta * xp.linalg.vector_norm(g), trace]))
        return step.loss.forward(Z, T, S)[0], damped, lam, scale, count, tuple(float(v) for v in reads)

    def _solver(self, xp: Any, J: Array, e: Array, w: Array, g: Array) -> tuple[Any, Array | None, Array]:
        """``(solve, eigenvalues, A)``: ``solve(m)`` the δ (P,) of (JᵀJ + mI) δ = g = Jᵀe + (α/β)·w,
        for J (R, P), e (R,), w (P,); A the matrix solved, JᵀJ (P, P), or JJᵀ (R, R) where R < P;
        the eigenvalues A's, which the eigh of small systems gives, or None where each trial is
        a solve of A (from ``eigh_below`` unknowns).

        Where R < P the solve stays in residual space, as LM's does, with Woodbury's identity
        (JᵀJ + mI)⁻¹ = (I - Jᵀ(JJᵀ + mI)⁻¹J)/m: δ = Jᵀu_e + (α/β)/m·(w - Jᵀu_w), with
        [u_e, u_w] = (JJᵀ + mI)⁻¹[e, Jw], so one (R, R) eigh or solve serves the step and the
        trace instead of a (P, P) one."""
        rows, params = J.shape
        if rows >= params:
            A = J.T @ J
            return (*self.damped_solver(xp, A, g), A)
        ratio = self.alpha / self.beta
        K = J @ J.T
        inner, lam = self.damped_solver(xp, K, xp.stack([e, J @ w], axis=1))

        def solve(m: float) -> Array:
            u = inner(m)
            return J.T @ (u[:, 0] - (ratio / m) * u[:, 1]) + (ratio / m) * w

        return solve, lam, K

    def evidence(self, params: int, count: float, e_d: float, e_w: float, trace: float,
                 eigenvalues: Any) -> None:
        """MacKay's update of α and β (host floats) after an accepted step: ``params`` P,
        ``count`` N·K, E_D and E_W at the new point, ``trace`` tr((βJᵀJ + αI)⁻¹) of the step,
        ``eigenvalues`` JᵀJ's (host floats, its zeros may be left out: they add nothing to γ)
        for the first update only (α = 0; else empty)."""
        if self.alpha:
            self._reestimate(params - self.alpha * trace, count, e_d, e_w)
            return
        # The first update (α = 0): γ = P would make the prior dominate a fit that has barely
        # begun (α = P/2E_W, β small) and collapse it to zero weights; instead the fixed
        # point of γ = Σ βλ_i/(βλ_i + α) with the α, β it implies, on JᵀJ's eigenvalues.
        gamma = float(params)
        for _ in range(self.first_rounds):
            self._reestimate(gamma, count, e_d, e_w)
            gamma = sum(self.beta * v / (self.beta * v + self.alpha) for v in eigenvalues)
        self._reestimate(gamma, count, e_d, e_w)

    first_rounds = 30

    def _reestimate(self, gamma: float, count: float, e_d: float, e_w: float) -> None:
        """α = γ/(2·E_W), β = (N·K − γ)/(2·E_D), host floats (``count`` N·K); β is kept
        where N·K ≤ γ, and is 1 at E_D = 0 (as MATLAB)."""
        self.gamma, self.sum_sq_weights = gamma, e_w
        self.alpha = gamma / (2.0 * e_w) if e_w > 0.0 else 1.0
        if e_d <= 0.0:
            self.beta = 1.0
        elif count > gamma:
            self.beta = (count - gamma) / (2.0 * e_d)


class Newton(Damped):
    """Damped Newton with the exact Hessian of any loss (:func:`backprop.hessian.hessian`):
    A = H, with μ also raised (×``mu_inc``) until H + μI is positive definite, so that
    every step goes downhill. It escapes some XOR local minima that LM falls into.

    ``max_params``: refuse networks with more parameters than this (300): the
    Hessian costs P passes' worth of memory and a P x P eigendecomposition.
    ``max_bytes``: refuse data for which the pass's (P, N, width) arrays would exceed
    this (512 MiB): every direction carries a copy of every activation.
    """

    name = "newton"

    def step_work(self, batch: int, model: Any) -> int:
        """The Hessian: a pass over the batch per parameter, N × P² multiply-adds."""
        return batch * model.n_params ** 2

    def __init__(self, lr: float | None = None, *, max_params: int = 300, max_bytes: int = 512 * 2**20,
                 **kwargs: Any) -> None:
        super().__init__(lr, **kwargs)
        self.max_params, self.max_bytes = count(max_params, "max_params"), count(max_bytes, "max_bytes")

    def config(self) -> dict:
        return {**super().config(), "max_params": self.max_params, "max_bytes": self.max_bytes}

    def check(self, model: Any, loss: Any, n_samples: int) -> None:
        super().check(model, loss, n_samples)
        require_second_order(model.layers, "Newton's exact Hessian")  # before anything changes
        if model.n_params > self.max_params:
            size = model.n_params
            raise ConfigError(f"Newton's method builds the exact {size} x {size} Hessian; "
                              f"it is for networks of at most {self.max_params} parameters: use lm "
                              "(squared errors) or lbfgs")
        # The R-pass keeps, per layer, its input and output directions: (P, N, width) each, the
        # widths being those of the outputs of the layers with parameters (and their activations').
        trunk = model.trunk(loss)
        widths = sum(math.prod(shape) for layer, shape in zip(model.layers, model.layer_shapes())
                     if layer in trunk and layer.param_shapes())
        need = 2 * model.n_params * n_samples * (model.n_inputs + 2 * widths) * 8
        if need > self.max_bytes:
            raise ConfigError(f"Newton's method would need about {need / 2**20:,.0f} MiB for its exact "
                              f"Hessian over {n_samples:,} samples (limit {self.max_bytes / 2**20:,.0f} "
                              "MiB): use lm or lbfgs, or fewer samples")
        unsupported = [layer.name for layer in trunk if not layer.r_operator]
        if unsupported:
            raise ConfigError(f"Newton's method needs second derivatives, which {unsupported[0]} has not "
                              "here: use lm or lbfgs")

    def curvature(self, step: Any, X: Array, T: Array, S: Array | None, theta: Array,
                  decayed: Array, work: dict[str, Any]) -> tuple[Array, Array, Any]:
        model = step.model
        xp = model.xp
        f64 = model.backend.dtype("float64")
        value, g, H = hessian(model, step.loss, X, T, S)
        g, H = xp.astype(g, f64, copy=False), xp.astype(H, f64, copy=False)
        if self.weight_decay:
            g = g + self.weight_decay * decayed * theta
            H = H + self.weight_decay * _diag(xp, decayed)
        damped, eigenvalues = self.damped_solver(xp, H, g)
        if eigenvalues is None:
            eigenvalues = xp.linalg.eigvalsh(H)
        lowest = float(xp.min(eigenvalues))  # one more read per iteration: the definiteness test
        while lowest + self.mu <= 0.0 and self.mu <= self.mu_max:
            self.mu *= self.mu_inc

        def solve(mu: float) -> Array:
            return -damped(mu)

        return value, g, solve


def _decayed(model: Any, f64: Any, work: dict[str, Any]) -> Array:
    """The (P,) float64 mask of the weight matrices' entries among the flat parameters (1.0;
    biases 0.0), built once per fit into ``work``."""
    if "decayed" not in work:
        xp = model.xp
        work["decayed"] = xp.concat([xp.reshape(xp.full(p.shape, 1.0 if penalized(p) else 0.0, dtype=f64,
                                                        device=model.backend.device), (-1,))
                                     for p in model.parameter_list()])
    return work["decayed"]


def _diag(xp: Any, v: Array) -> Array:
    """The diagonal matrix of ``v`` (P,): the standard has no ``diag`` constructor."""
    return xp.eye(v.shape[0], dtype=v.dtype, device=device_of(v)) * v[None, :]


def _add_diagonal(xp: Any, A: Array, v: Array) -> Array:
    """``A`` (P, P), C-contiguous, plus the diagonal matrix of ``v`` (P,): in place where the
    library gives a view of the diagonal (:func:`backprop.flat.diagonal`), else a new array.
    The same sums A_ii + v_i either way."""
    view = flat.diagonal(xp, A)
    if view is None:
        return A + _diag(xp, v)
    view[...] = view + v
    return A



def _host(values: Array) -> Any:
    from backends import to_numpy_any

    return to_numpy_any(values)



register("lm", LevenbergMarquardt, aliases=("levenberg_marquardt", "trainlm"))
register("br", BayesianRegularization, aliases=("trainbr", "bayesian_regularization"))
register("newton", Newton, aliases=("damped_newton",))
