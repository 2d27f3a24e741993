"""The gradient checker: hand-written backprop against central differences in float64.

Usable on a layer, a loss or a whole model, on any backend. For each array (the
input and every parameter) it perturbs up to ``max_entries`` entries by +-eps,
recomputes the scalar loss, and compares (L+ - L-) / 2 eps with the analytic
gradient. The error of an array is the worst absolute difference divided by the
largest analytic gradient entry of that array, so entries whose gradient is
almost zero do not produce meaningless huge relative errors.

With float64 and eps = 1e-6 the truncation error is ~eps^2 and rounding ~1e-16/eps,
so a correct backward gives errors around 1e-8 to 1e-10; a wrong one gives 1e-2 or
more. Kinks (ReLU at 0) within eps of an input break the check: keep inputs away.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backends import Backend, backend_for, get_backend

from . import losses as losses_mod
from ._typing import Array
from .errors import ConfigError
from .layers import Layer


@dataclass
class GradcheckResult:
    """Worst relative error per checked array (``"X"`` is the input)."""

    errors: dict[str, float]
    tolerance: float
    entries: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(e <= self.tolerance for e in self.errors.values())

    @property
    def worst(self) -> float:
        return max(self.errors.values(), default=0.0)

    def __str__(self) -> str:
        width = max((len(k) for k in self.errors), default=4)
        lines = [f"{'array':<{width}}  {'worst rel. error':>16}  entries"]
        for name, err in self.errors.items():
            flag = "" if err <= self.tolerance else "  FAIL"
            lines.append(f"{name:<{width}}  {err:16.3e}  {self.entries.get(name, 0):>7}{flag}")
        lines.append(f"{'ok' if self.ok else 'FAILED'} (tolerance {self.tolerance:g})")
        return "\n".join(lines)


def _owner(X: Any) -> Backend:
    """The backend of a device array; NumPy for host data."""
    try:
        return backend_for(X)
    except TypeError:
        return get_backend("cpu")


def _numeric_vs_analytic(f: Callable[[], float], A: Array, G: Array, eps: float,
                         picks: list[tuple[int, ...]]) -> float:
    xp = backend_for(A).xp
    scale = float(xp.max(xp.abs(G)))
    numeric_scale = 0.0
    diffs = []
    for idx in picks:
        orig = float(A[idx])
        A[idx] = orig + eps
        plus = f()
        A[idx] = orig - eps
        minus = f()
        A[idx] = orig
        numeric = (plus - minus) / (2.0 * eps)
        numeric_scale = max(numeric_scale, abs(numeric))
        diffs.append(abs(numeric - float(G[idx])))
    return max(diffs, default=0.0) / max(scale, numeric_scale, 1e-12)


def _picks(rng: Any, shape: tuple[int, ...], max_entries: int) -> list[tuple[int, ...]]:
    size = math.prod(shape)
    flat = range(size) if size <= max_entries else sorted(rng.permutation(size)[:max_entries].tolist())
    picks = []
    for k in flat:
        idx = []
        for dim in reversed(shape):
            idx.append(int(k % dim))
            k //= dim
        picks.append(tuple(reversed(idx)))
    return picks


def gradcheck(target: Layer | losses_mod.Loss | Any, X: Any, y: Any = None, *,
              loss: str | losses_mod.Loss | None = None, eps: float = 1e-6,
              tolerance: float = 1e-6, max_entries: int = 40, seed: int = 0,
              wrt_input: bool = True) -> GradcheckResult:
    """Check the hand-written gradients of ``target`` numerically, in float64.

    Parameters
    ----------
    target : Layer, Loss or Sequential
        A layer (activation or Dense) is checked through the scalar
        L = sum(Y * R) for a fixed random R, so dL/dY = R. A loss is checked on
        outputs ``X`` against targets ``y``. A model is checked on inputs ``X`` and
        targets ``y`` with ``loss`` (default: the model's loss).
    X : array
        Inputs (N, features); for a loss, the outputs (logits) (N, K). Host arrays
        go to the target's device; device arrays stay where they are.
    y : array, optional
        Targets (a loss or a model).
    eps : float
        The central-difference step.
    tolerance : float
        The largest acceptable error (see the module docstring for the scale).
    max_entries : int
        Entries checked per array, drawn at random (seeded) beyond that.
    wrt_input : bool
        Also check the gradient with respect to ``X``.

    Returns
    -------
    GradcheckResult
        ``.ok``, ``.worst``, ``.errors`` by array name; ``print()`` shows a table.
    """
    from .model import Sequential
    from .targets import as_targets

    if isinstance(target, Sequential):
        backend = target.backend
        model = target.to(dtype="float64")
        loss_obj = model._resolve_loss(loss)
        with backend.activate():
            X64 = backend.asarray(X, "float64", copy=True)
            T, _ = as_targets(backend, model.dtype, y, loss_obj, model.n_outputs, X64.shape[0])
            params = model.parameters()

            def f() -> float:
                return float(loss_obj.forward(model.forward(X64, loss=loss_obj)[0], T)[0])

            Z, backward = model.forward(X64, train=True, loss=loss_obj)
            dX = backward(loss_obj.forward(Z, T)[1])
            analytic = {"X": dX, **model.gradients()}
            return _compare(backend, f, {"X": X64, **params}, analytic, eps, tolerance,
                            max_entries, seed, wrt_input)

    backend: Backend = getattr(target, "backend", None) or _owner(X)
    with backend.activate():
        X64 = backend.asarray(X, "float64", copy=True)
        if isinstance(target, losses_mod.Loss):
            T = backend.asarray(y, "float64")

            def f() -> float:
                return float(target.forward(X64, T)[0])

            analytic = {"X": target.forward(X64, T)[1]}
            return _compare(backend, f, {"X": X64}, analytic, eps, tolerance, max_entries, seed, True)

        if not isinstance(target, Layer):
            raise ConfigError(f"gradcheck takes a Layer, a Loss or a Sequential, got {type(target).__name__}")
        f64 = backend.dtype("float64")
        if target.backend is None:  # never built: give it float64 parameters from the seed
            layer = copy.copy(target)
            layer.build(backend, f64, backend.rng(seed))
        else:
            layer = target.cast(backend, f64)
        Y, backward = layer.forward(X64, train=True)
        R = backend.asarray(backend.rng(seed, stream=7).normal(1.0, tuple(Y.shape)), "float64")

        def f() -> float:
            return float(backend.xp.sum(layer.forward(X64, train=True)[0] * R))

        dX = backward(R)
        arrays = {"X": X64, **layer.params}
        analytic = {"X": dX, **layer.grads}
        return _compare(backend, f, arrays, analytic, eps, tolerance, max_entries, seed, wrt_input)


def _compare(backend: Backend, f: Callable[[], float], arrays: dict[str, Array],
             analytic: dict[str, Array], eps: float, tolerance: float, max_entries: int,
             seed: int, wrt_input: bool) -> GradcheckResult:
    rng = backend.rng(seed, stream=8)
    errors, entries = {}, {}
    for name, A in arrays.items():
        if name == "X" and not wrt_input:
            continue
        picks = _picks(rng, tuple(A.shape), max_entries)
        errors[name] = _numeric_vs_analytic(f, A, analytic[name], eps, picks)
        entries[name] = len(picks)
    return GradcheckResult(errors, tolerance, entries)


def jacobian_check(model: Any, X: Any, *, eps: float = 1e-6, tolerance: float = 1e-7,
                   max_entries: int = 200, seed: int = 0) -> GradcheckResult:
    """Check :func:`backprop.jacobian.jacobian` against central differences, in float64.

    Every column of J (one per parameter, up to ``max_entries`` drawn at random) is
    compared with (Z(θ + ε e_p) - Z(θ - ε e_p)) / 2ε over all outputs of all samples;
    the error of a parameter array is the worst over its columns, relative to the
    largest entry of J. Runs on the model's own device.
    """
    from .flat import sizes
    from .jacobian import jacobian

    model = model.to(dtype="float64")
    backend, xp = model.backend, model.xp
    with backend.activate():
        X64 = backend.asarray(X, "float64", copy=True)
        _, J = jacobian(model, X64)
        theta = xp.asarray(model.flat_parameters(), copy=True)
        names = list(model.parameters())
        counts = sizes([tuple(p.shape) for p in model.parameter_list()])
        owner = [name for name, count in zip(names, counts) for _ in range(count)]
        rng = backend.rng(seed, stream=3)
        total = J.shape[1]
        columns = (range(total) if total <= max_entries
                   else sorted(rng.permutation(total)[:max_entries].tolist()))
        scale = max(float(xp.max(xp.abs(J))), 1e-12)
        errors: dict[str, float] = dict.fromkeys(names, 0.0)
        entries: dict[str, int] = dict.fromkeys(names, 0)
        for p in columns:
            bump = xp.astype(xp.arange(total, device=backend.device) == p, theta.dtype) * eps
            model.set_flat_parameters(theta + bump)
            plus = xp.reshape(model(X64), (-1,))
            model.set_flat_parameters(theta - bump)
            minus = xp.reshape(model(X64), (-1,))
            numeric = (plus - minus) / (2.0 * eps)
            err = float(xp.max(xp.abs(numeric - J[:, p]))) / scale
            errors[owner[p]] = max(errors[owner[p]], err)
            entries[owner[p]] += 1
        model.set_flat_parameters(theta)
    return GradcheckResult({k: v for k, v in errors.items() if entries[k]}, tolerance,
                           {k: v for k, v in entries.items() if v})
