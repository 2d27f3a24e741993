"""Weight initializers, drawn on the host from the seeded RNG.

Each takes ``(rng, shape, fan_in, fan_out)`` and returns a float64 host array of
``shape``; the layer moves it to its device in its dtype. Drawing on the host
keeps initial weights identical on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .errors import ConfigError


def glorot_uniform(rng: Any, shape: tuple, fan_in: int, fan_out: int) -> Any:
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010): for tanh/sigmoid."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


def glorot_normal(rng: Any, shape: tuple, fan_in: int, fan_out: int) -> Any:
    """N(0, 2 / (fan_in + fan_out))."""
    return rng.normal(math.sqrt(2.0 / (fan_in + fan_out)), shape)


def he_uniform(rng: Any, shape: tuple, fan_in: int, fan_out: int) -> Any:
    """U(-a, a), a = sqrt(6 / fan_in) (He et al. 2015): for ReLU-family activations."""
    limit = math.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, shape)


def he_normal(rng: Any, shape: tuple, fan_in: int, fan_out: int) -> Any:
    """N(0, 2 / fan_in)."""
    return rng.normal(math.sqrt(2.0 / fan_in), shape)


def lecun_normal(rng: Any, shape: tuple, fan_in: int, fan_out: int) -> Any:
    """N(0, 1 / fan_in)."""
    return rng.normal(math.sqrt(1.0 / fan_in), shape)


def textbook_uniform(rng: Any, shape: tuple, fan_in: int, fan_out: int) -> Any:
    """U(-0.5, 0.5): the classic textbook XOR example, whatever the layer size."""
    return rng.uniform(-0.5, 0.5, shape)


INITIALIZERS: dict[str, Callable] = {
    "glorot_uniform": glorot_uniform,
    "xavier_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "xavier_normal": glorot_normal,
    "he_uniform": he_uniform,
    "kaiming_uniform": he_uniform,
    "he_normal": he_normal,
    "kaiming_normal": he_normal,
    "lecun_normal": lecun_normal,
    "uniform": textbook_uniform,
    "textbook": textbook_uniform,
}


def get(init: str | Callable) -> Callable:
    """The initializer called ``init`` (a callable passes through)."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        raise ConfigError(
            f"unknown initializer {init!r}: use one of {', '.join(sorted(INITIALIZERS))}"
        ) from None
