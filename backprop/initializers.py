"""Weight initializers, drawn on the host from the seeded RNG.

Each takes ``(rng, shape, fan_in, fan_out)`` and returns a float64 host array of
``shape``; the layer moves it to its device in its dtype. Drawing on the host
keeps initial weights identical on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .registry import Registry


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


REGISTRY = Registry("initializer", None, "backprop.initializers.register", reserved=("auto",))


def register(name: str, init: Callable, *, aliases: tuple[str, ...] = ()) -> None:
    """Make ``init`` (``init(rng, shape, fan_in, fan_out)`` -> float64 host array) the
    initializer called ``name`` everywhere: :func:`get`, ``Dense(init=name)``, ``mlp``,
    ``backprop train --init`` and checkpoints. ``aliases``: other names :func:`get` accepts."""
    REGISTRY.register(name, init, aliases=aliases)


def names(*, aliases: bool = False) -> tuple[str, ...]:
    """The registered names in registration order (``aliases=True``: their aliases too)."""
    return REGISTRY.names(aliases=aliases)


def __getattr__(attr: str) -> Any:
    if attr == "INITIALIZERS":  # computed: every name and alias get() takes, with its function
        return REGISTRY.table()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


register("glorot_uniform", glorot_uniform, aliases=("xavier_uniform",))
register("glorot_normal", glorot_normal, aliases=("xavier_normal",))
register("he_uniform", he_uniform, aliases=("kaiming_uniform",))
register("he_normal", he_normal, aliases=("kaiming_normal",))
register("lecun_normal", lecun_normal)
register("uniform", textbook_uniform, aliases=("textbook",))


def saved_name(init: str | Callable) -> str:
    """What a layer's ``config()`` saves for its initializer: the name, or a function's own name."""
    return init if isinstance(init, str) else getattr(init, "__name__", "custom")


def loadable(name: Any) -> str:
    """The initializer a saved config builds with: its name where registered (or ``"auto"``), else
    Glorot (a custom initializer: the saved weights replace what it would draw anyway)."""
    return name if isinstance(name, str) and name in {*names(aliases=True), "auto"} else "glorot_uniform"


def class_of(name: str) -> Callable:
    """The initializer function called ``name`` (or an alias)."""
    return REGISTRY.class_of(name)


def get(init: str | Callable) -> Callable:
    """The initializer called ``init`` (a callable passes through)."""
    return init if callable(init) else class_of(init)
