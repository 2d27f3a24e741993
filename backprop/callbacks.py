"""Per-epoch services of a fit, as callbacks with begin / epoch-end / end hooks.

``fit`` runs its callbacks in a fixed order: the divergence rollback, the history,
early stopping, then the user's. Each callback is handed the record of the epoch
(:data:`backprop.training.EPOCH_KEYS`) and a :class:`FitContext` (the model, its
``FitState``, the History, the optimizer). A user's plain callable ``f(record, model)``
is wrapped (:func:`as_callback`); returning True from ``on_epoch_end`` stops the fit
after that epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._typing import Array
from .errors import ConfigError


class TrainingDiverged(FloatingPointError, ValueError):
    """The loss became NaN or infinite; the model holds the last finite weights."""


@dataclass(frozen=True, slots=True)
class FitContext:
    """What a callback may read of the fit that runs it (frozen: a callback changes the model
    or its state through them, not the context)."""

    model: Any
    state: Any  # the model's FitState
    history: Any  # the History this fit appends to
    optimizer: Any


class Callback:
    """Base of a fit's per-epoch services; every hook does nothing unless overridden.

    ``on_begin`` runs before the first epoch, while ``model.state`` still describes the
    previous fit; ``on_epoch_begin`` before each epoch's update; ``on_epoch_end`` after it,
    with the epoch's record (return True to stop after this epoch; every callback runs);
    ``on_end`` once the epochs are over (not when an exception ends the fit).
    """

    def on_begin(self, fit: FitContext) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, epoch: int, fit: FitContext) -> None:
        """Before epoch ``epoch`` (0-based, counted across fits)."""

    def on_epoch_end(self, record: dict[str, Any], fit: FitContext) -> bool | None:
        """After an epoch, with its record; True stops the fit."""
        return None

    def on_end(self, fit: FitContext) -> None:
        """After the last epoch."""


class CallableCallback(Callback):
    """A plain ``f(record, model)`` as a callback (the protocol ``fit(callbacks=[f])`` keeps)."""

    def __init__(self, function: Callable[[dict, Any], Any]) -> None:
        self.function = function

    def on_epoch_end(self, record: dict[str, Any], fit: FitContext) -> Any:
        return self.function(record, fit.model)


def as_callback(value: Any) -> Callback:
    """A Callback from what ``fit(callbacks=...)`` accepts: a Callback, or a callable ``f(record, model)``."""
    if isinstance(value, Callback):
        return value
    if callable(value):
        return CallableCallback(value)
    raise ConfigError(f"a callback is a Callback or a function f(record, model), not {type(value).__name__}")


class RollbackOnDivergence(Callback):
    """Keeps a copy of the weights before each epoch; a non-finite training loss puts it back,
    starts the optimizer afresh and raises :class:`TrainingDiverged`."""

    def __init__(self) -> None:
        self.safe: list[Array] = []

    def on_epoch_begin(self, epoch: int, fit: FitContext) -> None:
        xp = fit.model.xp
        self.safe = [xp.asarray(p, copy=True) for p in fit.model.parameter_list()]

    def on_epoch_end(self, record: dict[str, Any], fit: FitContext) -> None:
        if math.isfinite(record["train_loss"]):
            return
        for p, keep in zip(fit.model.parameter_list(), self.safe):
            p[...] = keep
        fit.optimizer.reset(keep_owner=True)  # its moments saw the divergent epoch
        raise TrainingDiverged(
            f"the training loss became {record['train_loss']} in epoch {record['epoch']}: lower "
            f"the learning rate (now {record['lr']:g}) or standardize the inputs; the model "
            "keeps the weights from before that epoch and the optimizer starts afresh"
        )


class History(Callback):
    """Per-epoch records of a fit (see :data:`backprop.training.EPOCH_KEYS`).

    ``history.records`` is a list of dicts; ``history["val_loss"]`` is one key's list.
    As a callback it appends each record and counts the epoch in the model's state.
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.stopped_early = False
        self.best_epoch: int | None = None
        self.converged: str | None = None  # why a full-batch optimizer stopped by itself

    def __getitem__(self, key: str) -> list:
        return [r.get(key) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def history(self) -> dict[str, list]:
        """Keras-style dict of lists."""
        keys = dict.fromkeys(k for r in self.records for k in r)
        return {k: self[k] for k in keys}

    def __repr__(self) -> str:
        last = self.records[-1] if self.records else {}
        return f"<History {len(self)} epochs, last={last}>"

    def on_epoch_end(self, record: dict[str, Any], fit: FitContext) -> None:
        self.records.append(record)
        fit.state.epoch = record["epoch"]


@dataclass
class EarlyStopping(Callback):
    """Stop when the validation loss has not improved for ``patience`` epochs.

    The best weights are restored at the end of training (``restore_best``).
    An improvement is a drop of more than ``min_delta``.
    """

    patience: int = 10
    min_delta: float = 0.0
    restore_best: bool = True
    # Progress so far, kept on the object so that a checkpoint can carry it and a
    # resumed run stops exactly where an uninterrupted one would.
    best: float = math.inf
    waited: int = 0
    best_epoch: int | None = None
    best_params: list | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ConfigError(f"early stopping patience must be a positive integer, got {self.patience!r}")

    @property
    def exhausted(self) -> bool:
        """Patience has run out: training stops after this epoch."""
        return self.waited >= self.patience

    def observe(self, epoch: int, val_loss: float, params: list[Array], xp: Any) -> None:
        """Record epoch ``epoch``'s validation loss; copy the weights when they are the best."""
        if val_loss < self.best - self.min_delta:
            self.best, self.waited, self.best_epoch = val_loss, 0, epoch
            if self.restore_best:
                self.best_params = [xp.asarray(p, copy=True) for p in params]
        else:
            self.waited += 1

    def on_begin(self, fit: FitContext) -> None:
        # Continuing the previous fit's early stopping: from the weights that fit had
        # reached before restoring its best, as an uninterrupted run would.
        state = fit.state
        if state.early_stopping is self and state.resume_params is not None:
            for p, keep in zip(fit.model.parameter_list(), state.resume_params):
                p[...] = keep

    def on_epoch_end(self, record: dict[str, Any], fit: FitContext) -> bool:
        self.observe(record["epoch"], record["val_loss"], fit.model.parameter_list(), fit.model.xp)
        fit.history.best_epoch = self.best_epoch
        fit.history.stopped_early = self.exhausted
        return self.exhausted

    def on_end(self, fit: FitContext) -> None:
        if self.best_params is None or self.best_epoch == fit.state.epoch:
            return
        params, xp = fit.model.parameter_list(), fit.model.xp
        fit.state.resume_params = [xp.asarray(p, copy=True) for p in params]
        for p, keep in zip(params, self.best_params):
            p[...] = keep
