"""Turning user inputs and targets into device arrays the network can use.

Every check here runs once per entry point (fit, evaluate, predict), never per
step; each failure is one line that says what to do.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from .losses import Loss

Array = Any


def upload(backend: Any, data: Any, what: str, dtype: Any = None) -> Array:
    """``data`` on the backend's device (cast on the host when it comes from there)."""
    try:
        return backend.asarray(data, dtype)
    except TypeError as exc:
        raise TypeError(f"{what}: {exc}") from None


def positive_int(value: Any, name: str = "batch_size") -> int:
    """A positive integer (NumPy integers welcome)."""
    try:
        size = operator.index(value)
    except TypeError:
        size = 0
    if isinstance(value, bool) or size < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return size


def as_inputs(backend: Any, dtype: Any, X: Any, n_inputs: int, what: str = "X") -> Array:
    """``X`` as an (N, n_inputs) array on the device in the model's dtype."""
    xp = backend.xp
    X = upload(backend, X, what, dtype)
    if X.ndim == 1 and n_inputs == 1:
        X = xp.reshape(X, (X.shape[0], 1))
    if X.ndim != 2:
        raise ValueError(
            f"{what} must be 2-D (samples, features), got shape {tuple(X.shape)}: "
            "reshape it, e.g. X.reshape(len(X), -1)"
        )
    if X.shape[1] != n_inputs:
        raise ValueError(
            f"{what} has {X.shape[1]} features but the model's first layer expects {n_inputs}"
        )
    if X.shape[0] == 0:
        raise ValueError(f"{what} has no samples")
    if not bool(xp.all(xp.isfinite(X))):
        raise ValueError(f"{what} contains NaN or infinity: drop or impute those values first")
    return X


def as_targets(backend: Any, dtype: Any, y: Any, loss: Loss, n_outputs: int, n_samples: int,
               what: str = "y") -> tuple[Array, Array | None]:
    """Targets for ``loss`` on the device.

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
        raise ValueError(f"{what} has {rows} rows but the inputs have {n_samples}: they must match")
    if y.ndim == 2 and y.shape[1] == 1 and n_outputs == 1:
        y = xp.reshape(y, (y.shape[0],))
    if xp.isdtype(y.dtype, "real floating") and not bool(xp.all(xp.isfinite(y))):
        raise ValueError(f"{what} contains NaN or infinity: drop those samples first")

    if loss.name == "ce" and y.ndim == 1:
        if n_outputs < 2:
            raise ValueError(
                "cross-entropy needs one output per class (at least 2); for two classes with "
                "one output use loss='bce'"
            )
        labels = y if xp.isdtype(y.dtype, "integral") else xp.astype(y, backend.dtype("int64"))
        if xp.isdtype(y.dtype, "real floating") and not bool(xp.all(xp.astype(labels, y.dtype) == y)):
            raise ValueError(f"{what} holds non-integer values: cross-entropy needs class labels 0..K-1")
        low, high = int(xp.min(labels)), int(xp.max(labels))
        if low < 0 or high >= n_outputs:
            raise ValueError(
                f"{what} holds class labels {low}..{high} but the model has {n_outputs} "
                f"outputs: labels must be 0..{n_outputs - 1}"
            )
        labels = xp.astype(labels, backend.dtype("int64"))
        classes = xp.arange(n_outputs, device=backend.device)
        return xp.astype(labels[:, None] == classes, dtype), labels

    T = xp.astype(y, dtype)
    if T.ndim == 1:
        T = xp.reshape(T, (T.shape[0], 1))
    if T.ndim != 2 or T.shape[1] != n_outputs:
        raise ValueError(
            f"{what} has shape {tuple(y.shape)} but the model has {n_outputs} outputs: "
            f"give ({n_samples},) or ({n_samples}, {n_outputs})"
        )
    if loss.classification and not bool(xp.all((T >= 0) & (T <= 1))):
        raise ValueError(
            f"{what} must hold labels or probabilities in [0, 1] for loss '{loss.name}': for "
            "real-valued targets pass loss='mse'"
        )
    if loss.name == "ce" and not bool(xp.all(xp.abs(xp.sum(T, axis=1) - 1.0) < 1e-3)):
        # The fused gradient (softmax - T) / N holds only for rows that sum to 1.
        raise ValueError(
            f"the rows of {what} must sum to 1 for cross-entropy (one-hot or probabilities); "
            "for several yes/no labels per sample use loss='bce'"
        )
    labels = xp.argmax(T, axis=1) if loss.name == "ce" else None
    return T, labels


def resolve_auto_loss(xp: Any, y: Array, n_outputs: int, sigmoid_output: bool) -> str:
    """``"auto"``: MSE for real-valued targets; for integer labels, BCE when they are
    yes/no (one output, a sigmoid output, or a (N, K) label matrix) and
    cross-entropy otherwise."""
    if not xp.isdtype(y.dtype, ("integral", "bool")):
        return "mse"
    multilabel = y.ndim == 2 and y.shape[1] > 1
    return "bce" if n_outputs == 1 or sigmoid_output or multilabel else "ce"


def check_fraction(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value < 1.0):
        raise ValueError(f"{name} must be a fraction in [0, 1), got {value!r}")
    return float(value)
