"""The ways of going through an epoch, and the bookkeeping around every epoch.

A driver runs the epochs of a fit: ``driver.run(span, epochs)`` calls
``epochs.begin(epoch)`` before each epoch and ``epochs.end(total, correct, extra)``
after it (True: stop), and returns None or why the optimizer stopped by itself.

- :class:`MiniBatch`: shuffled mini-batches on one process (:func:`backprop.step.train_epoch`).
- the data-parallel driver (``backprop.host.distributed.DataParallel``): the same, each
  global batch split over the ranks; registered with :func:`register_ranks`, so this
  tier imports nothing host-side.
- :class:`FullBatch`: a full-batch optimizer's own iterations, one per epoch, handed
  the data as a frozen :class:`FullBatchData` (as ``torch.optim.LBFGS.step(closure)`` is
  handed its closure); it reports through return values and writes nothing of the fit's.

:class:`Epochs` is the one place of an epoch's bookkeeping: its rate, its clock, the
record (the one sync), validation, and the callbacks (divergence rollback, history,
early stopping, the user's).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import batching
from ._typing import Array
from .callbacks import Callback, FitContext
from .errors import ConfigError
from .evaluation import evaluate_arrays
from .step import Step, train_epoch


class Alone:
    """Training on this process only: what a fit without a communicator does where ranks
    would work together (the data-parallel counterpart: ``backprop.host.distributed.Ranks``)."""

    comm = None

    def check_same(self, backend: Any, arrays: dict[str, Array | None], settings: dict[str, list]) -> None:
        """Every rank holds the same data and settings (nothing to check alone)."""

    def replicate(self, model: Any, optimizer: Any, watch: Any) -> None:
        """Every rank starts from rank 0's weights and progress (nothing to copy alone)."""

    def evaluate(self, model: Any, X: Array, T: Array, labels: Array | None, loss: Any,
                 batch_size: int) -> dict[str, float]:
        """The loss (and accuracy) on ``X`` (N, F), ``T`` (N, K)."""
        return evaluate_arrays(model, X, T, labels, loss, batch_size)

    def agree(self, stop: bool) -> bool:
        """Whether every rank stops (alone: this one's answer)."""
        return stop

    def mini_batch(self, *args: Any, **kwargs: Any) -> MiniBatch:
        """The mini-batch driver of this group of ranks (see :class:`MiniBatch`)."""
        return MiniBatch(*args, **kwargs)


_parallel: list[Any] = []  # the data-parallel group's class, registered by backprop.host.distributed


def register_ranks(cls: Any) -> None:
    """Register the class that trains with a communicator: ``cls(comm)`` has :class:`Alone`'s methods."""
    _parallel[:] = [cls]


def ranks(comm: Any) -> Any:
    """The group of processes a fit trains on: :class:`Alone` without a communicator."""
    if comm is None:
        return Alone()
    if not _parallel:
        raise ConfigError("data-parallel training needs backprop.host.distributed: import backprop")
    return _parallel[0](comm)


@dataclass(frozen=True, slots=True)
class TrainingData:
    """The training part on the device: ``X`` (N, F), ``T`` (N, K), ``labels`` (N,) or None,
    sample weights ``S`` (N,) scaled to mean 1 for a mean loss, or None."""

    X: Array
    T: Array
    labels: Array | None
    S: Array | None

    @property
    def n(self) -> int:
        return self.X.shape[0]


@dataclass(frozen=True, slots=True)
class FullBatchData:
    """What a full-batch optimizer's :meth:`run` is handed (frozen: it writes nothing here).

    ``step``: the fit's Step (model, loss, gradient hooks); ``data``: the training part;
    ``weight_sum``: the sum of the user's sample weights before scaling (None: unweighted);
    ``comm``: the communicator when training data-parallel, else None."""

    step: Step
    data: TrainingData
    weight_sum: float | None
    comm: Any = None


class Driver:
    """Runs the epochs of a fit, one :meth:`epoch` at a time."""

    def run(self, span: range, epochs: Epochs) -> str | None:
        """The epochs of ``span`` with the bookkeeping ``epochs``; returns None, or why the
        optimizer stopped by itself."""
        for epoch in span:
            epochs.begin(epoch)
            if epochs.end(*self.epoch(epoch)):
                break
        return None

    def epoch(self, epoch: int) -> tuple[Any, Any]:
        """One epoch's update; returns its summed loss and right count (0-d or floats)."""
        raise NotImplementedError


class MiniBatch(Driver):
    """Shuffled mini-batches of ``batch_size`` on one process; the permutation is drawn from
    ``rng`` on the host (one small copy) and gathered on the device."""

    def __init__(self, step: Step, data: TrainingData, batch_size: int, shuffle: bool, rng: Any) -> None:
        self.step, self.data, self.rng = step, data, rng
        self.spans = batching.spans(data.n, batch_size)
        self.shuffle = shuffle and len(self.spans) > 1

    def epoch(self, epoch: int) -> tuple[Any, Any]:
        return self.train(self.rng.permutation(self.data.n) if self.shuffle else None)

    def train(self, order: Any) -> tuple[Any, Any]:
        """One pass over the data in host ``order`` (None: as it is)."""
        d = self.data
        if order is None:
            return train_epoch(self.step, d.X, d.T, d.labels, self.spans, d.S)
        xp = self.step.model.xp
        order = self.step.model.backend.asarray(order)
        Xe, Te = xp.take(d.X, order, axis=0), xp.take(d.T, order, axis=0)
        Le = None if d.labels is None else xp.take(d.labels, order, axis=0)
        Se = None if d.S is None else xp.take(d.S, order, axis=0)
        return train_epoch(self.step, Xe, Te, Le, self.spans, Se)


class FullBatch(Driver):
    """A full-batch optimizer's iterations: it drives the epochs itself (SciPy's L-BFGS
    calls back once per iteration) through ``epochs``, and returns why it stopped."""

    def __init__(self, optimizer: Any, batch: FullBatchData) -> None:
        self.optimizer, self.batch = optimizer, batch

    def run(self, span: range, epochs: Epochs) -> str | None:
        return self.optimizer.run(self.batch, span, epochs)


class Epochs:
    """What happens around every epoch, whoever drives the epochs: the rate, the clock, the
    record (the one sync of the epoch), validation, and the callbacks.

    ``loss``: the loss the steps use (it counts right classes); ``val``: the validation part
    ``(X, T, labels)`` or None; ``group``: :class:`Alone` or the data-parallel ranks (their
    validation is split, and they stop together)."""

    __slots__ = ("fit", "callbacks", "loss", "val", "group", "n", "T", "eval_batch", "lr", "epoch", "started")

    def __init__(self, fit: FitContext, callbacks: Sequence[Callback], loss: Any, val: Any, group: Any,
                 T: Array, eval_batch: int) -> None:
        self.fit, self.callbacks, self.loss, self.val, self.group = fit, list(callbacks), loss, val, group
        self.n, self.T, self.eval_batch = T.shape[0], T, eval_batch

    def begin(self, epoch: int) -> None:
        """Before epoch ``epoch`` (0-based): its rate, the clock, the callbacks' copies."""
        self.epoch, self.started = epoch, time.perf_counter()
        self.lr = self.fit.optimizer.set_epoch(epoch)
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, self.fit)

    def end(self, total: Any, correct: Any, extra: dict | None = None) -> bool:
        """After the epoch: its summed loss and right count (0-d device arrays or floats)
        become the record; returns True when training should stop."""
        record = self.record(total, correct, extra)
        answers = [callback.on_epoch_end(record, self.fit) for callback in self.callbacks]  # every one runs
        # A callback may ask on one rank only (Ctrl-C): every rank stops after the same epoch.
        return self.group.agree(any(answer is True for answer in answers))

    def record(self, total: Any, correct: Any, extra: dict | None) -> dict[str, Any]:
        """The epoch's record (:data:`backprop.training.EPOCH_KEYS`)."""
        model, loss = self.fit.model, self.loss
        record: dict[str, Any] = {"epoch": self.epoch + 1}
        record["train_loss"], accuracy = batching.means(total, correct, self.n, self.T, loss)
        if accuracy is not None:
            record["train_accuracy"] = accuracy
        # Not worth a pass on diverged weights: the rollback stops the fit on this record.
        if self.val is not None and math.isfinite(record["train_loss"]):
            scores = self.group.evaluate(model, *self.val, loss, self.eval_batch)
            record["val_loss"] = scores["loss"]
            if "accuracy" in scores:
                record["val_accuracy"] = scores["accuracy"]
        seconds = time.perf_counter() - self.started
        record.update(lr=self.lr, seconds=seconds,
                      samples_per_s=self.n / seconds if seconds > 0 else math.inf, **(extra or {}))
        return record
