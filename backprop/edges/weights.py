"""Weights apart from the architecture: a model's parameters and buffers in one safetensors file.

What :meth:`~backprop.model.Sequential.save_weights` writes and
:meth:`~backprop.model.Sequential.load_weights` reads, as Keras's ``save_weights`` /
``load_weights``; the architecture goes apart as JSON (``to_json`` / ``from_json``). A
checkpoint (:mod:`backprop.edges.checkpoint`) stays the way to save everything: optimizer,
history, a training run's data transform.

Tensors are named as in a checkpoint: ``param.{i}.{name}`` (each layer's parameters, as
:meth:`Sequential.parameters` names them) and ``buffer.{i}.{name}`` (non-trained state: BatchNorm's
running statistics). The header's ``backprop`` entry holds ``{"format": FORMAT, "version":
VERSION, "architecture": the model's architecture document (what ``to_json`` writes), "sha256":
a digest of the tensors and the rest of the header}``: the architecture explains a mismatch and
rebuilds the model (:func:`architecture`), the digest reports a flipped bit instead of loading it.
Writing goes through the checkpoints' one guard and atomic write (``kind="weights"``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from backends import dtype_name, to_numpy_any

from .. import spec
from .._version import __version__
from ..errors import CheckpointError, ConfigError
from ..model import Sequential, register_weights_file
from . import checkpoint

FORMAT = "backprop.weights"
VERSION = 1
REBUILD = ("build the model from the file's architecture "
           "(backprop.Sequential.from_json(backprop.weights.architecture(path)))")


def save(model: Sequential, path: str) -> None:
    """Write ``model``'s parameters and buffers (host copies) and its architecture to ``path``;
    refused, with ``path`` left as it was, when a tensor is not finite or the guard says no."""
    from safetensors.numpy import save as st_save

    tensors = {name: np.ascontiguousarray(to_numpy_any(value)) for name, value in _named(model).items()}
    bad = [name for name, value in tensors.items() if not np.isfinite(value).all()]
    if bad:  # such a file could never load again
        raise CheckpointError(f"not saved: {', '.join(bad)} hold NaN or infinity (set them, or retrain); "
                              f"{path} is left as it was")
    meta = {"format": FORMAT, "version": VERSION, "backprop_version": __version__,
            "architecture": spec.architecture(model)}
    meta["sha256"] = checkpoint._digest(tensors, meta)  # the checkpoints' digest: one owner
    checkpoint.check_writable(path, "weights")
    checkpoint.write_atomic(path, st_save(tensors, metadata={"backprop": json.dumps(meta)}))


def _named(model: Sequential) -> dict[str, Any]:
    """The model's own arrays by tensor name: parameters, then each layer's buffers."""
    arrays = {f"param.{name}": value for name, value in model.parameters().items()}
    for i, layer in enumerate(model.layers):
        arrays.update({f"buffer.{i}.{k}": v for k, v in getattr(layer, "buffers", {}).items()})
    return arrays


def written_here(path: str) -> bool:
    """Whether ``path`` is a weights file this module wrote (what the write guard may replace)."""
    try:
        _read(path, tensors=False)
        return True
    except CheckpointError:
        return False


def architecture(path: str) -> str:
    """The JSON text of the architecture the weights file ``path`` was saved from, for
    :meth:`Sequential.from_json`: ``Sequential.from_json(architecture(path)).load_weights(path)``."""
    meta, _ = _read(path, tensors=False)
    return json.dumps(meta["architecture"])


def _read(path: str, tensors: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """The checked header and (with ``tensors``) the tensors by name, their digest verified."""
    from safetensors import SafetensorError, safe_open

    if not os.path.isfile(path):
        raise CheckpointError(f"no such weights file: {path}" if not os.path.exists(path) else
                              f"{path} is not a file: give the file model.save_weights wrote")
    try:
        with safe_open(path, framework="np") as handle:
            header = handle.metadata() or {}
            data = {k: handle.get_tensor(k) for k in handle.keys()} if tensors else {}
    except (SafetensorError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise CheckpointError(f"{path} is not a safetensors file, or it is truncated or corrupted "
                              f"({reason}); nothing was loaded: give a file model.save_weights "
                              "wrote") from None
    meta = _meta(path, header)
    if tensors and checkpoint._digest(data, meta) != meta.get("sha256"):
        raise CheckpointError(f"{path} is corrupted (its checksum does not match its contents); nothing "
                              "was loaded: use an earlier copy, or save the weights again")
    return meta, data


def _meta(path: str, header: dict) -> dict:
    """Our entry of the safetensors header: a weights file of a version read here, its
    architecture a document :mod:`backprop.spec` reads."""
    try:
        meta = json.loads(header["backprop"])
    except (KeyError, ValueError, TypeError, RecursionError):
        meta = None
    kind = meta.get("format") if isinstance(meta, dict) else None
    if kind == checkpoint.FORMAT:
        raise CheckpointError(f"{path} is a checkpoint, not a weights file: load it whole with "
                              "backprop.checkpoint.load(path).model")
    version = meta.get("version") if kind == FORMAT else None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path} is a safetensors file but not backprop weights: give a file "
                              "model.save_weights wrote")
    if version > VERSION:
        raise CheckpointError(f"{path} was written by a newer backprop ({meta.get('backprop_version')}): "
                              "upgrade backprop to read it")
    try:
        spec.saved_layers(spec.loads(json.dumps(meta.get("architecture"))))
    except (ConfigError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path} holds weights but its architecture is unreadable ({exc})") from None
    return meta


def load_into(model: Sequential, path: str) -> None:
    """Overwrite ``model``'s parameters and buffers from the weights file ``path``. Everything is
    checked first (tensor names, shapes, floating point and finite in the model's dtype, the
    layers' types); a refusal is one CheckpointError and leaves the model as it was."""
    meta, data = _read(path)
    saved = meta["architecture"]["layers"]
    expected = _expected(model)
    problem = _mismatch(data, expected, dtype_name(model.dtype))
    if problem:
        raise CheckpointError(f"{path} does not fit this model: {problem}{_difference(saved, model)}")
    theirs, ours = _skeleton(saved), _skeleton(spec.architecture(model)["layers"])
    if theirs != ours:
        raise CheckpointError(f"{path} holds the weights of the layers {theirs}, not of this model's {ours}: "
                              f"{REBUILD}")
    model.set_parameters({name[len("param."):]: data[name] for name in expected if name.startswith("param.")})
    with model.backend.activate():
        for i, layer in enumerate(model.layers):
            shapes = layer.buffer_shapes()
            if shapes:
                layer.buffers = {k: model.backend.asarray(data[f"buffer.{i}.{k}"], model.dtype, copy=True)
                                 for k in shapes}


def _expected(model: Sequential) -> dict[str, tuple[int, ...]]:
    """Each tensor the model takes, by name, with its shape: parameters, then buffers."""
    shapes = {f"param.{name}": tuple(value.shape) for name, value in model.parameters().items()}
    for i, layer in enumerate(model.layers):
        shapes.update({f"buffer.{i}.{k}": tuple(s) for k, s in layer.buffer_shapes().items()})
    return shapes


def _mismatch(data: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]], dtype: str) -> str:
    """What is wrong with the file's tensors for a model taking ``expected`` in ``dtype``: the first
    missing or extra tensor, wrong shape, non-float or non-finite values; '' when nothing is."""
    missing = [name for name in expected if name not in data]
    if missing:
        return f"the model's tensor {missing[0]} {expected[missing[0]]} is not in the file"
    extra = [name for name in data if name not in expected]
    if extra:
        return f"the file's tensor {extra[0]} {tuple(data[extra[0]].shape)} is not in the model"
    return _wrong_value(data, expected, dtype)


def _wrong_value(data: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]], dtype: str) -> str:
    """The first of the tensors ``expected`` names whose shape, kind or values do not fit; '' if none."""
    for name, shape in expected.items():
        value = data[name]
        if tuple(value.shape) != shape:
            return f"the tensor {name} has shape {tuple(value.shape)} in the file but {shape} in the model"
        if value.dtype.kind != "f":
            return f"the tensor {name} holds {value.dtype} values, not floating point"
        with np.errstate(over="ignore"):  # a float64 value past float32's range: refused just below
            finite = bool(np.isfinite(value.astype(dtype)).all())
        if not finite:
            return f"the tensor {name} holds NaN or infinity (in {dtype}): save finite weights"
    return ""


def _skeleton(saved: list) -> str:
    """The layer types of saved layers ``[{type, config}]``, a block's inner ones in brackets:
    ``dense, relu, residual[dense, relu], dense``; what the weights' meaning depends on."""
    parts = []
    for item in saved:
        inner = [v for v in item.get("config", {}).values()
                 if isinstance(v, list) and v and all(isinstance(s, dict) and "type" in s for s in v)]
        parts.append(str(item.get("type")) + "".join(f"[{_skeleton(v)}]" for v in inner))
    return ", ".join(parts)


def _difference(saved: list, model: Sequential) -> str:
    """Why the tensors may not fit: the first layer whose saved form differs from the model's
    (``"; the file's layer 2 is ... where this model's is ..."``), or '' where none does."""
    own = spec.architecture(model)["layers"]
    for i, (theirs, ours) in enumerate(zip(saved, own)):
        if theirs != ours:
            return (f"; the file was saved from another architecture (its layer {i} is "
                    f"{json.dumps(theirs)}, this model's is {json.dumps(ours)}): {REBUILD}")
    if len(saved) != len(own):
        return f"; the file was saved from {len(saved)} layers, this model has {len(own)}: {REBUILD}"
    return "; the file names this model's architecture, so its tensors were edited: save the weights again"


register_weights_file(save=save, load=load_into)  # what model.save_weights/load_weights call

__all__ = ["FORMAT", "VERSION", "architecture", "load_into", "save", "written_here"]
