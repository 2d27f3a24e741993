"""Gradients live in one flat buffer (P,) the model owns: the layers' ``grads`` are views of it,
each backward pass writes into them, ``flat_gradients()`` is the buffer itself, the data-parallel
all-reduce sums it in place, and a layer that still binds new gradient arrays keeps working."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backends.comm import Solo
from backprop import flat
from backprop.layers import Dense
from conftest import to_np

# The weights of the run in test_numbers_are_those_of_the_code_before_the_buffer, as the commit before
# the flat gradient buffer (0465cd1) trains them: sum, sum of magnitudes, entries 7 and -1.
BEFORE = (0.7434729466312269, 15.125148669683782, 0.017422731673442098, -0.02337669672536013)


def _data(n=40):
    rng = np.random.default_rng(5)
    return rng.normal(size=(n, 4)), rng.integers(0, 3, n)


def _model(layer=Dense, **kwargs):
    return bp.Sequential([layer(4, 6), "tanh", layer(6, 3), "softmax"], dtype="float64", seed=3, **kwargs)


class Rebinding(Dense):
    """A Dense whose backward binds new gradient arrays, as layers written before the buffer do."""

    def forward(self, X, *, train=False, input_grad=True):
        Y, _ = super().forward(X, train=train, input_grad=input_grad)
        W = self.params["W"]

        def backward(dY):
            self.grads["W"] = X.T @ dY
            self.grads["b"] = self._ns(X).sum(dY, axis=0)
            return dY @ W.T if input_grad else None

        return Y, backward


def test_the_layers_gradients_are_views_of_the_buffer_both_ways(backend):
    model = bp.mlp([3, 4, 2], device=backend.spec, dtype="float64", seed=0)
    X, y = np.random.default_rng(0).normal(size=(6, 3)), np.array([0, 1, 1, 0, 1, 0])
    model.loss_and_gradients(X, y, loss="ce")
    buffer = model.flat_gradients()
    assert model.flat_gradients() is buffer and tuple(buffer.shape) == (model.n_params,)
    np.testing.assert_array_equal(to_np(buffer), np.concatenate([to_np(g).ravel()
                                                                 for g in model.gradients().values()]))
    with backend.activate():
        buffer[0] = 123.0  # through the buffer: "0.W"[0, 0]
        model.layers[2].grads["b"][...] = 7.0  # through a view: the last two entries
    assert float(to_np(model.gradients()["0.W"])[0, 0]) == 123.0
    np.testing.assert_array_equal(to_np(buffer)[-2:], [7.0, 7.0])


def test_backward_writes_into_the_views_and_the_buffer_stays_the_same_array():
    X, y = _data()
    model = _model()
    buffer = model.flat_gradients()
    views = [layer.grads[k] for layer in model.layers for k in layer.params]
    model.fit(X, y, loss="ce", optimizer="adam", epochs=2, batch_size=8, validation_split=0.0)
    assert model.flat_gradients() is buffer
    assert all(layer.grads[k] is view for (layer, k), view in
               zip([(layer, k) for layer in model.layers for k in layer.params], views))
    # Straight after a backward pass, before anything reads the gradients: written into the views.
    Z, backward = model.forward(model.backend.asarray(X, model.dtype), train=True, loss=model.loss)
    backward(model.loss.forward(Z, model.loss.targets(model.xp, model.dtype, model.backend.asarray(y),
                                                      3, "y")[0])[1])
    assert all(layer.grads[k] is view for (layer, k), view in
               zip([(layer, k) for layer in model.layers for k in layer.params], views))
    value, grads = model.loss_and_gradients(X, y)
    assert grads["0.W"] is not model.layers[0].grads["W"]  # loss_and_gradients hands back copies
    np.testing.assert_array_equal(to_np(buffer), np.concatenate([to_np(g).ravel() for g in grads.values()]))


def test_a_layer_that_binds_new_arrays_lands_in_the_buffer_and_trains_the_same():
    X, y = _data()
    rebinding, writing = _model(Rebinding), _model()
    _, grads = rebinding.loss_and_gradients(X, y, loss="ce")
    assert rebinding.flat_gradients() is rebinding.flat_gradients()
    np.testing.assert_array_equal(to_np(rebinding.flat_gradients()),
                                  np.concatenate([to_np(g).ravel() for g in grads.values()]))
    assert rebinding.layers[0].grads["W"] is rebinding.gradient_list()[0]  # back to its view
    for m in (rebinding, writing):
        m.fit(X, y, loss="ce", optimizer="adam", lr=0.01, epochs=3, batch_size=8, validation_split=0.0)
    np.testing.assert_array_equal(to_np(rebinding.flat_parameters()), to_np(writing.flat_parameters()))


def test_numbers_are_those_of_the_code_before_the_buffer():
    X, y = _data()
    model = bp.mlp([4, 6, 3], activation="tanh", output="softmax", dtype="float64", seed=3)
    model.fit(X, y, loss="ce", optimizer="adam", lr=0.01, epochs=3, batch_size=8, validation_split=0.0)
    p = to_np(model.flat_parameters())
    np.testing.assert_allclose([p.sum(), np.abs(p).sum(), p[7], p[-1]], BEFORE, rtol=1e-12)


def test_without_views_the_gradients_are_gathered_into_a_new_vector(monkeypatch):
    monkeypatch.setattr(flat, "pack", lambda xp, arrays: None)
    X, y = _data()
    model = _model()
    model.loss_and_gradients(X, y, loss="ce")
    first = model.flat_gradients()
    assert model.flat_gradients() is not first
    np.testing.assert_array_equal(to_np(first), np.concatenate([to_np(g).ravel()
                                                                for g in model.gradient_list()]))


class Recording(Solo):
    """One rank that records whether each all-reduce got the model's own gradient buffer."""

    def __init__(self, model):
        super().__init__()
        self.model, self.own = model, []

    def allreduce(self, buffer):
        self.own.append(buffer is self.model.flat_gradients())
        return super().allreduce(buffer)


def test_the_data_parallel_all_reduce_sums_the_model_buffer_in_place():
    X, y = _data()
    model = _model()
    comm = Recording(model)
    model.fit(X, y, loss="ce", optimizer="adam", epochs=1, batch_size=8, validation_split=0.0, comm=comm)
    assert comm.own == [True] * 5


@pytest.mark.parametrize("layer", [Dense, Rebinding])
def test_gradient_hooks_see_the_views(layer):
    X, y = _data()
    model = _model(layer)
    seen = []
    model.fit(X, y, loss="ce", optimizer="sgd", epochs=1, batch_size=40, validation_split=0.0,
              gradient_hooks=[lambda grads, step: seen.append(flat.flatten(model.xp, grads))])
    np.testing.assert_array_equal(to_np(seen[0]), to_np(model.flat_gradients()))

