"""Second-order pieces live on the layers: the Jacobian and the Hessian are loops over layers, so a
registered layer with parameters that gives its Jacobian rows and R-operator pass is covered
exactly (checked against differences), and one that gives none is refused before anything changes.
Newton's memory estimate reads the layers' shapes."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import layers, losses
from backprop.errors import ConfigError
from backprop.hessian import hessian
from backprop.jacobian import jacobian
from backprop.layers import Dense, Layer
from conftest import hessian_by_differences, to_np


class Scale(Layer):
    """``Y = X * s``: X, Y (N, features), s (features,), with its second-order pieces."""

    second_order = True

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = int(features)

    def config(self) -> dict:
        return {"features": self.features}

    def param_shapes(self) -> dict:
        return {"s": (self.features,)}

    def build(self, backend, dtype, rng, *, next_layer=None) -> None:
        super().build(backend, dtype, rng)
        self.params = {"s": backend.asarray(rng.uniform(0.5, 1.5, (self.features,)), dtype)}

    def forward(self, X, *, train=False, input_grad=True):
        xp, s = self._ns(X), self.params["s"]

        def backward(dY):
            self.set_grad("s", xp.sum(dY * X, axis=0))
            return dY * s

        return X * s, backward

    def jacobian_rows(self, X, dY):
        return [X * dY]  # dz/ds_f for sample n: x_nf times the delta at output f

    def r_forward(self, X, RX, V, *, train=False):
        s, Vs = self.params["s"], V["s"]  # Vs (P, features)
        RY = X[None, :, :] * Vs[:, None, :]
        if RX is not None:
            RY = RY + RX * s
        return X * s, RY, (X, RX, Vs)

    def r_backward(self, tape, dY, RdY):
        X, RX, Vs = tape
        xp, s = self._ns(X), self.params["s"]
        Rds = xp.sum(RdY * X[None, :, :], axis=1)
        if RX is not None:
            Rds = Rds + xp.sum(dY[None, :, :] * RX, axis=1)
        return dY * s, RdY * s + dY[None, :, :] * Vs[:, None, :], [(xp.sum(dY * X, axis=0), Rds)]


class Opaque(Layer):
    """A layer with a parameter and no second-order pieces (``second_order`` False)."""

    def param_shapes(self) -> dict:
        return {"c": (1,)}

    def build(self, backend, dtype, rng, *, next_layer=None) -> None:
        super().build(backend, dtype, rng)
        self.params = {"c": backend.asarray([1.0], dtype)}

    def forward(self, X, *, train=False, input_grad=True):
        c = self.params["c"]

        def backward(dY):
            self.set_grad("c", self._ns(X).reshape(self._ns(X).sum(dY * X), (1,)))
            return dY * c

        return X * c, backward


@pytest.fixture
def registered():
    with layers.REGISTRY.restoring():
        layers.register("scale2", Scale)
        layers.register("opaque", Opaque)
        yield


def _setup():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    model = bp.Sequential([Dense(2, 3), "tanh", Scale(3), Dense(3, 2)], dtype="float64", seed=1)
    return model, X, y


def test_a_registered_layer_is_in_the_jacobian_as_differences_say(registered):
    model, X, _ = _setup()
    Xd = model.backend.asarray(X, model.dtype)
    Z, J = jacobian(model, Xd)
    theta = to_np(model.flat_parameters()).copy()
    numeric = np.zeros_like(to_np(J))
    for p in range(theta.size):
        outs = []
        for sign in (1.0, -1.0):
            bumped = theta.copy()
            bumped[p] += sign * 1e-6
            model.set_flat_parameters(bumped)
            outs.append(to_np(model(Xd)).ravel())
        numeric[:, p] = (outs[0] - outs[1]) / 2e-6
    model.set_flat_parameters(theta)
    np.testing.assert_allclose(to_np(J), numeric, atol=1e-8)
    assert np.abs(to_np(J)[:, 9:12]).max() > 0.01  # Scale's own columns are there


def test_a_registered_layer_is_in_the_hessian_as_differences_say(registered):
    model, X, y = _setup()
    Xd, T = model.backend.asarray(X, model.dtype), model.backend.asarray(y, model.dtype)
    _, g, H = hessian(model, losses.get("mse"), Xd, T)
    numeric = hessian_by_differences(model, X, y)
    np.testing.assert_allclose(to_np(H), numeric, atol=1e-7)
    model.loss_and_gradients(X, y, loss="mse")
    np.testing.assert_allclose(to_np(g), to_np(model.flat_gradients()), rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["lm", "newton"])
def test_a_layer_without_second_order_pieces_is_refused_before_anything_changes(optimizer, registered):
    model = bp.Sequential([Dense(2, 3), Opaque(), Dense(3, 1)], dtype="float64", seed=0)
    before = to_np(model.flat_parameters()).copy()
    X = np.random.default_rng(0).normal(size=(8, 2))
    with pytest.raises(ConfigError, match=r"does not cover the Opaque layer \(layer 1\)"):
        model.fit(X, X[:, :1], loss="mse", optimizer=optimizer, epochs=2)
    np.testing.assert_array_equal(to_np(model.flat_parameters()), before)
    assert model.epoch == 0 and model.history is None


def test_newtons_memory_estimate_reads_the_layers_shapes():
    # P = 2·16 + 16 + 16 + 1 = 65; widths of the layers with parameters 16 + 1; 20,000 samples of 2:
    # 2 · 65 · 20,000 · (2 + 2 · 17) · 8 bytes = 714 MiB.
    X = np.random.default_rng(0).normal(size=(20000, 2))
    model = bp.mlp([2, 16, 1], activation="tanh", dtype="float64")
    with pytest.raises(ConfigError, match="would need about 714 MiB for its exact Hessian"):
        model.fit(X, X[:, 0], loss="mse", optimizer="newton")
