"""Training runs whose numbers a reshaping of the code must not change, recorded bit for bit.

``tests/test_golden_runs.py`` compares them with the values recorded at commit 0915f9c (the last
one before issue 22 reshaped the core), with::

    git archive 0915f9c | tar -x -C /tmp/base && cp tests/golden_runs.py /tmp/base/
    cd /tmp/base && PYTHONPATH=/tmp/base python golden_runs.py

Each run covers one path: full-batch gradient descent, mini-batches with a validation split and
early stopping continued by a second fit, Nesterov with weight decay, L1 and a cosine schedule,
sample weights with BCE, Levenberg-Marquardt, Newton, L-BFGS, and a whole training run."""

from __future__ import annotations

import numpy as np

import backprop as bp


def _xor():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    return X, np.array([0, 1, 1, 0], dtype=np.float64)


def _blobs(n=120, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] > 0).astype(np.int64) + (X[:, 2] > 1)
    return X, y


def _curve(n=60, seed=4):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n, 2))
    return X, np.sin(2 * X[:, 0]) + 0.3 * X[:, 1] ** 2


def _final(model, history):
    """The last record's losses and the sum of the weights: a change anywhere shows."""
    last = history.records[-1]
    weights = np.asarray(model.flat_parameters(), dtype=np.float64)
    return [last["train_loss"], last.get("val_loss", 0.0), float(np.sum(weights)),
            float(len(history.records))]


def xor_gd():
    X, y = _xor()
    layers = [bp.Dense(2, 2, bias="textbook"), "sigmoid", bp.Dense(2, 1, bias="textbook"), "sigmoid"]
    model = bp.Sequential(layers, dtype="float64", seed=1)
    return _final(model, model.fit(X, y, loss="mse", optimizer="gd", lr=0.5, epochs=200, batch_size="full"))


def adam_minibatch_early_stopping():
    X, y = _blobs()
    model = bp.mlp([3, 16, 16, 3], activation="tanh", output="softmax", seed=5)
    first = _final(model, model.fit(X, y, epochs=40, batch_size=16, validation_split=0.25, early_stopping=4))
    again = model.fit(X, y, epochs=5, batch_size=16, validation_split=0.25,
                      early_stopping=model.state.early_stopping)  # continues that early stopping
    return first + _final(model, again)


def momentum_decay_cosine_l1():
    X, y = _blobs(seed=8)
    model = bp.mlp([3, 8, 3], activation="relu", output="softmax", dtype="float64", seed=2)
    history = model.fit(X, y, optimizer="nesterov", lr=0.05, momentum=0.8, weight_decay=1e-3, l1=1e-4,
                        schedule="cosine", epochs=12, batch_size=10)
    return _final(model, history)


def weighted_rmsprop_bce():
    X, y = _blobs(seed=9)
    y = (y > 0).astype(np.int64)
    w = np.linspace(0.5, 2.0, len(y))
    model = bp.mlp([3, 6, 1], activation="softplus", output="sigmoid", seed=3)
    return _final(model, model.fit(X, y, optimizer="rmsprop", epochs=10, batch_size=32, sample_weight=w))


def lm_regression():
    X, y = _curve()
    model = bp.mlp([2, 6, 1], activation="tanh", dtype="float64", seed=4)
    return _final(model, model.fit(X, y, loss="mse", optimizer="lm", epochs=15, validation_split=0.2,
                                   early_stopping=6))


def newton_regression():
    X, y = _curve(n=30)
    model = bp.mlp([2, 3, 1], activation="tanh", dtype="float64", seed=6)
    return _final(model, model.fit(X, y, loss="mse", optimizer="newton", epochs=8))


def lbfgs_classifier():
    X, y = _blobs(seed=10)
    model = bp.mlp([3, 10, 3], activation="relu", output="softmax", dtype="float64", seed=7)
    return _final(model, model.fit(X, y, optimizer="lbfgs", epochs=25, weight_decay=1e-4))


def run_moons():
    s = bp.run("moons", epochs=6, hidden=[8], seed=2, optimizer="momentum")
    return [s["train_loss"], s["val_loss"], s["test_loss"], s["test_accuracy"], float(s["epochs"])]


RUNS = {f.__name__: f for f in (xor_gd, adam_minibatch_early_stopping, momentum_decay_cosine_l1,
                                 weighted_rmsprop_bce, lm_regression, newton_regression, lbfgs_classifier,
                                 run_moons)}

if __name__ == "__main__":
    for name, f in RUNS.items():
        print(f"    {name!r}: {[v.hex() for v in f()]!r},")
