"""Weight initializers: the distribution each one draws, checked statistically.

Bounds are derived, not tuned: with n draws, the sample mean has standard error
sqrt(var / n) and the sample variance has standard error sqrt(Var(X^2) / n), where
Var(X^2) comes from the distribution's fourth moment:

* U(-a, a): E[X^2] = a^2/3, E[X^4] = a^4/5, so Var(X^2) = a^4/5 - a^4/9;
* N(0, s^2): E[X^4] = 3 s^4, so Var(X^2) = 2 s^4.

Each test allows 5 standard errors (a false alarm about once in 1.7 million draws,
and the draws are seeded, so a pass is reproducible).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop
from backends import HostRNG
from backprop import initializers
from conftest import to_np

FAN_IN, FAN_OUT = 400, 300  # unequal, so fan_in and fan_out cannot be swapped unnoticed
SHAPE = (FAN_IN, FAN_OUT)
Z = 5.0  # standard errors allowed

# name -> (distribution, parameter: uniform half-width a or normal std s)
EXPECTED = {
    "glorot_uniform": ("uniform", math.sqrt(6.0 / (FAN_IN + FAN_OUT))),
    "glorot_normal": ("normal", math.sqrt(2.0 / (FAN_IN + FAN_OUT))),
    "he_uniform": ("uniform", math.sqrt(6.0 / FAN_IN)),
    "he_normal": ("normal", math.sqrt(2.0 / FAN_IN)),
    "lecun_normal": ("normal", math.sqrt(1.0 / FAN_IN)),
    "textbook": ("uniform", 0.5),
}
# the variance each is meant to have, written as the papers give it
VARIANCE = {
    "glorot_uniform": 2.0 / (FAN_IN + FAN_OUT),
    "glorot_normal": 2.0 / (FAN_IN + FAN_OUT),
    "he_uniform": 2.0 / FAN_IN,
    "he_normal": 2.0 / FAN_IN,
    "lecun_normal": 1.0 / FAN_IN,
    "textbook": 1.0 / 12.0,
}
ALIASES = {
    "xavier_uniform": "glorot_uniform",
    "xavier_normal": "glorot_normal",
    "kaiming_uniform": "he_uniform",
    "kaiming_normal": "he_normal",
    "uniform": "textbook",
}


def moments(kind: str, param: float) -> tuple[float, float]:
    """(variance, Var(X^2)) of U(-param, param) or N(0, param^2)."""
    if kind == "uniform":
        return param**2 / 3.0, param**4 / 5.0 - param**4 / 9.0
    return param**2, 2.0 * param**4


def assert_distribution(w: np.ndarray, kind: str, param: float, variance: float) -> None:
    w = np.asarray(w, dtype=np.float64).ravel()
    n = w.size
    var, var_of_sq = moments(kind, param)
    assert math.isclose(var, variance, rel_tol=1e-12)  # the table above is self-consistent
    se_mean = math.sqrt(var / n)
    se_var = math.sqrt(var_of_sq / n)
    mean = float(w.mean())
    sample_var = float(w.var())
    assert abs(mean) < Z * se_mean, f"mean {mean:.3g}, 5 SE = {Z * se_mean:.3g}"
    assert abs(sample_var - variance) < Z * se_var, (
        f"variance {sample_var:.6g}, expected {variance:.6g} +- {Z * se_var:.3g}")
    if kind == "uniform":
        top = float(np.abs(w).max())
        # float32 weights may round a draw just below a to just above it
        assert top <= param * (1 + 1e-6), f"max |w| {top} > a = {param}"
        assert top > 0.99 * param, f"max |w| {top} never comes near a = {param}"


def test_table_covers_every_initializer():
    assert set(initializers.INITIALIZERS) == set(EXPECTED) | set(ALIASES)
    for alias, name in ALIASES.items():
        assert initializers.get(alias) is initializers.get(name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_distribution(name):
    draw = initializers.get(name)
    w = draw(HostRNG(7, stream=0), SHAPE, FAN_IN, FAN_OUT)
    assert isinstance(w, np.ndarray) and w.shape == SHAPE and w.dtype == np.float64
    kind, param = EXPECTED[name]
    assert_distribution(w, kind, param, VARIANCE[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_seed_same_draws_other_stream_other_draws(name):
    draw = initializers.get(name)
    small = (40, 30)
    first = draw(HostRNG(3, stream=0), small, FAN_IN, FAN_OUT)
    again = draw(HostRNG(3, stream=0), small, FAN_IN, FAN_OUT)
    other_stream = draw(HostRNG(3, stream=1), small, FAN_IN, FAN_OUT)
    other_seed = draw(HostRNG(4, stream=0), small, FAN_IN, FAN_OUT)
    np.testing.assert_array_equal(first, again)
    assert not np.any(first == other_stream)
    assert not np.any(first == other_seed)


@pytest.mark.parametrize(
    "activation, init",
    [("relu", "he_uniform"), ("leaky_relu", "he_uniform"), ("softplus", "he_uniform"),
     ("tanh", "glorot_uniform"), ("sigmoid", "glorot_uniform")],
)
def test_dense_auto_init_follows_the_next_activation(activation, init):
    """``init="auto"``: He before a rectifier, Glorot otherwise, seen in a built layer's W."""
    model = backprop.mlp([FAN_IN, FAN_OUT, 2], activation=activation, seed=0)
    W = to_np(model.parameters()["0.W"])
    assert W.shape == SHAPE
    kind, a = EXPECTED[init]
    assert_distribution(W, kind, a, VARIANCE[init])
