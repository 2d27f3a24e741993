"""Full-batch methods on reused buffers (issue 25): LM's Jacobian written into one buffer
kept across iterations, its damped solves shifting A's diagonal in place, and L-BFGS
handing SciPy one host gradient array refilled from the model's flat gradient buffer.
The arithmetic is unchanged: the previous way of forming each array is the reference."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.linalg import cho_factor, cho_solve

import backprop as bp
import backprop.second_order as second_order
from backprop import flat
from backprop.jacobian import jacobian
from backprop.namespace import device_of
from backprop.second_order import Damped
from conftest import to_np


def concatenated_jacobian(model, X):
    """J (N·K, P) formed as before the buffer: per output, each layer's rows concatenated
    into (N, P), the outputs stacked."""
    xp = model.xp
    with model.backend.activate(), model.mode(train=True):
        inputs, closures, H = [], [], X
        for i, layer in enumerate(model.layers):
            inputs.append(H)
            H, backward = layer.forward(H, train=True, input_grad=i > 0)
            closures.append(backward)
        n, k = H.shape
        columns = []
        for out in range(k):
            seed = xp.astype(xp.arange(k, device=device_of(H)) == out, H.dtype)
            dY = xp.broadcast_to(seed[None, :], (n, k))
            pieces = []
            for index in range(len(closures) - 1, -1, -1):
                pieces.append(model.layers[index].jacobian_rows(inputs[index], dY))
                dY = closures[index](dY)
            columns.append(xp.concat([rows for own in reversed(pieces) for rows in own], axis=1))
        return xp.reshape(xp.stack(columns, axis=1), (n * k, -1))


@pytest.mark.parametrize("spec", ["cpu", "strict"])
def test_the_jacobian_written_into_a_buffer_equals_the_concatenated_one(spec):
    from backends import get_backend

    backend = get_backend(spec)
    model = bp.mlp([4, 6, 5, 3], activation="tanh", dtype="float64", seed=2, device=spec)
    X = backend.asarray(np.random.default_rng(0).normal(size=(7, 4)), "float64")
    expected = to_np(concatenated_jacobian(model, X))
    out = model.xp.full((7, 3, model.n_params), np.nan, dtype=model.dtype, device=backend.device)
    Z, J = jacobian(model, X, out=out)
    np.testing.assert_array_equal(to_np(J), expected)  # every entry written, each in its column
    np.testing.assert_array_equal(to_np(out).reshape(21, -1), expected)  # into the buffer given
    np.testing.assert_array_equal(to_np(jacobian(model, X)[1]), expected)  # and into a new one
    with pytest.raises(ValueError, match="buffer"):
        jacobian(model, X, out=model.xp.empty((7, 3, model.n_params + 1), dtype=model.dtype,
                                              device=backend.device))


def data_pointer(J):
    return J.__array_interface__["data"][0]


def test_an_lm_iteration_reuses_its_jacobian_buffer(monkeypatch):
    """After the first iteration no (N·K, P) array is allocated: the Jacobian lands in the
    same buffer every iteration, and what an iteration allocates at its peak stays below one
    Jacobian (activations and one layer's rows at a time; the previous code held two more
    Jacobians per iteration: the concatenation and the stack)."""
    seen = []

    def spy(model, X, out=None):
        Z, J = jacobian(model, X, out=out)
        seen.append((id(out), data_pointer(J)))
        return Z, J

    monkeypatch.setattr(second_order, "jacobian", spy)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    t = np.sin(x[:, 0]) + x[:, 1] * x[:, 2]
    model = bp.mlp([3, 6, 6, 6, 6, 1], activation="tanh", dtype="float64", seed=0)  # no layer dominates P
    J_bytes = 4000 * model.n_params * 8
    peaks, base = [], [0]

    def measure(record, m):  # the iteration's peak above what it started with
        current, peak = tracemalloc.get_traced_memory()
        peaks.append(peak - base[0])
        tracemalloc.reset_peak()
        base[0] = current

    tracemalloc.start()
    try:
        history = model.fit(x, t, loss="mse", optimizer=bp.optimizers.get("lm", min_grad=0.0), epochs=4,
                            sample_weight=rng.uniform(0.5, 2.0, 4000), callbacks=[measure])
    finally:
        tracemalloc.stop()
    assert len(history) == 4 and len(seen) == 4
    assert len(set(seen)) == 1  # one buffer, the same memory, every iteration
    assert max(peaks[1:]) < J_bytes, (peaks, J_bytes)


def test_the_damped_solve_shifts_the_diagonal_in_place_and_puts_it_back():
    rng = np.random.default_rng(1)
    n = 60
    M = rng.normal(size=(n, n))
    A, b = M @ M.T, rng.normal(size=n)
    kept = A.copy()
    solver = Damped()
    solver.eigh_below = 0  # one solve per μ trial
    solve, eigenvalues = solver.damped_solver(np, A, b)
    assert eigenvalues is None
    for mu in (1e-3, 0.1, 10.0):
        tracemalloc.start()
        x = solve(mu)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # The same bits as a Cholesky solve of A + μI built anew (positive definite), the LU's
        # answer to roundoff, A itself back as it was
        built = kept + mu * np.eye(n)
        np.testing.assert_array_equal(x, cho_solve(cho_factor(built, lower=True), b[:, None])[:, 0])
        np.testing.assert_allclose(x, np.linalg.solve(built, b[:, None])[:, 0], rtol=1e-9)
        np.testing.assert_array_equal(A, kept)
        # LAPACK's own copy of A, and no (n, n) array of ours (eye, μ·eye, A + μI: three more)
        assert peak < 2 * 8 * n * n, peak


def test_an_indefinite_system_is_solved_by_lu():
    """Newton's H + μI can be indefinite: no Cholesky there, the LU's answer to the bit."""
    rng = np.random.default_rng(2)
    n = 40
    M = rng.normal(size=(n, n))
    A, b = M + M.T, rng.normal(size=n)  # symmetric, eigenvalues of both signs
    solver = Damped()
    solver.eigh_below = 0
    solve, _ = solver.damped_solver(np, A, b)
    np.testing.assert_array_equal(solve(0.5), np.linalg.solve(A + 0.5 * np.eye(n), b[:, None])[:, 0])


@pytest.fixture(params=["cpu", "torch", "strict", "cuda"])
def library(request):
    """A backend of each array library (skipped where it is not installed)."""
    from backends import BackendUnavailable, get_backend

    try:
        return get_backend(request.param)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


def test_spd_solve_per_library(library):
    from backends.linalg import spd_solve

    backend = library
    rng = np.random.default_rng(3)
    M = rng.normal(size=(30, 30))
    A, B = M @ M.T + 0.1 * np.eye(30), rng.normal(size=(30, 2))
    x = spd_solve(backend.xp, backend.asarray(A, "float64"), backend.asarray(B, "float64"))
    if backend.name == "strict":
        assert x is None  # no triangular solve in the standard: the caller's LU
        return
    np.testing.assert_allclose(to_np(x), np.linalg.solve(A, B), rtol=1e-10)
    indefinite = backend.asarray(M + M.T, "float64")
    assert spd_solve(backend.xp, indefinite, backend.asarray(B, "float64")) is None


def test_spd_inverse_trace_per_library(library):
    from backends.linalg import spd_inverse_trace, spd_solve

    backend = library
    rng = np.random.default_rng(4)
    M = rng.normal(size=(40, 40))
    A = M @ M.T + 0.05 * np.eye(40)
    trace = spd_inverse_trace(backend.xp, backend.asarray(A, "float64"))
    if backend.name == "strict":
        assert trace is None  # the caller's eigvalsh
        return
    assert float(to_np(trace)) == pytest.approx(float(np.sum(1.0 / np.linalg.eigvalsh(A))), rel=1e-10)
    assert spd_inverse_trace(backend.xp, backend.asarray(M + M.T, "float64")) is None
    poisoned = A.copy()
    poisoned[-1, -1] = np.nan  # LAPACK runs through a NaN pivot: the factor's last entry says so
    assert spd_inverse_trace(backend.xp, backend.asarray(poisoned, "float64")) is None
    column = backend.asarray(A[:, :1], "float64")
    assert spd_solve(backend.xp, backend.asarray(poisoned, "float64"), column) is None


@pytest.mark.parametrize("spec", ["cpu", "strict", "torch"])
def test_the_diagonal_is_a_view(spec):
    from backends import BackendUnavailable, get_backend

    try:
        backend = get_backend(spec)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    xp = backend.xp
    A = backend.asarray(np.arange(9.0).reshape(3, 3), "float64")
    view = flat.diagonal(xp, A)
    assert view is not None
    np.testing.assert_array_equal(to_np(view), [0.0, 4.0, 8.0])
    view[...] = view + 1.0
    np.testing.assert_array_equal(to_np(A), np.arange(9.0).reshape(3, 3) + np.eye(3))


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_lbfgs_hands_scipy_one_gradient_array_holding_the_live_buffer(monkeypatch, weight_decay):
    import scipy.optimize

    from backends import to_numpy_any

    minimize = scipy.optimize.minimize
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 5)), rng.integers(0, 3, 120)
    model = bp.mlp([5, 7, 3], dtype="float64", seed=0)
    handed = []

    def spy(fun, x0, **kwargs):
        def wrapped(theta):
            value, gradient = fun(theta)
            live = np.array(to_numpy_any(model.flat_gradients()))
            W = np.array(to_numpy_any(model.flat_parameters()))
            decay = np.concatenate([(p.ndim >= 2) * np.ones(p.size) for p in model.parameter_list()])
            handed.append(gradient)
            np.testing.assert_array_equal(gradient, live + weight_decay * decay * W if weight_decay
                                          else live)
            assert not np.shares_memory(gradient, to_numpy_any(model.flat_gradients()))
            return value, gradient

        return minimize(wrapped, x0, **kwargs)

    monkeypatch.setattr(scipy.optimize, "minimize", spy)
    model.fit(x, y, loss="ce", epochs=15, optimizer=bp.optimizers.get("lbfgs", weight_decay=weight_decay))
    assert len(handed) > 10
    assert all(g is handed[0] for g in handed)  # one host array, refilled
