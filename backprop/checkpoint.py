"""Checkpoints: one safetensors file holding everything needed to use or resume a model.

Why safetensors: loading it never executes code (unlike pickle, and so unlike
``torch.save``), it maps straight to NumPy arrays, and PyTorch, JAX and the
Hugging Face tools read it too. Its JSON header carries our metadata: the
architecture, dtype and seed, and the model's whole :class:`FitState` (epoch,
loss, optimizer settings and step count, shuffle RNG, history, early-stopping
progress), plus whatever the caller adds (a training run adds its data settings,
the data transform and the class names).

Tensors, by name:

``param.{i}.{W|b}``        the model's weights (what predict uses)
``opt.{i}.{name}.{key}``   optimizer state (momenta, moments), one per parameter
``resume.{...}``           weights to continue training from, when they differ from
                           ``param`` (early stopping restored its best weights)
``best.{...}``             early stopping's best weights so far
``extra.{name}``           the caller's arrays

A SHA-256 over all tensor bytes and the rest of the header sits in the header,
so a flipped bit anywhere is reported instead of silently loaded (format 1 hashed
the tensors only). Files are written to a temporary name and
renamed over the target, so a crash mid-save leaves the previous checkpoint whole.

Format versions: 1 (backprop 0.1.0) kept early stopping's progress in the training
run's extra settings; 2 keeps it in the header's ``early_stopping``. Both load.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backends import HostRNG, dtype_name, to_numpy_any

from . import activations, initializers, losses, optimizers, schedules
from ._version import __version__
from .errors import CheckpointError, ConfigError
from .layers import Dense, Layer
from .lbfgs import LBFGS
from .model import Sequential
from .second_order import LevenbergMarquardt, Newton
from .training import EarlyStopping, History

FORMAT = "backprop.checkpoint"
FORMAT_VERSION = 2


@dataclass
class Checkpoint:
    """What :func:`load` returns: the model (with its fit state) plus the caller's extras."""

    model: Sequential
    extra: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


# -- architecture ----------------------------------------------------------------
def _layer_spec(layer: Layer) -> dict:
    if isinstance(layer, Dense):
        return {"type": "dense", "config": layer.config()}
    if isinstance(layer, activations.Activation):
        return {"type": layer.name, "config": layer.config()}
    raise CheckpointError(f"cannot save a {type(layer).__name__} layer: only Dense and activations are saved")


def _layer_from_spec(spec: dict) -> Layer:
    config = dict(spec.get("config", {}))
    if spec["type"] == "dense":
        known = set(initializers.INITIALIZERS) | {"auto"}
        if not isinstance(config.get("init"), str) or config["init"] not in known:
            config["init"] = "glorot_uniform"  # a custom initializer: the saved weights replace it anyway
        return Dense(**config)
    if spec["type"] not in activations.ACTIVATIONS:
        raise CheckpointError(f"unknown layer type {spec['type']!r}")
    return activations.ACTIVATIONS[spec["type"]](**config)


OPTIMIZER_CLASSES = {cls.name: cls for cls in (optimizers.GradientDescent, optimizers.SGD,
                                               optimizers.RMSprop, optimizers.Adam, optimizers.AdamW,
                                               LevenbergMarquardt, Newton, LBFGS)}


def _optimizer_meta(opt: optimizers.Optimizer) -> dict:
    config = opt.config()
    config.pop("schedule")
    return {"name": opt.name, "config": config, "t": opt.t,
            "schedule": {"name": opt.schedule.name, "config": opt.schedule.config()},
            "state_keys": [sorted(s) for s in opt.state]}


def _optimizer_from_meta(meta: dict) -> optimizers.Optimizer:
    schedule = schedules.SCHEDULES[meta["schedule"]["name"]](**meta["schedule"]["config"])
    config = dict(meta["config"])
    lr = config.pop("lr", None)  # full-batch optimizers have none
    opt = OPTIMIZER_CLASSES[meta["name"]](lr, schedule=schedule, **config)
    opt.t = int(meta["t"])
    return opt


# -- writing ---------------------------------------------------------------------
def _digest(tensors: dict[str, np.ndarray], meta: dict | None = None) -> str:
    """SHA-256 of every tensor and (format 2 on) of the header without its digest."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(np.ascontiguousarray(tensors[name]).tobytes())
    if meta is not None:
        rest = {k: v for k, v in meta.items() if k != "sha256"}
        h.update(json.dumps(rest, sort_keys=True, allow_nan=True).encode())
    return h.hexdigest()


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Raises
    ------
    CheckpointError
        The file could not be written (full disk, no permission); ``path`` is untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        raise CheckpointError(f"cannot write {path} ({exc.strerror or exc}); any earlier file there "
                              "is left as it was") from None
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        raise


def check_writable(path: str) -> None:
    """Fail before training, not after it, when ``path`` cannot take a checkpoint.

    An existing file that is not a backprop checkpoint (a data file, say) is never
    overwritten.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CheckpointError(f"cannot save to {path}: the folder {folder} does not exist (create it first)")
    try:  # a real probe: os.access says yes to root even where writing fails (/proc, read-only mounts)
        fd, probe = tempfile.mkstemp(prefix=".backprop-probe.", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise CheckpointError(f"cannot save to {path}: the folder {folder} is not writable "
                              f"({exc.strerror or exc})") from None
    if os.path.isdir(path):
        raise CheckpointError(f"cannot save to {path}: it is a folder; give a file name "
                              "such as model.safetensors")
    if os.path.exists(path):
        try:
            read_header(path)
        except CheckpointError:
            raise CheckpointError(f"{path} exists and is not a backprop checkpoint: it is left alone; "
                                  "choose another --save path") from None


def _host(arrays: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(to_numpy_any(v)) for k, v in arrays.items()}


def save(model: Sequential, path: str, *, extra: dict | None = None,
         arrays: dict[str, Any] | None = None) -> None:
    """Save ``model`` with its whole fit state to ``path``.

    Parameters
    ----------
    extra : JSON-serializable dict stored in the header (e.g. the data transform)
    arrays : host or device arrays stored beside it (``extra.{name}``)
    """
    from safetensors.numpy import save as st_save

    state = model.state
    names = list(model.parameters())
    tensors = {f"param.{k}": v for k, v in _host(model.parameters()).items()}
    opt = state.optimizer
    if opt is not None:
        for name, slots in zip(names, opt.state):
            tensors.update({f"opt.{name}.{k}": v for k, v in _host(slots).items()})
    watch = state.early_stopping
    for prefix, group in (("resume", state.resume_params),
                          ("best", None if watch is None else watch.best_params)):
        if group is not None:
            tensors.update({f"{prefix}.{k}": v for k, v in _host(dict(zip(names, group))).items()})
    tensors.update({f"extra.{k}": v for k, v in _host(arrays or {}).items()})

    history = state.history
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "backprop_version": __version__,
        "layers": [_layer_spec(layer) for layer in model.layers],
        "dtype": dtype_name(model.dtype), "seed": model.seed, "tf32": model.backend.tf32,
        "trained_on": model.backend.label, "epoch": state.epoch,
        "loss": None if state.loss is None else state.loss.name,
        "optimizer": None if opt is None else _optimizer_meta(opt),
        "shuffle_rng": state.shuffle_rng.get_state(),
        "history": None if history is None else {
            "records": history.records, "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early},
        "early_stopping": None if watch is None else {
            "patience": watch.patience, "min_delta": watch.min_delta, "restore_best": watch.restore_best,
            "best": watch.best, "waited": watch.waited, "best_epoch": watch.best_epoch},
        "extra": extra or {},
    }
    meta["sha256"] = _digest(tensors, meta)
    header = {"backprop": json.dumps(meta, allow_nan=True)}
    write_atomic(path, st_save(tensors, metadata=header))


# -- reading ---------------------------------------------------------------------
def read_header(path: str) -> dict:
    """The metadata of a checkpoint, without its tensors."""
    meta, _ = _read(path, tensors=False)
    return meta


def _read(path: str, tensors: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    from safetensors import SafetensorError, safe_open

    if not os.path.exists(path):
        raise CheckpointError(f"no such checkpoint: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    try:
        with safe_open(path, framework="np") as handle:
            header = handle.metadata() or {}
            data = {k: handle.get_tensor(k) for k in handle.keys()} if tensors else {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a backprop checkpoint, or it is truncated or corrupted ({exc}); "
            "nothing was loaded: point to a file written by 'backprop train --save'"
        ) from None
    try:
        meta = json.loads(header["backprop"])
        if meta.get("format") != FORMAT:
            raise KeyError
    except (KeyError, json.JSONDecodeError, TypeError):
        raise CheckpointError(f"{path} is a safetensors file but not a backprop checkpoint") from None
    if not isinstance(meta.get("format_version", 0), int) or meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer backprop ({meta.get('backprop_version')}): "
                              "upgrade backprop to read it")
    version = meta.get("format_version", 0)
    if not isinstance(version, int):
        raise CheckpointError(f"{path} is a safetensors file but not a backprop checkpoint")
    covered = meta if version >= 2 else None  # format 1 hashed the tensors only
    if tensors and _digest(data, covered) != meta.get("sha256"):
        raise CheckpointError(f"{path} is corrupted (its checksum does not match its contents); "
                              "use an earlier copy")
    return meta, data


def _check(meta: dict, data: dict[str, np.ndarray]) -> None:
    """Refuse a header whose parts do not fit together, before anything is built from it.

    A file with a valid checksum can still be inconsistent (written by hand, or by an
    incompatible version): every problem found here is one CheckpointError.
    """
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise CheckpointError(f"its header is inconsistent ({what}): it may come from an "
                                  "incompatible version")

    for key in ("layers", "dtype", "seed", "epoch", "shuffle_rng"):
        need(key in meta, f"no {key!r}")
    layers = meta["layers"]
    need(isinstance(layers, list) and all(isinstance(s, dict) and "type" in s for s in layers), "layers")
    need(meta["dtype"] in ("float32", "float64"), f"dtype {meta['dtype']!r}")
    need(isinstance(meta["seed"], int) and meta["seed"] >= 0 and isinstance(meta["epoch"], int)
         and meta["epoch"] >= 0, "seed/epoch")
    need(meta.get("loss") is None or meta["loss"] in losses.LOSSES, f"loss {meta.get('loss')!r}")
    opt = meta.get("optimizer")
    if opt is not None:
        need(isinstance(opt, dict) and opt.get("name") in OPTIMIZER_CLASSES, "optimizer")
        need(opt.get("schedule", {}).get("name") in schedules.SCHEDULES, "schedule")
        slots = zip(_param_names(meta), opt.get("state_keys", []))
        need(all(f"opt.{name}.{k}" in data for name, keys in slots for k in keys), "optimizer state tensors")
    need({k[len("param."):] for k in data if k.startswith("param.")} == set(_param_names(meta)),
         "parameter tensors")


def _param_names(meta: dict) -> list[str]:
    return [f"{i}.{k}" for i, spec in enumerate(meta["layers"]) if spec.get("type") == "dense" for k in "Wb"]


def load(path: str, device: str = "cpu", dtype: str | None = None) -> Checkpoint:
    """Load a checkpoint onto ``device`` (a GPU-trained model loads on a CPU-only machine).

    The model's fit state comes back whole (optimizer and its moments, shuffle RNG,
    epoch counter, history, early-stopping progress), so ``model.fit`` continues
    exactly where the saved run stopped.
    """
    meta, data = _read(path)
    try:
        _check(meta, data)
        layers = [_layer_from_spec(spec) for spec in meta["layers"]]
        if meta.get("optimizer"):
            _optimizer_from_meta(meta["optimizer"])  # its settings must make an optimizer
    except (CheckpointError, ConfigError, TypeError) as exc:  # TypeError: a config with unknown keys
        raise CheckpointError(f"{path} is a backprop checkpoint but {exc}") from None
    model = Sequential(layers, device=device, dtype=dtype or meta["dtype"], seed=meta["seed"],
                       tf32=bool(meta.get("tf32", False)))
    names = list(model.parameters())
    try:
        model.set_parameters({name: data[f"param.{name}"] for name in names})
    except ValueError as exc:
        raise CheckpointError(f"{path} is a backprop checkpoint but its weights do not fit its layers "
                              f"({exc})") from None
    try:
        _restore_state(model, meta, data, names)
    except (KeyError, TypeError, ValueError) as exc:  # a v1 header written by hand, say
        raise CheckpointError(f"{path} is a backprop checkpoint but its training state is incomplete "
                              f"({type(exc).__name__}: {exc})") from None

    def group(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix) + 1:]: v for k, v in data.items() if k.startswith(prefix + ".")}

    return Checkpoint(model, meta.get("extra", {}), group("extra"))


def _restore_state(model: Sequential, meta: dict, data: dict[str, np.ndarray], names: list[str]) -> None:
    """The model's FitState from a checked header and its tensors."""
    backend, dt = model.backend, model.dtype
    opt = _optimizer_from_meta(meta["optimizer"]) if meta.get("optimizer") else None

    def device_list(prefix: str) -> list | None:
        if not any(k.startswith(prefix + ".") for k in data):
            return None
        with backend.activate():
            return [backend.asarray(data[f"{prefix}.{name}"], dt, copy=True) for name in names]

    state = model.state
    state.epoch = meta["epoch"]
    state.loss = None if meta["loss"] is None else losses.get(meta["loss"])
    state.shuffle_rng = HostRNG(meta["seed"], stream=1)
    state.shuffle_rng.set_state(meta["shuffle_rng"])
    if meta.get("history"):
        history = History()
        history.records = meta["history"]["records"]
        history.best_epoch = meta["history"]["best_epoch"]
        history.stopped_early = meta["history"]["stopped_early"]
        state.history = history
    if opt is not None:
        keys = meta["optimizer"]["state_keys"]
        if keys:
            with backend.activate():
                opt.state = [{k: backend.asarray(data[f"opt.{name}.{k}"], dt, copy=True) for k in ks}
                             for name, ks in zip(names, keys)]
        state.optimizer = opt.bind(model.uid)
    state.resume_params = device_list("resume")
    progress = meta.get("early_stopping")
    if meta.get("format_version", 1) < 2:  # version 1 kept it in the training run's settings
        progress = meta.get("extra", {}).get("train", {}).get("early_stopping")
    if progress:
        watch = EarlyStopping(**{k: progress[k] for k in ("patience", "min_delta", "restore_best", "best",
                                                          "waited", "best_epoch") if k in progress})
        watch.best_params = device_list("best")
        if watch.best_params is None and watch.best_epoch is not None:
            # Version 1 left the best weights out when they were the model's own.
            with backend.activate():
                watch.best_params = [backend.asarray(p, dt, copy=True) for p in model.parameter_list()]
        state.early_stopping = watch


__all__ = ["Checkpoint", "CheckpointError", "check_writable", "load", "read_header", "save",
           "write_atomic"]
