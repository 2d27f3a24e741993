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

from ..errors import ConfigError, DataError

DATA_SEED = 1234  # fixed: the data stays the same whatever --seed the model uses


@dataclass
class Dataset:
    """Host arrays of one data set, with its optional validation and test parts.

    ``X`` (N, F) float64; ``y`` (N,) labels of any type (strings welcome) or real
    targets, (N, T) for several real targets. ``defaults`` holds training settings
    that suit the set (keys as the ``train`` options: hidden, epochs, lr...).
    ``input_shape``: each row's shape as a sample of several axes, channels first (digits:
    (1, 8, 8); an NPZ whose X is (N, C, L) or (N, C, H, W)), which a network given as layers
    reads; None: rows of features.
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
    input_shape: tuple[int, ...] | None = None

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


def _spirals(rng: np.random.Generator, n: int, noise: float = 0.12, arms: int = 3):
    """``arms`` interleaved spirals, n points each, two turns long."""
    t = rng.uniform(0.0, 1.0, size=(arms, n))
    radius = 0.2 + 4.0 * t
    angle = 4.0 * math.pi * t + (2.0 * math.pi / arms) * np.arange(arms)[:, None]
    X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1).reshape(-1, 2)
    X += rng.normal(0.0, noise, size=X.shape)
    y = np.repeat(np.arange(arms), n)
    order = rng.permutation(len(y))
    return X[order], y[order]


def _sine(rng: np.random.Generator, n: int, noise: float = 0.1):
    """Noisy samples of sin(2x) + x/2 on [-pi, pi]: a curve a few hidden units can bend to."""
    x = rng.uniform(-math.pi, math.pi, size=n)
    y = np.sin(2.0 * x) + 0.5 * x + rng.normal(0.0, noise, size=n)
    return x[:, None], y


MOTIF_LENGTH, SIGNAL_LENGTH = 12, 64


def _motifs(rng: np.random.Generator, n: int, noise: float = 0.6):
    """Signals of 64 samples holding one short motif at a random place in Gaussian noise; the class
    is which motif: 0 a bump (half a sine), 1 a step up and back down (a square pulse), 2 a
    down-then-up swing (one period of -sin). What tells the classes apart is a local shape found
    anywhere: the translation invariance a convolution has and a dense layer must learn place by
    place. Returns X (n, 64) (one channel: its samples are (1, 64)) and labels (n,)."""
    t = np.linspace(0.0, 1.0, MOTIF_LENGTH)
    shapes = np.stack([np.sin(np.pi * t), np.where((t > 0.2) & (t < 0.8), 1.0, 0.0), -np.sin(2 * np.pi * t)])
    y = rng.integers(0, 3, size=n)
    start = rng.integers(0, SIGNAL_LENGTH - MOTIF_LENGTH + 1, size=n)
    X = rng.normal(0.0, noise, size=(n, SIGNAL_LENGTH))
    rows = np.arange(n)[:, None]
    X[rows, start[:, None] + np.arange(MOTIF_LENGTH)] += 2.0 * shapes[y]
    return X, y


@dataclass(frozen=True)
class Generated:
    """A data set drawn at random: ``draw(rng, n, noise) -> (X, y)``.

    ``n`` samples in all, of which the fraction ``test`` is held out; ``noise`` in the
    set's own units (a standard deviation, or TensorFlow Playground's 0–0.5 fraction
    of the plane); ``max_noise`` bounds what a request may ask for.
    """

    draw: Any
    task: str
    n: int
    noise: float
    max_noise: float
    defaults: dict
    test: float = 0.2
    input_shape: tuple[int, ...] | None = None  # each row as a sample of several axes (signals)


def _generated(name: str, options: dict[str, Any] | None = None) -> Dataset:
    """The generated set ``name`` with ``options`` (n, noise, test, seed; see :func:`parse_spec`)."""
    gen = GENERATED[name]
    o = {"n": gen.n, "noise": gen.noise, "test": gen.test, "seed": DATA_SEED, **(options or {})}
    rng = np.random.default_rng(o["seed"])
    X, y = gen.draw(rng, o["n"], o["noise"])
    n_test = int(round(len(X) * o["test"]))
    n_train = len(X) - n_test
    return Dataset(name, X[:n_train], y[:n_train], X_test=X[n_train:] if n_test else None,
                   y_test=y[n_train:] if n_test else None, task=gen.task, defaults=gen.defaults,
                   input_shape=gen.input_shape)


def _sklearn(name: str):
    try:
        from sklearn import datasets
    except ImportError:  # a dependency, but a broken environment should still say what to do
        raise ConfigError(f"the {name!r} data set comes from scikit-learn: pip install scikit-learn") \
            from None
    return datasets


def _moons(rng, n, noise):
    return _sklearn("moons").make_moons(n, noise=noise, random_state=int(rng.integers(2**31)))


def _circles(rng, n, noise):
    return _sklearn("circles").make_circles(n, noise=noise, factor=0.5, random_state=int(rng.integers(2**31)))


def _blobs(rng, n, noise):
    return _sklearn("blobs").make_blobs(n, centers=4, cluster_std=noise,
                                        random_state=int(rng.integers(2**31)))


# TensorFlow Playground's four sets, drawn our own way on its plane [-6, 6]^2: ``noise``
# in [0, 0.5] moves each point by up to noise * 10 in each coordinate (uniformly), after
# its class was decided, so that noise makes the classes overlap.
def _jitter(rng, X, noise):
    return X + rng.uniform(-5.0, 5.0, size=X.shape) * noise


def _shuffled(rng, X, y):
    order = rng.permutation(len(y))
    return X[order], y[order]


def _circle(rng, n, noise):
    """A disc of one class (radius < 2.5) inside a ring of the other (3.5 to 5)."""
    inner = n // 2
    radius = np.concatenate([rng.uniform(0.0, 2.5, inner), rng.uniform(3.5, 5.0, n - inner)])
    angle = rng.uniform(0.0, 2.0 * math.pi, n)
    X = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    return _shuffled(rng, _jitter(rng, X, noise), (radius < 3.0).astype(np.int64))


def _quadrants(rng, n, noise):
    """XOR on the plane: the class is whether x and y have the same sign."""
    X = rng.uniform(-5.0, 5.0, size=(n, 2))
    X += np.where(X > 0, 0.3, -0.3)  # a margin along the axes, as TensorFlow Playground keeps
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    return _jitter(rng, X, noise), y


def _gauss(rng, n, noise):
    """Two Gaussian clouds around (2, 2) and (-2, -2), wider with more noise."""
    std = 0.5 + 7.0 * noise
    y = (np.arange(n) < n // 2).astype(np.int64)
    centre = np.where(y[:, None] == 1, 2.0, -2.0)
    return _shuffled(rng, centre + rng.normal(0.0, std, size=(n, 2)), y)


def _spiral(rng, n, noise):
    """Two spiral arms of 1.75 turns, one per class."""
    half = n // 2
    t = np.concatenate([np.arange(half) / half, np.arange(n - half) / max(n - half, 1)])
    y = (np.arange(n) < half).astype(np.int64)
    angle = 1.75 * 2.0 * math.pi * t + np.where(y == 1, 0.0, math.pi)
    X = np.stack([5.0 * t * np.sin(angle), 5.0 * t * np.cos(angle)], axis=1)
    return _shuffled(rng, _jitter(rng, X, noise / 5.0), y)


# TensorFlow Playground's two regression sets, as its src/dataset.ts draws them: points
# uniform on [-6, 6]^2, and ``noise`` in [0, 0.5] moves where the target is read (by up to
# 6 * noise in each coordinate), not the point itself.
def _label_noise(rng, X, noise):
    return X + rng.uniform(-6.0, 6.0, size=X.shape) * noise


def _plane(rng, n, noise):
    """A tilted plane: the target (x + y) / 10, in [-1.2, 1.2]."""
    X = rng.uniform(-6.0, 6.0, size=(n, 2))
    return X, _label_noise(rng, X, noise).sum(axis=1) / 10.0


_BUMPS = np.array([[-4.0, 2.5, 1.0], [0.0, 2.5, -1.0], [4.0, 2.5, 1.0],
                   [-4.0, -2.5, -1.0], [0.0, -2.5, 1.0], [4.0, -2.5, -1.0]])


def _bumps(rng, n, noise):
    """Six cones of height +-1 and radius 2 in two rows of alternating sign: the target is the
    tallest one's value at the point (0 between them)."""
    X = rng.uniform(-6.0, 6.0, size=(n, 2))
    read = _label_noise(rng, X, noise)
    distance = np.hypot(read[:, None, 0] - _BUMPS[:, 0], read[:, None, 1] - _BUMPS[:, 1])  # (n, 6)
    values = _BUMPS[:, 2] * np.clip(1.0 - distance / 2.0, 0.0, 1.0)
    return X, values[np.arange(n), np.argmax(np.abs(values), axis=1)]


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
                   defaults={"hidden": [256], "epochs": 60, "batch_size": 32, "lr": 1e-3},
                   input_shape=(1, 8, 8))


_TWO_D = {"hidden": [32, 32], "epochs": 200, "batch_size": 64, "lr": 0.01}

_PLANE = {"hidden": [4, 2], "activation": "tanh", "epochs": 1000, "batch_size": 10, "lr": 0.03,
          "early_stopping": 50}
"""TensorFlow Playground's own start (4 and 2 tanh units, batch 10, rate 0.03), with the patience
these sets need: their validation loss can plateau for tens of epochs before it falls again."""

GENERATED: dict[str, Generated] = {
    "moons": Generated(_moons, "classification", 1000, 0.2, 2.0, _TWO_D),
    "circles": Generated(_circles, "classification", 1000, 0.1, 1.0, _TWO_D),
    "spirals": Generated(lambda r, n, noise: _spirals(r, n // 3, noise), "classification", 1500, 0.12, 2.0,
                         {**_TWO_D, "hidden": [64, 64], "epochs": 400}),
    "blobs": Generated(_blobs, "classification", 1000, 1.5, 10.0, {**_TWO_D, "hidden": [16], "epochs": 50}),
    "circle": Generated(_circle, "classification", 500, 0.0, 0.5, _PLANE, 0.5),
    "quadrants": Generated(_quadrants, "classification", 500, 0.0, 0.5, _PLANE, 0.5),
    "gauss": Generated(_gauss, "classification", 500, 0.0, 0.5, _PLANE, 0.5),
    "spiral": Generated(_spiral, "classification", 500, 0.0, 0.5, {**_PLANE, "hidden": [16, 16]}, 0.5),
    "plane": Generated(_plane, "regression", 1200, 0.0, 0.5, _PLANE, 0.5),
    "bumps": Generated(_bumps, "regression", 1200, 0.0, 0.5, _PLANE, 0.5),
    "sine": Generated(_sine, "regression", 500, 0.1, 2.0,
                      {"hidden": [32, 32], "activation": "tanh", "epochs": 500, "batch_size": 32,
                       "lr": 0.01}),
    "motifs": Generated(_motifs, "classification", 3000, 0.6, 3.0,
                        {"hidden": [128, 64], "epochs": 60, "batch_size": 32, "lr": 1e-3},
                        input_shape=(1, SIGNAL_LENGTH)),
}

BUILTIN: dict[str, Any] = {
    "xor": lambda: _xor(np.random.default_rng(DATA_SEED)),
    **{name: (lambda name=name: _generated(name)) for name in GENERATED},
    "digits": _digits,
}

DESCRIPTIONS = {
    "xor": "the four points of XOR, 2 classes",
    "moons": "two interleaved half circles, 2-D, 2 classes",
    "circles": "a circle inside a ring, 2-D, 2 classes",
    "spirals": "three interleaved spiral arms, 2-D, 3 classes",
    "blobs": "four Gaussian clusters, 2-D, 4 classes",
    "circle": "TensorFlow Playground's disc inside a ring, 2-D, 2 classes",
    "quadrants": "TensorFlow Playground's XOR: opposite quadrants share a class, 2-D, 2 classes",
    "gauss": "TensorFlow Playground's two Gaussian clouds, 2-D, 2 classes",
    "spiral": "TensorFlow Playground's two spiral arms, 2-D, 2 classes",
    "plane": "TensorFlow Playground's reg-plane: target (x1 + x2) / 10, 2-D regression",
    "bumps": "TensorFlow Playground's reg-gauss: six bumps of alternating sign, 2-D regression",
    "sine": "a noisy curve y = sin(2x) + x/2, 1-D regression",
    "motifs": "signals of 64 samples, one of three short motifs somewhere in noise, 3 classes (1x64 for "
              "--layers)",
    "digits": "scikit-learn's bundled 8x8 handwritten digits, 64 pixels, 10 classes",
}


SPEC_KEYS = {"n": (int, 4, 1_000_000), "noise": (float, 0.0, None), "test": (float, 0.0, 0.9),
             "seed": (int, 0, 2**32 - 1)}
"""Options of a generated set, as ``name:n=500,noise=0.1,test=0.5,seed=7``: (type, min, max)."""


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"spiral:noise=0.2,n=500"`` -> ``("spiral", {"noise": 0.2, "n": 500})``, checked."""
    name, _, rest = spec.partition(":")
    name = name.strip().lower()
    options: dict[str, Any] = {}
    if not rest:
        return name, options
    if name not in GENERATED:
        raise DataError(f"{name!r} takes no options: options (n, noise, test, seed) are for the generated "
                        f"sets {', '.join(GENERATED)}")
    for part in rest.split(","):
        key, eq, text = part.partition("=")
        key = key.strip()
        if key not in SPEC_KEYS or not eq:
            raise DataError(f"data option {part!r}: use n=, noise=, test= or seed=, "
                            f"e.g. {name}:n=500,noise=0.1")
        kind, low, high = SPEC_KEYS[key]
        high = GENERATED[name].max_noise if key == "noise" else high
        try:
            value = kind(text)
        except ValueError:
            raise DataError(f"data option {key}: expected {'an integer' if kind is int else 'a number'}, "
                            f"got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise DataError(f"data option {key} must be in [{low}, {high}], got {text}")
        options[key] = value
    return name, options


def spec(name: str, **options: Any) -> str:
    """The spec string that :func:`load_builtin` reads back: ``name:key=value,...``."""
    given = ",".join(f"{k}={options[k]}" for k in SPEC_KEYS if options.get(k) is not None)
    return f"{name}:{given}" if given else name


def load_builtin(name: str) -> Dataset:
    """A built-in data set by name (see ``BUILTIN``); a generated one takes options after a
    colon (see :func:`parse_spec`)."""
    key, options = parse_spec(name)
    if options:
        return _generated(key, options)
    try:
        make = BUILTIN[key]
    except KeyError:
        raise DataError(
            f"unknown data set {name!r}: use one of {', '.join(BUILTIN)}, or a path to a .csv or .npz file"
        ) from None
    return make()
