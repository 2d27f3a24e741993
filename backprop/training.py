"""The training loop: epochs of mini-batches cut on the device.

The data is moved to the device once. Each epoch draws one permutation on the
host (a single small copy), gathers the shuffled data on the device, and slices
batches from it: no per-step host copies. Losses and correct counts accumulate
as 0-d device arrays; the loop synchronizes with the device once per epoch,
when it reports.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import activations, losses, optimizers
from .layers import chain
from .targets import as_inputs, as_targets, check_fraction, positive_int, resolve_auto_loss, upload

Array = Any


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the model holds the last finite weights."""


@dataclass
class EarlyStopping:
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
        if self.patience < 1:
            raise ValueError(f"early stopping patience must be >= 1, got {self.patience}")


class History:
    """Per-epoch records of a fit.

    ``history.records`` is a list of dicts with keys ``epoch`` (1-based, counting
    across fits), ``train_loss``, ``val_loss``, ``train_accuracy``,
    ``val_accuracy`` (classifiers; val keys only with validation data), ``lr``,
    ``seconds`` and ``samples_per_s``. ``history["val_loss"]`` is one key's list.
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.stopped_early = False
        self.best_epoch: int | None = None

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


def _correct(loss: losses.Loss, Z: Array, T: Array, labels: Array | None, xp: Any) -> Array | None:
    """Number of right predictions in a batch (0-d device array), from logits ``Z``."""
    if loss.name == "ce":
        return xp.count_nonzero(xp.argmax(Z, axis=1) == labels)
    if loss.name == "bce":
        return xp.count_nonzero((Z > 0) == (T > 0.5))
    return None


def _totals(xp: Any, values: list, hits: list, spans: list[tuple[int, int]],
            loss: losses.Loss) -> tuple[Array, Array | None]:
    """An epoch's summed loss and correct count from per-batch 0-d arrays.

    Stacking once per epoch instead of adding per step saves two tiny device
    operations (two kernel launches on a GPU) per step.
    """
    stacked = xp.stack(values)
    total = xp.sum(stacked)
    if loss.reduction == "mean":
        # Mean losses weigh by batch size: all batches are full but possibly the last.
        full, last = spans[0][1] - spans[0][0], spans[-1][1] - spans[-1][0]
        total = total * full + stacked[-1] * (last - full)
    correct = None if hits[0] is None else xp.sum(xp.stack(hits))
    return total, correct


def _batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    # Stops clipped to n: the standard leaves out-of-bounds slices unspecified.
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def train_epoch(model: Any, X: Array, T: Array, labels: Array | None, spans: list[tuple[int, int]],
                body: list, loss: losses.Loss) -> tuple[Array, Array | None]:
    """One pass of training steps over the batches ``spans`` of device arrays.

    ``X`` (N, n_inputs), ``T`` (N, n_outputs), ``labels`` (N,) or None. Returns the
    summed loss and the number of right predictions as 0-d device arrays: nothing
    here waits for the device. This is the loop ``fit`` runs each epoch and the
    one ``backprop bench`` times.
    """
    xp = model.xp
    values, hits = [], []
    for start, stop in spans:
        T_b = T[start:stop, ...]
        value, Z = model._train_step(X[start:stop, ...], T_b, body, loss)
        values.append(value)
        hits.append(_correct(loss, Z, T_b, None if labels is None else labels[start:stop], xp))
    return _totals(xp, values, hits, spans, loss)


def evaluate_arrays(model: Any, X: Array, T: Array, labels: Array | None, loss: losses.Loss,
                    batch_size: int, regression_metrics: bool = False) -> dict[str, float]:
    """Loss and metrics of ``model`` on device arrays; one synchronisation at the end."""
    xp = model.xp
    body = model._body(loss)
    n = X.shape[0]
    spans = _batches(n, batch_size)
    values, hits = [], []
    abs_err = sq_err = None
    for start, stop in spans:
        Z, _ = chain(body, X[start:stop, ...], input_grad=False)
        T_b = T[start:stop, ...]
        values.append(loss.forward(Z, T_b)[0])
        hits.append(_correct(loss, Z, T_b, None if labels is None else labels[start:stop], xp))
        if regression_metrics and not loss.classification:
            D = Z - T_b
            a, s = xp.sum(xp.abs(D), axis=0), xp.sum(D * D, axis=0)
            abs_err = a if abs_err is None else abs_err + a
            sq_err = s if sq_err is None else sq_err + s
    total, correct = _totals(xp, values, hits, spans, loss)
    out = {"loss": float(total) / (n if loss.reduction == "mean" else 1)}
    if correct is not None:
        out["accuracy"] = float(correct) / (n * (T.shape[1] if loss.name == "bce" else 1))
    if abs_err is not None:
        out["mae"] = float(xp.mean(abs_err)) / n
        # R^2 per output, averaged (scikit-learn's uniform_average); a constant
        # target scores 1 when predicted exactly and 0 otherwise, as in scikit-learn.
        spread = xp.sum((T - xp.mean(T, axis=0)) ** 2, axis=0)
        exact = xp.astype(sq_err == 0, sq_err.dtype)
        r2 = xp.where(spread > 0, 1.0 - sq_err / xp.where(spread > 0, spread, 1.0), exact)
        out["r2"] = float(xp.mean(r2))
    return out


def _split(model: Any, X: Array, T: Array, labels: Array | None, fraction: float):
    """A seeded random split into (train, validation) parts, on the device."""
    xp, n = model.xp, X.shape[0]
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise ValueError(
            f"validation_split={fraction} of {n} samples leaves no validation or no training data"
        )
    order = model.backend.asarray(model.backend.rng(model.seed, stream=2).permutation(n))
    parts = []
    for idx in (order[n_val:], order[:n_val]):
        parts.append((xp.take(X, idx, axis=0), xp.take(T, idx, axis=0),
                      None if labels is None else xp.take(labels, idx, axis=0)))
    return parts


def _optimizer(model: Any, optimizer: Any, lr: float | None, weight_decay: float | None,
               schedule: Any) -> optimizers.Optimizer:
    """The optimizer a fit call asked for, without silently dropping any setting."""
    settings = {k: v for k, v in (("lr", lr), ("weight_decay", weight_decay), ("schedule", schedule))
                if v is not None}
    if isinstance(optimizer, optimizers.Optimizer):
        if settings:
            raise ValueError(f"{', '.join(settings)} go to the optimizer's constructor, not to fit")
        return optimizer
    if optimizer is None and model.optimizer is not None:
        # Continue with the model's optimizer and its state; new settings apply from now on.
        return model.optimizer.update_settings(**settings)
    return optimizers.get(optimizer or "adam", **settings)


def fit(model: Any, X: Any, y: Any, *, loss: str | losses.Loss = "auto",
        optimizer: str | optimizers.Optimizer | None = None, lr: float | None = None,
        epochs: int = 10, batch_size: int | str | None = 32, shuffle: bool = True,
        validation_split: float = 0.0, validation_data: tuple[Any, Any] | None = None,
        early_stopping: int | bool | EarlyStopping | None = None, weight_decay: float | None = None,
        schedule: Any = None, callbacks: Sequence[Callable[[dict, Any], Any]] = ()) -> History:
    """Train ``model`` on ``X`` (N, n_inputs) and targets ``y``.

    Parameters
    ----------
    loss : ``"auto"``, ``"mse"``, ``"sse"``, ``"bce"``, ``"ce"`` or a Loss
        ``"auto"`` picks cross-entropy for integer labels (BCE with one output)
        and MSE for real-valued targets.
    optimizer : name or Optimizer
        ``gd``, ``sgd``, ``momentum``, ``nesterov``, ``rmsprop``, ``adam`` (default
        for a new model), ``adamw``; an Optimizer instance is used as is. A later
        ``fit`` with no optimizer continues with the previous one and its state.
    lr, weight_decay, schedule
        For an optimizer given by name; with no optimizer they change the model's
        current one in place (its state is kept). Left out, each optimizer's own
        default applies (see :mod:`backprop.optimizers`).
    epochs : int
        Epochs to run in this call.
    batch_size : int, ``"full"`` or None
        Mini-batch size; ``"full"``/None is full-batch gradient descent.
    shuffle : bool
        Reshuffle the data every epoch (from the model's seed).
    validation_split : float
        Fraction of the data held out at random (seeded) for validation.
    validation_data : (X_val, y_val)
        Explicit validation data (overrides ``validation_split``).
    early_stopping : int, True or EarlyStopping
        Patience in epochs (True: 10); stops when the validation loss stops improving and
        restores the best weights. An EarlyStopping object keeps its progress (best loss,
        epochs waited, best weights) between fits.
    callbacks : callables ``f(record, model)``
        Called after every epoch with that epoch's record; returning True stops.

    Returns
    -------
    History
    """
    backend, xp, dtype = model.backend, model.xp, model.dtype
    epochs = 0 if epochs == 0 else positive_int(epochs, "epochs")
    validation_split = check_fraction(validation_split, "validation_split")
    if early_stopping is False:
        early_stopping = None
    elif early_stopping is True:
        early_stopping = EarlyStopping()
    elif early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        early_stopping = EarlyStopping(patience=positive_int(early_stopping, "early_stopping"))
    if early_stopping is not None and not validation_split and validation_data is None:
        raise ValueError(
            "early stopping watches the validation loss: pass validation_split or validation_data")

    # Overflow warnings are silenced: a diverging run is reported once, in one line, below.
    with backend.activate(), backend.quiet_overflow():
        Xd = as_inputs(backend, dtype, X, model.n_inputs)
        y = upload(backend, y, "y")  # once: the loss choice and the targets both read it
        if loss == "auto":
            sigmoid_output = isinstance(model.layers[-1], activations.Sigmoid)
            loss = resolve_auto_loss(xp, y, model.n_outputs, sigmoid_output)
        loss_obj = losses.get(loss)
        T, labels = as_targets(backend, dtype, y, loss_obj, model.n_outputs, Xd.shape[0])
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            Xv = as_inputs(backend, dtype, validation_data[0], model.n_inputs, "X_val")
            Tv, labels_v = as_targets(backend, dtype, validation_data[1], loss_obj, model.n_outputs,
                                      Xv.shape[0], "y_val")
            val = (Xv, Tv, labels_v)
        elif validation_split:
            (Xd, T, labels), val = _split(model, Xd, T, labels, validation_split)
        else:
            val = None

        opt = _optimizer(model, optimizer, lr, weight_decay, schedule)
        n = Xd.shape[0]
        batch_size = n if batch_size in (None, "full") else min(positive_int(batch_size), n)
        model.optimizer, model.loss = opt, loss_obj
        spans = _batches(n, batch_size)
        body = model._body(loss_obj)
        history = model.history if model.history is not None else History()
        model.history = history
        first_epoch, planned = model.epoch, model.epoch + epochs
        watch = early_stopping

        for epoch in range(first_epoch, planned):
            started = time.perf_counter()
            lr_now = opt.set_epoch(epoch, planned)
            safe = [xp.asarray(p, copy=True) for p in model._param_list()]  # for a divergence
            if shuffle and len(spans) > 1:
                order = backend.asarray(model.shuffle_rng.permutation(n))
                Xe, Te = xp.take(Xd, order, axis=0), xp.take(T, order, axis=0)
                Le = None if labels is None else xp.take(labels, order, axis=0)
            else:
                Xe, Te, Le = Xd, T, labels
            total, correct = train_epoch(model, Xe, Te, Le, spans, body, loss_obj)

            # The one synchronisation of the epoch.
            record: dict[str, Any] = {"epoch": epoch + 1}
            record["train_loss"] = float(total) / (n if loss_obj.reduction == "mean" else 1)
            if not math.isfinite(record["train_loss"]):
                for p, keep in zip(model._param_list(), safe):
                    p[...] = keep
                opt.reset()  # its moments saw the divergent epoch
                raise TrainingDiverged(
                    f"the training loss became {record['train_loss']} in epoch {epoch + 1}: lower "
                    f"the learning rate (now {lr_now:g}) or standardize the inputs; the model "
                    "keeps the weights from before that epoch and the optimizer starts afresh"
                )
            if correct is not None:
                per_sample = T.shape[1] if loss_obj.name == "bce" else 1  # BCE: every output is a label
                record["train_accuracy"] = float(correct) / (n * per_sample)
            if val is not None:
                scores = evaluate_arrays(model, *val, loss_obj, max(batch_size, 1024))
                record["val_loss"] = scores["loss"]
                if "accuracy" in scores:
                    record["val_accuracy"] = scores["accuracy"]
            seconds = time.perf_counter() - started
            record.update(lr=lr_now, seconds=seconds, samples_per_s=n / seconds if seconds > 0 else math.inf)
            history.records.append(record)
            model.epoch = epoch + 1

            stop_now = False
            if watch is not None:
                if record["val_loss"] < watch.best - watch.min_delta:
                    watch.best, watch.waited, watch.best_epoch = record["val_loss"], 0, epoch + 1
                    history.best_epoch = epoch + 1
                    if watch.restore_best:
                        watch.best_params = [xp.asarray(p, copy=True) for p in model._param_list()]
                else:
                    watch.waited += 1
                    if watch.waited >= watch.patience:
                        history.stopped_early = stop_now = True
            # After the early-stopping update, so that a callback saving a checkpoint saves it too.
            answers = [callback(record, model) for callback in callbacks]  # every one runs
            if stop_now or any(answer is True for answer in answers):
                break

        if watch is not None and watch.best_params is not None and watch.best_epoch != model.epoch:
            for p, keep in zip(model._param_list(), watch.best_params):
                p[...] = keep
    return history
