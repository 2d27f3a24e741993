"""Checkpoints: one safetensors file holding everything needed to use or resume a model.

Why safetensors: loading it never executes code (unlike pickle, and so unlike
``torch.save``), it maps straight to NumPy arrays, and PyTorch, JAX and the
Hugging Face tools read it too. Its JSON header carries our metadata: the
architecture, dtype and seed, and the model's whole :class:`FitState` (epoch,
loss, optimizer settings and step count, shuffle RNG, device RNG, history, early-stopping
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
the tensors only); a header that passes its checksum is still checked against the
tensors before anything is built from it (it may have been forged and re-signed).

Every file the tool writes (checkpoints, weights files, predictions, pictures) goes through
:func:`check_writable` (may this path be written?) and :func:`write_atomic` (a
temporary name renamed over the target, so a crash mid-save leaves the previous
file whole; symbolic links are followed; a killed save's leftovers are removed).

Format versions: 1 (backprop 0.1.0) kept early stopping's progress in the training
run's extra settings; 2 keeps it in the header's ``early_stopping``. Both load. The device
generator's state (``device_rng``: seed, stream, counter) joined format 2 later: a file
without it starts the generator from the model's seed, as a new model does.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import stat
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backends import FLOAT_DTYPES, DeviceRNG, HostRNG, Stream, dtype_name, to_numpy_any

from .. import layers, losses, optimizers, schedules
from .._version import __version__
from ..errors import CheckpointError, ConfigError
from ..layers import Dense, Layer
from ..model import Sequential
from ..training import EPOCH_KEYS, EarlyStopping, History

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
    try:
        return layers.spec(layer)  # an unregistered subclass would load as its parent: refused
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def _layer_from_spec(spec: dict) -> Layer:
    return layers.from_spec(spec)


def __getattr__(attr: str) -> Any:
    if attr == "OPTIMIZER_CLASSES":  # the registry's, as it is now (see optimizers.classes)
        return optimizers.classes()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def _optimizer_meta(opt: optimizers.Optimizer) -> dict:
    config = opt.config()
    config.pop("schedule")
    return {"name": opt.name, "config": config, "t": opt.t,
            "schedule": {"name": opt.schedule.name, "config": opt.schedule.config()},
            "state_keys": [sorted(s) for s in opt.state]}


def _optimizer_from_meta(meta: dict) -> optimizers.Optimizer:
    schedule = schedules.classes()[meta["schedule"]["name"]](**meta["schedule"]["config"])
    config = dict(meta["config"])
    lr = config.pop("lr", None)  # full-batch optimizers have none
    opt = optimizers.classes()[meta["name"]](lr, schedule=schedule, **config)
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


TEMP_STALE_S = 24 * 3600.0
"""A temporary file of ours this old is stale, whoever wrote it (a writer may run on another machine
sharing the folder, where its process id means nothing here)."""

TEMP_ORPHAN_S = 60.0
"""...and one whose writer's process is gone is stale once untouched this long: a live writer keeps
touching its file, and the delay keeps a same-numbered process on another machine safe."""


def _temp_pattern(name: str) -> re.Pattern:
    # ".NAME.PID.XXXXXXXX.tmp", what write_atomic makes (without PID before this version).
    return re.compile(rf"\.{re.escape(name)}\.(?:(\d+)\.)?[A-Za-z0-9_]{{8}}\.tmp")


def _process_gone(pid: int) -> bool:
    if os.name != "posix" or pid <= 0:
        return False  # no safe way to ask: leave it to the age rule
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists but belongs to someone else
        return False
    return False


def remove_stale_temps(path: str) -> list[str]:
    """Remove temporary files a killed save of ``path`` left beside it; returns their paths.

    Only names of our own pattern (``.NAME.PID.XXXXXXXX.tmp``) count, and only when stale:
    untouched for :data:`TEMP_STALE_S`, or for :data:`TEMP_ORPHAN_S` with their writer's
    process gone.
    """
    folder, name = os.path.split(path)
    pattern, now, removed = _temp_pattern(name), time.time(), []
    try:
        entries = list(os.scandir(folder or "."))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
            orphan = match[1] is not None and _process_gone(int(match[1]))
            if age >= TEMP_STALE_S or (orphan and age >= TEMP_ORPHAN_S):
                os.remove(entry.path)
                removed.append(entry.path)
        except OSError:
            pass  # gone already, or not ours to remove
    return removed


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A symbolic link is followed: the file it points to is replaced and the link stays (a
    ``latest.safetensors`` link keeps pointing at its run). Stale temporary files of earlier,
    killed saves of the same path are removed first.

    Raises
    ------
    CheckpointError
        The file could not be written (full disk, no permission); ``path`` is untouched.
    """
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    remove_stale_temps(target)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.{os.getpid()}.", suffix=".tmp",
                                   dir=folder)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)  # atomic on POSIX and Windows
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        raise CheckpointError(f"cannot write {path} ({exc.strerror or exc}); any earlier file there "
                              "is left as it was") from None
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        raise


WRITERS = {"checkpoint": ("a backprop checkpoint", "choose another --save path"),
           "predictions": ("a predictions file written by backprop",
                           "choose another --out file, or add --force to replace it"),
           "picture": ("a picture drawn by backprop", "choose another --plot folder, or move the file"),
           "weights": ("a weights file written by save_weights", "choose another file"),
           "onnx": ("an ONNX model written by backprop", "choose another file, or add --force to replace it")}
"""What each kind of file we write may replace ("ours"), and what to tell the user otherwise."""

PICTURE_SOFTWARE = f"backprop {__version__}"
"""The creator mark our pictures carry (a PNG's ``Software``, an SVG's or PDF's ``Creator``), by
which a later run knows a picture for its own."""


def _is_safetensors(path: str) -> bool:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="np"):
            return True
    except (SafetensorError, OSError, ValueError):
        return False


def _is_predictions(path: str) -> bool:
    """The file starts with the header ``backprop predict`` writes (``prediction``, ``p_CLASS``...,
    or ``prediction_0``...)."""
    with open(path, "rb") as handle:
        line = handle.read(1 << 16).split(b"\n", 1)[0].rstrip(b"\r")
    try:
        fields = next(csv.reader([line.decode("utf-8")]))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return False
    return fields[0] in ("prediction", "prediction_0") and all(
        re.fullmatch(r"prediction(_\d+)?|p_.*", f, re.DOTALL) for f in fields)


def _is_our_picture(path: str) -> bool:
    """A picture whose creator mark names backprop: a PNG's ``Software`` text chunk (before the
    image data), an SVG's creator (matplotlib writes it as the agent's title, at the top), a
    PDF's ``/Creator`` (in the info dictionary, at the end)."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 14)
        handle.seek(max(0, os.path.getsize(path) - (1 << 14)))
        tail = handle.read()
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return b"tEXtSoftware\x00backprop " in head
    if head.startswith(b"%PDF"):
        return b"/Creator (backprop " in tail
    return b"<svg" in head and b"<dc:title>backprop " in head


def _is_our_onnx(path: str) -> bool:
    """An ONNX model whose producer is backprop: protobuf writes the fields in number order, so
    the file opens with its IR version (field 1, a varint) and then the producer's name (field 2)."""
    with open(path, "rb") as handle:
        head = handle.read(64)
    return re.match(rb"\x08[\x00-\x7f]\x12\x08backprop", head) is not None


def _is_ours(path: str, kind: str) -> bool:
    if kind == "weights":
        from .weights import written_here  # the weights format's owner (it imports this module)

        return written_here(path)
    if kind == "checkpoint":
        try:
            read_header(path)
            return True
        except CheckpointError:
            return False
    if kind == "onnx":
        return _is_our_onnx(path)
    return _is_predictions(path) if kind == "predictions" else _is_our_picture(path)


def check_writable(path: str, kind: str = "checkpoint", *, inputs: Sequence[str] = (),
                   force: bool = False) -> None:
    """Fail before the work, not after it, when ``path`` cannot take a file of ``kind``.

    The one rule for every file the tool writes (``kind`` one of :data:`WRITERS`): through a
    symbolic link, the file it points to is what counts; never over the command's own ``inputs``
    (same file, whatever the name) nor, for anything but a checkpoint, over a checkpoint; an
    existing non-empty file that is not ours (see :data:`WRITERS`) only with ``force``
    (checkpoints: never).
    """
    target = os.path.realpath(path)
    _check_folder(path, os.path.dirname(target))
    if os.path.isdir(target):
        raise CheckpointError(f"cannot write {path}: it is a folder; give a file name")
    if os.path.exists(target):
        _check_replaceable(path, target, kind, inputs, force)


def _check_folder(path: str, folder: str) -> None:
    """The folder ``path`` goes into exists and takes a new file."""
    if not os.path.isdir(folder):
        raise CheckpointError(f"cannot write {path}: the folder {folder} does not exist (create it first)")
    try:  # a real probe: os.access says yes to root even where writing fails (/proc, read-only mounts)
        fd, probe = tempfile.mkstemp(prefix=".backprop-probe.", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise CheckpointError(f"cannot write {path}: the folder {folder} is not writable "
                              f"({exc.strerror or exc})") from None


def _check_replaceable(path: str, target: str, kind: str, inputs: Sequence[str], force: bool) -> None:
    """The existing file ``target`` (what ``path`` resolves to) may be replaced by a file of ``kind``."""
    what, advice = WRITERS[kind]
    if not stat.S_ISREG(os.stat(target).st_mode):
        raise CheckpointError(f"cannot write {path}: it is not a regular file (a device or a pipe)")
    if _spares_checkpoint(target, kind):
        raise CheckpointError(f"{path} is a checkpoint: it is left alone; choose another file")
    if any(os.path.exists(p) and os.path.samefile(p, target) for p in inputs):
        raise CheckpointError(f"cannot write {path}: it is this command's own input; choose another file")
    if os.path.getsize(target) and not _is_ours(target, kind) and not (force and kind != "checkpoint"):
        raise CheckpointError(f"{path} exists and is not {what}: it is left alone; {advice}")


def _spares_checkpoint(target: str, kind: str) -> bool:
    """Whether a file of ``kind`` must keep off the existing ``target`` as a checkpoint. Weights files
    are safetensors too: they may replace their own kind (the rule after), never a checkpoint;
    other kinds keep off every safetensors file."""
    if kind == "weights":
        return _is_ours(target, "checkpoint")
    return kind != "checkpoint" and (target.endswith(".safetensors") or _is_safetensors(target))


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

    tensors = _tensors(model, path, arrays)
    meta = _header(model, extra)
    meta["sha256"] = _digest(tensors, meta)
    header = {"backprop": json.dumps(meta, allow_nan=True)}
    check_writable(path)  # a Python caller gets the rule the command line has
    write_atomic(path, st_save(tensors, metadata=header))


def _tensors(model: Sequential, path: str, arrays: dict[str, Any] | None) -> dict[str, np.ndarray]:
    """Every tensor the file holds, host copies by name: the weights (refused when not finite),
    the fit state's, the layers' buffers and the caller's ``arrays``."""
    tensors = {f"param.{k}": v for k, v in _host(model.parameters()).items()}
    bad = [k for k, v in tensors.items() if not np.isfinite(v).all()]
    if bad:  # such a file could never load again: refuse, and whatever is at path stays
        raise CheckpointError(f"not saved: the weights {', '.join(k[len('param.'):] for k in bad)} hold NaN "
                              f"or infinity (set them, or retrain); {path} is left as it was")
    tensors.update(_state_tensors(model.state, list(model.parameters())))
    for i, layer in enumerate(model.layers):  # non-trained state, as "buffer.{layer}.{name}"
        tensors.update({f"buffer.{i}.{k}": v for k, v in _host(getattr(layer, "buffers", {})).items()})
    tensors.update({f"extra.{k}": v for k, v in _host(arrays or {}).items()})
    return tensors


def _state_tensors(state: Any, names: list[str]) -> dict[str, np.ndarray]:
    """The fit state's arrays: optimizer slots, resume weights and early stopping's best weights."""
    tensors = {}
    opt, watch = state.optimizer, state.early_stopping
    if opt is not None:
        for name, slots in zip(names, opt.state):
            tensors.update({f"opt.{name}.{k}": v for k, v in _host(slots).items()})
    for prefix, group in (("resume", state.resume_params),
                          ("best", None if watch is None else watch.best_params)):
        if group is not None:
            tensors.update({f"{prefix}.{k}": v for k, v in _host(dict(zip(names, group))).items()})
    return tensors


def _header(model: Sequential, extra: dict | None) -> dict:
    """The header's metadata (without its digest): the architecture and the whole fit state."""
    state = model.state
    opt, history, watch = state.optimizer, state.history, state.early_stopping
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "backprop_version": __version__,
        "layers": [_layer_spec(layer) for layer in model.layers],
        **_input_shape_meta(model),
        "dtype": dtype_name(model.dtype), "seed": model.seed, "tf32": model.backend.tf32,
        "trained_on": model.backend.label, "epoch": state.epoch,
        "loss": None if state.loss is None else state.loss.name,
        "optimizer": None if opt is None else _optimizer_meta(opt),
        "shuffle_rng": state.shuffle_rng.get_state(),
        "device_rng": None if state.device_rng is None else state.device_rng.get_state(),
        "history": None if history is None else {
            "records": history.records, "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early},
        "early_stopping": None if watch is None else {
            "patience": watch.patience, "min_delta": watch.min_delta, "restore_best": watch.restore_best,
            "best": watch.best, "waited": watch.waited, "best_epoch": watch.best_epoch},
        "extra": extra or {},
    }


# -- reading ---------------------------------------------------------------------
def read_header(path: str) -> dict:
    """The metadata of a checkpoint, without its tensors."""
    meta, _ = _read(path, tensors=False)
    return meta


def _read(path: str, tensors: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """The checked header and (with ``tensors``) the tensors, their digest verified."""
    header, data = _open(path, tensors)
    meta = _parse_header(path, header)
    covered = meta if meta.get("format_version", 0) >= 2 else None  # format 1 hashed the tensors only
    try:
        digest = _digest(data, covered) if tensors else None
    except RecursionError:  # nested too deep to encode again (json decodes a little deeper)
        raise CheckpointError(f"{path} is a safetensors file but not a backprop checkpoint") from None
    if tensors and digest != meta.get("sha256"):
        raise CheckpointError(f"{path} is corrupted (its checksum does not match its contents); "
                              "use an earlier copy")
    return meta, data


def _open(path: str, tensors: bool) -> tuple[dict, dict[str, np.ndarray]]:
    """The safetensors file's metadata and (with ``tensors``) its tensors by name."""
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
    return header, data


def _parse_header(path: str, header: dict) -> dict:
    """Our metadata from the safetensors header: a backprop checkpoint of a version we read."""
    try:
        meta = json.loads(header["backprop"])
    except (KeyError, ValueError, TypeError, RecursionError):  # RecursionError: "[[[[..." nested deep
        meta = None
    version = meta.get("format_version", 0) if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not _count(version):
        raise CheckpointError(f"{path} is a safetensors file but not a backprop checkpoint")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer backprop ({meta.get('backprop_version')}): "
                              "upgrade backprop to read it")
    return meta


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise CheckpointError(f"its header is inconsistent ({what}): it may come from an incompatible "
                              "version, or have been edited")


def _count(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _named(value: Any, registry: dict) -> bool:
    """``value`` is a name ``registry`` knows (a list or a dict is no name, and no dict key)."""
    return isinstance(value, str) and value in registry


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check(meta: dict, data: dict[str, np.ndarray]) -> list[Layer]:
    """Refuse a header whose parts do not fit together, before anything is built from it.

    A file with a valid checksum can still be inconsistent (written by hand, by an
    incompatible version, or forged and re-signed): every problem found here is one
    CheckpointError, and nothing is allocated from the header's numbers before they
    have been matched against the tensors the file really holds.
    """
    for key in ("layers", "dtype", "seed", "epoch", "shuffle_rng"):
        _need(key in meta, f"no {key!r}")
    _need(meta["dtype"] in FLOAT_DTYPES, f"dtype {meta['dtype']!r}")
    _need(_count(meta["seed"]) and _count(meta["epoch"]), "seed/epoch")
    _need(meta.get("loss") is None or _named(meta["loss"], losses.classes()), f"loss {meta.get('loss')!r}")
    _need(isinstance(meta.get("extra", {}), dict), "extra")
    built = _check_layers(meta["layers"], data, meta.get("input_shape"))
    _check_optimizer(meta.get("optimizer"), data, _names(built))
    try:  # the generator itself says whether the state is one of its own
        HostRNG(meta["seed"], stream=Stream.SHUFFLE).set_state(meta["shuffle_rng"])
    except (TypeError, ValueError, KeyError, OverflowError):
        _need(False, "shuffle_rng")
    if meta.get("device_rng") is not None:
        try:  # as for the shuffle: the generator itself says whether the state is one of its own
            DeviceRNG(meta["seed"]).set_state(meta["device_rng"])
        except (TypeError, ValueError, KeyError, OverflowError):
            _need(False, "device_rng")
    _check_history(meta.get("history"))
    _check_early_stopping(_progress(meta))
    _check_run(meta, data, built)
    return built


def _check_layers(specs: Any, data: dict[str, np.ndarray], input_shape: Any = None) -> list[Layer]:
    """Every layer registered and made from its settings (nothing allocated yet), every parameter
    and buffer tensor the file holds of the shape those settings give (so building the model
    allocates no more than the file holds), each layer taking the previous one's width.
    Returns the layers, unbuilt."""
    _need(isinstance(specs, list) and len(specs) > 0 and all(
        isinstance(s, dict) and isinstance(s.get("type"), str) and isinstance(s.get("config", {}), dict)
        for s in specs), "layers")
    built = [_check_layer(i, spec, data) for i, spec in enumerate(specs)]
    _widths(built, input_shape)
    for prefix in ("param", "buffer"):
        saved = {k[len(prefix) + 1:] for k in data if k.startswith(prefix + ".")}
        _need(saved == set(_names(built, prefix)), f"{prefix} tensors")
    return built


def _check_layer(i: int, spec: dict, data: dict[str, np.ndarray]) -> Layer:
    """Layer ``i`` made from its settings (unbuilt), its tensors in the file of the shapes they give."""
    _need(_named(spec["type"], layers.classes()), f"unknown layer type {spec['type']!r}")
    try:
        layer = _layer_from_spec(spec)
    except (ConfigError, TypeError, ValueError, OverflowError) as exc:  # TypeError: unknown keys
        _need(False, f"layer {i}: {exc}")
    for prefix, shapes in (("param", layer.param_shapes()), ("buffer", layer.buffer_shapes())):
        found = {k: data.get(f"{prefix}.{i}.{k}") for k in shapes}
        fits = all(v is not None and v.shape == shapes[k] and v.dtype.kind == "f"
                   for k, v in found.items())
        _need(fits,
              f"layer {i} ({spec['type']}) needs {_shapes(shapes)} but its {prefix} tensors are "
              f"{_shapes({k: None if v is None else v.shape for k, v in found.items()})}")
    return layer


def _input_shape_meta(model: Sequential) -> dict:
    """``{"input_shape": [...]}`` where no layer declares the model's input shape (a model of layers
    that infer theirs), else nothing: the files of other models keep their bytes."""
    return {} if model.input_shape == _declared(model.layers) else {"input_shape": list(model.input_shape)}


def _declared(built: list[Layer]) -> tuple[int, ...] | None:
    """The input shape the first layer that declares one declares (as :class:`Sequential` reads it)."""
    return next((layer.input_shape for layer in built if layer.input_shape is not None), None)


def _widths(built: list[Layer], input_shape: Any = None) -> tuple[int, int]:
    """The input and output widths (entries per sample) of unbuilt layers (as :class:`Sequential`
    finds them), each layer taking the previous one's output; ``input_shape``: the saved one."""
    _need(input_shape is None or (isinstance(input_shape, list) and input_shape
                                  and all(_count(d, 1) for d in input_shape)), "input_shape")
    shape = _declared(built) if input_shape is None else tuple(input_shape)
    _need(shape is not None, "no layer that fixes the input width, such as a Dense")
    n_in = math.prod(shape)
    for i, layer in enumerate(built):
        try:
            shape = layer.output_shape(shape)
        except ConfigError as exc:
            _need(False, f"layer {i}: {exc}")
    return n_in, math.prod(shape)


def _shapes(shapes: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in shapes.items())


def _check_optimizer(opt: Any, data: dict[str, np.ndarray], names: list[str]) -> None:
    """The optimizer's settings, step count and one state tensor per slot, shaped as its parameter."""
    if opt is None:
        return
    _need(isinstance(opt, dict) and _named(opt.get("name"), optimizers.classes())
          and isinstance(opt.get("config"), dict) and _count(opt.get("t")), "optimizer")
    schedule = opt.get("schedule")
    _need(isinstance(schedule, dict) and _named(schedule.get("name"), schedules.classes())
          and isinstance(schedule.get("config"), dict), "schedule")
    keys = opt.get("state_keys", [])
    _need(isinstance(keys, list) and all(_strings(k) for k in keys) and len(keys) in (0, len(names)),
          "optimizer state keys")
    for name, slots in zip(names, keys):
        for key in slots:
            tensor = data.get(f"opt.{name}.{key}")
            _need(tensor is not None and tensor.shape == data[f"param.{name}"].shape,
                  f"optimizer state {name}")


def _check_history(history: Any) -> None:
    if history is None:
        return
    _need(isinstance(history, dict) and isinstance(history.get("records"), list)
          and all(isinstance(r, dict) and _count(r.get("epoch"), 1) and set(r) <= set(EPOCH_KEYS)
                  and all(v is None or _number(v) for v in r.values()) for r in history["records"])
          and (history.get("best_epoch") is None or _count(history["best_epoch"]))
          and isinstance(history.get("stopped_early"), bool), "history")


def _check_early_stopping(progress: Any) -> None:
    if not progress:
        return
    types = {"patience": lambda v: _count(v, 1), "min_delta": _number, "best": _number, "waited": _count,
             "restore_best": lambda v: isinstance(v, bool), "best_epoch": lambda v: v is None or _count(v)}
    _need(isinstance(progress, dict) and all(k in types and types[k](v) for k, v in progress.items()),
          "early stopping")


RUN_KEYS = ("train", "transform", "head", "feature_names", "target_name")
"""The header's ``extra`` entries a training run writes (see :meth:`backprop.runner.Run.save`)."""


def _check_run(meta: dict, data: dict[str, np.ndarray], built: list[Layer]) -> None:
    """A training run's entries in ``extra``: its settings, data transform and output head, each of
    the right type and fitting the network's input and output widths (``predict`` indexes the
    class names by output, ``resume`` trains on the settings)."""
    extra = meta.get("extra", {})
    if not any(key in extra for key in RUN_KEYS):
        return  # a model saved from Python with its own extras, or none
    n_in, n_out = _widths(built, meta.get("input_shape"))
    transform, head = extra.get("transform"), extra.get("head")
    _need(isinstance(transform, dict) and transform.get("task") in ("classification", "regression"),
          "the data transform")
    _need(isinstance(head, dict) and set(head) == {"loss", "outputs", "activation", "encoding"}
          and _named(head["loss"], losses.classes()), "the output head")
    _check_head(transform, head, n_out, meta["layers"][-1]["type"])
    columns = _check_inputs(transform, data, n_in)
    _check_scales(data, ("x_mean", "x_std"), n_in)
    _check_scales(data, ("y_mean", "y_std"), n_out if transform["task"] == "regression" else 0)
    names = extra.get("feature_names")
    _need(names is None or (_strings(names) and len(names) == columns and len(set(names)) == len(names)),
          "the feature names (one distinct name per column)")
    _need(isinstance(extra.get("target_name"), (str, type(None))), "the target name")
    _check_settings(extra.get("train"))


def _check_head(transform: dict, head: dict, n_out: int, last_layer: str) -> None:
    """The output head is the one its task gives for its classes (or targets), with ``n_out``
    outputs, its activation the network's last layer (``last_layer``, a saved type)."""
    from .heads import Head

    classes = transform.get("classes")
    if transform["task"] == "classification":
        _need(_strings(classes) and len(set(classes)) == len(classes) >= 2, "the class names")
        k = len(classes)
    else:
        _need(classes is None, "class names on a regression")
        k = head["outputs"]
    try:
        expected = Head.for_task(transform["task"], k, head["loss"])
    except ConfigError:
        expected = None
    _need(Head(**head) == expected and head["outputs"] == n_out
          and (head["activation"] or Dense.name) == last_layer,
          f"the output head {head} does not fit {k} targets and {n_out} outputs")


def _check_inputs(transform: dict, data: dict[str, np.ndarray], n_in: int) -> int:
    """The computed features (if any) against the network's ``n_in`` inputs; returns the number
    of raw columns the data file has."""
    from . import features

    shape = transform.get("input_shape")
    sizes_ok = isinstance(shape, list) and 1 <= len(shape) <= 3 and all(_count(d, 1) for d in shape)
    _need(shape is None or (sizes_ok and math.prod(shape) == n_in), "the input shape")
    names, n_columns = transform.get("features"), transform.get("n_columns")
    if names is None:
        _need(n_columns is None, "raw columns without features")
        return n_in
    _need(_strings(names) and len(names) == n_in and _count(n_columns, 1), "the computed features")
    try:
        features.check(names, n_columns)
    except (ConfigError, ValueError) as exc:
        _need(False, f"the computed features: {exc}")
    return n_columns


def _check_scales(data: dict[str, np.ndarray], keys: tuple[str, str], width: int) -> None:
    """A standardization's (mean, std) pair: both or neither, each (width,), finite, std > 0."""
    mean, std = (data.get(f"extra.{k}") for k in keys)
    if mean is None and std is None:
        return
    _need(width > 0 and mean is not None and std is not None and mean.shape == std.shape == (width,)
          and mean.dtype.kind == std.dtype.kind == "f" and bool(np.all(np.isfinite(mean)))
          and bool(np.all(np.isfinite(std) & (std > 0))), f"the standardization {keys[0]}/{keys[1]}")


def _check_settings(train: Any) -> None:
    """The run's settings, by the rules the settings of a new run are checked with."""
    from ..apps.runner import DEFAULTS, checked_settings

    _need(isinstance(train, dict) and isinstance(train.get("data"), str)
          and isinstance(train.get("settings"), dict) and isinstance(train.get("status"), str),
          "the training run")
    settings = train["settings"]
    _need(set(settings) <= set(DEFAULTS), f"unknown settings {sorted(set(settings) - set(DEFAULTS))}")
    _need(isinstance(settings.get("target"), (str, int, type(None))), "the target setting")
    try:
        # None stands for the default only where the default is None: a saved None overrides it.
        checked_settings({k: v for k, v in settings.items()
                          if v is not None or DEFAULTS.get(k, 0) is not None})
    except (ConfigError, ValueError) as exc:
        _need(False, f"a setting: {exc}")


def _names(built: list[Layer], prefix: str = "param") -> list[str]:
    """The parameter (or buffer) names of unbuilt layers, in :meth:`Sequential.parameters` order."""
    return [f"{i}.{k}" for i, layer in enumerate(built)
            for k in (layer.param_shapes() if prefix == "param" else layer.buffer_shapes())]


def load(path: str, device: str = "cpu", dtype: str | None = None) -> Checkpoint:
    """Load a checkpoint onto ``device`` (a GPU-trained model loads on a CPU-only machine).

    The model's fit state comes back whole (optimizer and its moments, shuffle and device RNGs,
    epoch counter, history, early-stopping progress), so ``model.fit`` continues
    exactly where the saved run stopped.
    """
    meta, data = _read(path)
    try:
        built = _check(meta, data)
        if meta.get("optimizer"):
            opt = _optimizer_from_meta(meta["optimizer"])  # its settings must make an optimizer
            keys = meta["optimizer"].get("state_keys")
            # ... whose own slots for each parameter (Adam's m and v, ...) the file holds
            _need(not keys or all(k == sorted(opt._init_state(np, np.zeros(1))) for k in keys),
                  "optimizer state keys")
    except (ConfigError, TypeError, ValueError, OverflowError) as exc:  # TypeError: unknown keys
        raise CheckpointError(f"{path} is a backprop checkpoint but {exc}") from None
    model = Sequential(built, device=device, dtype=dtype or meta["dtype"], seed=meta["seed"],
                       tf32=bool(meta.get("tf32", False)), input_shape=meta.get("input_shape"))
    names = list(model.parameters())
    try:
        model.set_parameters({name: data[f"param.{name}"] for name in names})
    except ValueError as exc:
        raise CheckpointError(f"{path} is a backprop checkpoint but its weights do not fit its layers "
                              f"({exc})") from None
    with model.backend.activate():
        for i, layer in enumerate(model.layers):
            layer.buffers = {k: model.backend.asarray(data[f"buffer.{i}.{k}"], model.dtype, copy=True)
                             for k in layer.buffer_shapes()}
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
    opt = _optimizer_from_meta(meta["optimizer"]) if meta.get("optimizer") else None
    state = model.state
    state.epoch = meta["epoch"]
    state.loss = None if meta["loss"] is None else losses.get(meta["loss"])
    state.shuffle_rng = HostRNG(meta["seed"], stream=Stream.SHUFFLE)
    state.shuffle_rng.set_state(meta["shuffle_rng"])
    # Files from before the device generator start it from the model's seed, as a new model does.
    state.device_rng = model.backend.device_rng(meta["seed"], Stream.DROPOUT)
    if meta.get("device_rng") is not None:
        state.device_rng.set_state(meta["device_rng"])
    model.state = state  # relinks the layers that draw (dropout) to the restored generator
    if meta.get("history"):
        history = History()
        history.records = meta["history"]["records"]
        history.best_epoch = meta["history"]["best_epoch"]
        history.stopped_early = meta["history"]["stopped_early"]
        state.history = history
    if opt is not None:
        keys = meta["optimizer"]["state_keys"]
        if keys:
            opt.state = [_on_device(model, {k: data[f"opt.{name}.{k}"] for k in ks})
                         for name, ks in zip(names, keys)]
        state.optimizer = opt.bind(model.uid)
    state.resume_params = _device_list(model, data, "resume", names)
    progress = _progress(meta)
    if progress:
        state.early_stopping = _restore_early_stopping(model, progress, data, names)


def _on_device(model: Sequential, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Device copies of host arrays, in the model's dtype."""
    with model.backend.activate():
        return {k: model.backend.asarray(v, model.dtype, copy=True) for k, v in arrays.items()}


def _device_list(model: Sequential, data: dict[str, np.ndarray], prefix: str,
                 names: list[str]) -> list | None:
    """The tensors ``{prefix}.{name}`` on the device, one per parameter, or None when the file has none."""
    if not any(k.startswith(prefix + ".") for k in data):
        return None
    return list(_on_device(model, {name: data[f"{prefix}.{name}"] for name in names}).values())


def _progress(meta: dict) -> dict | None:
    """Early stopping's progress: in the header's own entry (format 2), or in the training run's
    settings (format 1)."""
    if meta.get("format_version", 1) >= 2:
        return meta.get("early_stopping")
    train = meta.get("extra", {}).get("train", {})
    return train.get("early_stopping") if isinstance(train, dict) else None


def _restore_early_stopping(model: Sequential, progress: dict, data: dict[str, np.ndarray],
                            names: list[str]) -> EarlyStopping:
    """Early stopping with its progress and its best weights so far."""
    watch = EarlyStopping(**{k: progress[k] for k in ("patience", "min_delta", "restore_best", "best",
                                                      "waited", "best_epoch") if k in progress})
    watch.best_params = _device_list(model, data, "best", names)
    if watch.best_params is None and watch.best_epoch is not None:
        # Version 1 left the best weights out when they were the model's own.
        watch.best_params = list(_on_device(model, dict(enumerate(model.parameter_list()))).values())
    return watch


__all__ = ["PICTURE_SOFTWARE", "Checkpoint", "CheckpointError", "check_writable", "load", "read_header",
           "remove_stale_temps", "save", "write_atomic"]
