"""Layers own their shapes: per-sample shapes are tuples (no batch axis), a model takes its input
shape from the caller or from a layer that declares it, needs no Dense, and ``Dense(out)`` infers
its input width; ``n_inputs``/``n_outputs``/``output_width`` stay as thin compatibility."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import backprop as bp
from backprop import checkpoint, layers
from backprop.errors import ConfigError, DataError
from backprop.layers import Dense, Layer
from conftest import to_np


class ChannelScale(Layer):
    """``Y = X * s[:, None]``: X, Y (N, channels, length), the learned s (channels,)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = int(channels)

    def config(self) -> dict:
        return {"channels": self.channels}

    def param_shapes(self) -> dict:
        return {"s": (self.channels,)}

    def output_shape(self, input_shape):
        if len(input_shape) != 2 or input_shape[0] != self.channels:
            raise ConfigError(f"ChannelScale({self.channels}) takes (channels, length), got {input_shape}")
        return tuple(input_shape)

    def build(self, backend, dtype, rng, *, next_layer=None) -> None:
        super().build(backend, dtype, rng)
        self.params = {"s": backend.asarray(rng.uniform(0.5, 1.5, (self.channels,)), dtype)}

    def forward(self, X, *, train=False, input_grad=True):
        xp, s = self._ns(X), self.params["s"]

        def backward(dY):
            self.set_grad("s", xp.sum(xp.sum(dY * X, axis=2), axis=0))
            return dY * s[:, None] if input_grad else None

        return X * s[:, None], backward


class MeanOverLength(Layer):
    """(N, channels, length) -> (N, channels): the mean over the last axis."""

    def output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def forward(self, X, *, train=False, input_grad=True):
        xp, length = self._ns(X), X.shape[-1]
        return xp.mean(X, axis=-1), lambda dY: xp.broadcast_to(dY[..., None], X.shape) / length


@pytest.fixture
def registered():
    with layers.REGISTRY.restoring():
        layers.register("channel_scale", ChannelScale)
        layers.register("mean_over_length", MeanOverLength)
        yield


def test_dense_out_infers_its_input_width_and_trains_the_weights_of_dense_in_out(tmp_path):
    inferred = bp.Sequential([Dense(3, 5), "tanh", Dense(2)], dtype="float64", seed=4)
    spelled = bp.Sequential([Dense(3, 5), "tanh", Dense(5, 2)], dtype="float64", seed=4)
    assert inferred.layers[2].config() == spelled.layers[2].config()  # both widths, for checkpoints
    assert inferred.layers[2].config()["in_features"] == 5
    np.testing.assert_array_equal(to_np(inferred.flat_parameters()), to_np(spelled.flat_parameters()))
    path = tmp_path / "inferred.safetensors"
    checkpoint.save(inferred, str(path))
    loaded = checkpoint.load(str(path)).model
    np.testing.assert_array_equal(to_np(loaded.flat_parameters()), to_np(inferred.flat_parameters()))
    assert repr(Dense(4)) == "Dense(in_features=None, out_features=4, init='auto', bias=0.0)"


def test_the_input_shape_comes_from_the_caller_or_the_first_declaring_layer():
    model = bp.Sequential([Dense(6), "relu", Dense(1)], input_shape=(3,))
    assert (model.input_shape, model.output_shape, model.n_inputs, model.n_outputs) == ((3,), (1,), 3, 1)
    assert bp.Sequential(["tanh", Dense(2, 4)]).input_shape == (2,)  # as before: the first Dense's
    assert bp.Sequential([Dense(4)], input_shape=7).input_shape == (7,)
    with pytest.raises(ConfigError, match="input shape is unknown: pass input_shape"):
        bp.Sequential([Dense(4), "relu"])
    with pytest.raises(ConfigError, match="input_shape must be positive integers"):
        bp.Sequential([Dense(4)], input_shape=(0,))
    with pytest.raises(ConfigError, match="expecting 2 inputs follows one giving 3"):
        bp.Sequential([Dense(2, 4)], input_shape=(3,))
    with pytest.raises(ConfigError, match="before a model builds it"):
        Dense(4).param_shapes()


def test_a_model_of_registered_layers_alone_takes_samples_of_several_axes(registered):
    model = bp.Sequential([ChannelScale(3), MeanOverLength()], input_shape=(3, 5), dtype="float64", seed=1)
    assert (model.input_shape, model.output_shape, model.n_inputs, model.n_outputs) == ((3, 5), (3,), 15, 3)
    assert model.layer_shapes() == [(3, 5), (3,)]
    X = np.random.default_rng(0).normal(size=(4, 3, 5))
    s = to_np(model.parameters()["0.s"])
    np.testing.assert_allclose(model.predict(X, loss="mse"), (X * s[:, None]).mean(axis=2), rtol=1e-14)
    value, grads = model.loss_and_gradients(X, np.zeros((4, 3)), loss="sse")
    # sse = ½ Σ (s_c mean_l x)²: dE/ds_c = Σ_n s_c (mean_l x_nc)²
    np.testing.assert_allclose(to_np(grads["0.s"]), (s * X.mean(axis=2) ** 2).sum(axis=0), rtol=1e-12)
    with pytest.raises(DataError, match=r"X has shape \(4, 5, 3\) but the model takes samples of shape "
                                        r"\(3, 5\): give an array of shape \(samples, 3, 5\)"):
        model.predict(X.transpose(0, 2, 1), loss="mse")
    with pytest.raises(ConfigError, match="input shape is unknown"):
        bp.Sequential([ChannelScale(3), MeanOverLength()])


def test_dense_after_layers_of_several_axes_infers_from_their_output(registered):
    model = bp.Sequential([ChannelScale(2), MeanOverLength(), Dense(4), "tanh", Dense(1)],
                          input_shape=(2, 6), dtype="float64", seed=0)
    assert model.layers[2].config()["in_features"] == 2 and model.output_shape == (1,)
    with pytest.raises(ConfigError, match=r"a Dense layer takes \(features,\) inputs, got \(2, 6\)"):
        bp.Sequential([ChannelScale(2), Dense(4)], input_shape=(2, 6))
    copy = pickle.loads(pickle.dumps(model))
    assert copy.input_shape == (2, 6) and copy.n_inputs == 12


def test_widths_stay_a_thin_compatibility_over_the_shapes():
    dense = Dense(2, 4)
    assert (dense.input_shape, dense.input_width, dense.output_width(2), dense.output_shape((2,))) == \
        ((2,), 2, 4, (4,))
    assert bp.activations.get("relu").output_shape((3, 4)) == (3, 4)

    class Widths(Layer):  # a layer written against widths only, as before shapes
        def output_width(self, input_width):
            return 2 * input_width

        @property
        def input_width(self):
            return 5

    assert (Widths().output_shape((3,)), Widths().input_shape) == ((6,), (5,))
    with pytest.raises(ConfigError, match=r"Widths takes \(features,\) inputs, got \(3, 4\)"):
        Widths().output_shape((3, 4))


def test_a_model_pickled_before_shapes_loads_with_one_axis_shapes():
    model = bp.mlp([3, 4, 2], seed=0)
    state = model.__getstate__()
    for key in ("input_shape", "output_shape", "training"):
        del state[key]
    old = bp.Sequential.__new__(bp.Sequential)
    old.__setstate__(state)
    assert (old.input_shape, old.output_shape, old.training) == ((3,), (2,), False)
    np.testing.assert_array_equal(old.predict(np.ones((2, 3))), model.predict(np.ones((2, 3))))


def test_a_model_whose_layers_declare_no_input_saves_and_loads_its_input_shape(registered, tmp_path):
    model = bp.Sequential([ChannelScale(2), MeanOverLength(), Dense(3)], input_shape=(2, 4), seed=2)
    path = str(tmp_path / "shaped.safetensors")
    checkpoint.save(model, path)
    loaded = checkpoint.load(path).model
    assert (loaded.input_shape, loaded.output_shape) == ((2, 4), (3,))
    X = np.random.default_rng(1).normal(size=(3, 2, 4))
    np.testing.assert_array_equal(loaded.predict(X, loss="mse"), model.predict(X, loss="mse"))
    plain = str(tmp_path / "plain.safetensors")
    checkpoint.save(bp.mlp([3, 2]), plain)
    assert "input_shape" not in checkpoint.read_header(plain)  # as before: the first Dense declares it


def test_fit_trains_samples_of_several_axes_with_validation_data(registered):
    """fit takes (N, 2, 6) inputs for a model whose input shape is (2, 6), and its validation data
    too; a (N, 12) array, the same numbers flattened, is refused in one line."""
    model = bp.Sequential([ChannelScale(2), MeanOverLength(), Dense(4), "tanh", Dense(1)],
                          input_shape=(2, 6), dtype="float64", seed=0)
    rng = np.random.default_rng(1)
    X, Xv = rng.normal(size=(16, 2, 6)), rng.normal(size=(8, 2, 6))
    y, yv = X.mean(axis=(1, 2)), Xv.mean(axis=(1, 2))
    history = model.fit(X, y, loss="mse", optimizer="sgd", lr=0.1, epochs=3, validation_data=(Xv, yv))
    assert len(history) == 3 and history["val_loss"][-1] == pytest.approx(model.evaluate(Xv, yv)["loss"])
    with pytest.raises(DataError, match=r"X has shape \(16, 12\) but the model takes samples of shape"):
        model.fit(X.reshape(16, 12), y, loss="mse", epochs=1)
