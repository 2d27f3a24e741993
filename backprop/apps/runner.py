"""A training run, as ``backprop train`` does it, startable from Python.

``Run(data, **settings)`` turns data (a built-in name, a CSV/NPZ path, or
arrays) and settings into everything a fit needs: the task and its output head,
the standardization, a validation part, the model and optimizer (or those of a
checkpoint being resumed). ``run.fit(callbacks)`` trains, streaming one record
per epoch (:data:`backprop.training.EPOCH_KEYS`) to the callbacks, any of which
can stop it; then it scores every part of the data, saves the checkpoint and
draws the plots that were asked for, and returns the summary. The command line,
a web page or an estimator are all clients of this one object::

    import backprop as bp
    summary = bp.run("moons", hidden=[16], epochs=50, save="moons.safetensors")
    summary["test_accuracy"]

Settings (all optional; a built-in data set's own defaults come before these,
and a resumed checkpoint's before the ones given): see :data:`DEFAULTS`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backends import dtype_name, get_backend, is_out_of_memory

from .. import losses, optimizers, spec
from ..callbacks import Callback as FitCallback
from ..edges import checkpoint, datafiles, features
from ..edges.datasets import Dataset
from ..edges.heads import Head, scores
from ..edges.preprocessing import Transform, infer_task
from ..errors import CheckpointError, ConfigError, DataError
from ..host.distributed import check_same_data, join
from ..model import Sequential, mlp
from ..settings import SETTINGS, defaults, fixed_on_resume
from ..training import TrainingDiverged, early_stopping_from, validation_order

DEFAULTS: dict[str, Any] = defaults()
"""The settings a run is made of (declared in :data:`backprop.settings.SETTINGS`). Each comes
from, in order of precedence: what was given, a resumed checkpoint, a built-in data set's own
defaults, these."""

ARCHITECTURE = fixed_on_resume()
"""Fixed by the checkpoint when resuming: changing them would make another model (or, for
``val_split``, train and validate on other samples than early stopping's record refers to)."""

SAVE_EVERY_S = 30.0
"""During a run with ``save``, the checkpoint is also refreshed this often (and at the end)."""

KINDS: dict[str, tuple[tuple[type, ...], str]] = {name: (s.types, s.what) for name, s in SETTINGS.items()}
"""The type each setting takes (True and False only where bool is named), from the schema; the
allowed values of the others are checked by each setting's own owner (the optimizer, the registries...)."""

Callback = Callable[[dict, Any], Any]


def checked_settings(given: dict[str, Any]) -> dict[str, Any]:
    """The given settings as plain JSON values (a checkpoint stores them), each checked by its
    declaration (:meth:`backprop.settings.Setting.check`); unknown names are kept (old files)."""
    def plain(value: Any) -> Any:
        if hasattr(value, "item") and hasattr(value, "dtype"):  # a NumPy scalar
            return value.item()
        raise ConfigError(f"settings must be numbers, strings, booleans or lists, got {type(value).__name__}")

    given = json.loads(json.dumps(given, default=plain))
    for name in [n for n in SETTINGS if n in given]:  # the schema's order: one error, the same each time
        given[name] = SETTINGS[name].check(given[name])
    if given.get("features") is not None:  # the features module owns their spelling
        given["features"] = features.check(given["features"])
    return given


def _data_ref(name: str) -> str:
    return os.path.abspath(name) if os.path.exists(name) else name


def _as_dataset(data: Any, target: Any) -> tuple[str | None, Dataset]:
    """``(reference to save, Dataset)`` from a name, a path, a Dataset or an ``(X, y)`` pair."""
    if isinstance(data, Dataset):
        return None, data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = (np.asarray(a) for a in data)
        if X.ndim == 1:
            X = X.reshape(-1, 1)
        if X.ndim != 2 or len(X) != len(y):
            raise DataError(f"data=(X, y) needs X of shape (N, F) and y of N rows, got {X.shape} and "
                            f"{np.shape(y)}")
        return None, Dataset("arrays", X, y)
    if not isinstance(data, str):
        raise ConfigError(f"data must be a built-in name, a .csv/.npz path or a pair (X, y), got "
                          f"{type(data).__name__}")
    return _data_ref(data), datafiles.load(data, target)


def _merged(given: dict[str, Any], saved: dict | None, own: dict[str, Any]) -> dict[str, Any]:
    """The run's settings: given > resumed checkpoint's > the data set's ``own`` > DEFAULTS, then
    what a full-batch optimizer changes in them (when it starts, not when it continues)."""
    s = {**DEFAULTS, **own, **(saved["settings"] if saved else {}), **given}
    switched = saved is not None and saved["settings"].get("optimizer") != s["optimizer"]
    if switched and _full_batch(saved["settings"].get("optimizer")) and not _full_batch(s["optimizer"]):
        # From a full-batch run to a first-order one: its own batch and rate, not "full" and none.
        fresh = {**DEFAULTS, **own}
        for key in ("batch_size", "lr"):
            if key not in given:
                s[key] = fresh[key]
    if _full_batch(s["optimizer"]) and (not saved or switched):
        _full_batch_settings(s, given)
    return s


def _full_batch(name: Any) -> bool:
    """Whether the optimizer called ``name`` trains on the full batch (an unknown name: no, and
    building it says so)."""
    try:
        return optimizers.class_of(name).full_batch
    except ConfigError:
        return False


def _full_batch_settings(s: dict[str, Any], given: dict[str, Any]) -> None:
    """A full-batch optimizer's start: no learning rate (a data set's own is for first-order
    training), and its class's ``entry_defaults`` for what was not given (``loss``: in place
    of ``"auto"``)."""
    cls = optimizers.class_of(s["optimizer"])
    if "lr" in given and cls.refusal("lr", s["optimizer"]):
        raise ConfigError(cls.refusal("lr", s["optimizer"]))
    if not cls.has_lr:
        s["lr"] = None
    for key, value in cls.entry_defaults.items():
        if (s[key] == "auto") if key == "loss" else key not in given:
            s[key] = value


def _given(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings given (None: not given), known by name and checked."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}: use some of {', '.join(SETTINGS)}")
    return checked_settings({k: v for k, v in settings.items() if v is not None})


def _resumed_settings(ck: checkpoint.Checkpoint | None, resume: str | None, given: dict) -> dict | None:
    """The resumed run's data and settings (None: no resume); refuses a model saved from Python
    and a change of what the checkpoint fixes."""
    if ck is None:
        return None
    saved = ck.extra.get("train")
    if saved is None:
        raise ConfigError(f"{resume} holds a model saved from Python, without the data settings a "
                          "resumed run needs: continue it with model.fit()")
    clash = [k for k in ARCHITECTURE if k in given and given[k] != saved["settings"].get(k)]
    if clash:
        flags = ", ".join(SETTINGS[k].flag for k in clash)
        raise ConfigError(f"{flags} cannot change when resuming (the checkpoint fixes the model): "
                          "drop them, or train a new model without resuming")
    return saved


def _prepare_plot_folder(plot: str) -> None:
    """Matplotlib present, the folder made and writable, no user's picture in the way: before
    training, not after it."""
    from ..edges.plots import prepare_folder, require_matplotlib

    require_matplotlib()
    try:
        prepare_folder(plot)
    except OSError as exc:
        raise ConfigError(f"cannot create the plot folder {plot} ({exc.strerror})") from None
    if not os.access(plot, os.W_OK):
        raise ConfigError(f"the plot folder {plot} is not writable: choose another")


class PeriodicSave(FitCallback):
    """During a run with ``save``, refresh the checkpoint every :data:`SAVE_EVERY_S` seconds
    (status ``training``), after the epoch's other callbacks: a killed run loses at most that."""

    def __init__(self, run: Run, every: float | None = None) -> None:
        self.run, self.every = run, SAVE_EVERY_S if every is None else every
        self.last = time.perf_counter()

    def on_epoch_end(self, record: dict, fit: Any) -> None:
        run = self.run
        if run.save_path and run.root and time.perf_counter() - self.last >= self.every:
            run.save("training")
            self.last = time.perf_counter()


class TestLoss(FitCallback):
    """With ``plot`` and a test part: the test part's loss (training units, as the history's)
    after every epoch, into ``losses`` (epoch -> loss) for the performance picture. Inference
    only (no draws, no state moved), so training goes as it would without it."""

    def __init__(self, X: Any, T: Any, loss: str) -> None:
        self.X, self.T, self.loss, self.losses = X, T, loss, {}

    def on_epoch_end(self, record: dict, fit: Any) -> None:
        self.losses[record["epoch"]] = fit.model.evaluate(self.X, self.T, loss=self.loss)["loss"]


class Run:
    """One training run: prepared on construction, trained by :meth:`fit`.

    Parameters
    ----------
    data : str, (X, y) or Dataset, optional
        A built-in data set (``"digits"``, ``"moons"``...), a .csv/.npz path, or host
        arrays. Default: ``"digits"``, or the resumed checkpoint's data.
    resume : str, optional
        A checkpoint written by a run with ``save``: continue it to a total of
        ``epochs`` epochs (the architecture comes from the checkpoint).
    save : str, optional
        Checkpoint path (default with ``resume``: the resumed file).
    plot : str, optional
        A folder to draw the run's pictures into (those ``plots.RUN_PICTURES`` names, each
        where the task has it); with a test part, its loss is measured after every epoch for
        the performance picture (inference only: training goes as without it).
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"torch"``...
    distributed : bool or Communicator
        Train data-parallel in the MPI job this process was launched in (True), or over
        the given communicator (see :mod:`backprop.distributed`): every rank builds the
        same run, only rank 0 saves and plots, and ``batch_size`` stays the global batch.
    **settings
        Any of :data:`DEFAULTS`; None means "not given".

    Attributes (after construction)
    -------------------------------
    settings : dict of the merged settings; dataset, transform, head, model, optimizer;
    train : (X, y) raw host arrays trained on; val : (X, y) or None; resumed : bool.
    """

    def __init__(self, data: Any = None, *, resume: str | None = None, save: str | None = None,
                 plot: str | None = None, device: str = "cpu", distributed: Any = False,
                 **settings: Any) -> None:
        self.started = time.perf_counter()
        given = _given(settings)
        self.comm, notes = None, []
        if distributed:
            self.comm, device, notes = join(device, distributed)
        ck = checkpoint.load(resume, device=device) if resume else None
        saved = _resumed_settings(ck, resume, given)
        self._load_data(data, given, saved, save)
        s = _merged(given, saved, self.dataset.defaults)
        self.settings, self.given, self.resumed = s, given, ck is not None
        self.notes: list[str] = notes  # one-line remarks a client may show
        if ck is not None:
            self._check_resumable(ck, resume, save)
            if self.data_ref != saved["data"]:
                self.notes.append(f"continuing {resume}, trained on {saved['data']}, on "
                                  f"{self.dataset.name}, with the checkpoint's standardization")
        cls = optimizers.class_of(s["optimizer"])
        if self.comm is not None and self.comm.size > 1 and cls.refusal("ranks", s["optimizer"]):
            raise ConfigError(cls.refusal("ranks", s["optimizer"]))
        self.notes.extend(cls.entry_notes(s))
        self._plan_writes(ck, resume, save, plot)
        self._prepare_data(ck)
        self._prepare_model(ck, device, given)

    def _load_data(self, data: Any, given: dict, saved: dict | None, save: str | None) -> None:
        """The data set (given, else the resumed run's, else digits), the same on every rank."""
        target = given.get("target", (saved or {}).get("settings", {}).get("target"))
        if data is None:
            data = saved["data"] if saved else "digits"
        self.data_ref, self.dataset = _as_dataset(data, target)
        if self.comm is not None:
            d = self.dataset
            check_same_data(self.comm, {"X": d.X, "y": d.y, "X_val": d.X_val, "y_val": d.y_val,
                                        "X_test": d.X_test, "y_test": d.y_test,
                                        "the feature names": d.feature_names})
        if save and self.data_ref is None:
            raise ConfigError("a run on arrays cannot be saved for resuming: train it, then save the model "
                              "with backprop.checkpoint.save(run.model, path)")

    def _plan_writes(self, ck: checkpoint.Checkpoint | None, resume: str | None, save: str | None,
                     plot: str | None) -> None:
        """Where the checkpoint and the plots go, checked writable before training."""
        self.save_path = save or (resume if ck else None)
        # What the save path holds: the epoch this run last saved, or the resumed file's epoch there.
        in_place = ck is not None and os.path.abspath(resume) == os.path.abspath(self.save_path)
        self.saved_epoch: int | None = ck.model.epoch if in_place else None
        self.plot = plot if self.root else None  # rank 0 alone writes files
        if self.plot:
            _prepare_plot_folder(plot)
        if self.save_path and self.root:
            checkpoint.check_writable(self.save_path)

    # -- preparation ---------------------------------------------------------------
    def _task(self) -> str:
        """The task trained: as given (or saved), else the data set's own, else inferred from y."""
        return self.settings["task"] or self.dataset.task or infer_task(self.dataset.y)

    def _check_resumable(self, ck: checkpoint.Checkpoint, resume: str, save: str | None) -> None:
        """Refuse to continue a checkpoint on data it cannot have been trained on (other features,
        task or classes), and to write a run on other data over the resumed file unasked."""
        saved, dataset = ck.extra["train"], self.dataset
        where = f"cannot resume {resume} on {dataset.name}"
        transform = Transform.from_json(ck.extra["transform"], ck.arrays)
        names = ck.extra.get("feature_names") or [None] * (transform.n_columns or ck.model.n_inputs)
        if len(names) != dataset.X.shape[1] or (None not in names and names != dataset.feature_names):
            raise DataError(f"{where}: {_name_difference(dataset.feature_names, names)}: give the "
                            "checkpoint's columns (same names, same order), or train a new model")
        if self._task() != transform.task:
            raise DataError(f"{where}: the checkpoint is a {transform.task} model and these data are for "
                            f"{self._task()}: train a new model")
        if transform.task == "classification":
            for part in (dataset.y, dataset.y_val, dataset.y_test):
                try:  # the transform's own rule for labels the model has no output for
                    None if part is None else transform.targets(part)
                except DataError as exc:
                    raise DataError(f"{where}: {exc}: train a new model") from None
        if save is None and self.data_ref != saved["data"]:
            raise ConfigError(f"{where} without --save: it was trained on {saved['data']}, and the run on "
                              f"other data would replace it; give --save PATH (--save {resume} to "
                              "replace it)")

    def _prepare_data(self, ck: checkpoint.Checkpoint | None) -> None:
        s, dataset = self.settings, self.dataset
        X, y = dataset.X, dataset.y
        task = self._task()
        if dataset.X_val is not None:
            val = (dataset.X_val, dataset.y_val)
        elif s["val_split"]:
            order, n_val = validation_order(len(X), s["val_split"], s["seed"])
            (X, y), val = (X[order[n_val:]], y[order[n_val:]]), (X[order[:n_val]], y[order[:n_val]])
        else:
            val = None
        if ck is not None:
            self.transform = Transform.from_json(ck.extra["transform"], ck.arrays)
        else:  # statistics of the training part only: the validation part stays unseen
            # counts (poisson) keep their sign: only scaled
            centred = s["loss"] == "auto" or losses.class_of(s["loss"]).centred_targets
            self.transform = Transform.fit(X, y, task, standardize=s["standardize"], labels=dataset.y,
                                           features=s["features"], input_shape=self._input_shape(),
                                           center_targets=centred)
        if val is None and "early_stopping" not in self.given:
            s["early_stopping"] = None  # the default patience needs validation data; none here
        if s["early_stopping"] and val is None:
            raise ConfigError("early stopping watches the validation loss: give a validation split "
                              "(e.g. --val-split 0.1)")
        self.head = Head.make(self.transform, s["loss"])
        self.train, self.val = (X, y), val

    def _prepare_model(self, ck: checkpoint.Checkpoint | None, device: str, given: dict) -> None:
        s = self.settings
        model = self._model(ck, device)
        opt = self._optimizer(ck, model, given)
        watch = early_stopping_from(s["early_stopping"])
        saved_watch = model.state.early_stopping if ck is not None else None
        if watch is not None and saved_watch is not None:
            saved_watch.patience = watch.patience  # the patience asked for now, with the saved progress
            watch = saved_watch
        if getattr(opt, "full_batch", False):  # refuse what it cannot train before anything runs
            opt.check(model, losses.get(self.head.loss), len(self.train[0]))
            if s["batch_size"] not in (None, "full") and s["batch_size"] < len(self.train[0]):
                raise ConfigError(f"{opt.name} trains on the full batch: drop batch_size (or give 'full')")
        self.epochs_left = s["epochs"] - model.epoch  # epochs counts the run's total (SETTINGS: total)
        if self.epochs_left < 0 or (ck is not None and self.epochs_left == 0):
            raise ConfigError(f"the checkpoint has already trained {model.epoch} epochs; epochs counts the "
                              f"total, so ask for more than {model.epoch} to continue")
        self.model, self.optimizer, self.early_stopping = model, opt, watch

    def _input_shape(self) -> Any:
        """Each sample's shape: the one given, else, for a network given as layers, the data's own
        (digits' 1×8×8, an NPZ of maps); the default MLP reads rows of features."""
        s = self.settings
        if s["input_shape"] is not None or s["layers"] is None:
            return s["input_shape"]
        return self.dataset.input_shape

    def _model(self, ck: checkpoint.Checkpoint | None, device: str) -> Sequential:
        """The resumed model (in the dtype asked for), or a new one from the settings."""
        s = self.settings
        if ck is not None:
            model = ck.model
            return model if s["dtype"] == dtype_name(model.dtype) else model.to(dtype=s["dtype"])
        width = self.transform.n_inputs or self.train[0].shape[1]
        kwargs = {"device": get_backend(device), "dtype": s["dtype"], "seed": s["seed"]}
        if s["layers"] is not None:
            return self._layered(self.transform.input_shape or (width,), kwargs)
        sizes = [width, *s["hidden"], self.head.outputs]
        return mlp(sizes, activation=s["activation"], output=self.head.activation, init=s["init"],
                   dropout=s["dropout"], **kwargs)

    def _layered(self, input_shape: tuple[int, ...], kwargs: dict) -> Sequential:
        """The network ``--layers`` describes (:mod:`backprop.spec`), ending in the head's output
        activation (added when the text leaves it out), its outputs checked against the data."""
        mlp_only = [SETTINGS[n].flag for n in ("hidden", "activation", "dropout") if n in self.given]
        if mlp_only:
            raise ConfigError(f"--layers gives the whole network: drop {', '.join(mlp_only)}")
        return spec.network(self.settings["layers"], output=self.head.activation, outputs=self.head.outputs,
                            input_shape=input_shape, **kwargs)

    def _optimizer(self, ck: checkpoint.Checkpoint | None, model: Sequential, given: dict):
        """A new optimizer from the settings; a resumed one of the same rule keeps its moments."""
        s, state = self.settings, model.state
        opt = optimizers.get(s["optimizer"], s["lr"], **self._optimizer_kwargs())
        if ck is None or state.optimizer is None or not state.optimizer.same_rule(opt):
            return opt
        # Continue with the saved moments; options given now still change the rate, decay, schedule.
        opt = state.optimizer.update_settings(lr=given.get("lr"), weight_decay=given.get("weight_decay"),
                                              schedule=given.get("schedule"), l1=given.get("l1"))
        horizon = getattr(opt.schedule, "epochs", None)
        if horizon is not None and horizon < s["epochs"]:
            # Resuming to a larger total stretches the schedule over the new total, rather
            # than training the extra epochs at its final rate.
            opt.schedule.epochs = s["epochs"]
        return opt

    def _optimizer_kwargs(self) -> dict:
        s, kwargs = self.settings, {}
        if s["momentum"] is not None:
            if "momentum" not in optimizers.settings(s["optimizer"]):
                takers = [n for n in optimizers.NAMES if "momentum" in optimizers.settings(n)]
                raise ConfigError(f"momentum is for {', '.join(takers[:-1])} and {takers[-1]}, not "
                                  f"{s['optimizer']}")
            kwargs["momentum"] = s["momentum"]
        if s["weight_decay"] is not None:
            kwargs["weight_decay"] = s["weight_decay"]
        if s["l1"]:
            kwargs["l1"] = s["l1"]
        kwargs["schedule"] = s["schedule"]
        return kwargs

    @property
    def root(self) -> bool:
        """This process reports and writes files: the only one, or rank 0 of a distributed run."""
        return self.comm is None or self.comm.root

    # -- training --------------------------------------------------------------------
    def save(self, status: str) -> None:
        """Write the checkpoint (model, fit state, data settings and transform) to ``save``."""
        t_meta, t_arrays = self.transform.to_json()
        checkpoint.save(self.model, self.save_path, arrays=t_arrays,
                        extra={"train": {"data": self.data_ref, "settings": self.settings, "status": status},
                               "transform": t_meta, "feature_names": self.dataset.feature_names,
                               "target_name": self.dataset.target_name, "head": vars(self.head)})
        self.saved_epoch = self.model.epoch

    def kept(self) -> str:
        """What ``save`` holds now, in words: for a run stopped at once (a second Ctrl-C)."""
        if not self.save_path:
            return "nothing saved"
        if not self.root:
            return f"rank 0 writes {self.save_path}"
        if self.saved_epoch is not None:
            return f"{self.save_path} keeps its last save (epoch {self.saved_epoch})"
        if os.path.exists(self.save_path):
            return f"{self.save_path} was not written (it holds what it held before)"
        return f"nothing saved yet ({self.save_path} not written)"

    def fit(self, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
        """Train, score, save and plot; returns the summary (see the README's ``--json``).

        ``callbacks`` are called as ``f(record, model)`` after every epoch; one that
        returns True stops the run after that epoch (status ``"interrupted"``). A
        diverged run returns status ``"diverged"`` with its ``error``.
        """
        model, first_epoch = self.model, self.model.epoch
        fit_started = time.perf_counter()
        history, failure, stopped = self._train(callbacks)
        status = "diverged" if failure else "interrupted" if stopped else (
            "early_stopping" if history.stopped_early else "converged" if history.converged else "completed")
        fit_seconds = time.perf_counter() - fit_started
        summary: dict[str, Any] = {"type": "summary", "status": status, "epochs": model.epoch}
        self._score(summary)
        trained, backend = model.epoch - first_epoch, model.backend
        rate = (trained * len(self.train[0]) / fit_seconds) if fit_seconds > 0 and trained else None
        summary.update(seconds=time.perf_counter() - self.started, train_seconds=fit_seconds,
                       samples_per_s=rate, device=backend.label, backend=backend.name,
                       dtype=dtype_name(model.dtype), n_params=model.n_params,
                       best_epoch=model.history.best_epoch if model.history else None)
        last = model.history.records[-1] if model.history and model.history.records else {}
        if "gamma" in last:  # Bayesian regularization: the last effective number of parameters
            summary["gamma"] = last["gamma"]
        if self.comm is not None:
            summary.update(ranks=self.comm.size, comm=self.comm.name)
        self._write(summary, status)
        if failure:
            summary["error"] = failure
        if status == "converged":
            summary["reason"] = history.converged
        return summary

    def _train(self, callbacks: Sequence[Callback]) -> tuple[Any, str | None, bool]:
        """``model.fit`` over the prepared data: ``(history, failure, stopped)``; saves every
        :data:`SAVE_EVERY_S` on the way."""
        model, transform, head = self.model, self.transform, self.head
        X, y = self.train
        with _size_noted(model, len(X)):  # (N, K) targets: the first large allocation with many classes
            Xn, Tn = transform.inputs(X), head.targets(transform.targets(y))
            val_n = None if self.val is None else (transform.inputs(self.val[0]),
                                                   head.targets(transform.targets(self.val[1])))
        stopped = False
        self.test_watch = self._test_watch() if self.plot and self.dataset.X_test is not None else None
        watches = [self.test_watch] if self.test_watch else []

        def between_epochs(record: dict, _model) -> bool:
            nonlocal stopped
            answers = [callback(record, model) for callback in callbacks]
            stopped = stopped or any(answer is True for answer in answers)
            return stopped

        history, failure = None, None
        try:
            with _size_noted(model, len(Xn)):
                history = model.fit(Xn, Tn, loss=head.loss, optimizer=self.optimizer,
                                    epochs=self.epochs_left, batch_size=self.settings["batch_size"],
                                    validation_data=val_n, early_stopping=self.early_stopping,
                                    callbacks=[*watches, between_epochs, PeriodicSave(self)],
                                    comm=self.comm, class_targets=transform.task == "classification",
                                    threads=self.settings["threads"])
        except TrainingDiverged as exc:  # the reduced loss diverges on every rank alike
            failure = str(exc)
        if self.comm is not None:  # a stop asked on one rank (its Ctrl-C) interrupts every rank
            stopped = self.comm.any(stopped)
        return history, failure, stopped

    def _test_watch(self) -> TestLoss:
        """The test part's loss per epoch, measured only for the performance picture."""
        transform, head = self.transform, self.head
        return TestLoss(transform.inputs(self.dataset.X_test),
                        head.targets(transform.targets(self.dataset.y_test)), head.loss)

    def _score(self, summary: dict[str, Any]) -> None:
        """Every part's metrics, into ``rows`` (the table) and ``summary`` (``{part}_{metric}``)."""
        model, head, transform = self.model, self.head, self.transform
        self.rows = {"train": scores(model, head, transform, *self.train)}
        if self.val is not None:
            self.rows["val"] = scores(model, head, transform, *self.val)
        if self.dataset.X_test is not None:
            self.rows["test"] = scores(model, head, transform, self.dataset.X_test, self.dataset.y_test)
        for part, values in self.rows.items():
            summary.update({f"{part}_{k}": v for k, v in values.items()})

    def _write(self, summary: dict[str, Any], status: str) -> None:
        """The checkpoint (rank 0, complete before any rank goes on) and the plots."""
        if self.save_path:
            if self.root:
                self.save(status)
            summary["checkpoint"] = os.path.abspath(self.save_path)
        if self.comm is not None:
            self.comm.barrier()  # when fit returns on any rank, rank 0's checkpoint is complete
        plots = self._plots() if self.plot else []
        if plots:
            summary["plots"] = plots

    def _plots(self) -> list[str]:
        """The pictures ``plot`` asked for (``plots.RUN_PICTURES``), drawn after training."""
        from ..edges import plots

        folder, model, head, transform = self.plot, self.model, self.head, self.transform
        (X, y), name = self.train, self.dataset.name
        records = model.history.records if model.history else []
        path = {key: os.path.join(folder, file) for key, file in plots.RUN_PICTURES.items()}
        written = [plots.curves(records, path["curves"], name)]
        watch = self.test_watch  # set by _train: None without a test part
        written.append(plots.performance(records, path["performance"], name, loss=head.loss,
                                         test_losses=watch.losses if watch else None,
                                         best_epoch=model.history.best_epoch if model.history else None))
        if X.shape[1] == 2 and transform.task == "classification":
            written.append(plots.decision_boundary(
                lambda G: head.class_scores(model, transform.inputs(G)), X, transform.targets(y),
                transform.classes, path["boundary"],
                f"{name}: decision boundary (training data)",
                axis_names=tuple(self.dataset.feature_names[:2])))
        if transform.task == "regression":
            return written + self._fit_pictures(path)
        parts = {part: (np.argmax(head.class_scores(model, transform.inputs(X)), axis=1),
                        transform.targets(y)) for part, (X, y) in self._parts().items()}
        return [*written, plots.confusion(parts, transform.classes, path["confusion"], name)]

    def _fit_pictures(self, path: dict[str, str]) -> list[str]:
        """A regression's pictures: the curve (one input, one target), outputs against targets
        and the error histogram (every part, every output pooled)."""
        from ..edges import plots

        model, transform, (X, y), name = self.model, self.transform, self.train, self.dataset.name
        written = []
        if X.shape[1] == 1 and transform.n_targets == 1:
            written.append(plots.fitted_curve(
                lambda G: transform.outputs(np.asarray(model.predict(transform.inputs(G)))), X, y,
                path["fit"], f"{name}: the network's curve",
                axis_names=(self.dataset.feature_names[0], self.dataset.target_name or "target")))
        parts = self._outputs_and_targets()
        written.append(plots.regression(parts, path["regression"], name))
        written.append(plots.error_histogram(parts, path["errors"], name))
        return written

    def _parts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The run's raw parts that exist: "training", "validation", "test" -> (X, y)."""
        dataset = self.dataset
        named = {"training": self.train, "validation": self.val,
                 "test": None if dataset.X_test is None else (dataset.X_test, dataset.y_test)}
        return {part: data for part, data in named.items() if data is not None}

    def _outputs_and_targets(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each part's ``(outputs, targets)``, both (N, K) float64 in the target's units: the
        regression picture's and the error histogram's data."""
        model, transform = self.model, self.transform
        return {part: (transform.outputs(np.asarray(model.predict(transform.inputs(X)))),
                       y.reshape(len(y), -1).astype(np.float64))
                for part, (X, y) in self._parts().items()}


def _name_difference(new: list[str], old: list[str | None]) -> str:
    """How the feature names ``new`` of the data differ from a checkpoint's ``old`` (None: unnamed)."""
    counts = f"the data has {len(new)} features, the checkpoint {len(old)}"
    if None in old:
        return counts
    missing, extra = [n for n in old if n not in new], [n for n in new if n not in old]
    if not missing and not extra:
        return counts if len(new) != len(old) else "the data has the checkpoint's features in another order"
    shown = [f"{label} {', '.join(found[:5])}{'...' if len(found) > 5 else ''}"
             for label, found in (("lacks", missing), ("adds", extra)) if found]
    return ("the data " if len(new) == len(old) else f"{counts}: it ") + " and ".join(shown)


@contextlib.contextmanager
def _size_noted(model: Sequential, n_samples: int):
    """Out of memory inside: note what is big (the parameters, or with many classes the (N, K)
    targets and outputs, which a smaller batch does not shrink) for the one-line message."""
    try:
        yield
    except Exception as exc:
        if is_out_of_memory(exc) and hasattr(exc, "add_note"):  # add_note: Python 3.11+
            exc.add_note(model.size_note(n_samples))
        raise


def run(data: Any = None, *, callbacks: Sequence[Callback] = (), **kwargs: Any) -> dict[str, Any]:
    """Prepare and train one run (see :class:`Run`); returns its summary."""
    return Run(data, **kwargs).fit(callbacks)


def restore(path: str, device: str = "cpu") -> tuple[Sequential, Transform, Head, dict]:
    """``(model, transform, head, extra)`` from a checkpoint, on ``device``.

    A model saved from Python (no data transform) is used on raw inputs, with
    classes named 0..K-1.
    """
    ck = checkpoint.load(path, device=device)
    model = ck.model
    if "transform" in ck.extra:
        try:
            transform = Transform.from_json(ck.extra["transform"], ck.arrays)
            return model, transform, Head(**ck.extra["head"]), ck.extra
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"{path} holds a training run whose data settings are incomplete "
                                  f"({type(exc).__name__}: {exc})") from None
    return (model, *bare_parts(model), ck.extra)


def bare_parts(model: Sequential) -> tuple[Transform, Head]:
    """``(transform, head)`` of a model built in Python (no data transform): used on raw inputs,
    its classes named 0..K-1, its head read off its output loss."""
    loss = model.output_loss()
    k = model.n_outputs if loss.task == "multiclass" else 2
    classification = loss.classification
    transform = Transform("classification" if classification else "regression",
                          [str(i) for i in range(k)] if classification else None)
    encoding = {"multiclass": "index", "binary": "binary"}.get(loss.task, "real")
    return transform, Head(loss.name, model.n_outputs, None, encoding)
