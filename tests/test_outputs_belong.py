"""Every output lives in the input's namespace, on its device, in the model's dtype.

A NumPy scalar, a float64 host array or a forgotten ``device=`` leaking into the
math shows up here (array-api-strict runs on a non-default device).
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import activations, losses
from conftest import assert_belongs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layers_activations_losses(backend, dtype):
    X = backend.asarray(np.linspace(-3, 3, 12).reshape(4, 3), dtype)
    for name in ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "softmax"]:
        Y, backward = activations.get(name).forward(X, train=True)
        assert_belongs(Y, backend, dtype, (4, 3))
        assert_belongs(backward(Y), backend, dtype, (4, 3))
    T = backend.asarray(np.eye(3)[[0, 1, 2, 1]], dtype)
    for name in ["mse", "sse", "bce", "ce"]:
        value, dZ = losses.get(name).forward(X, T)
        assert_belongs(value, backend, dtype, ())
        assert_belongs(dZ, backend, dtype, (4, 3))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["gd", "momentum", "nesterov", "rmsprop", "adam", "adamw"])
def test_training_keeps_dtype_and_device(backend, dtype, optimizer):
    rng = np.random.default_rng(0)
    X64 = rng.normal(size=(20, 5))  # float64 host data into a float32 model: cast, never promote
    y = rng.integers(0, 3, 20)
    model = bp.mlp([5, 6, 3], device=backend, dtype=dtype, output="softmax")
    model.fit(X64, y, optimizer=optimizer, weight_decay=1e-3, epochs=2, batch_size=8)
    for value in model.parameters().values():
        assert_belongs(value, backend, dtype)
    for value in model.gradients().values():
        assert_belongs(value, backend, dtype)
    for state in model.optimizer.state:
        for value in state.values():
            assert_belongs(value, backend, dtype)
    Xd = backend.asarray(X64)  # float64 on the device
    assert_belongs(model.predict_proba(Xd), backend, dtype, (20, 3))
    assert_belongs(model.predict(Xd), backend, "int64", (20,))
    assert_belongs(model(backend.asarray(X64, dtype)), backend, dtype, (20, 3))
    # Host in, host out: the same answers as NumPy arrays.
    assert isinstance(model.predict(X64), np.ndarray)
    assert model.predict_proba(X64).dtype == np.dtype(dtype)


def test_regression_outputs(backend):
    X = np.linspace(-1, 1, 16).reshape(16, 1)
    model = bp.mlp([1, 8, 1], activation="tanh", device=backend)
    model.fit(X, np.sin(3 * X[:, 0]), epochs=1, batch_size=4)
    pred = model.predict(backend.asarray(X, "float32"))
    assert_belongs(pred, backend, "float32", (16,))


def test_dense_refuses_mixed_dtypes(backend):
    model = bp.mlp([3, 2], device=backend, dtype="float32")
    with pytest.raises(TypeError, match="float64 input"):
        model.forward(backend.asarray(np.ones((2, 3)), "float64"))
