"""Flatten and Reshape: samples rearranged in C order, the batch axis kept; their backward and
second-order pieces are the inverse rearrangement, so every method covers them."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.errors import ConfigError
from backprop.host.gradcheck import jacobian_check


def _host(model_or_backend, a):
    backend = getattr(model_or_backend, "backend", model_or_backend)
    return np.asarray(backend.to_numpy(a))


def test_flatten_is_numpys_c_order_reshape_and_its_backward_the_inverse(backend):
    X = np.random.default_rng(0).normal(size=(3, 2, 4, 5))
    with backend.activate():
        Y, backward = bp.Flatten().forward(backend.asarray(X, "float64"))
        dX = backward(backend.asarray(np.arange(3 * 40.0).reshape(3, 40), "float64"))
    np.testing.assert_array_equal(_host(backend, Y), X.reshape(3, 40))
    np.testing.assert_array_equal(_host(backend, dX), np.arange(120.0).reshape(3, 2, 4, 5))


@pytest.mark.parametrize("shape, given, expected", [
    ((12,), (3, 4), (3, 4)), ((12,), (-1, 2), (6, 2)), ((2, 6), (4, -1), (4, 3)), ((3, 4), (12,), (12,))])
def test_reshape_takes_one_size_from_the_others(shape, given, expected):
    assert bp.Reshape(given).output_shape(shape) == expected


@pytest.mark.parametrize("given, message", [
    ((5,), r"Reshape\(5,\) cannot take samples of shape \(12,\): their 12 entries do not fill it"),
    ((-1, 5), r"cannot take samples of shape \(12,\)"),
])
def test_a_shape_the_entries_do_not_fill_is_refused_when_the_model_is_built(given, message):
    with pytest.raises(ConfigError, match=message):
        bp.Sequential([bp.Reshape(given), bp.Flatten(), bp.Dense(1)], input_shape=(12,))


@pytest.mark.parametrize("given", [(), (0, 3), (-1, -1), (2.0, 3), "3,4", (True, 2), 12])
def test_a_malformed_shape_is_refused(given):
    with pytest.raises(ConfigError, match="Reshape takes a tuple of positive sizes"):
        bp.Reshape(given)


def _model(device="cpu", **kwargs):
    # The reshapes sit after a Dense, so their R-operator carries the directions of its weights.
    layers = [bp.Dense(6, 6), bp.Reshape((2, 3)), "tanh", bp.Flatten(), bp.Dense(4), "tanh", bp.Dense(2)]
    return bp.Sequential(layers, dtype="float64", seed=3, device=device, **kwargs)


def test_a_model_that_reshapes_gradchecks_on_every_backend(backend):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(8, 6)), rng.normal(size=(8, 2))
    result = bp.gradcheck(_model(backend), X, y, loss="mse")
    assert result.ok and result.worst < 1e-7


def test_levenberg_marquardts_jacobian_and_newtons_hessian_cover_them():
    """J against differences; H of the reshaping model equals H of the same weights without the
    reshapes (tanh elementwise: the rearrangement changes nothing), bit for bit."""
    from backprop.hessian import hessian
    from backprop.targets import as_targets

    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(5, 6)), rng.normal(size=(5, 2))
    model = _model()
    assert jacobian_check(model, X).ok
    plain = bp.Sequential([bp.Dense(6, 6), "tanh", bp.Dense(6, 4), "tanh", bp.Dense(4, 2)], dtype="float64")
    plain.set_flat_parameters(model.flat_parameters())
    loss = bp.losses.get("mse")
    found = []
    for m in (model, plain):
        with m.backend.activate():
            T, _ = as_targets(m.backend, m.dtype, y, loss, 2, 5)
            found.append([_host(m, a) for a in hessian(m, loss, m.backend.asarray(X, "float64"), T)])
    for a, b in zip(*found):
        np.testing.assert_array_equal(a, b)
    model.fit(X, y, loss="mse", optimizer="lm", epochs=2)  # trains: nothing refused


def test_a_model_of_several_axes_saves_and_loads(tmp_path):
    model = bp.Sequential([bp.Flatten(), bp.Dense(3), "relu", bp.Dense(1)], input_shape=(2, 5), seed=1)
    X = np.random.default_rng(3).normal(size=(4, 2, 5))
    bp.checkpoint.save(model, str(tmp_path / "r.safetensors"))
    loaded = bp.checkpoint.load(str(tmp_path / "r.safetensors")).model
    assert loaded.input_shape == (2, 5)
    np.testing.assert_array_equal(loaded.predict(X, loss="mse"), model.predict(X, loss="mse"))
