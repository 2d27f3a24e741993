"""After its first step of a batch shape, a training step allocates no array: the passes write into
the workspace's buffers, the gradients into the model's gradient buffer, the update into the
optimizer's flat slots and scratch arrays, the same ones step after step."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import backprop as bp
from backprop import optimizers, workspace
from backprop.step import Step, train_epoch

# Big enough that any array of the step (an activation, its gradient, a parameter-sized
# temporary) holds more than NumPy's own ufunc buffer (8192 entries, 64 KiB in float64), which
# an in-place broadcast (the bias add) allocates and frees inside the call.
BATCH, WIDTHS = 512, [64, 128, 128, 64]
SMALLEST = BATCH * WIDTHS[-1] * 8  # the logits and the loss's arrays: 256 KiB (the parameters 200 KiB)
UFUNC_BUFFER = 8192 * 8
PYTHON = 16 * 1024  # the step's Python objects, 0-d results


def _step(activation="relu", loss="ce", optimizer="adam", **settings):
    model = bp.mlp(WIDTHS, activation=activation, dtype="float64", seed=0)
    L = bp.losses.get(loss)
    step = Step(model, L, optimizers.get(optimizer, **settings))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(BATCH, WIDTHS[0]))
    y = rng.integers(0, WIDTHS[-1], BATCH) if loss == "ce" else rng.normal(size=(BATCH, WIDTHS[-1]))
    T, _ = L.targets(model.xp, model.dtype, np.asarray(y), WIDTHS[-1])
    return step, X, T


def _held(step):
    opt = step.optimizer
    return ([id(b) for b in step.workspace.buffers] + [id(a) for a in opt._flat.slots.values()]
            + [id(a) for a in opt._flat._scratch.values()])


CASES = [("relu", "ce", "adam", {}), ("tanh", "mse", "adamw", {}),
         ("relu", "mse", "nesterov", {"weight_decay": 0.01, "l1": 1e-4}), ("tanh", "ce", "rmsprop", {})]


@pytest.mark.parametrize("activation,loss,optimizer,settings", CASES)
def test_a_step_after_the_first_allocates_no_array(activation, loss, optimizer, settings):
    step, X, T = _step(activation, loss, optimizer, **settings)
    step(X, T)
    held = _held(step)
    tracemalloc.start()
    try:
        peaks = []
        for _ in range(3):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            step(X, T)
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    assert max(peaks) < UFUNC_BUFFER + PYTHON < SMALLEST, peaks
    assert _held(step) == held  # the same buffers, step after step


def test_the_short_last_batch_has_buffers_of_its_own_and_nothing_grows():
    step, X, T = _step()
    spans = [(0, 200), (200, 400), (400, 512)]  # a short last batch
    train_epoch(step, X, T, None, spans)
    held = _held(step)
    shapes = sorted({tuple(b.shape) for b in step.workspace.buffers})
    assert (112, 128) in shapes and (200, 128) in shapes
    for _ in range(3):
        train_epoch(step, X, T, None, spans)
    assert _held(step) == held


def test_the_gradients_are_written_into_the_models_buffer():
    step, X, T = _step()
    buffer = step.model.flat_gradients()
    step(X, T)
    assert step.model.flat_gradients() is buffer
    _, _, grads = step.gradients(X, T)
    assert all(g is view for g, view in zip(grads, step.model._grad_views))


def test_outside_a_step_nothing_is_kept_or_overwritten():
    """Inference and a user's own forward pass get new arrays: two outputs stay apart."""
    step, X, T = _step()
    step(X, T)
    model = step.model
    first = model.forward(X, train=True)[0]
    second = model.forward(X[::-1].copy(), train=True)[0]
    assert first is not second and not np.shares_memory(first, second)
    assert workspace.take(object(), "Y", (2, 2), first) is None


def test_a_layer_used_twice_in_a_pass_gets_a_buffer_for_each_use():
    shared = bp.layers.Dense(8)
    model = bp.Sequential([shared, bp.activations.get("tanh"), shared], input_shape=(8,), seed=0,
                          dtype="float64")
    X = np.random.default_rng(0).normal(size=(5, 8))
    ws = workspace.Workspace()
    with ws.using(X.shape):
        Y, _ = model.forward(X, train=True)
    direct = model.forward(X, train=False)[0]
    np.testing.assert_array_equal(Y, direct)  # the second use did not overwrite the first's output
    outputs = [buffer for sequence in ws._sequences.values() for owner, name, buffer in sequence
               if owner is shared and name == "Y"]
    assert len(outputs) == 2 and outputs[0] is not outputs[1]


def test_the_same_numbers_with_and_without_the_workspace():
    a, X, T = _step("tanh", "ce")
    b, _, _ = _step("tanh", "ce")
    b.workspace.using = lambda key=None: _nothing()
    for _ in range(4):
        va, _ = a(X, T)
        vb, _ = b(X, T)
        assert float(va) == float(vb)
    np.testing.assert_array_equal(a.model.flat_parameters(), b.model.flat_parameters())


def _nothing():
    import contextlib

    return contextlib.nullcontext()


@pytest.mark.parametrize("text,shape", [
    ("conv1d(4, 3, padding=2, dilation=2), relu, conv1d(3, 2, stride=2), tanh, flatten, dense(3)", (2, 11)),
    ("conv2d(3, 3, padding='same'), relu, maxpool2d(2), conv2d(4, (2, 3), padding=1), flatten, dense(3)",
     (1, 8, 7)),
])
def test_convolutions_reuse_their_buffers_and_compute_the_same(text, shape):
    """The padded input, the stacked columns, the product and the column gradient are the step's
    buffers: reused (left with the last step's values) they must give what fresh arrays give, on
    a full and a short batch in turn."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(10, *shape))
    y = rng.integers(0, 3, 10)
    steps = []
    for use_workspace in (True, False):
        model = bp.Sequential(bp.spec.parse(text), input_shape=shape, dtype="float64", seed=2)
        L = bp.losses.get("ce")
        step = Step(model, L, optimizers.get("adam", lr=0.01))
        if not use_workspace:
            step.workspace.using = lambda key=None: _nothing()
        T, labels = L.targets(model.xp, model.dtype, y, 3)
        for _ in range(3):
            train_epoch(step, X, T, labels, [(0, 6), (6, 10)])
        steps.append(step)
    used, fresh = steps
    assert len(used.workspace.buffers) > 8 and not fresh.workspace.buffers
    held = _held(used)
    train_epoch(used, X, T, labels, [(0, 6), (6, 10)])
    train_epoch(fresh, X, T, labels, [(0, 6), (6, 10)])
    assert _held(used) == held
    np.testing.assert_array_equal(used.model.flat_parameters(), fresh.model.flat_parameters())


def test_a_kind_of_step_keeps_at_most_max_bytes(monkeypatch):
    """Past ``Workspace.max_bytes`` the memory is worth more than the allocation: a step keeps its
    first buffers up to that many bytes and makes the rest anew, the same ones every step, and
    computes the same."""
    step, X, T = _step()
    reference, _, _ = _step()
    step(X, T)
    held = sum(b.nbytes for b in step.workspace.buffers)
    monkeypatch.setattr(workspace.Workspace, "max_bytes", held // 2)
    capped, _, _ = _step()
    for _ in range(3):
        capped(X, T)
        reference(X, T)
        assert 0 < sum(b.nbytes for b in capped.workspace.buffers) <= held // 2
    kept = capped.workspace.buffers  # held here, so a new array cannot reuse one's identity
    capped(X, T)
    reference(X, T)
    now = capped.workspace.buffers
    assert len(now) == len(kept) and all(a is b for a, b in zip(now, kept))  # no churn at the cap
    np.testing.assert_array_equal(capped.model.flat_parameters(), reference.model.flat_parameters())
    monkeypatch.setattr(workspace.Workspace, "max_bytes", held)
    whole, _, _ = _step()
    whole(X, T)
    whole(X, T)
    assert sum(b.nbytes for b in whole.workspace.buffers) == held


def test_past_the_cap_every_later_buffer_of_the_step_is_new(monkeypatch):
    """A small buffer after a large one that did not fit is not kept either: kept, it would sit at
    the large one's place in the sequence, and every step would throw the sequence away."""
    monkeypatch.setattr(workspace.Workspace, "max_bytes", 1000)
    ws = workspace.Workspace(np)
    like = np.zeros(1)
    owner = object()
    for _ in range(3):
        with ws.using("step"):
            first = workspace.take(owner, "A", (100,), like)  # 800 bytes: kept
            assert workspace.take(owner, "B", (100,), like) is None  # would make 1600
            assert workspace.take(owner, "C", (10,), like) is None  # 80 would fit, but comes after B
        assert ws.buffers == [first]
