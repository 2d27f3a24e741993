"""A layer that draws in training (``draws = True``, as a Dropout layer will) draws from the
model's fit-state device generator: the same masks on every backend, moved, pickled, saved and
resumed with the state, and none drawn in inference."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import backprop as bp
from backprop import layers
from backprop.layers import Dense, Layer


class Drop(Layer):
    """Inverted dropout written against the contract, registered by the test."""

    draws = True

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def config(self) -> dict:
        return {"p": self.p}

    def forward(self, X, *, train=False, input_grad=True):
        if not train:
            return X, lambda dY: dY
        xp = self._ns(X)
        scale = xp.astype(self.rng.bernoulli(1.0 - self.p, tuple(X.shape)), X.dtype) / (1.0 - self.p)
        return X * scale, lambda dY: dY * scale


@pytest.fixture(autouse=True)
def registered():
    with layers.REGISTRY.restoring():
        layers.register("drop", Drop)
        yield


def _model(device: str = "cpu") -> bp.Sequential:
    return bp.Sequential([Dense(3, 8), "tanh", Drop(0.5), Dense(8, 1)], device=device, dtype="float64",
                         seed=2)


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 3))
    return X, np.sin(X[:, :1])


def _weights(model) -> np.ndarray:
    return np.asarray(model.backend.to_numpy(model.flat_parameters()))


def test_the_layer_draws_from_the_fit_state_and_follows_it_through_copies(tmp_path):
    model = _model()
    assert model.layers[2].rng is model.state.device_rng
    model.fit(*_data(), loss="mse", epochs=1, batch_size=8)
    bp.checkpoint.save(model, str(tmp_path / "m.safetensors"))
    copies = (model.to("strict"), pickle.loads(pickle.dumps(model)),
              bp.checkpoint.load(str(tmp_path / "m.safetensors")).model)
    for copy in copies:
        assert copy.layers[2].rng is copy.state.device_rng is not model.state.device_rng
        assert copy.state.device_rng.get_state() == model.state.device_rng.get_state()


def test_inference_draws_nothing():
    model = _model()
    before = model.state.device_rng.get_state()
    model.predict(_data()[0])
    model.evaluate(*_data(), loss="mse")
    assert model.state.device_rng.get_state() == before
    model.loss_and_gradients(*_data(), loss="mse")  # a training pass: one mask of 32 x 8
    assert model.state.device_rng.get_state()["counter"] == before["counter"] + 32 * 8 // 4


def test_a_resumed_fit_draws_the_masks_an_uninterrupted_one_draws(tmp_path):
    X, y = _data()
    straight = _model()
    straight.fit(X, y, loss="mse", epochs=6, batch_size=8)
    first = _model()
    first.fit(X, y, loss="mse", epochs=3, batch_size=8)
    bp.checkpoint.save(first, str(tmp_path / "m.safetensors"))
    resumed = bp.checkpoint.load(str(tmp_path / "m.safetensors")).model
    resumed.fit(X, y, loss="mse", epochs=3, batch_size=8)
    assert _weights(resumed).tobytes() == _weights(straight).tobytes()


@pytest.mark.parametrize("device", ["strict", "torch"])
def test_every_backend_trains_with_the_same_masks(device):
    pytest.importorskip("torch") if device == "torch" else None
    X, y = _data()
    here, there = _model(), _model(device)
    for model in (here, there):
        model.fit(X, y, loss="mse", optimizer="sgd", lr=0.1, epochs=3, batch_size=8)
    np.testing.assert_allclose(_weights(there), _weights(here), rtol=1e-12, atol=1e-14)
