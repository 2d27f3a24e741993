"""The fit loop and what it carries from epoch to epoch.

The data is moved to the device once. Each epoch draws one permutation on the
host (a single small copy), gathers the shuffled data on the device, and slices
batches from it: no per-step host copies. Each batch goes through one
:class:`~backprop.step.Step` (gradients, the seam, the update). Losses and
correct counts accumulate as 0-d device arrays; the loop synchronizes with the
device once per epoch, when it reports.

``fit`` prepares the inputs, then one driver (:mod:`backprop.drivers`: mini-batch,
data-parallel or full-batch) runs the epochs, and the per-epoch services are
callbacks (:mod:`backprop.callbacks`: divergence rollback, history, early stopping,
the user's).

Everything a fit carries to the next one (the epoch count, loss, optimizer and
its state, history, shuffle RNG, early-stopping progress) is one
:class:`FitState`, held by the model as ``model.state`` and saved by checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import numbers
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from backends import DeviceRNG, HostRNG, Stream, to_numpy_any
from backends.machine import training_threads

from . import drivers, losses, optimizers
from ._typing import Array
from .callbacks import Callback, EarlyStopping, FitContext, History, RollbackOnDivergence, as_callback
from .callbacks import TrainingDiverged as TrainingDiverged  # its import path before callbacks had a module
from .errors import ConfigError, DataError
from .evaluation import indicator_correct
from .settings import fit_defaults
from .step import GradientHook, Step
from .targets import as_inputs, as_targets, check_fraction, positive_int, upload

EPOCH_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "mu", "gamma",
              "alpha", "beta", "sum_sq_weights", "seconds", "samples_per_s")
"""The keys of an epoch record, in order: ``epoch`` (1-based, counting across fits),
``train_loss``, ``train_accuracy`` (classifiers), ``val_loss`` and ``val_accuracy``
(with validation data), ``lr``, ``mu`` (Levenberg–Marquardt's damping after the
epoch), ``gamma``, ``alpha``, ``beta``, ``sum_sq_weights`` (Bayesian regularization's
effective number of parameters, prior and noise precisions, and E_W after the epoch),
``seconds``, ``samples_per_s``. Every consumer
(history, progress, JSON lines, the playground) reads this one schema."""


@dataclass
class FitState:
    """What a fit carries to the next: one home, saved and loaded by checkpoints.

    Attributes
    ----------
    epoch : int
        Epochs trained so far.
    loss, optimizer
        The last fit's loss and optimizer (with its moments and step count).
    history : History or None
    shuffle_rng : HostRNG
        Draws each epoch's permutation; its state makes a resumed run see the same batches.
    device_rng : DeviceRNG or None
        Draws on the device during training (dropout masks: ``Stream.DROPOUT``), bound to the
        model's backend once moved; its state (three integers) makes a resumed run draw the same.
    early_stopping : EarlyStopping or None
        The last fit's early stopping and its progress (best loss and weights).
    resume_params : list of arrays or None
        When early stopping restored older weights at the end of a fit, the weights
        training had reached: a fit continuing that early stopping starts from them,
        as an uninterrupted run would.
    """

    shuffle_rng: HostRNG
    epoch: int = 0
    loss: losses.Loss | None = None
    optimizer: optimizers.Optimizer | None = None
    history: History | None = None
    early_stopping: EarlyStopping | None = None
    resume_params: list | None = None
    device_rng: DeviceRNG | None = None

    @classmethod
    def new(cls, seed: int, backend: Any = None) -> FitState:
        return cls(shuffle_rng=HostRNG(seed, stream=Stream.SHUFFLE),
                   device_rng=DeviceRNG(seed, Stream.DROPOUT, backend=backend))

    def moved(self, backend: Any, dtype: Any, owner: str | None) -> FitState:
        """A deep copy whose arrays live on ``backend`` in ``dtype`` (None: NumPy host copies),
        with its optimizer bound to the model ``owner``."""
        def move(arrays: list | None) -> list | None:
            if arrays is None:
                return None
            if backend is None:
                return [to_numpy_any(a).copy() for a in arrays]
            with backend.activate():
                return [backend.asarray(a, dtype, copy=True) for a in arrays]

        new = replace(self, shuffle_rng=copy.deepcopy(self.shuffle_rng), history=copy.deepcopy(self.history),
                      resume_params=move(self.resume_params),
                      device_rng=None if self.device_rng is None else self.device_rng.to(backend))
        if self.early_stopping is not None:
            best = move(self.early_stopping.best_params)
            new.early_stopping = replace(self.early_stopping, best_params=best)
        if self.optimizer is not None:
            new.optimizer = self.optimizer.moved(move, owner)
        return new


def _split(model: Any, X: Array, T: Array, labels: Array | None, fraction: float,
           S: Array | None = None):
    """A seeded random split into (train, validation) parts, on the device; the training
    part also carries its sample weights ``S`` (or None)."""
    xp, n = model.xp, X.shape[0]
    order, n_val = validation_order(n, fraction, model.seed)
    order = model.backend.asarray(order)  # one upload, sliced on the device
    parts = []
    for idx in (order[n_val:], order[:n_val]):
        parts.append((xp.take(X, idx, axis=0), xp.take(T, idx, axis=0),
                      None if labels is None else xp.take(labels, idx, axis=0)))
    return parts, None if S is None else xp.take(S, order[n_val:], axis=0)


def _sample_weights(backend: Any, dtype: Any, weights: Any, n: int) -> Array:
    """User sample weights (N,), or one number for every sample (as scikit-learn), as a checked
    device array (N,) in the model's dtype."""
    xp = backend.xp
    if isinstance(weights, numbers.Real) and not isinstance(weights, bool):
        weights = xp.full((n,), float(weights), dtype=dtype, device=backend.device)
    S = upload(backend, weights, "sample_weight", dtype)
    if S.ndim == 0:  # a 0-d array: the same meaning as a number
        S = xp.broadcast_to(S, (n,))
    if S.ndim != 1 or S.shape[0] != n:
        raise DataError(f"sample_weight has shape {tuple(S.shape)} but there are {n} samples: give one "
                        "weight per sample, or one number for all")
    if not bool(xp.all(xp.isfinite(S))) or bool(xp.any(S < 0)):
        raise DataError("sample_weight must hold finite, non-negative numbers")
    if not bool(xp.sum(S) > 0):
        raise DataError("sample weights are all zero (or sum to zero): at least one sample must count")
    return S


def _mean_one(xp: Any, S: Array | None) -> Array | None:
    """Weights scaled to mean 1, so that a batch's mean of S_n l_n estimates the weighted mean."""
    return None if S is None else S * (S.shape[0] / xp.sum(S))


def validation_order(n: int, fraction: float, seed: int) -> tuple[Any, int]:
    """``(order, n_val)``: a seeded host permutation of ``n`` samples whose first ``n_val``
    are held out for validation and the rest trained on.

    The one rule for a validation split: ``fit(validation_split=...)`` and the
    library's training run both use it, so they hold out the same samples.
    """
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise DataError(f"a validation split of {fraction} of {n} samples leaves no validation or no "
                        "training data: use a larger fraction, or none")
    return HostRNG(seed, stream=Stream.SPLIT).permutation(n), n_val


def _optimizer(state: FitState, optimizer: Any, lr: float | None, weight_decay: float | None,
               schedule: Any, extra: dict[str, Any]) -> optimizers.Optimizer:
    """The optimizer a fit call asked for, without silently dropping any setting; ``extra``:
    settings beyond fit's own (``momentum``, ``beta1``...), for an optimizer given by name."""
    settings = {k: v for k, v in (("lr", lr), ("weight_decay", weight_decay), ("schedule", schedule))
                if v is not None}
    settings.update(extra)
    if isinstance(optimizer, optimizers.Optimizer):
        if settings:
            raise ConfigError(f"{', '.join(settings)} go to the optimizer's constructor, not to fit")
        return optimizer
    continuing = optimizer is None and state.optimizer is not None
    name = state.optimizer.name if continuing else optimizer or "adam"
    _refuse_unknown(name, state.optimizer if continuing else name, extra)
    if continuing:
        fixed = [k for k in extra if k != "l1"]
        if fixed:
            raise ConfigError(f"fit continues the model's {name} optimizer, whose {', '.join(fixed)} cannot "
                              f"change: pass optimizer={name!r} to start a new one with it")
        # Continue with the model's optimizer and its state; new settings apply from now on.
        return state.optimizer.update_settings(**settings)
    return optimizers.get(name, **settings)


def _refuse_unknown(name: str, optimizer: Any, extra: dict[str, Any]) -> None:
    """Refuse a setting in ``extra`` that neither fit nor the optimizer (a name or an instance) takes."""
    known = optimizers.settings(optimizer)
    unknown = [k for k in extra if k not in known]
    if unknown:
        own = [k for k in inspect.signature(fit).parameters if k not in ("model", "X", "y", "settings")]
        raise ConfigError(f"fit has no keyword {', '.join(map(repr, unknown))}: it takes {', '.join(own)}, "
                          f"and the settings of its optimizer {name!r}: {', '.join(known)}")


def _counting(loss: losses.Loss, class_targets: bool) -> losses.Loss:
    """The loss a fit's steps and records use: ``loss``, or for class indicators trained with a
    squared error, a copy that also counts right classes (:func:`indicator_correct`) in every
    path alike (mini-batch, full-batch, data-parallel). The model keeps ``loss`` itself."""
    if not class_targets or loss.classification:
        return loss
    counting = copy.copy(loss)
    counting.task = "multiclass"  # one class per sample; read by this fit's machinery only
    counting.correct = indicator_correct  # type: ignore[method-assign]
    return counting


_training: set[str] = set()  # the uids of the models a fit is running on, in any thread
_training_lock = threading.Lock()


@contextlib.contextmanager
def _one_fit(model: Any):
    """Hold ``model`` for one fit: a second one meanwhile (another thread, or a callback)
    would interleave its updates, epoch counter and records with this one's."""
    with _training_lock:
        if model.uid in _training:
            raise ConfigError("this model is already training (in another thread, or a callback called "
                              "fit): wait for that fit to return, or train a copy, model.to()")
        _training.add(model.uid)
    try:
        yield
    finally:
        with _training_lock:
            _training.discard(model.uid)


def early_stopping_from(value: Any) -> EarlyStopping | None:
    """An EarlyStopping from what ``fit`` accepts: None/False/0 (none), True (patience 10),
    a patience, or an EarlyStopping (used as is, its progress kept)."""
    if value is None or value is False or (isinstance(value, int) and value == 0):
        return None
    if value is True:
        return EarlyStopping()
    if isinstance(value, EarlyStopping):
        return value
    return EarlyStopping(patience=positive_int(value, "early_stopping"))


_FIT = fit_defaults()
"""fit's keyword defaults, per call (the epochs this call runs; no split or early stopping unless
asked), from the one settings schema (:func:`backprop.settings.fit_defaults`)."""


def fit(model: Any, X: Any, y: Any, *, loss: str | losses.Loss = _FIT["loss"],
        optimizer: str | optimizers.Optimizer | None = _FIT["optimizer"], lr: float | None = _FIT["lr"],
        epochs: int = _FIT["epochs"], batch_size: int | str | None = _FIT["batch_size"],
        shuffle: bool = True, validation_split: float = _FIT["validation_split"],
        validation_data: tuple[Any, Any] | None = None,
        early_stopping: int | bool | EarlyStopping | None = _FIT["early_stopping"],
        weight_decay: float | None = _FIT["weight_decay"], schedule: Any = _FIT["schedule"],
        callbacks: Sequence[Callable[[dict, Any], Any] | Callback] = (),
        gradient_hooks: Sequence[GradientHook] = (), sample_weight: Any = None, comm: Any = None,
        class_targets: bool = False, threads: int | None = _FIT["threads"], **settings: Any) -> History:
    """Train the model on inputs ``X`` (N, n_inputs) and targets ``y``; returns its History.

    ``model.fit(X, y, ...)`` is this function. One fit at a time per model: a second
    ``fit`` while one runs (another thread, or from a callback) is refused.

    Parameters
    ----------
    X : array (N, n_inputs)
        NumPy, or an array of the model's device (CuPy, torch...), any real dtype.
    y : array (N,) or (N, n_outputs)
        Class labels 0..K-1 (N,) or one-hot rows for ``"ce"``; 0/1 labels or
        probabilities for ``"bce"``; real values for ``"mse"``/``"sse"``.
    loss : ``"auto"``, ``"mse"``, ``"sse"``, ``"bce"``, ``"ce"`` or a Loss
        ``"auto"`` picks cross-entropy for integer labels (BCE with one output)
        and MSE for real-valued targets.
    optimizer : name or Optimizer
        ``gd``, ``sgd``, ``momentum``, ``nesterov``, ``rmsprop``, ``adam`` (default
        for a new model), ``adamw``; an Optimizer instance is used as is (one
        optimizer serves one model). A later ``fit`` with no optimizer continues
        with the previous one and its state.
    lr, weight_decay, schedule
        For an optimizer given by name; with no optimizer they change the model's
        current one in place (its state is kept). Left out, each optimizer's own
        default applies (see :mod:`backprop.optimizers`). A schedule's horizon is
        fixed the first time it trains (see :mod:`backprop.schedules`).
    epochs : int
        Epochs to run in this call.
    batch_size : int, ``"full"`` or None
        Mini-batch size; ``"full"`` is full-batch training. None: 32, or the full
        batch for the full-batch optimizers (``lm``, ``lbfgs``), which refuse any other.
    shuffle : bool
        Reshuffle the data every epoch (from the model's seed).
    validation_split : float
        Fraction of the data held out at random (seeded) for validation.
    validation_data : (X_val, y_val)
        Explicit validation data (overrides ``validation_split``).
    early_stopping : int, True or EarlyStopping
        Patience in epochs (True: 10); stops when the validation loss stops improving and
        restores the best weights. An EarlyStopping object keeps its progress (best loss,
        epochs waited, best weights) between fits; passing ``model.state.early_stopping``
        continues the previous fit's, from the weights that fit had reached.
    callbacks : callables ``f(record, model)`` or :class:`~backprop.callbacks.Callback` objects
        Called after every epoch with that epoch's record; returning True stops. A Callback
        also sees the fit begin, each epoch begin, and the fit end.
    gradient_hooks : callables ``f(grads, step)``
        Run on every batch between the backward pass and the update (see :mod:`backprop.step`).
    sample_weight : array (N,) or number
        Non-negative weight of each sample (a number: every sample's): the training loss
        is the weighted mean (a weight of 2 counts a sample twice; with mini-batches, in
        expectation). The
        validation loss and the accuracies stay unweighted.
    comm : backends.comm.Communicator, optional
        Train data-parallel (see :mod:`backprop.distributed`): every rank calls ``fit`` with
        the same data and settings; each global batch of ``batch_size`` is split across
        the ranks, and the weights stay identical on every rank.
    class_targets : bool
        ``y`` holds class indicators (0/1, one output; or one-hot rows) trained with a
        squared error (``"mse"``, ``"sse"``, as MATLAB's ``trainlm``): the records then
        carry ``train_accuracy`` and ``val_accuracy``, the largest output's class (one
        output: above 1/2) against the indicated one. Ignored for ``"ce"``/``"bce"``,
        which count classes anyway.
    threads : int or None
        CPU threads for the matrix products during the epochs (BLAS, and PyTorch's pool on
        the torch backend), restored after; None: one for a small step, all cores for a large
        one (:func:`backends.machine.step_threads`, from the optimizer's ``step_work``: the
        forward pass's multiply-adds, more for LM and Newton). No effect on a GPU.
    **settings
        Further settings of an optimizer given by name (``momentum``, ``beta1``, ``eps``,
        ``mu``...; see :func:`backprop.optimizers.settings`); a name neither fit nor
        the optimizer takes is refused with the ones they do.

    Returns
    -------
    History
    """
    epochs = 0 if epochs == 0 else positive_int(epochs, "epochs")
    threads = None if threads is None else positive_int(threads, "threads")
    validation_split = check_fraction(validation_split, "validation_split")
    watch = early_stopping_from(early_stopping)
    if watch is not None and not validation_split and validation_data is None:
        raise ConfigError(
            "early stopping watches the validation loss: pass validation_split or validation_data")
    user = [as_callback(callback) for callback in callbacks]
    backend, state = model.backend, model.state

    # Overflow warnings are silenced: a diverging run is reported once, in one line (the rollback).
    with _one_fit(model), backend.activate(), backend.quiet_overflow():
        loss_obj, data, val, weight_sum = _inputs(model, X, y, loss, sample_weight, validation_data,
                                                  validation_split)
        opt, batch_size = _optimizer_for(model, loss_obj, data.n, batch_size, comm,
                                         (optimizer, lr, weight_decay, schedule, settings))
        group = drivers.ranks(comm)
        # Before any collective: other data or settings would mix, hang or cut.
        group.check_same(backend, {"X": data.X, "y": data.T, "sample_weight": data.S}, {
            "the epochs": [epochs], "the batch size": [batch_size], "the optimizer": [repr(opt)]})
        # Last of the checks: nothing above changed the model or its optimizer.
        opt.bind(model.uid)
        context, services = _begin(model, opt, loss_obj, watch, user)
        group.replicate(model, opt, watch)
        step = Step(model, _counting(loss_obj, class_targets), opt, gradient_hooks)
        first_epoch = state.epoch
        opt.schedule.plan(first_epoch + epochs)
        if epochs:  # as plan: a fit of 0 epochs sizes nothing
            opt.schedule.sized(data.n)
        if opt.full_batch:
            driver = drivers.FullBatch(opt, drivers.FullBatchData(step, data, weight_sum, comm))
        else:
            driver = group.mini_batch(step, data, batch_size, shuffle, state.shuffle_rng)
        bookkeeping = drivers.Epochs(context, services, step.loss, val, group, data.T, max(batch_size, 1024))
        # the step's multiply-adds, what the thread rule is measured by (the optimizer's to say)
        work = opt.step_work(batch_size, model)
        with training_threads(backend, work, threads):
            context.history.converged = driver.run(range(first_epoch, first_epoch + epochs), bookkeeping)
        for service in services:
            service.on_end(context)
    return context.history


def _inputs(model: Any, X: Any, y: Any, loss: Any, sample_weight: Any, validation_data: Any,
            validation_split: float) -> tuple[losses.Loss, drivers.TrainingData, Any, float | None]:
    """The fit's data uploaded and checked once: ``(loss, training part, validation part
    (X, T, labels) or None, the sum of the training part's sample weights or None)``."""
    backend, xp, dtype = model.backend, model.xp, model.dtype
    Xd = as_inputs(backend, dtype, X, model.input_shape)
    y = upload(backend, y, "y")  # once: the loss choice and the targets both read it
    loss_obj = losses.auto(xp, y, model.n_outputs, model.layers[-1]) if loss == "auto" else losses.get(loss)
    T, labels = as_targets(backend, dtype, y, loss_obj, model.n_outputs, Xd.shape[0])
    S = None if sample_weight is None else _sample_weights(backend, dtype, sample_weight, Xd.shape[0])
    if validation_data is not None:
        val = _validation_data(model, loss_obj, validation_data)
    elif validation_split:
        ((Xd, T, labels), val), S = _split(model, Xd, T, labels, validation_split, S)
    else:
        val = None
    weight_sum = None if S is None else float(xp.sum(S))  # read once: full-batch methods need it
    if weight_sum is not None and weight_sum <= 0:
        raise DataError("the training part's sample weights are all zero (the validation split took "
                        "every weighted sample): give weight to more samples, or no validation split")
    if loss_obj.reduction == "mean":  # a summed loss keeps the weights as given: 2 is a repeat
        S = _mean_one(xp, S)
    return loss_obj, drivers.TrainingData(Xd, T, labels, S), val, weight_sum


def _validation_data(model: Any, loss: losses.Loss, validation_data: Any) -> tuple[Array, Array, Any]:
    """``(X_val, T_val, labels_val)`` on the device from the user's pair."""
    if len(validation_data) != 2:
        raise DataError("validation_data must be a pair (X_val, y_val)")
    backend, dtype = model.backend, model.dtype
    Xv = as_inputs(backend, dtype, validation_data[0], model.input_shape, "X_val")
    Tv, labels_v = as_targets(backend, dtype, validation_data[1], loss, model.n_outputs, Xv.shape[0], "y_val")
    return Xv, Tv, labels_v


def _optimizer_for(model: Any, loss: losses.Loss, n: int, batch_size: Any, comm: Any,
                   asked: tuple) -> tuple[optimizers.Optimizer, int]:
    """The fit's optimizer and its batch size in samples, checked against each other, the
    model, the loss and the ranks; ``asked``: fit's (optimizer, lr, weight_decay, schedule,
    settings)."""
    if batch_size not in (None, "full"):
        positive_int(batch_size)  # before _optimizer, which may change the model's optimizer
    opt = _optimizer(model.state, *asked)
    if batch_size is None:
        batch_size = "full" if opt.full_batch else 32
    batch_size = n if batch_size == "full" else min(positive_int(batch_size), n)
    if comm is not None and comm.size > 1 and opt.refusal("ranks"):
        raise ConfigError(opt.refusal("ranks"))
    if opt.full_batch:
        opt.check(model, loss, n)
        if batch_size < n:
            raise ConfigError(f"{opt.name} trains on the full batch: drop batch_size (or give 'full'); "
                              f"it got {batch_size} of {n} samples")
    return opt, batch_size


def _begin(model: Any, opt: optimizers.Optimizer, loss: losses.Loss, watch: EarlyStopping | None,
           user: list[Callback]) -> tuple[FitContext, list[Callback]]:
    """The fit's context and its services in the order they run (the divergence rollback,
    the history, early stopping, the user's), begun; then ``model.state`` becomes this fit's."""
    state = model.state
    history = state.history if state.history is not None else History()
    # What this fit decides: an earlier fit's early stop must not end this one.
    history.stopped_early, history.converged = False, None
    if watch is None:
        history.best_epoch = None
    context = FitContext(model, state, history, opt)
    services = [RollbackOnDivergence(), history, *([] if watch is None else [watch]), *user]
    for service in services:  # while the state is the previous fit's: early stopping continues it
        service.on_begin(context)
    state.resume_params = None
    state.optimizer, state.loss, state.early_stopping, state.history = opt, loss, watch, history
    return context, services
