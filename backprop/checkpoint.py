"""Checkpoints: one safetensors file holding everything needed to use or resume a model.

Why safetensors: loading it never executes code (unlike pickle, and so unlike
``torch.save``), it maps straight to NumPy arrays, and PyTorch, JAX and the
Hugging Face tools read it too. Its JSON header carries our metadata: the
architecture, dtype, seed, epoch, loss, optimizer settings and step count, the
shuffle RNG's state, the history, and whatever the caller adds (the command line
adds the data transform and the class names).

Tensors, by name:

``param.{i}.{W|b}``   the model's weights (what predict uses)
``opt.{i}.{name}.{key}``  optimizer state (momenta, moments), one per parameter
``resume.{...}``      weights to continue training from, when they differ from
                      ``param`` (early stopping restored its best weights)
``best.{...}``        early stopping's best weights so far, when they differ
``extra.{name}``      the caller's arrays

A SHA-256 over all tensor bytes sits in the header, so a flipped bit anywhere is
reported instead of silently loaded. Files are written to a temporary name and
renamed over the target, so a crash mid-save leaves the previous checkpoint whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backends import dtype_name, to_numpy_any

from . import activations, optimizers, schedules
from .layers import Dense, Layer
from .model import Sequential
from .training import History

FORMAT = "backprop.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a usable backprop checkpoint; the message says what to do."""


@dataclass
class Checkpoint:
    """What :func:`load` returns: the model plus everything saved beside it."""

    model: Sequential
    extra: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    resume_params: dict[str, np.ndarray] | None = None
    best_params: dict[str, np.ndarray] | None = None


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
        from . import initializers

        known = set(initializers.INITIALIZERS) | {"auto"}
        if not isinstance(config.get("init"), str) or config["init"] not in known:
            config["init"] = "glorot_uniform"  # a custom initializer: the saved weights replace it anyway
        return Dense(**config)
    return activations.ACTIVATIONS[spec["type"]](**config)


def _optimizer_meta(opt: optimizers.Optimizer) -> dict:
    config = opt.config()
    config.pop("schedule")
    return {"name": opt.name, "config": config, "t": opt.t,
            "schedule": {"name": opt.schedule.name, "config": opt.schedule.config()},
            "state_keys": [sorted(s) for s in opt.state]}


def _optimizer_from_meta(meta: dict) -> optimizers.Optimizer:
    classes = {cls.name: cls for cls in (optimizers.GradientDescent, optimizers.SGD, optimizers.RMSprop,
                                         optimizers.Adam, optimizers.AdamW)}
    schedule = schedules.SCHEDULES[meta["schedule"]["name"]](**meta["schedule"]["config"])
    config = dict(meta["config"])
    lr = config.pop("lr")
    opt = classes[meta["name"]](lr, schedule=schedule, **config)
    opt.t = int(meta["t"])
    return opt


# -- writing ---------------------------------------------------------------------
def _digest(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(np.ascontiguousarray(tensors[name]).tobytes())
    return h.hexdigest()


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        if os.path.exists(tmp):
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
    if not os.access(folder, os.W_OK):
        raise CheckpointError(f"cannot save to {path}: the folder {folder} is not writable")
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
         arrays: dict[str, Any] | None = None, resume_params: dict[str, Any] | None = None,
         best_params: dict[str, Any] | None = None) -> None:
    """Save ``model`` (weights, optimizer state, RNG state, epoch, history) to ``path``.

    Parameters
    ----------
    extra : JSON-serializable dict stored in the header (e.g. the data transform)
    arrays : host or device arrays stored beside it (``extra.{name}``)
    resume_params, best_params : parameter dicts named as ``model.parameters()``
    """
    from safetensors.numpy import save as st_save

    tensors = {f"param.{k}": v for k, v in _host(model.parameters()).items()}
    names = list(model.parameters())
    opt = model.optimizer
    if opt is not None:
        for name, state in zip(names, opt.state):
            tensors.update({f"opt.{name}.{k}": v for k, v in _host(state).items()})
    for prefix, group in (("resume", resume_params), ("best", best_params)):
        if group is not None:
            tensors.update({f"{prefix}.{k}": v for k, v in _host(group).items()})
    tensors.update({f"extra.{k}": v for k, v in _host(arrays or {}).items()})

    from . import __version__

    history = model.history
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "backprop_version": __version__,
        "layers": [_layer_spec(layer) for layer in model.layers],
        "dtype": dtype_name(model.dtype), "seed": model.seed, "tf32": model.backend.tf32,
        "trained_on": model.backend.label, "epoch": model.epoch,
        "loss": None if model.loss is None else model.loss.name,
        "optimizer": None if opt is None else _optimizer_meta(opt),
        "shuffle_rng": model.shuffle_rng.get_state(),
        "history": None if history is None else {
            "records": history.records, "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early},
        "extra": extra or {},
        "sha256": _digest(tensors),
    }
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
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer backprop ({meta.get('backprop_version')}): "
                              "upgrade backprop to read it")
    if tensors and _digest(data) != meta.get("sha256"):
        raise CheckpointError(f"{path} is corrupted (its checksum does not match its contents); "
                              "use an earlier copy")
    return meta, data


def load(path: str, device: str = "cpu", dtype: str | None = None) -> Checkpoint:
    """Load a checkpoint onto ``device`` (a GPU-trained model loads on a CPU-only machine).

    The optimizer, its state, the shuffle RNG, the epoch counter and the history
    come back too, so ``model.fit`` continues exactly where the saved run stopped.
    """
    meta, data = _read(path)
    try:
        layers = [_layer_from_spec(spec) for spec in meta["layers"]]
        model = Sequential(layers, device=device, dtype=dtype or meta["dtype"], seed=meta["seed"],
                           tf32=bool(meta.get("tf32", False)))
        params = {k[len("param."):]: v for k, v in data.items() if k.startswith("param.")}
        model.set_parameters(params)
        if set(params) != set(model.parameters()):
            raise KeyError("parameters")
        model.epoch = int(meta["epoch"])
        from . import losses

        model.loss = None if meta["loss"] is None else losses.get(meta["loss"])
        model.shuffle_rng.set_state(meta["shuffle_rng"])
        if meta.get("history"):
            history = History()
            history.records = meta["history"]["records"]
            history.best_epoch = meta["history"]["best_epoch"]
            history.stopped_early = meta["history"]["stopped_early"]
            model.history = history
        if meta.get("optimizer"):
            opt = _optimizer_from_meta(meta["optimizer"])
            names, own = list(model.parameters()), model._param_list()
            keys = meta["optimizer"]["state_keys"]
            if keys:
                with model.backend.activate():
                    opt.state = [{k: model.backend.asarray(data[f"opt.{name}.{k}"], model.dtype, copy=True)
                                  for k in ks} for name, ks in zip(names, keys)]
                opt._ids = tuple(map(id, own))
            model.optimizer = opt
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path} is a backprop checkpoint but its contents do not fit together "
                              f"({type(exc).__name__}: {exc}): it may come from an incompatible "
                              "version") from None

    def group(prefix: str) -> dict[str, np.ndarray] | None:
        found = {k[len(prefix) + 1:]: v for k, v in data.items() if k.startswith(prefix + ".")}
        return found or None

    return Checkpoint(model, meta.get("extra", {}), group("extra") or {}, group("resume"), group("best"))
