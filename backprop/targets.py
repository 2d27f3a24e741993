"""Turning user inputs and targets into device arrays the network can use.

Every check here runs once per entry point (fit, evaluate, predict), never per
step; each failure is one line that says what to do.
"""

from __future__ import annotations

import math
from typing import Any

from .losses import Loss

Array = Any


def as_inputs(backend: Any, dtype: Any, X: Any, n_inputs: int, what: str = "X") -> Array:
    """``X`` as an (N, n_inputs) array on the device in the model's dtype."""
    xp = backend.xp
    X = backend.asarray(X)
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
    if not xp.isdtype(X.dtype, ("real floating", "integral", "bool")):
        raise TypeError(f"{what} must hold numbers, got dtype {X.dtype}")
    X = xp.astype(X, dtype) if X.dtype != dtype else X
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
    y = backend.asarray(y)
    if y.shape[0] != n_samples:
        raise ValueError(f"{what} has {y.shape[0]} rows but the inputs have {n_samples}: they must match")
    if not xp.isdtype(y.dtype, ("real floating", "integral", "bool")):
        raise TypeError(
            f"{what} must be numbers, got dtype {y.dtype}: encode class labels as integers 0..K-1"
        )
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
        raise ValueError(f"{what} must hold probabilities in [0, 1] for {loss.name}")
    labels = xp.argmax(T, axis=1) if loss.name == "ce" else None
    return T, labels


def resolve_auto_loss(backend: Any, y: Any, n_outputs: int) -> str:
    """``"auto"``: cross-entropy for integer labels, BCE for one output, MSE for real targets."""
    y = backend.asarray(y)
    if backend.xp.isdtype(y.dtype, ("integral", "bool")):
        return "bce" if n_outputs == 1 else "ce"
    return "mse"


def check_fraction(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value < 1.0):
        raise ValueError(f"{name} must be a fraction in [0, 1), got {value!r}")
    return float(value)
