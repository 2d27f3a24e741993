"""Every hand-written backward against central differences in float64, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import activations, losses

ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "softmax"]


def away_from_kinks(shape, seed=0):
    """Inputs with |x| >= 0.1, so no ReLU kink lies within eps of one."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 2.0, shape)
    return np.where(np.abs(X) < 0.1, 0.1 * np.sign(X) + 0.1 * (X == 0), X)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradients(backend, name):
    result = bp.gradcheck(activations.get(name), backend.asarray(away_from_kinks((6, 5))))
    assert result.ok, str(result)
    assert result.worst < 1e-7


def test_dense_gradients(backend):
    layer = bp.Dense(7, 4)
    result = bp.gradcheck(layer, backend.asarray(np.random.default_rng(1).normal(size=(5, 7))),
                          max_entries=100)
    assert result.ok, str(result)
    assert set(result.errors) == {"X", "W", "b"}
    assert result.entries["W"] == 28  # every entry of a small array is checked


def test_dense_gradients_of_a_built_layer(backend):
    model = bp.Sequential([bp.Dense(3, 2, bias=0.5)], device=backend, seed=3)
    result = bp.gradcheck(model.layers[0], np.ones((4, 3)))
    assert result.ok, str(result)


LOSS_CASES = {
    "mse": lambda rng: rng.normal(size=(6, 3)),
    "sse": lambda rng: rng.normal(size=(6, 3)),
    "bce": lambda rng: rng.uniform(0, 1, size=(6, 3)),
    "ce": lambda rng: np.eye(3)[rng.integers(0, 3, 6)],
}


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_loss_gradients(backend, name):
    rng = np.random.default_rng(2)
    Z = rng.normal(0.0, 3.0, (6, 3))
    T = LOSS_CASES[name](rng)
    result = bp.gradcheck(losses.get(name), backend.asarray(Z), backend.asarray(T))
    assert result.ok, str(result)


MODELS = [
    # (widths, hidden activation, output layer, loss)
    ([4, 3], None, None, "mse"),
    ([4, 5, 3], "tanh", None, "mse"),
    ([4, 5, 3], "sigmoid", "sigmoid", "sse"),
    ([4, 6, 5, 3], "relu", "softmax", "ce"),
    ([4, 6, 5, 2], "leaky_relu", "sigmoid", "bce"),
    ([4, 8, 6, 5, 3], "softplus", "softmax", "ce"),
    ([4, 5, 3], "tanh", "softmax", "mse"),  # softmax without the fused loss
]


@pytest.mark.parametrize("widths,activation,output,loss", MODELS,
                         ids=[f"{len(m[0]) - 1}layers-{m[1]}-{m[2]}-{m[3]}" for m in MODELS])
def test_model_gradients(backend, widths, activation, output, loss):
    model = bp.mlp(widths, activation=activation or "identity", output=output, device=backend,
                   seed=4, bias=0.1)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(7, widths[0]))
    k = widths[-1]
    y = {"ce": rng.integers(0, k, 7), "bce": rng.integers(0, 2, (7, k)).astype(float)}.get(
        loss, rng.normal(size=(7, k)))
    result = bp.gradcheck(model, X, y, loss=loss)
    assert result.ok, str(result)
    assert len(result.errors) == 1 + 2 * (len(widths) - 1)  # X, then W and b per layer


def test_checker_catches_a_wrong_gradient(numpy_backend):
    """A checker that cannot fail proves nothing: break tanh's derivative on purpose."""

    class WrongTanh(bp.Tanh):
        def forward(self, X, *, train=False, input_grad=True):
            Y, _ = super().forward(X, train=train)
            return Y, lambda dY: dY * (1.0 - Y)  # should be 1 - Y**2

    result = bp.gradcheck(WrongTanh(), away_from_kinks((4, 3)))
    assert not result.ok
    assert result.worst > 1e-2
    assert "FAIL" in str(result)


def test_checker_catches_a_wrong_weight_gradient(numpy_backend):
    class NoTranspose(bp.Dense):
        def forward(self, X, *, train=False, input_grad=True):
            Y, backward = super().forward(X, train=train)

            def wrong(dY):
                dX = backward(dY)
                self.grads["W"] = self.grads["W"] * 1.01  # 1% off
                return dX

            return Y, wrong

    result = bp.gradcheck(NoTranspose(3, 2), np.ones((2, 3)))
    assert result.errors["W"] > 1e-3 and result.errors["X"] < 1e-7
