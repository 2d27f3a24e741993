"""The update over the flat buffers equals the per-array reference, for every first-order optimizer
and every penalty, and keeps the optimizer's state where checkpoints and ``to()`` find it."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import backprop as bp
from backprop import optimizers
from backprop.step import Step

FIRST_ORDER = [name for name in optimizers.names(full_batch=False)]
PENALTIES = [{}, {"weight_decay": 0.05}, {"l1": 0.002}, {"weight_decay": 0.05, "l1": 0.002}]


def _model(dtype="float64", backend="cpu"):
    # a convolution (a 3-d kernel: decayed), a dense layer, a bias of every layer (not decayed)
    return bp.Sequential(bp.spec.parse("conv1d(3, 3), tanh, flatten, dense(5), relu, dense(3)"),
                         input_shape=(2, 8), device=backend, dtype=dtype, seed=4)


def _data(n=12):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 2, 8)), rng.integers(0, 3, size=n)


def _train(model, opt, steps, *, fused, epochs_of_steps=5):
    """``steps`` steps through Step (the fused path), or the same gradients with the per-array
    update (``optimizer.step`` without the flat buffers): the reference."""
    X, y = _data()
    loss = bp.losses.get("ce")
    step = Step(model, loss, opt)
    with model.backend.activate():
        Xd = model.backend.asarray(X, model.dtype)
        T, _ = loss.targets(model.xp, model.dtype, model.backend.asarray(y, "int64"), 3)
        for i in range(steps):
            opt.set_epoch(i // epochs_of_steps)  # a schedule changes the rate between "epochs"
            _, _, grads = step.gradients(Xd[:6 + i % 4], T[:6 + i % 4])
            if fused:
                step.apply(grads)
            else:
                opt.step(step.params, grads)
    return model


def _relative(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("name", FIRST_ORDER)
@pytest.mark.parametrize("penalty", PENALTIES, ids=lambda p: "+".join(p) or "none")
def test_the_fused_update_equals_the_per_array_reference(name, penalty):
    if "l1" in penalty and not optimizers.class_of(name).takes_l1:
        pytest.skip(f"{name} takes no L1")
    settings = dict(penalty, schedule=bp.schedules.Cosine(epochs=4))
    fused = optimizers.get(name, **settings)
    reference = optimizers.get(name, **settings)
    a = _train(_model(), fused, 20, fused=True)
    b = _train(_model(), reference, 20, fused=False)
    assert fused._flat is not None and reference._flat is None  # each took the path it names
    assert _relative(a.flat_parameters(), b.flat_parameters()) <= 1e-12
    for slots_a, slots_b in zip(fused.state, reference.state):
        assert slots_a.keys() == slots_b.keys()
        for k in slots_a:
            np.testing.assert_allclose(slots_a[k], slots_b[k], rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", ["momentum", "adam", "rmsprop"])
def test_float32_takes_the_same_steps_bit_for_bit(name):
    fused, reference = optimizers.get(name, weight_decay=0.01), optimizers.get(name, weight_decay=0.01)
    a = _train(_model("float32"), fused, 10, fused=True)
    b = _train(_model("float32"), reference, 10, fused=False)
    np.testing.assert_array_equal(np.asarray(a.flat_parameters()), np.asarray(b.flat_parameters()))


def test_the_state_is_views_of_the_flat_slots():
    opt = optimizers.get("adam")
    _train(_model(), opt, 2, fused=True)
    flat_m = opt._flat.slots["m"]
    flat_m[...] = 7.0
    assert all(float(np.min(s["m"])) == 7.0 == float(np.max(s["m"])) for s in opt.state)


@pytest.mark.parametrize("how", ["pickle", "state replaced", "to"])
def test_state_set_from_outside_is_laid_out_again(how):
    """A checkpoint, a replica or ``to()`` gives the optimizer new state arrays: the next fused
    step lays them out again and continues exactly as the reference does."""
    model_a, model_b = _model(), _model()
    fused, reference = optimizers.get("adam"), optimizers.get("adam")
    _train(model_a, fused, 5, fused=True)
    _train(model_b, reference, 5, fused=False)
    if how == "pickle":
        fused = pickle.loads(pickle.dumps(fused))
        assert fused._flat is None
        fused.owner = None
    elif how == "state replaced":  # as a checkpoint or a replica does; new values, both sides
        fused.state = [{k: np.array(v) * 0.5 for k, v in s.items()} for s in fused.state]
        reference.state = [{k: np.array(v) * 0.5 for k, v in s.items()} for s in reference.state]
    else:
        fused = fused.moved(lambda arrays: [np.array(a) for a in arrays], None)
    _train(model_a, fused, 5, fused=True)
    _train(model_b, reference, 5, fused=False)
    assert _relative(model_a.flat_parameters(), model_b.flat_parameters()) <= 1e-12


def test_a_users_optimizer_without_a_fused_rule_keeps_the_per_array_loop():
    class Halving(optimizers.Optimizer):
        name = "halving_test"

        def _update(self, xp, p, g, s):
            p -= 0.5 * self.lr * g

    opt = Halving(lr=0.1)
    assert not opt.fused
    model = _train(_model(), opt, 3, fused=True)
    assert opt._flat is None and np.all(np.isfinite(np.asarray(model.flat_parameters())))


def _array_calls(action):
    """How many operator calls on array-api-strict arrays ``action()`` makes (every operation on
    an array goes through one of the Array class's methods there)."""
    from array_api_strict._array_object import Array

    calls = [0]
    skipped = {"__init__", "__new__", "__getattribute__", "__setattr__", "__class__", "__dict__", "__repr__",
               "__hash__"}
    originals = {name: getattr(Array, name) for name in vars(Array)
                 if name.startswith("__") and name not in skipped and callable(getattr(Array, name))}

    def counted(fn):
        def wrapper(*args, **kwargs):
            calls[0] += 1
            return fn(*args, **kwargs)
        return wrapper

    try:
        for name, fn in originals.items():
            setattr(Array, name, counted(fn))
        action()
    finally:
        for name, fn in originals.items():
            setattr(Array, name, fn)
    return calls[0]


def test_the_update_is_a_constant_number_of_operations_whatever_the_depth():
    """Count the array operations of ``optimizer.step`` for a shallow and a deep network."""
    counts = []
    for hidden in ([4], [4, 4, 4, 4, 4, 4]):
        model = bp.mlp([3, *hidden, 2], device="strict", dtype="float64", seed=0)
        opt = optimizers.get("adam", weight_decay=0.01)
        step = Step(model, bp.losses.get("mse"), opt)
        X = model.backend.asarray(np.ones((5, 3)), "float64")
        T = model.backend.asarray(np.zeros((5, 2)), "float64")
        step.apply(step.gradients(X, T)[2])  # the first step lays the state out
        grads = step.gradients(X, T)[2]
        counts.append(_array_calls(lambda: step.apply(grads)))  # noqa: B023 (called at once)
    assert counts[0] == counts[1] > 0
