"""Dropout: inverted dropout in training, the identity in inference, its masks from the model's
device generator (the same bits on every backend, resumed exactly), gradient-checked with the
masks held fixed."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backends import DeviceRNG, Stream
from backprop.errors import ConfigError


def to_np(a):
    return np.asarray(bp.get_backend("cpu").to_numpy(a)) if not isinstance(a, np.ndarray) else a


def _host(backend, a):
    return np.asarray(backend.to_numpy(a))


def test_training_keeps_each_entry_by_the_generators_bit_and_scales_it(backend):
    """Y = X * mask / (1 - rate), the mask being the device generator's own Bernoulli draw;
    dX = dY * mask / (1 - rate). The oracle is a second generator at the same state."""
    layer = bp.Dropout(0.25)
    layer.rng = backend.device_rng(7, Stream.DROPOUT)
    X = np.random.default_rng(0).normal(size=(6, 3, 4))
    with backend.activate():
        Xd = backend.asarray(X, "float64")
        Y, backward = layer.forward(Xd, train=True)
        dX = backward(backend.asarray(np.ones_like(X), "float64"))
    mask = DeviceRNG(7, Stream.DROPOUT).bernoulli(0.75, (6, 3, 4), backend=bp.get_backend("cpu"))
    scale = np.asarray(mask, dtype=np.float64) / 0.75
    np.testing.assert_array_equal(_host(backend, Y), X * scale)
    np.testing.assert_array_equal(_host(backend, dX), scale)
    assert layer.rng.get_state()["counter"] == 6 * 3 * 4 // 4  # one 32-bit word per entry


def test_inference_and_a_rate_of_zero_are_the_identity_and_draw_nothing():
    X = np.random.default_rng(1).normal(size=(5, 4))
    for layer, train in ((bp.Dropout(0.5), False), (bp.Dropout(0.0), True)):
        layer.rng = DeviceRNG(0, Stream.DROPOUT)
        Y, backward = layer.forward(X, train=train)
        assert Y is X and backward(X) is X and layer.rng.get_state()["counter"] == 0


def test_the_share_kept_is_one_minus_the_rate():
    layer = bp.Dropout(0.3)
    layer.rng = DeviceRNG(3, Stream.DROPOUT, backend=bp.get_backend("cpu"))
    Y, _ = layer.forward(np.ones((400, 250)), train=True)
    kept = float(np.mean(Y > 0))
    assert abs(kept - 0.7) < 5 * np.sqrt(0.7 * 0.3 / 1e5)  # five standard errors of 1e5 draws
    assert set(np.unique(Y)) == {0.0, 1.0 / 0.7}


def test_a_model_with_dropout_gradchecks_with_its_masks_held_fixed():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(12, 4)), rng.normal(size=12)
    model = bp.Sequential([bp.Dense(4, 6), "tanh", bp.Dropout(0.5), bp.Dense(6, 1)], dtype="float64", seed=1)
    result = bp.gradcheck(model, X, y, loss="mse")
    assert result.ok and result.floored == [] and result.worst < 1e-6  # no floor: the same masks each pass
    alone = bp.gradcheck(bp.Dropout(0.4), rng.normal(size=(5, 3, 2)))
    assert alone.ok and alone.floored == []


def test_resuming_from_a_checkpoint_draws_the_masks_an_uninterrupted_run_draws(tmp_path):
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 3, 40)

    def model():
        return bp.Sequential([bp.Dense(3, 16), "relu", bp.Dropout(0.4), bp.Dense(16, 3), "softmax"], seed=5)

    straight = model()
    straight.fit(X, y, epochs=4, batch_size=8)
    first = model()
    first.fit(X, y, epochs=2, batch_size=8)
    bp.checkpoint.save(first, str(tmp_path / "d.safetensors"))
    resumed = bp.checkpoint.load(str(tmp_path / "d.safetensors")).model
    assert resumed.layers[2].rate == 0.4
    resumed.fit(X, y, epochs=2, batch_size=8)
    assert to_np(resumed.flat_parameters()).tobytes() == to_np(straight.flat_parameters()).tobytes()


@pytest.mark.parametrize("device", ["strict", "torch"])
def test_every_backend_trains_through_the_same_masks(device):
    if device == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(24, 3)), rng.normal(size=24)
    weights = []
    for spec in ("cpu", device):
        model = bp.Sequential([bp.Dense(3, 8), "tanh", bp.Dropout(0.5), bp.Dense(8, 1)], device=spec,
                              dtype="float64", seed=2)
        model.fit(X, y, loss="mse", optimizer="sgd", lr=0.05, epochs=3, batch_size=6)
        weights.append(np.asarray(model.backend.to_numpy(model.flat_parameters())))
    np.testing.assert_allclose(weights[1], weights[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("rate", [1.0, -0.1, "0.5", True])
def test_a_rate_outside_zero_to_one_is_refused(rate):
    with pytest.raises(ConfigError, match=r"Dropout rate must be a number in \[0, 1\)"):
        bp.Dropout(rate)


def test_second_order_methods_refuse_dropout_in_one_line():
    X, y = np.random.default_rng(5).normal(size=(10, 2)), np.zeros(10)
    model = bp.Sequential([bp.Dense(2, 3), "tanh", bp.Dropout(0.2), bp.Dense(3, 1)], dtype="float64")
    before = to_np(model.flat_parameters()).copy()
    with pytest.raises(ConfigError, match="does not cover the Dropout layer"):
        model.fit(X, y, loss="mse", optimizer="lm", epochs=1)
    np.testing.assert_array_equal(to_np(model.flat_parameters()), before)


def test_a_dropout_outside_a_model_says_what_it_needs():
    with pytest.raises(ConfigError, match="put it in a Sequential"):
        bp.Dropout(0.5).forward(np.ones((2, 2)), train=True)


def test_lbfgs_refuses_a_network_that_draws_before_anything_changes():
    """L-BFGS's line search compares losses of passes that would each draw other masks: a Dropout,
    or a Residual holding one, is refused in one line; BatchNorm (deterministic on the full batch)
    and a Residual of deterministic layers train."""
    X, y = np.random.default_rng(6).normal(size=(12, 2)), np.zeros(12)
    for layers, name in (([bp.Dense(2, 3), bp.Dropout(0.2), bp.Dense(3, 1)], "Dropout"),
                         ([bp.Dense(2, 3), bp.Residual([bp.Dropout(0.2)]), bp.Dense(3, 1)], "Residual")):
        model = bp.Sequential(layers, dtype="float64")
        before = to_np(model.flat_parameters()).copy()
        with pytest.raises(ConfigError, match=f"L-BFGS needs the same function at every evaluation, but the "
                                              f"{name} layer \\(layer 1\\) draws anew each pass"):
            model.fit(X, y, loss="mse", optimizer="lbfgs", epochs=1)
        np.testing.assert_array_equal(to_np(model.flat_parameters()), before)
    for layers in ([bp.Dense(2, 3), bp.BatchNorm(), bp.Dense(3, 1)],
                   [bp.Dense(2, 3), bp.Residual([bp.Dense(3), "tanh"]), bp.Dense(3, 1)]):
        model = bp.Sequential(layers, dtype="float64")
        assert len(model.fit(X, y, loss="mse", optimizer="lbfgs", epochs=2)) == 2


def test_five_steps_equal_torch_with_the_same_masks():
    """A Dense-ReLU-Dropout-Dense network trained five full-batch SGD steps equals torch.nn's twin
    whose dropout multiplies by the same masks (drawn from a twin of the model's generator in the
    same order), within 1e-10 in float64."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    model = bp.Sequential([bp.Dense(3, 6), "relu", bp.Dropout(0.4), bp.Dense(6, 2)], dtype="float64", seed=4)
    W1, b1, W2, b2 = (torch.tensor(to_np(p).copy(), requires_grad=True) for p in model.parameter_list())
    masks = DeviceRNG(**model.state.device_rng.get_state(), backend=bp.get_backend("cpu"))
    model.fit(X, y, loss="mse", optimizer="sgd", lr=0.1, epochs=5, batch_size="full")
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(5):
        keep = torch.from_numpy(np.asarray(masks.bernoulli(0.6, (10, 6)), dtype=np.float64)) / 0.6
        out = (torch.relu(Xt @ W1 + b1) * keep) @ W2 + b2
        loss = torch.mean((out - yt) ** 2)
        for p in (W1, b1, W2, b2):
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in (W1, b1, W2, b2):
                p -= 0.1 * p.grad
    for ours, theirs in zip(model.parameter_list(), (W1, b1, W2, b2)):
        np.testing.assert_allclose(to_np(ours), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
