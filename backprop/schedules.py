"""Learning-rate schedules, evaluated once per epoch.

A schedule maps ``(base_lr, epoch)`` to the rate for that epoch (``epoch``
counts from 0, across ``fit`` calls).

A schedule that needs to know where training ends (cosine) has a horizon,
``epochs``: given to the constructor, or else fixed by the first fit that uses
the schedule (that fit's last epoch) and kept from then on. So the rates never
depend on how a run is split into ``fit`` calls: ``Cosine(epochs=4)`` over
``fit(epochs=2)`` twice gives the same four rates as one ``fit(epochs=4)``, which
``partial_fit``-style training relies on.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import ConfigError
from .registry import Registry


class Schedule:
    name = "?"

    def __call__(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def plan(self, epochs: int) -> None:
        """Called by each fit with the epoch it will end at; only a schedule with an
        unset horizon takes it (once)."""

    def sized(self, samples: int) -> None:
        """Called by each fit with the number of training samples in one epoch; only a
        schedule that counts samples and has no count yet takes it (once)."""

    def config(self) -> dict:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """The base rate throughout."""

    name = "constant"

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs."""

    name = "step"

    def __init__(self, step_size: int = 10, gamma: float = 0.1) -> None:
        if step_size < 1 or not 0.0 < gamma <= 1.0:
            raise ConfigError("StepDecay needs step_size >= 1 and 0 < gamma <= 1")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def config(self) -> dict:
        return {"step_size": self.step_size, "gamma": self.gamma}

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialDecay(Schedule):
    """Multiply the rate by ``gamma`` every epoch."""

    name = "exponential"

    def __init__(self, gamma: float = 0.95) -> None:
        if not 0.0 < gamma <= 1.0:
            raise ConfigError("ExponentialDecay needs 0 < gamma <= 1")
        self.gamma = float(gamma)

    def config(self) -> dict:
        return {"gamma": self.gamma}

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma**epoch


class Cosine(Schedule):
    """Cosine annealing from the base rate to ``min_lr`` at epoch ``epochs`` (the horizon),
    after ``warmup`` epochs of linear increase; ``min_lr`` after the horizon."""

    name = "cosine"

    def __init__(self, min_lr: float = 0.0, warmup: int = 0, epochs: int | None = None) -> None:
        if warmup < 0 or (epochs is not None and epochs < 1):
            raise ConfigError("Cosine needs warmup >= 0 and epochs >= 1 (or None: the first fit's)")
        self.min_lr, self.warmup = float(min_lr), int(warmup)
        self.epochs = None if epochs is None else int(epochs)

    def config(self) -> dict:
        return {"min_lr": self.min_lr, "warmup": self.warmup, "epochs": self.epochs}

    def plan(self, epochs: int) -> None:
        if self.epochs is None and epochs >= 1:  # a fit of 0 epochs plans nothing
            self.epochs = epochs

    def __call__(self, base_lr: float, epoch: int) -> float:
        if epoch < self.warmup:
            return base_lr * (epoch + 1) / self.warmup
        if self.epochs is None:
            raise ConfigError("this Cosine schedule has no horizon yet: give Cosine(epochs=N) or fit first")
        span = max(self.epochs - self.warmup, 1)  # as PyTorch: the last epoch keeps a rate > min_lr
        progress = min((epoch - self.warmup) / span, 1.0)
        return self.min_lr + 0.5 * (base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


class InverseScaling(Schedule):
    """scikit-learn's ``learning_rate="invscaling"``: ``base_lr / (t + 1) ** power_t``, where t
    counts the training samples seen before the epoch (``epoch * samples_per_epoch``), so the
    first epoch runs at the base rate, exactly as ``SGDOptimizer.iteration_ends(t)`` sets it.

    ``samples_per_epoch``: given, or else the first fit's number of training samples (after a
    validation split), then fixed, so continued fits keep counting at that size (scikit-learn
    adds each ``partial_fit`` chunk's own size).
    """

    name = "invscaling"

    def __init__(self, power_t: float = 0.5, samples_per_epoch: int | None = None) -> None:
        real = isinstance(power_t, numbers.Real) and not isinstance(power_t, bool)
        if not real or not 0.0 <= power_t < math.inf:
            raise ConfigError(f"InverseScaling needs a power_t >= 0 (got {power_t!r})")
        counted = samples_per_epoch is None or (isinstance(samples_per_epoch, numbers.Integral)
                                                and not isinstance(samples_per_epoch, bool))
        if not counted or (samples_per_epoch is not None and samples_per_epoch < 1):
            raise ConfigError("InverseScaling needs samples_per_epoch >= 1 (or None: the first fit's "
                              f"training samples), got {samples_per_epoch!r}")
        self.power_t = float(power_t)
        self.samples_per_epoch = None if samples_per_epoch is None else int(samples_per_epoch)  # JSON-able

    def config(self) -> dict:
        return {"power_t": self.power_t, "samples_per_epoch": self.samples_per_epoch}

    def sized(self, samples: int) -> None:
        if self.samples_per_epoch is None and samples >= 1:
            self.samples_per_epoch = int(samples)

    def __call__(self, base_lr: float, epoch: int) -> float:
        if self.samples_per_epoch is None:
            raise ConfigError("this InverseScaling schedule does not know the epoch's size yet: give "
                              "InverseScaling(samples_per_epoch=N) or fit first")
        # int ** float, as scikit-learn: the same bits
        return float(base_lr) / (epoch * self.samples_per_epoch + 1) ** self.power_t


REGISTRY = Registry("schedule", Schedule, "backprop.schedules.register")


def register(name: str, cls: type[Schedule], *, aliases: tuple[str, ...] = ()) -> None:
    """Make ``cls`` (a subclass of :class:`Schedule`) the schedule called ``name`` everywhere:
    :func:`get`, ``fit(schedule=name)``, ``backprop train --schedule`` and checkpoints (saved by
    the class's ``name`` and its ``config()``, rebuilt as ``cls(**config)``). A class that does
    not set its own ``name`` gets ``name``. ``aliases``: other names :func:`get` accepts."""
    REGISTRY.register(name, cls, aliases=aliases)


def names() -> tuple[str, ...]:
    """The registered names, in registration order."""
    return REGISTRY.names()


def classes() -> dict[str, type[Schedule]]:
    """Every registered class by its own ``name``: what a checkpoint saves and loads by."""
    return REGISTRY.classes()


def class_of(name: str) -> type[Schedule]:
    """The class of the schedule called ``name`` (or a class's own saved name)."""
    return REGISTRY.class_of(name)


def __getattr__(attr: str) -> Any:
    if attr == "SCHEDULES":  # computed: a schedule registered later is in it too
        return REGISTRY.table()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


for _cls in (Constant, StepDecay, ExponentialDecay, Cosine, InverseScaling):
    register(_cls.name, _cls)


def get(schedule: str | Schedule | None) -> Schedule:
    """A schedule from its name (see :func:`names`), the schedule itself, or None (constant)."""
    if schedule is None:
        return Constant()
    if isinstance(schedule, Schedule):
        return schedule
    return class_of(schedule)()
