"""Sample weights: a weighted loss on the device, equal to repeating or dropping samples."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from conftest import to_np


def data(loss, n=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = {"ce": rng.integers(0, 3, n), "bce": rng.integers(0, 2, n)}.get(loss, rng.normal(size=n))
    return X, y


@pytest.mark.parametrize("optimizer,loss", [
    ("gd", "ce"), ("gd", "mse"), ("gd", "bce"), ("gd", "sse"), ("lbfgs", "ce"), ("lm", "mse"),
    ("newton", "mse"), ("newton", "ce")])
def test_a_weight_of_two_is_a_repeated_sample_and_zero_a_dropped_one(optimizer, loss):
    X, y = data(loss)
    outputs = 3 if loss == "ce" else 1
    w = np.ones(len(X))
    w[[1, 4]] = [2.0, 0.0]  # still summing to N: the same total as the repeated data
    repeat = np.r_[np.arange(len(X)), 1]
    keep = repeat[repeat != 4]
    settings = dict(loss=loss, optimizer=optimizer, epochs=5, batch_size="full")
    if optimizer == "gd":
        settings["lr"] = 0.05
    weighted = bp.mlp([3, 4, outputs], activation="tanh", dtype="float64", seed=0)
    weighted.fit(X, y, sample_weight=w, **settings)
    repeated = bp.mlp([3, 4, outputs], activation="tanh", dtype="float64", seed=0)
    repeated.fit(X[keep], y[keep], **settings)
    np.testing.assert_allclose(weighted.history["train_loss"], repeated.history["train_loss"], rtol=1e-9)
    for name, value in weighted.parameters().items():
        np.testing.assert_allclose(value, repeated.parameters()[name], rtol=1e-7, atol=1e-10)


def test_uniform_weights_change_nothing(other_backend):
    X, y = data("ce")
    plain = bp.mlp([3, 4, 3], dtype="float64", seed=0, device=other_backend)
    plain.fit(X, y, optimizer="adam", epochs=3, batch_size=5)
    weighted = bp.mlp([3, 4, 3], dtype="float64", seed=0, device=other_backend)
    weighted.fit(X, y, optimizer="adam", epochs=3, batch_size=5, sample_weight=np.full(len(X), 3.0))
    for name, value in plain.parameters().items():
        np.testing.assert_allclose(to_np(weighted.parameters()[name]), to_np(value), rtol=1e-12)


@pytest.mark.parametrize("weights,message", [
    (np.ones(5), "one weight per sample"), (-np.ones(12), "non-negative"), (np.zeros(12), "all zero"),
    (np.full(12, np.nan), "finite")])
def test_bad_weights_are_refused(weights, message):
    X, y = data("ce")
    with pytest.raises(bp.DataError, match=message):
        bp.mlp([3, 3]).fit(X, y, sample_weight=weights)


def test_weights_follow_their_samples_through_the_shuffles(numpy_backend):
    # Frozen weights (zero gradients at the seam): each epoch's loss, over shuffled
    # mini-batches, must be the weighted mean over the samples that count.
    X, y = data("ce", n=20)
    w = np.tile([1.0, 0.0], 10)
    model = bp.mlp([3, 4, 3], dtype="float64", seed=0)
    expected = model.evaluate(X[w > 0], y[w > 0], loss="ce")["loss"]
    history = model.fit(X, y, loss="ce", optimizer="gd", epochs=3, batch_size=4, sample_weight=w,
                        gradient_hooks=[lambda grads, step: [g * 0.0 for g in grads]])
    assert history["train_loss"] == pytest.approx([expected] * 3, rel=1e-12)


@pytest.mark.parametrize("optimizer", ["gd", "lm"])
def test_summed_losses_keep_the_weights_as_given(optimizer):
    # sse: a weight of 2 is a repeat even when the weights do not sum to N
    X, y = data("mse", n=10)
    w = np.ones(10)
    w[0] = 2.0
    settings = dict(loss="sse", optimizer=optimizer, epochs=4, batch_size="full")
    if optimizer == "gd":
        settings["lr"] = 0.01
    weighted = bp.mlp([3, 4, 1], activation="tanh", dtype="float64", seed=0)
    weighted.fit(X, y, sample_weight=w, **settings)
    repeated = bp.mlp([3, 4, 1], activation="tanh", dtype="float64", seed=0)
    keep = np.r_[np.arange(10), 0]
    repeated.fit(X[keep], y[keep], **settings)
    for name, value in weighted.parameters().items():
        np.testing.assert_allclose(value, repeated.parameters()[name], rtol=1e-7, atol=1e-10)


def test_a_training_part_without_weight_is_refused():
    X, y = data("ce", n=20)
    order, n_val = bp.training.validation_order(20, 0.25, 0)
    w = np.zeros(20)
    w[order[0]] = 1.0  # the only weighted sample is held out for validation
    with pytest.raises(bp.DataError, match="training part's sample weights are all zero"):
        bp.mlp([3, 3]).fit(X, y, sample_weight=w, validation_split=0.25)
