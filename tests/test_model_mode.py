"""The model's mode, training or inference, is set once for a whole pass, and each call site uses
the one it should: the training step, the Jacobian, the Hessian and the gradient checker train
(they differentiate the training objective); evaluation and prediction infer."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import layers, losses
from backprop.hessian import hessian
from backprop.jacobian import jacobian
from backprop.layers import Dense, Layer

SEEN: list[bool] = []


class Doubler(Layer):
    """``Y = 2X`` in training, ``Y = X`` in inference (a stand-in for dropout's scaling); records
    the mode of every pass. Shapes: X, Y (N, *shape)."""

    second_order = True

    @staticmethod
    def factor(train: bool) -> float:
        SEEN.append(bool(train))
        return 2.0 if train else 1.0

    def forward(self, X, *, train=False, input_grad=True):
        c = self.factor(train)
        return X * c, lambda dY: dY * c

    def r_forward(self, X, RX, V, *, train=False):
        c = self.factor(train)
        return X * c, None if RX is None else RX * c, c

    def r_backward(self, tape, dY, RdY):
        return dY * tape, RdY * tape, []


@pytest.fixture
def model():
    with layers.REGISTRY.restoring():
        layers.register("doubler", Doubler)
        SEEN.clear()
        yield bp.Sequential([Dense(2, 3), "tanh", Doubler(), Dense(3, 1)], dtype="float64", seed=0)


def _data():
    rng = np.random.default_rng(2)
    return rng.normal(size=(8, 2)), rng.normal(size=(8, 1))


def test_train_eval_and_the_context_set_the_mode_of_a_pass(model):
    X = model.backend.asarray(_data()[0], model.dtype)
    assert model.training is False and model.eval() is model and model.train() is model and model.training
    trained = np.asarray(model(X))
    model.eval()
    inferred = np.asarray(model(X))
    with pytest.raises(RuntimeError):
        with model.mode(train=True):
            np.testing.assert_array_equal(np.asarray(model(X)), trained)
            raise RuntimeError
    assert model.training is False  # restored, after an exception too
    assert not np.array_equal(trained, inferred) and SEEN == [True, False, True]
    np.testing.assert_array_equal(np.asarray(model.forward(X, train=True)[0]), trained)  # the keyword wins


def test_the_training_step_trains_and_evaluation_and_prediction_infer(model):
    X, y = _data()
    model.eval()
    model.fit(X, y, loss="mse", optimizer="sgd", epochs=1, batch_size=4, validation_split=0.0)
    assert SEEN == [True, True]  # two steps, whatever the model's mode
    SEEN.clear()
    model.train()  # prediction and evaluation infer even so
    model.predict(X)
    model.evaluate(X, y)
    assert SEEN == [False, False]
    SEEN.clear()
    model.fit(X, y, loss="mse", optimizer="sgd", epochs=1, batch_size=8, validation_data=(X, y))
    assert SEEN == [True, False]  # the step, then the validation score
    SEEN.clear()
    model.loss_and_gradients(X, y, loss="mse")
    assert SEEN == [True]


def test_jacobian_hessian_and_gradcheck_differentiate_in_training_mode(model):
    X, y = _data()
    model.eval()
    Xd, T = model.backend.asarray(X, model.dtype), model.backend.asarray(y, model.dtype)
    Z, _ = jacobian(model, Xd)
    assert SEEN == [True] and model.training is False
    np.testing.assert_array_equal(np.asarray(Z), np.asarray(model.forward(Xd, train=True)[0]))
    SEEN.clear()
    _, g, _ = hessian(model, losses.get("sse"), Xd, T)
    assert SEEN == [True]
    _, grads = model.loss_and_gradients(X, y, loss="sse")  # the training gradient
    np.testing.assert_allclose(np.asarray(g), np.concatenate([np.asarray(v).ravel() for v in grads.values()]),
                               rtol=1e-12)
    SEEN.clear()
    check = bp.gradcheck(model, X, y, loss="mse")
    assert check.ok and set(SEEN) == {True}  # differences and backward pass in one mode
