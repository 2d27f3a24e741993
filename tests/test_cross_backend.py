"""CPU and GPU (and every other backend) compute the same thing.

Identical seeded weights, identical batches, several training steps with each
optimizer; parameters and losses compared with NumPy through to_numpy.

Tolerances (the README quotes them):
- float64: <= 1e-10 relative (seen: ~1e-15; only summation order differs).
- float32: <= 1e-4 relative to each array's largest entry after 5 steps (seen:
  ~1e-6; BLAS libraries block and sum float32 products in different orders).
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

OPTIMIZERS = {
    "gd": dict(optimizer="gd", lr=0.1),
    "sgd": dict(optimizer="sgd", lr=0.05),
    "momentum": dict(optimizer="momentum", lr=0.05, weight_decay=1e-3),
    "nesterov": dict(optimizer="nesterov", lr=0.05, schedule="step"),
    "rmsprop": dict(optimizer="rmsprop", lr=1e-3),
    "adam": dict(optimizer="adam", lr=1e-3, weight_decay=1e-4),
    "adamw": dict(optimizer="adamw", lr=1e-3, schedule="cosine"),
}
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


def data(n=48, d=10, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, k, n)


def train(spec, dtype, fit_kwargs, epochs=2, batch_size=16):
    X, y = data()
    model = bp.mlp([10, 16, 12, 4], activation="tanh", output="softmax", device=spec, dtype=dtype, seed=7)
    initial = {k: model.backend.to_numpy(v).copy() for k, v in model.parameters().items()}
    history = model.fit(X, y, loss="ce", epochs=epochs, batch_size=batch_size, **fit_kwargs)
    final = {k: model.backend.to_numpy(v) for k, v in model.parameters().items()}
    return initial, final, history


def rel_diff(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_training_steps_agree_with_numpy(other_backend, name, dtype):
    # 2 epochs of 3 batches: 6 steps, with shuffling, on both backends.
    init_ref, ref, hist_ref = train("cpu", dtype, OPTIMIZERS[name])
    init_other, other, hist_other = train(other_backend, dtype, OPTIMIZERS[name])
    for key in ref:
        assert np.array_equal(init_ref[key], init_other[key]), f"{key}: initial weights differ"
        assert rel_diff(ref[key], other[key]) <= TOLERANCE[dtype], key
        assert not np.array_equal(init_ref[key], ref[key]), f"{key} never moved"
    for a, b in zip(hist_ref["train_loss"], hist_other["train_loss"]):
        assert abs(a - b) <= TOLERANCE[dtype] * abs(a)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradients_agree_with_numpy(other_backend, dtype):
    X, y = data(n=20)
    grads = []
    for spec in ("cpu", other_backend):
        model = bp.mlp([10, 16, 4], activation="relu", device=spec, dtype=dtype, seed=1)
        loss, g = model.loss_and_gradients(X, y, loss="ce")
        grads.append((loss, {k: model.backend.to_numpy(v) for k, v in g.items()}))
    (loss_a, ga), (loss_b, gb) = grads
    assert abs(loss_a - loss_b) <= TOLERANCE[dtype] * abs(loss_a)
    for key in ga:
        assert rel_diff(ga[key], gb[key]) <= TOLERANCE[dtype], key


def test_predictions_agree_with_numpy(other_backend):
    X, y = data(n=100, seed=3)
    preds = []
    for spec in ("cpu", other_backend):
        model = bp.mlp([10, 32, 4], activation="relu", output="softmax", device=spec, dtype="float64", seed=2)
        model.fit(X, y, epochs=5, batch_size=10, optimizer="adam", lr=0.01)
        preds.append((model.predict(X), model.predict_proba(X)))
    assert np.array_equal(preds[0][0], preds[1][0])
    np.testing.assert_allclose(preds[0][1], preds[1][1], rtol=1e-9, atol=1e-12)


def test_model_moves_between_backends(other_backend):
    X, _ = data(n=10)
    model = bp.mlp([10, 8, 4], device="cpu", dtype="float64", seed=0)
    moved = model.to(other_backend)
    assert moved.backend is other_backend
    np.testing.assert_allclose(moved.predict(X), model.predict(X), rtol=1e-12)
    back = moved.to("cpu", dtype="float32")
    np.testing.assert_allclose(back.predict(X), model.predict(X), rtol=1e-5, atol=1e-6)
