"""Turning user inputs and targets into device arrays the network can use.

Every check here runs once per entry point (fit, evaluate, predict), never per
step; each failure is one line that says what to do.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from backends import NotNumeric

from ._typing import Array
from .errors import ConfigError, DataError, DataTypeError
from .losses import Loss


def upload(backend: Any, data: Any, what: str, dtype: Any = None) -> Array:
    """``data`` on the backend's device (cast on the host when it comes from there)."""
    try:
        return backend.asarray(data, dtype)
    except NotNumeric as exc:  # text, objects, ragged rows
        raise DataTypeError(f"{what}: {exc}") from None


def positive_int(value: Any, name: str = "batch_size") -> int:
    """A positive integer (NumPy integers welcome)."""
    try:
        size = operator.index(value)
    except TypeError:
        size = 0
    if isinstance(value, bool) or size < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return size


def as_inputs(backend: Any, dtype: Any, X: Any, n_inputs: int | tuple[int, ...], what: str = "X") -> Array:
    """``X`` as an (N, *shape) array on the device in the model's dtype.

    ``n_inputs``: the model's input shape per sample (``model.input_shape``), or its number of
    features (an int, the same as a 1-D shape): ``X`` is then (N, n_inputs), or (N,) for one.
    """
    shape = tuple(n_inputs) if isinstance(n_inputs, (tuple, list)) else (operator.index(n_inputs),)
    xp = backend.xp
    X = upload(backend, X, what, dtype)
    if len(shape) > 1:
        if tuple(X.shape[1:]) != shape:
            raise DataError(f"{what} has shape {tuple(X.shape)} but the model takes samples of shape "
                            f"{shape}: give an array of shape (samples, {', '.join(map(str, shape))})")
    else:
        if X.ndim == 1 and shape[0] == 1:
            X = xp.reshape(X, (X.shape[0], 1))
        if X.ndim != 2:
            raise DataError(
                f"{what} must be 2-D (samples, features), got shape {tuple(X.shape)}: "
                "reshape it, e.g. X.reshape(len(X), -1)"
            )
        if X.shape[1] != shape[0]:
            raise DataError(
                f"{what} has {X.shape[1]} features but the model's first layer expects {shape[0]}"
            )
    if X.shape[0] == 0:
        raise DataError(f"{what} has no samples")
    if not bool(xp.all(xp.isfinite(X))):
        raise DataError(f"{what} contains NaN or infinity: drop or impute those values first")
    return X


def as_targets(backend: Any, dtype: Any, y: Any, loss: Loss, n_outputs: int, n_samples: int,
               what: str = "y") -> tuple[Array, Array | None]:
    """Targets for ``loss`` on the device: the checks every loss shares, then the loss's own
    encoding (:meth:`backprop.losses.Loss.targets`).

    Returns
    -------
    T : array, shape (N, n_outputs), model dtype
        What the loss compares the outputs with (one-hot rows for cross-entropy).
    labels : array of shape (N,) int64, or None
        Class indices for accuracy (cross-entropy only).
    """
    xp = backend.xp
    y = upload(backend, y, what)
    if y.ndim == 0 or y.shape[0] != n_samples:
        rows = 0 if y.ndim == 0 else y.shape[0]
        raise DataError(f"{what} has {rows} rows but the inputs have {n_samples}: they must match")
    if y.ndim == 2 and y.shape[1] == 1 and n_outputs == 1:
        y = xp.reshape(y, (y.shape[0],))
    if xp.isdtype(y.dtype, "real floating") and not bool(xp.all(xp.isfinite(y))):
        raise DataError(f"{what} contains NaN or infinity: drop those samples first")
    return loss.targets(xp, dtype, y, n_outputs, what)


def check_fraction(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value < 1.0):
        raise ConfigError(f"{name} must be a fraction in [0, 1), got {value!r}")
    return float(value)
