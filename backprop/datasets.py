"""Built-in data sets: generated from a fixed seed or shipped with scikit-learn.

Nothing is fetched from the network. Each set comes with a held-out test part
(generated sets draw it from the same distribution; digits holds out a fixed,
stratified fifth) and with the training settings that suit it, which the
command line uses unless told otherwise.

All arrays are host NumPy arrays: ``X`` (N, F) float64, ``y`` (N,) class
labels (int) or real targets (float).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ConfigError, DataError

DATA_SEED = 1234  # fixed: the data stays the same whatever --seed the model uses


@dataclass
class Dataset:
    """Host arrays of one data set, with its optional validation and test parts.

    ``X`` (N, F) float64; ``y`` (N,) labels of any type (strings welcome) or real
    targets, (N, T) for several real targets. ``defaults`` holds training settings
    that suit the set (keys as the ``train`` options: hidden, epochs, lr...).
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    feature_names: list[str] = field(default_factory=list)
    target_name: str | None = None
    task: str | None = None  # "classification" / "regression" when the set knows; else inferred
    defaults: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.feature_names:
            self.feature_names = [f"x{i}" for i in range(self.X.shape[1])]


def _xor(rng: np.random.Generator) -> Dataset:
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    # The textbook net is 2-2-1; four tanh units solve it from almost every seed.
    return Dataset("xor", X, y, task="classification",
                   defaults={"hidden": [4], "activation": "tanh", "optimizer": "adam", "lr": 0.05,
                             "epochs": 300, "batch_size": "full", "val_split": 0.0})


def _spirals(rng: np.random.Generator, n: int, arms: int = 3, noise: float = 0.12):
    """``arms`` interleaved spirals, n points each, two turns long."""
    t = rng.uniform(0.0, 1.0, size=(arms, n))
    radius = 0.2 + 4.0 * t
    angle = 4.0 * math.pi * t + (2.0 * math.pi / arms) * np.arange(arms)[:, None]
    X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1).reshape(-1, 2)
    X += rng.normal(0.0, noise, size=X.shape)
    y = np.repeat(np.arange(arms), n)
    order = rng.permutation(len(y))
    return X[order], y[order]


def _sine(rng: np.random.Generator, n: int):
    """Noisy samples of sin(2x) + x/2 on [-pi, pi]: a curve a few hidden units can bend to."""
    x = rng.uniform(-math.pi, math.pi, size=n)
    y = np.sin(2.0 * x) + 0.5 * x + rng.normal(0.0, 0.1, size=n)
    return x[:, None], y


def _generated(name: str, draw, n_train: int, n_test: int, task: str, defaults: dict) -> Dataset:
    rng = np.random.default_rng(DATA_SEED)
    X, y = draw(rng, n_train + n_test)
    return Dataset(name, X[:n_train], y[:n_train], X_test=X[n_train:], y_test=y[n_train:],
                   task=task, defaults=defaults)


def _sklearn(name: str):
    try:
        from sklearn import datasets
    except ImportError:  # a dependency, but a broken environment should still say what to do
        raise ConfigError(f"the {name!r} data set comes from scikit-learn: pip install scikit-learn") \
            from None
    return datasets


def _moons(rng, n):
    return _sklearn("moons").make_moons(n, noise=0.2, random_state=int(rng.integers(2**31)))


def _circles(rng, n):
    return _sklearn("circles").make_circles(n, noise=0.1, factor=0.5, random_state=int(rng.integers(2**31)))


def _blobs(rng, n):
    return _sklearn("blobs").make_blobs(n, centers=4, cluster_std=1.5,
                                        random_state=int(rng.integers(2**31)))


def _digits() -> Dataset:
    raw = _sklearn("digits").load_digits()
    X, y = raw.data.astype(np.float64), raw.target
    # A fixed stratified fifth for testing: every class keeps its share.
    rng = np.random.default_rng(DATA_SEED)
    test = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        test[rng.choice(members, size=len(members) // 5, replace=False)] = True
    return Dataset("digits", X[~test], y[~test], X_test=X[test], y_test=y[test],
                   feature_names=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
                   target_name="digit", task="classification",
                   defaults={"hidden": [256], "epochs": 60, "batch_size": 32, "lr": 1e-3})


_TWO_D = {"hidden": [32, 32], "epochs": 200, "batch_size": 64, "lr": 0.01}

BUILTIN: dict[str, Any] = {
    "xor": lambda: _xor(np.random.default_rng(DATA_SEED)),
    "moons": lambda: _generated("moons", _moons, 800, 200, "classification", _TWO_D),
    "circles": lambda: _generated("circles", _circles, 800, 200, "classification", _TWO_D),
    "spirals": lambda: _generated("spirals", lambda r, n: _spirals(r, n // 3), 1200, 300,
                                  "classification", {**_TWO_D, "hidden": [64, 64], "epochs": 400}),
    "blobs": lambda: _generated("blobs", _blobs, 800, 200, "classification",
                                {**_TWO_D, "hidden": [16], "epochs": 50}),
    "sine": lambda: _generated("sine", _sine, 400, 100, "regression",
                               {"hidden": [32, 32], "activation": "tanh", "epochs": 500,
                                "batch_size": 32, "lr": 0.01}),
    "digits": _digits,
}

DESCRIPTIONS = {
    "xor": "the four points of XOR, 2 classes",
    "moons": "two interleaved half circles, 2-D, 2 classes",
    "circles": "a circle inside a ring, 2-D, 2 classes",
    "spirals": "three interleaved spiral arms, 2-D, 3 classes",
    "blobs": "four Gaussian clusters, 2-D, 4 classes",
    "sine": "a noisy curve y = sin(2x) + x/2, 1-D regression",
    "digits": "scikit-learn's bundled 8x8 handwritten digits, 64 pixels, 10 classes",
}


def load_builtin(name: str) -> Dataset:
    """A built-in data set by name (see ``BUILTIN``)."""
    try:
        make = BUILTIN[name.lower()]
    except KeyError:
        raise DataError(
            f"unknown data set {name!r}: use one of {', '.join(BUILTIN)}, or a path to a .csv or .npz file"
        ) from None
    return make()
