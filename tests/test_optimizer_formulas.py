"""Every optimizer's update against its formula, written out here in plain NumPy float64.

The references below are independent of :mod:`backprop.optimizers` (and of
PyTorch): each keeps its own state and applies the textbook/PyTorch update. Five
consecutive steps with new gradients each step exercise the state (velocities,
moments, the step count in Adam's bias correction), on NumPy and on
array-api-strict. Weight decay reaches weight matrices (ndim >= 2) only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop.optimizers as optim
from backends import BackendUnavailable, get_backend
from conftest import to_np

STEPS = 5
RTOL = 1e-12
LR = 0.01
WD = 0.1


@pytest.fixture(params=["cpu", "strict"])
def backend(request):
    """NumPy and array-api-strict (the standard only, on a non-default device)."""
    try:
        return get_backend(request.param)
    except BackendUnavailable as exc:
        pytest.skip(f"{request.param} not usable here: {exc}")


# -- references: plain NumPy float64, one state dict per parameter ----------------------


def ref_gd(p, g, s, t):
    return p - LR * g


def ref_momentum(p, g, s, t, mu=0.9):
    s["v"] = mu * s.get("v", np.zeros_like(p)) + g
    return p - LR * s["v"]


def ref_nesterov(p, g, s, t, mu=0.9):
    s["v"] = mu * s.get("v", np.zeros_like(p)) + g
    return p - LR * (g + mu * s["v"])


def ref_rmsprop(p, g, s, t, rho=0.9, eps=1e-8):
    s["s"] = rho * s.get("s", np.zeros_like(p)) + (1 - rho) * g**2
    return p - LR * g / (np.sqrt(s["s"]) + eps)


def ref_adam(p, g, s, t, b1=0.9, b2=0.999, eps=1e-8):
    s["m"] = b1 * s.get("m", np.zeros_like(p)) + (1 - b1) * g
    s["v"] = b2 * s.get("v", np.zeros_like(p)) + (1 - b2) * g**2
    # PyTorch's arrangement of mhat / (sqrt(vhat) + eps), so it agrees to rounding:
    # lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    return p - (LR / (1 - b1**t)) * s["m"] / (np.sqrt(s["v"]) / math.sqrt(1 - b2**t) + eps)


def ref_adamw(p, g, s, t):
    if p.ndim >= 2:
        p = p - LR * WD * p  # decoupled: the weights shrink, the gradient is untouched
    return ref_adam(p, g, s, t)


def coupled(update, wd):
    """L2 weight decay added to the gradient of weight matrices only."""

    def step(p, g, s, t):
        if p.ndim >= 2:
            g = g + wd * p
        return update(p, g, s, t)

    return step


# (id, optimizer factory, reference update)
CASES = [
    ("gd", lambda: optim.GradientDescent(LR), ref_gd),
    ("gd+l2", lambda: optim.GradientDescent(LR, weight_decay=WD), coupled(ref_gd, WD)),
    ("sgd", lambda: optim.SGD(LR), ref_gd),
    ("sgd+l2", lambda: optim.SGD(LR, weight_decay=WD), coupled(ref_gd, WD)),
    ("momentum", lambda: optim.SGD(LR, momentum=0.9), ref_momentum),
    ("momentum+l2", lambda: optim.SGD(LR, momentum=0.9, weight_decay=WD), coupled(ref_momentum, WD)),
    ("nesterov", lambda: optim.SGD(LR, momentum=0.9, nesterov=True), ref_nesterov),
    ("nesterov+l2", lambda: optim.SGD(LR, momentum=0.9, nesterov=True, weight_decay=WD),
     coupled(ref_nesterov, WD)),
    ("rmsprop", lambda: optim.RMSprop(LR, rho=0.9, eps=1e-8), ref_rmsprop),
    ("rmsprop+l2", lambda: optim.RMSprop(LR, rho=0.9, eps=1e-8, weight_decay=WD),
     coupled(ref_rmsprop, WD)),
    ("adam", lambda: optim.Adam(LR, 0.9, 0.999, 1e-8), ref_adam),
    ("adam+l2", lambda: optim.Adam(LR, 0.9, 0.999, 1e-8, weight_decay=WD), coupled(ref_adam, WD)),
    ("adamw", lambda: optim.AdamW(LR, weight_decay=WD), ref_adamw),
]
IDS = [case[0] for case in CASES]


def host_params(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(3, 4)), rng.normal(size=(4,))]


def host_grads(rng):
    # new every step, of mixed signs and scales, so the state is really exercised
    return [rng.normal(size=(3, 4)) * rng.uniform(0.1, 3.0), rng.normal(size=(4,)) * rng.uniform(0.1, 3.0)]


def run_reference(update, params, grads_per_step):
    params = [p.copy() for p in params]
    states = [{} for _ in params]
    history = []
    for t, grads in enumerate(grads_per_step, start=1):
        params = [update(p, g, s, t) for p, g, s in zip(params, grads, states)]
        history.append([p.copy() for p in params])
    return history


def device_copy(backend, arrays):
    return [backend.asarray(a, "float64", copy=True) for a in arrays]


@pytest.mark.parametrize("make, reference", [case[1:] for case in CASES], ids=IDS)
def test_matches_formula_over_steps(backend, make, reference):
    start = host_params()
    rng = np.random.default_rng(1)
    grads_per_step = [host_grads(rng) for _ in range(STEPS)]
    expected = run_reference(reference, start, grads_per_step)

    opt = make()
    W, b = device_copy(backend, start)
    for t, (grads, (want_W, want_b)) in enumerate(zip(grads_per_step, expected), start=1):
        opt.step([W, b], device_copy(backend, grads))
        assert opt.t == t
        np.testing.assert_allclose(to_np(W), want_W, rtol=RTOL, err_msg=f"W after step {t}")
        np.testing.assert_allclose(to_np(b), want_b, rtol=RTOL, err_msg=f"b after step {t}")
    assert to_np(W).dtype == np.float64 and to_np(b).dtype == np.float64


@pytest.mark.parametrize("make", [case[1] for case in CASES if "+l2" in case[0] or case[0] == "adamw"],
                         ids=[i for i in IDS if "+l2" in i or i == "adamw"])
def test_weight_decay_leaves_biases_alone(backend, make):
    """With decay, the bias follows exactly the same path as without it."""
    start = host_params()
    rng = np.random.default_rng(2)
    grads_per_step = [host_grads(rng) for _ in range(STEPS)]
    decayed, plain = make(), make().update_settings(weight_decay=0.0)
    Wd, bd = device_copy(backend, start)
    Wp, bp_ = device_copy(backend, start)
    for grads in grads_per_step:
        decayed.step([Wd, bd], device_copy(backend, grads))
        plain.step([Wp, bp_], device_copy(backend, grads))
    np.testing.assert_array_equal(to_np(bd), to_np(bp_))
    assert not np.allclose(to_np(Wd), to_np(Wp), rtol=1e-6, atol=0)  # the weights did decay


def test_adam_first_step_moves_every_parameter_by_about_lr():
    """A check of the reference itself: Adam's first step is lr * g / (|g| + eps') = ~lr * sign(g)."""
    start = host_params()
    grads = host_grads(np.random.default_rng(3))
    (after,) = run_reference(ref_adam, start, [grads])
    for p0, p1, g in zip(start, after, grads):
        np.testing.assert_allclose(p0 - p1, LR * np.sign(g), rtol=1e-6)


@pytest.mark.parametrize("make", [case[1] for case in CASES], ids=IDS)
def test_reset_forgets_state(backend, make):
    start = host_params()
    rng = np.random.default_rng(4)
    opt = make()
    W, b = device_copy(backend, start)
    for _ in range(3):
        opt.step([W, b], device_copy(backend, host_grads(rng)))
    assert opt.t == 3

    opt.reset()
    assert opt.t == 0
    grads = host_grads(rng)
    fresh = make()
    W1, b1 = device_copy(backend, start)
    W2, b2 = device_copy(backend, start)
    opt.step([W1, b1], device_copy(backend, grads))
    fresh.step([W2, b2], device_copy(backend, grads))
    assert opt.t == fresh.t == 1
    np.testing.assert_array_equal(to_np(W1), to_np(W2))
    np.testing.assert_array_equal(to_np(b1), to_np(b2))
