"""``backprop train``: data in, a trained (and saved) model out, with progress and a summary."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

import numpy as np

from backends import dtype_name, get_backend, to_numpy_any

from .. import checkpoint, optimizers
from ..model import mlp
from ..preprocessing import Transform, infer_task
from ..training import EarlyStopping, TrainingDiverged
from .common import Head, UsageError, device_spec, load_data, metrics, split_validation
from .report import Progress, emit_json, table

# The settings a run is made of, and where each comes from: these defaults, then a
# built-in data set's own, then a resumed checkpoint's, then the command line.
DEFAULTS: dict[str, Any] = {
    "hidden": [64], "activation": "relu", "loss": "auto", "optimizer": "adam", "lr": None,
    "momentum": None, "weight_decay": None, "schedule": "constant", "epochs": 100, "batch_size": 32,
    "init": "auto", "seed": 0, "dtype": "float32", "val_split": 0.1, "early_stopping": 10,
    "standardize": True, "task": None, "target": None,
}
# Fixed by the checkpoint when resuming: changing them would make another model.
ARCHITECTURE = ("hidden", "activation", "loss", "init", "seed", "standardize", "task", "target")
SAVE_EVERY_S = 30.0  # also saved at the end, on Ctrl-C and on divergence


def _settings(args: argparse.Namespace, dataset_defaults: dict, saved: dict | None) -> dict:
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k, None) is not None}
    if saved is not None:
        clash = [k for k in ARCHITECTURE if k in given and given[k] != saved.get(k)]
        if clash:
            flags = ", ".join("--" + k.replace("_", "-") for k in clash)
            raise UsageError(f"{flags} cannot change when resuming (the checkpoint fixes the model): "
                             "drop them, or train a new model without --resume")
    return {**DEFAULTS, **dataset_defaults, **(saved or {}), **given}


def _optimizer_kwargs(s: dict) -> dict:
    kwargs: dict[str, Any] = {}
    if s["momentum"] is not None:
        if s["optimizer"] not in ("sgd", "momentum", "nesterov"):
            raise UsageError(f"--momentum is for sgd, momentum and nesterov, not {s['optimizer']}")
        kwargs["momentum"] = s["momentum"]
    if s["weight_decay"] is not None:
        kwargs["weight_decay"] = s["weight_decay"]
    kwargs["schedule"] = s["schedule"]
    return kwargs


class _Interrupt:
    """First Ctrl-C: finish the current epoch, save, and stop. Second: stop at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = None

    def __enter__(self) -> _Interrupt:
        if hasattr(signal, "SIGINT"):
            try:
                self.previous = signal.signal(signal.SIGINT, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test runner thread)
                self.previous = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this epoch (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    spec = device_spec(args.device, args.backend)
    resumed = checkpoint.load(args.resume, device=spec) if args.resume else None
    saved_run = resumed.extra.get("train") if resumed else None
    if resumed is not None and saved_run is None:
        raise UsageError(f"{args.resume} holds a model saved from Python, without the data settings "
                         "'backprop train --resume' needs: continue it with model.fit()")
    data_name = args.data or (saved_run["data"] if saved_run else "digits")
    target = args.target if args.target is not None else (saved_run or {}).get("settings", {}).get("target")
    dataset = load_data(data_name, target)
    s = _settings(args, dataset.defaults, saved_run["settings"] if saved_run else None)
    save_path = args.save or (args.resume if resumed else None)

    if args.plot:
        from ..plots import prepare_folder, require_matplotlib

        require_matplotlib()
        try:
            prepare_folder(args.plot)
        except OSError as exc:
            raise UsageError(f"cannot create the --plot folder {args.plot} ({exc.strerror})") from None
    if save_path:
        checkpoint.check_writable(save_path)

    # -- data --------------------------------------------------------------------
    X, y = dataset.X, dataset.y
    task = s["task"] or dataset.task or infer_task(y)
    if resumed:
        transform = Transform.from_json(resumed.extra["transform"], resumed.arrays)
    else:
        transform = Transform.fit(X, y, task, standardize=s["standardize"])
    if dataset.X_val is not None:
        val = (dataset.X_val, dataset.y_val)
    elif s["val_split"]:
        (X, y), val = split_validation(X, y, s["val_split"], s["seed"])
    else:
        val = None
    if val is None and args.early_stopping is None:
        s["early_stopping"] = None  # the default patience needs validation data; none here
    if s["early_stopping"] and val is None:
        raise UsageError("--early-stopping watches the validation loss: give --val-split (e.g. 0.1)")
    head = Head.make(transform, s["loss"])
    Xn, Tn = transform.inputs(X), head.targets(transform.targets(y))
    val_n = None if val is None else (transform.inputs(val[0]), head.targets(transform.targets(val[1])))

    # -- model -------------------------------------------------------------------
    if resumed:
        model = resumed.model
        if s["dtype"] != dtype_name(model.dtype):
            model = model.to(dtype=s["dtype"])
    else:
        sizes = [X.shape[1], *s["hidden"], head.outputs]
        model = mlp(sizes, activation=s["activation"], output=head.activation, init=s["init"],
                    device=get_backend(spec), dtype=s["dtype"], seed=s["seed"])
    watch = _early_stopping(s, saved_run, resumed, model)
    if resumed and resumed.resume_params is not None:
        model.set_parameters(resumed.resume_params)  # early stopping had restored older weights
    if resumed and model.optimizer is not None and model.optimizer.name == _canonical(s["optimizer"]):
        # Continue with the saved state; options given now still change the rate, decay, schedule.
        opt = model.optimizer.update_settings(
            lr=args.lr, weight_decay=args.weight_decay, schedule=args.schedule)
    else:
        opt = optimizers.get(s["optimizer"], s["lr"], **_optimizer_kwargs(s))
    epochs_left = s["epochs"] - model.epoch
    if epochs_left < 0 or (resumed and epochs_left == 0):
        raise UsageError(f"{args.resume} has already trained {model.epoch} epochs; --epochs counts the "
                         f"total, so ask for more than {model.epoch} to continue")

    backend = model.backend
    n_train = len(Xn)
    mode = "json" if args.json else "quiet" if args.quiet else "bar" if _terminal_width() else "lines"
    if mode not in ("json", "quiet"):
        print(_banner(model, dataset, transform, head, s, opt, n_train, val, resumed is not None), flush=True)

    resume_from = None  # the last epoch's weights, when early stopping restores earlier ones

    def snapshot(status: str) -> None:
        es = None if watch is None else {"patience": watch.patience, "best": watch.best,
                                         "waited": watch.waited, "best_epoch": watch.best_epoch}
        t_meta, t_arrays = transform.to_json()
        names = list(model.parameters())
        best = None
        if watch is not None and watch.best_params is not None and watch.best_epoch != model.epoch:
            best = dict(zip(names, watch.best_params))
        checkpoint.save(model, save_path, arrays=t_arrays, best_params=best, resume_params=resume_from,
                        extra={"train": {"data": _data_ref(data_name), "settings": s,
                                         "early_stopping": es, "status": status},
                               "transform": t_meta, "feature_names": dataset.feature_names,
                               "target_name": dataset.target_name, "head": vars(head)})

    progress = Progress(mode, model.epoch, s["epochs"], backend.label, backend.name)
    last_save = time.perf_counter()

    def on_epoch(record: dict, _model) -> bool:
        nonlocal last_save, resume_from
        progress.epoch(record)
        final = (record["epoch"] >= s["epochs"] or interrupt.requested
                 or (watch is not None and watch.waited >= watch.patience))
        if final and watch is not None and watch.best_params is not None and watch.best_epoch != model.epoch:
            resume_from = {k: np.array(to_numpy_any(v), copy=True)
                           for k, v in model.parameters().items()}
        if save_path and not final and time.perf_counter() - last_save >= SAVE_EVERY_S:
            snapshot("training")
            last_save = time.perf_counter()
        return interrupt.requested

    status, failure = "completed", None
    fit_started = time.perf_counter()
    first_epoch = model.epoch
    with _Interrupt() as interrupt:
        try:
            history = model.fit(Xn, Tn, loss=head.loss, optimizer=opt, epochs=epochs_left,
                                batch_size=s["batch_size"], validation_data=val_n,
                                early_stopping=watch, callbacks=[on_epoch])
            if interrupt.requested:
                status = "interrupted"
            elif history.stopped_early:
                status = "early_stopping"
        except TrainingDiverged as exc:
            status, failure = "diverged", str(exc)
        except KeyboardInterrupt:
            progress.close()
            print(f"interrupted in epoch {model.epoch + 1}; "
                  + (f"{save_path} keeps its last save" if save_path else "nothing saved"), file=sys.stderr)
            return 130
        finally:
            progress.close()
    fit_seconds = time.perf_counter() - fit_started
    trained = model.epoch - first_epoch
    summary: dict[str, Any] = {"type": "summary", "status": status, "epochs": model.epoch}
    rows = {"train": metrics(model, head, transform, X, y)}
    if val is not None:
        rows["val"] = metrics(model, head, transform, *val)
    if dataset.X_test is not None:
        rows["test"] = metrics(model, head, transform, dataset.X_test, dataset.y_test)
    for part, values in rows.items():
        summary.update({f"{part}_{k}": v for k, v in values.items()})
    records = model.history.records if model.history else []
    summary.update(seconds=time.perf_counter() - started, train_seconds=fit_seconds,
                   samples_per_s=(trained * n_train / fit_seconds) if fit_seconds > 0 and trained else None,
                   device=backend.label, backend=backend.name, dtype=dtype_name(model.dtype),
                   n_params=model.n_params, best_epoch=model.history.best_epoch if model.history else None)
    if save_path:
        snapshot(status)
        summary["checkpoint"] = os.path.abspath(save_path)
    plots = _plots(args.plot, model, head, transform, dataset, X, y, records) if args.plot else []
    if plots:
        summary["plots"] = plots
    if mode == "json":
        if failure:
            summary["error"] = failure
        emit_json(summary)
    elif mode != "quiet":
        rate = summary["samples_per_s"]
        print(f"{_STATUS[status]} at epoch {model.epoch} in {summary['seconds']:.2f} s"
              + (f" ({rate:,.0f} samples/s training)" if rate else ""))
        if status == "early_stopping" and summary["best_epoch"]:
            print(f"the weights of epoch {summary['best_epoch']} (best validation loss) are kept")
        print(table(rows))
        if save_path:
            print(f"saved {save_path} (epoch {model.epoch})")
        for path in plots:
            print(f"wrote {path}")
    if failure:
        kept = f"; {save_path} holds epoch {model.epoch}" if save_path else ""
        print(f"backprop: error: {failure}{kept}", file=sys.stderr)
        return 1
    return 130 if status == "interrupted" else 0


def _early_stopping(s: dict, saved_run: dict | None, resumed, model) -> EarlyStopping | None:
    """A fresh EarlyStopping, or the saved one's progress when resuming."""
    if not s["early_stopping"]:
        return None
    watch = EarlyStopping(patience=s["early_stopping"])
    state = (saved_run or {}).get("early_stopping")
    if state:
        watch.best, watch.waited, watch.best_epoch = state["best"], state["waited"], state["best_epoch"]
        # The best weights: saved apart when they differ from the model's, else the model's own.
        # (called before the model moves to the resume weights, so its own are the saved ones)
        best = resumed.best_params
        if best is None and state["best_epoch"] is not None:
            best = resumed.model.parameters()
        if best is not None:
            with model.backend.activate():
                watch.best_params = [model.backend.asarray(best[k], model.dtype, copy=True)
                                     for k in model.parameters()]
    return watch


def _banner(model, dataset, transform: Transform, head: Head, s: dict, opt, n_train: int, val,
            resuming: bool) -> str:
    """One line: backend, device, dtype, data shape, architecture, parameters, training plan."""
    backend = model.backend
    widths = [str(model.n_inputs)] + [str(layer.out_features) for layer in model.layers
                                      if hasattr(layer, "out_features")]
    parts = f"{n_train} train" + (f" / {len(val[0])} val" if val else "") + (
        f" / {len(dataset.X_test)} test" if dataset.X_test is not None else "")
    k = transform.n_targets
    kind = f"{k} classes" if transform.task == "classification" else f"regression, {k} target(s)"
    epochs = f"epochs {model.epoch + 1}..{s['epochs']}" if resuming else f"{s['epochs']} epochs"
    return (f"backprop · {backend.name} on {backend.label} · {dtype_name(model.dtype)} · "
            f"{dataset.name}: {parts}, {model.n_inputs} features, {kind} · "
            f"{'-'.join(widths)} {s['activation']}, {model.n_params:,} parameters · "
            f"{head.loss} loss, {s['optimizer']} lr {opt.base_lr:g}, batch {s['batch_size']}, {epochs}")


def _terminal_width() -> int:
    """Columns of the terminal stderr writes to; 0 when it is not one (or reports no size)."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns if sys.stderr.isatty() else 0
    except (OSError, ValueError, AttributeError):
        return 0


_STATUS = {"completed": "done", "early_stopping": "stopped early", "interrupted": "interrupted",
           "diverged": "diverged (weights kept from before the bad epoch)"}


def _canonical(name: str) -> str:
    return {"momentum": "sgd", "nesterov": "sgd"}.get(name, name)


def _data_ref(name: str) -> str:
    return os.path.abspath(name) if os.path.exists(name) else name


def _plots(folder: str, model, head: Head, transform: Transform, dataset, X, y, records) -> list[str]:
    from .. import plots

    written = [plots.curves(records, os.path.join(folder, "curves.png"),
                            f"{dataset.name}: loss and accuracy per epoch")]
    if X.shape[1] == 2 and transform.task == "classification":
        written.append(plots.decision_boundary(
            lambda G: head.class_scores(model, transform.inputs(G)), X, transform.targets(y),
            transform.classes, os.path.join(folder, "decision_boundary.png"),
            f"{dataset.name}: decision boundary (training data)"))
    elif X.shape[1] == 1 and transform.task == "regression" and transform.n_targets == 1:
        written.append(plots.fitted_curve(
            lambda G: transform.outputs(np.asarray(model.predict(transform.inputs(G)))), X, y,
            os.path.join(folder, "fit.png"), f"{dataset.name}: the network's curve"))
    return written

