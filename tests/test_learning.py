"""Real learning: the textbook XOR and scikit-learn's bundled digits."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([0, 1, 1, 0], dtype=float)


def solves_xor(hidden: int, seed: int) -> bool:
    """The textbook run: sigmoid units, weights and biases from U(-0.5, 0.5), squared
    error E = 1/2 sum (o - t)^2, full-batch gradient descent, rate 0.8, 2000 epochs."""
    model = bp.Sequential(
        [bp.Dense(2, hidden, init="textbook", bias="textbook"), "sigmoid",
         bp.Dense(hidden, 1, init="textbook", bias="textbook"), "sigmoid"],
        dtype="float64", seed=seed)
    model.fit(XOR_X, XOR_Y, loss="sse", optimizer="gd", lr=0.8, epochs=2000, batch_size="full")
    return bool(np.all((model.predict(XOR_X) > 0.5) == (XOR_Y > 0.5)))


def test_xor_2_2_1_solves_most_seeds():
    # Measured: 18 of seeds 0..29 solve XOR in 2000 epochs (60%). Most of the other
    # 12 are slow, not stuck: with 10000 epochs 29 of 30 solve it. Seed 25 stays in
    # the classic local minimum (outputs 0.02, 0.5, 0.99, 0.5): a 2-2-1 net has no
    # spare hidden unit to escape it. The bounds leave room for a BLAS that rounds
    # a borderline seed the other way.
    solved = [solves_xor(2, seed) for seed in range(30)]
    assert 16 <= sum(solved) <= 20, sum(solved)


def test_xor_2_4_1_solves_every_seed_tried():
    # Seeds 0..19 all solve it in 2000 epochs (seed 23 is the first that needs more
    # than 2000; it solves it by 5000).
    assert all(solves_xor(4, seed) for seed in range(20))


def test_xor_learns_on_every_backend(backend):
    model = bp.Sequential([bp.Dense(2, 4, init="textbook", bias="textbook"), "sigmoid",
                           bp.Dense(4, 1, init="textbook", bias="textbook"), "sigmoid"],
                          device=backend, dtype="float64", seed=0)
    model.fit(XOR_X, XOR_Y, loss="sse", optimizer="gd", lr=0.8, epochs=2000, batch_size="full")
    out = backend.to_numpy(model(backend.asarray(XOR_X, "float64")))[:, 0]
    np.testing.assert_array_equal(out > 0.5, XOR_Y > 0.5)
    assert np.max(np.abs(out - XOR_Y)) < 0.15


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def test_digits_reaches_97_percent(digits):
    # scikit-learn's MLPClassifier reaches 97-98% on this held-out quarter.
    X_train, X_test, y_train, y_test = digits
    model = bp.mlp([64, 128, 10], activation="relu", output="softmax", seed=0)
    history = model.fit(X_train, y_train, optimizer="adam", lr=1e-3, epochs=40, batch_size=32,
                        validation_split=0.1, early_stopping=8)
    scores = model.evaluate(X_test, y_test)
    assert scores["accuracy"] >= 0.965, (scores, len(history))
    assert np.mean(model.predict(X_test) == y_test) == pytest.approx(scores["accuracy"])


def test_digits_on_every_backend(backend, digits):
    X_train, X_test, y_train, y_test = digits
    model = bp.mlp([64, 64, 10], activation="relu", output="softmax", device=backend, seed=0)
    model.fit(X_train, y_train, optimizer="adam", lr=3e-3, epochs=8, batch_size=64)
    assert model.evaluate(X_test, y_test)["accuracy"] > 0.93
