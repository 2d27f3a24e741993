"""Learning-rate schedules, evaluated once per epoch.

A schedule maps ``(base_lr, epoch, epochs)`` to the rate for that epoch
(``epoch`` counts from 0, ``epochs`` is the planned total).
"""

from __future__ import annotations

import math


class Schedule:
    name = "?"

    def __call__(self, base_lr: float, epoch: int, epochs: int) -> float:
        raise NotImplementedError

    def config(self) -> dict:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """The base rate throughout."""

    name = "constant"

    def __call__(self, base_lr: float, epoch: int, epochs: int) -> float:
        return base_lr


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs."""

    name = "step"

    def __init__(self, step_size: int = 10, gamma: float = 0.1) -> None:
        if step_size < 1 or not 0.0 < gamma <= 1.0:
            raise ValueError("StepDecay needs step_size >= 1 and 0 < gamma <= 1")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def config(self) -> dict:
        return {"step_size": self.step_size, "gamma": self.gamma}

    def __call__(self, base_lr: float, epoch: int, epochs: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialDecay(Schedule):
    """Multiply the rate by ``gamma`` every epoch."""

    name = "exponential"

    def __init__(self, gamma: float = 0.95) -> None:
        if not 0.0 < gamma <= 1.0:
            raise ValueError("ExponentialDecay needs 0 < gamma <= 1")
        self.gamma = float(gamma)

    def config(self) -> dict:
        return {"gamma": self.gamma}

    def __call__(self, base_lr: float, epoch: int, epochs: int) -> float:
        return base_lr * self.gamma**epoch


class Cosine(Schedule):
    """Cosine annealing from the base rate to ``min_lr`` over the planned epochs,
    after ``warmup`` epochs of linear increase."""

    name = "cosine"

    def __init__(self, min_lr: float = 0.0, warmup: int = 0) -> None:
        self.min_lr, self.warmup = float(min_lr), int(warmup)

    def config(self) -> dict:
        return {"min_lr": self.min_lr, "warmup": self.warmup}

    def __call__(self, base_lr: float, epoch: int, epochs: int) -> float:
        if epoch < self.warmup:
            return base_lr * (epoch + 1) / self.warmup
        span = max(epochs - self.warmup, 1)  # as PyTorch: the last epoch keeps a rate > min_lr
        progress = min((epoch - self.warmup) / span, 1.0)
        return self.min_lr + 0.5 * (base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


SCHEDULES = {cls.name: cls for cls in (Constant, StepDecay, ExponentialDecay, Cosine)}


def get(schedule: str | Schedule | None) -> Schedule:
    """A schedule from its name (``"constant"``, ``"step"``, ``"exponential"``, ``"cosine"``)."""
    if schedule is None:
        return Constant()
    if isinstance(schedule, Schedule):
        return schedule
    try:
        return SCHEDULES[str(schedule).lower()]()
    except KeyError:
        raise ValueError(
            f"unknown schedule {schedule!r}: use one of {', '.join(SCHEDULES)}"
        ) from None
