"""The gradient checker: hand-written backprop against finite differences in float64.

Usable on a layer, a loss or a whole model, on any backend. For each array (the
input and every parameter) it perturbs up to ``max_entries`` entries by +-eps and
+-2 eps, recomputes the scalar loss, and compares the five-point difference quotient
[8 (L(+eps) - L(-eps)) - (L(+2 eps) - L(-2 eps))] / 12 eps with the analytic
gradient. The error of an array is the worst absolute difference divided by the
largest analytic gradient entry of that array, so entries whose gradient is
almost zero do not produce meaningless huge relative errors.

A difference quotient carries two errors. Truncation: eps^2 |L'''| / 6 for a central
difference, which exceeds a small gradient at a fitted minimum (a loss of 1e-15 whose
gradient is 1e-9: errors of 1e-5 relative); eps^4 |L^(5)| / 30 for the five-point
quotient, negligible. Roundoff: each loss value is off by the loss's rounding noise
sigma, so the quotient is off by up to 1.5 sigma / eps. With float64 and eps = 1e-6
a correct backward gives errors around 1e-8 to 1e-10 of an array's gradient and a
wrong one 1e-2 or more, as long as that gradient is large next to sigma / eps. It is
not when the true gradient is tiny next to the loss (a bias the loss barely depends
on), or when the loss is a small difference of large terms (a well-trained
classifier: the log-sum-exp of logits near 10 minus the right logit), so that sigma
is far above eps_machine |L|. There the quotient is roundoff, and comparing it with
the tiny gradient fails a correct backward.

So the check measures sigma near the point (:func:`_noise`) and gives every array's
error a floor, the roundoff a difference quotient can carry:

    floor = FLOOR_FACTOR * STENCIL_NOISE * max(sigma, eps_machine * |L|) / eps

An array passes when each difference is within ``tolerance`` times its largest
gradient, or within the floor; the table marks the arrays whose gradient is below
floor / tolerance, where the floor decided. A wrong gradient is caught once its error
exceeds the floor: a relative error of 1e-4 is caught on an array whose gradient is
above 1e4 times the floor, and an error below the floor is invisible to differences
at this eps. Kinks (ReLU at 0) within 2 eps of an input break the check: keep inputs
away.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backends import Backend, Stream, backend_for, get_backend

from .. import losses as losses_mod
from .._typing import Array
from ..errors import ConfigError
from ..layers import Layer

#: Evaluations of the noise probe: 25 points give 21 4th differences, enough to estimate sigma
#: within about 20% (with 9, two directions' estimates differed by up to 5 times).
NOISE_POINTS = 25
#: Order of the differences the probe takes: high enough that the smooth part, step^4 f'''',
#: vanishes next to the rounding noise.
NOISE_ORDER = 4
#: The probe's step, relative to eps: far below eps, far above the spacing of float64 near 1.
NOISE_STEP = 1e-2
#: The floor's margin over the roundoff of one quotient, STENCIL_NOISE sigma / eps: the quotient's
#: roundoff has a standard deviation of about 0.95 sigma / eps, so the worst of 40 is about
#: 3 sigma / eps, five times below the floor.
FLOOR_FACTOR = 10.0
#: Entries checked per array by default (each costs four evaluations of the loss).
MAX_ENTRIES = 40
#: The five-point stencil: (k, w) weighs f(x + k h) - f(x - k h); the quotient divides by 12 h.
STENCIL = ((1, 8.0), (2, -1.0))
#: Its roundoff at most, in sigma / h: the sum of |weights| over 12.
STENCIL_NOISE = sum(2 * abs(w) for _, w in STENCIL) / 12.0
#: The most multiply-adds a check from the command line may take (see :func:`check_budget`):
#: a 1024-1024-1024-3 network on 8 samples, 20 entries per array (8.5e9), took 17 s on two CPU cores.
MAX_WORK = 10**10


@dataclass
class GradcheckResult:
    """Worst relative error per checked array (``"X"`` is the input).

    ``entries``: how many entries of each array were checked; ``sizes``: how many it has;
    ``floor``: the roundoff floor of a difference quotient (see the module docstring);
    ``floored``: the arrays whose largest gradient is below ``floor / tolerance``.
    """

    errors: dict[str, float]
    tolerance: float
    entries: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    floor: float = 0.0
    floored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(e <= self.tolerance for e in self.errors.values())

    @property
    def worst(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def checked(self) -> int:
        """Entries checked in all arrays together."""
        return sum(self.entries.values())

    def __str__(self) -> str:
        width = max((len(k) for k in self.errors), default=4)
        counts = {k: f"{self.entries.get(k, 0)} of {self.sizes.get(k, self.entries.get(k, 0))}"
                  for k in self.errors}
        cw = max((len(c) for c in counts.values()), default=7)
        lines = [f"{'array':<{width}}  {'worst rel. error':>16}  {'entries':>{cw}}"]
        for name, err in self.errors.items():
            mark = "*" if name in self.floored else " "
            flag = "" if err <= self.tolerance else "  FAIL"
            lines.append(f"{name:<{width}}  {err:15.3e}{mark}  {counts[name]:>{cw}}{flag}")
        if self.floored:
            lines.append(f"* gradient below {self.floor / self.tolerance:.1e}: roundoff decides, so the "
                         f"error is |difference| relative to the floor {self.floor:.1e}, times the tolerance")
        lines.append(f"{'ok' if self.ok else 'FAILED'} (tolerance {self.tolerance:g})")
        return "\n".join(lines)


def _owner(X: Any) -> Backend:
    """The backend of a device array; NumPy for host data."""
    try:
        return backend_for(X)
    except TypeError:
        return get_backend("cpu")


def _noise(f: Callable[[], Any], backend: Backend, arrays: list[Array], step: float, seed: int) -> float:
    """The rounding noise sigma of ``f`` near the current values of ``arrays``.

    ``f`` returns a float or a host vector (then sigma is its noisiest entry's). It is
    evaluated at ``NOISE_POINTS`` points theta + j * step * D along a random +-1 direction
    D over every array. Over so small a step the 4th differences of the smooth part
    (step^4 f'''') vanish, and those of independent rounding errors of variance sigma^2
    have variance C(8, 4) sigma^2 = 70 sigma^2 (Moré and Wild, "Estimating computational
    noise", 2011), so sigma^2 = mean((Δ^4 f)^2) / 70. The arrays are restored after.
    """
    xp, rng = backend.xp, backend.rng(seed, stream=Stream.NOISE_PROBE)
    origs = [xp.asarray(A, copy=True) for A in arrays]
    dirs = [backend.asarray(np.sign(rng.normal(1.0, tuple(A.shape))), "float64") for A in arrays]
    values = []
    try:
        for j in range(NOISE_POINTS):
            shift = (j - NOISE_POINTS // 2) * step
            for A, orig, D in zip(arrays, origs, dirs):
                A[...] = orig + shift * D
            values.append(np.asarray(f(), dtype=np.float64).reshape(-1))
    finally:
        for A, orig in zip(arrays, origs):
            A[...] = orig
    d = np.diff(np.stack(values), n=NOISE_ORDER, axis=0)
    var = np.mean(d**2, axis=0) / math.comb(2 * NOISE_ORDER, NOISE_ORDER)
    return float(np.sqrt(np.max(var, initial=0.0)))


def roundoff_floor(f: Callable[[], Any], backend: Backend, arrays: list[Array], eps: float,
                   seed: int) -> float:
    """The roundoff a central difference quotient of ``f`` with step ``eps`` can carry here:
    ``FLOOR_FACTOR * STENCIL_NOISE * max(sigma, eps_machine * |f|) / eps`` (the module
    docstring derives it).
    The second term is the rounding of the result alone, a lower bound for sigma."""
    sigma = _noise(f, backend, arrays, NOISE_STEP * eps, seed)
    value = float(np.max(np.abs(np.asarray(f(), dtype=np.float64)), initial=0.0))
    return float(FLOOR_FACTOR * STENCIL_NOISE * max(sigma, np.finfo(np.float64).eps * value) / eps)


def _difference(at: Callable[[float], Any], eps: float) -> Any:
    """The five-point difference quotient of f(x + shift) = ``at(shift)`` with step eps:
    [8 (f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))] / 12h. Its truncation, h^4 |f^(5)| / 30,
    is negligible where a central difference's h^2 |f'''| / 6 is not (a loss at a fitted
    minimum); its roundoff is at most ``STENCIL_NOISE`` sigma / h."""
    return sum(w * (at(k * eps) - at(-k * eps)) for k, w in STENCIL) / (12.0 * eps)


def _numeric_vs_analytic(f: Callable[[], float], A: Array, G: Array, eps: float,
                         picks: list[tuple[int, ...]], lowest: float) -> tuple[float, bool]:
    """The worst |numeric - analytic| over ``picks``, relative to the array's largest gradient
    or to ``lowest`` (floor / tolerance) where that is larger; and whether it was."""
    xp = backend_for(A).xp
    scale = float(xp.max(xp.abs(G)))
    numeric_scale = 0.0
    diffs = []
    for idx in picks:
        orig = float(A[idx])

        def at(shift: float, idx: tuple[int, ...] = idx, orig: float = orig) -> float:
            A[idx] = orig + shift
            return f()

        numeric = _difference(at, eps)
        A[idx] = orig
        numeric_scale = max(numeric_scale, abs(numeric))
        diffs.append(abs(numeric - float(G[idx])))
    own = max(scale, numeric_scale)
    return max(diffs, default=0.0) / max(own, lowest, 1e-12), own < lowest


def _chosen(rng: Any, size: int, max_entries: int) -> list[int]:
    """Flat indices to check: all of them, or ``max_entries`` drawn at random, in order."""
    return list(range(size)) if size <= max_entries else sorted(rng.permutation(size)[:max_entries].tolist())


def _picks(rng: Any, shape: tuple[int, ...], max_entries: int) -> list[tuple[int, ...]]:
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in _chosen(rng, math.prod(shape),
                                                                              max_entries)]


def evaluations(sizes: list[int], max_entries: int = MAX_ENTRIES) -> int:
    """Evaluations of the loss a check of arrays of ``sizes`` entries makes: four per checked
    entry, the noise probe's and one more. The cost of a check is this many forward passes."""
    return 2 * len(STENCIL) * sum(min(s, max_entries) for s in sizes) + NOISE_POINTS + 1


def check_budget(shapes: list[tuple[int, ...]], n_inputs: int, samples: int,
                 max_entries: int = MAX_ENTRIES) -> int:
    """The multiply-adds of a check of a network with parameter arrays of ``shapes`` on
    ``samples`` inputs of ``n_inputs`` features: :func:`evaluations` forward passes of about
    samples * parameters each. Raises :class:`ConfigError` above ``MAX_WORK``, before
    anything is built."""
    sizes = [math.prod(s) for s in shapes]
    passes = evaluations([samples * n_inputs, *sizes], max_entries)
    work = passes * samples * sum(sizes)
    if work > MAX_WORK:
        raise ConfigError(f"this check would take {passes:,} forward passes of {samples:,} samples through "
                          f"{sum(sizes):,} parameters ({work:.1e} multiply-adds, limit {MAX_WORK:.0e}): "
                          "use fewer --samples, a smaller --max-params or a smaller network")
    return work


def gradcheck(target: Layer | losses_mod.Loss | Any, X: Any, y: Any = None, *,
              loss: str | losses_mod.Loss | None = None, eps: float = 1e-6,
              tolerance: float = 1e-6, max_entries: int = MAX_ENTRIES, seed: int = 0,
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
        The largest acceptable error, relative to each array's largest gradient; an array
        whose gradient is below the roundoff floor / tolerance is held to the floor
        instead (see the module docstring).
    max_entries : int
        Entries checked per array, drawn at random (seeded) beyond that.
    wrt_input : bool
        Also check the gradient with respect to ``X``.

    Returns
    -------
    GradcheckResult
        ``.ok``, ``.worst``, ``.errors`` by array name, ``.entries`` checked of ``.sizes``,
        ``.floor``; ``print()`` shows a table.
    """
    from ..model import Sequential
    from ..targets import as_inputs, as_targets

    if isinstance(target, Sequential):
        backend = target.backend
        model = target.to(dtype="float64")
        loss_obj = model._resolve_loss(loss)
        # Training mode for the differences and the backward pass alike: the gradient checked is
        # that of the objective training minimizes.
        with backend.activate(), model.mode(train=True):
            # a copy (its entries are perturbed), of the model's sample shape
            X64 = as_inputs(backend, model.dtype, backend.asarray(X, "float64", copy=True), model.input_shape)
            T, _ = as_targets(backend, model.dtype, y, loss_obj, model.n_outputs, X64.shape[0])
            params = model.parameters()
            same_draws = _same_draws(model.state.device_rng)

            def f() -> float:
                same_draws()
                return float(loss_obj.forward(model.forward(X64, loss=loss_obj)[0], T)[0])

            same_draws()
            Z, backward = model.forward(X64, loss=loss_obj)
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
        if type(layer).draws:  # a layer alone that draws (dropout): a generator of its own, from the seed
            layer.rng = backend.device_rng(seed, Stream.DROPOUT)
        same_draws = _same_draws(getattr(layer, "rng", None))
        Y, backward = layer.forward(X64, train=True)  # a layer alone: the training pass, as above
        probe = backend.rng(seed, stream=Stream.LAYER_PROBE)
        R = backend.asarray(probe.normal(1.0, tuple(Y.shape)), "float64")

        def f() -> float:
            same_draws()
            return float(backend.xp.sum(layer.forward(X64, train=True)[0] * R))

        dX = backward(R)
        arrays = {"X": X64, **layer.params}
        analytic = {"X": dX, **layer.grads}
        return _compare(backend, f, arrays, analytic, eps, tolerance, max_entries, seed, wrt_input)


def _same_draws(rng: Any) -> Callable[[], None]:
    """A function that puts ``rng`` (a device generator, or None) back to its state now: called
    before every pass, so that a layer that draws (dropout) draws the same masks in each, and the
    differences see one function, the one the backward pass differentiates."""
    if rng is None:
        return lambda: None
    state = rng.get_state()
    return lambda: rng.set_state(state)


def _compare(backend: Backend, f: Callable[[], float], arrays: dict[str, Array],
             analytic: dict[str, Array], eps: float, tolerance: float, max_entries: int,
             seed: int, wrt_input: bool) -> GradcheckResult:
    rng = backend.rng(seed, stream=Stream.CHECKED_ENTRIES)
    floor = roundoff_floor(f, backend, list(arrays.values()), eps, seed)
    errors, entries, sizes, floored = {}, {}, {}, []
    for name, A in arrays.items():
        if name == "X" and not wrt_input:
            continue
        picks = _picks(rng, tuple(A.shape), max_entries)
        errors[name], below = _numeric_vs_analytic(f, A, analytic[name], eps, picks, floor / tolerance)
        entries[name], sizes[name] = len(picks), math.prod(A.shape)
        if below:
            floored.append(name)
    return GradcheckResult(errors, tolerance, entries, sizes, floor, floored)


def jacobian_check(model: Any, X: Any, *, eps: float = 1e-6, tolerance: float = 1e-7,
                   max_entries: int = MAX_ENTRIES, seed: int = 0) -> GradcheckResult:
    """Check :func:`backprop.jacobian.jacobian` against central differences, in float64.

    Columns of J (one per parameter; up to ``max_entries`` per parameter array, drawn at
    random) are compared with (Z(θ + ε e_p) - Z(θ - ε e_p)) / 2ε over all outputs of all
    samples; the error of a parameter array is the worst over its columns, relative to
    the largest entry of J, or to the roundoff floor of the outputs' differences over the
    tolerance where that is larger (see the module docstring: saturated softmax outputs
    have a tiny J). Runs on the model's own device.
    """
    from ..flat import sizes
    from ..jacobian import jacobian, jacobian_bytes
    from ..second_order import LevenbergMarquardt

    need = jacobian_bytes(len(X), model.n_outputs, model.n_params)
    limit = LevenbergMarquardt().max_jacobian_bytes
    if need > limit:  # J is built whole: the limit Levenberg–Marquardt puts on the same matrix
        raise ConfigError(f"the Jacobian would take {need / 2**20:,.0f} MiB ({len(X)} samples x "
                          f"{model.n_outputs:,} outputs x {model.n_params:,} parameters; limit "
                          f"{limit / 2**20:,.0f} MiB, as for Levenberg–Marquardt): check a smaller model "
                          "or fewer samples")
    model = model.to(dtype="float64")
    backend, xp = model.backend, model.xp
    with backend.activate():
        X64 = backend.asarray(X, "float64", copy=True)
        _, J = jacobian(model, X64)
        theta = xp.asarray(model.flat_parameters(), copy=True)
        names = list(model.parameters())
        counts = sizes([tuple(p.shape) for p in model.parameter_list()])
        rng = backend.rng(seed, stream=Stream.JACOBIAN_COLUMNS)
        total = J.shape[1]

        def outputs() -> np.ndarray:
            return backend.to_numpy(xp.reshape(model(X64), (-1,)))

        floor = roundoff_floor(outputs, backend, model.parameter_list(), eps, seed)
        own = float(xp.max(xp.abs(J)))
        scale = max(own, floor / tolerance, 1e-12)
        errors: dict[str, float] = dict.fromkeys(names, 0.0)
        entries: dict[str, int] = dict.fromkeys(names, 0)
        offset = 0
        for name, count in zip(names, counts):
            for p in (offset + k for k in _chosen(rng, count, max_entries)):
                unit = xp.astype(xp.arange(total, device=backend.device) == p, theta.dtype)

                def at(shift: float, unit: Array = unit) -> Array:
                    model.set_flat_parameters(theta + shift * unit)
                    return xp.reshape(model(X64), (-1,))

                numeric = _difference(at, eps)
                errors[name] = max(errors[name], float(xp.max(xp.abs(numeric - J[:, p]))) / scale)
                entries[name] += 1
            offset += count
        model.set_flat_parameters(theta)
    return GradcheckResult(errors, tolerance, entries, dict(zip(names, counts)), floor,
                           names if own < floor / tolerance else [])
