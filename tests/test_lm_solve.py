"""The damped solve sized to the problem: one ``eigh`` per iteration below
``Damped.eigh_below`` unknowns, one ``linalg.solve`` per μ trial from there. Both
paths must take the same steps, so each test trains twice with a path forced."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.second_order import Damped


def sine(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, (n, 2))
    return x, np.sin(2.0 * x[:, 0]) + x[:, 1] / 2.0 + rng.normal(0.0, 0.1, n)


def train(optimizer, eigh_below, n, epochs=6, **settings):
    """Flat float64 weights (P,) and the μ history after ``epochs`` iterations on ``n``
    rows with the solve path forced: eigh_below=0 always solves, a huge one always eigh."""
    x, t = sine(n)
    model = bp.mlp([2, 8, 1], activation="tanh", dtype="float64", seed=3)
    opt = bp.optimizers.get(optimizer, min_grad=0.0, **settings)
    opt.eigh_below = eigh_below
    history = model.fit(x, t, loss="mse", optimizer=opt, epochs=epochs)
    return np.asarray(model.flat_parameters()), [r["mu"] for r in history.records]


@pytest.mark.parametrize("optimizer,n,settings", [
    ("lm", 60, {}),                        # parameter space: N·K = 60 > P = 33
    ("lm", 10, {}),                        # residual space: JJᵀ (10, 10), N·K < P
    ("lm", 10, {"weight_decay": 0.05}),    # the penalty forces parameter space
    ("newton", 40, {}),
    ("newton", 40, {"weight_decay": 0.05}),
])
def test_eigh_and_solve_paths_take_the_same_steps(numpy_backend, optimizer, n, settings):
    by_eigh, mu_eigh = train(optimizer, 10**9, n, **settings)
    by_solve, mu_solve = train(optimizer, 0, n, **settings)
    start = np.asarray(bp.mlp([2, 8, 1], activation="tanh", dtype="float64", seed=3).flat_parameters())
    assert not np.allclose(by_eigh, start)  # it trained
    np.testing.assert_allclose(by_solve, by_eigh, rtol=1e-10, atol=1e-12)
    assert mu_solve == mu_eigh  # the same accepted and rejected trials


def test_the_path_is_chosen_by_size(numpy_backend):
    calls = []

    class Spy(Damped):
        name = "spy"

    solver = Spy()
    xp = np
    rng = np.random.default_rng(0)
    for n in (4, 9):
        M = rng.normal(size=(n, n))
        A, b = M @ M.T + np.eye(n), rng.normal(size=n)
        solver.eigh_below = 5
        solve, eigenvalues = solver.damped_solver(xp, A, b)
        calls.append(eigenvalues is None)
        np.testing.assert_allclose((A + 0.3 * np.eye(n)) @ solve(0.3), b, rtol=1e-12, atol=1e-12)
    assert calls == [False, True]  # 4 < 5 by eigh, 9 >= 5 by solve
    assert Damped.eigh_below == 500
