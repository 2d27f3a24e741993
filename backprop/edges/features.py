"""Input features computed from the raw columns: TensorFlow Playground's feature crosses.

A feature is named by a small expression over the raw columns ``x1 .. xF`` (1-based,
as the playground shows them): the column itself ``x1``, its square ``x1^2``, a
product ``x1*x2``, or a sine ``sin(x1)``. The list of names is part of the model's
data transform (saved in its checkpoint), so ``predict`` and ``evaluate`` compute the
same features from the same raw columns. Host NumPy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError, DataError

_TERM = re.compile(r"^(?:x(\d+)|x(\d+)\^2|x(\d+)\*x(\d+)|sin\(x(\d+)\))$")
MAX_FEATURES = 64  # more than any plane needs; a bound on what one request may ask for

PLANE = ("x1", "x2", "x1^2", "x2^2", "x1*x2", "sin(x1)", "sin(x2)")
"""TensorFlow Playground's seven inputs for 2-D data."""


def _columns(name: str) -> tuple[str, tuple[int, ...]]:
    """``("raw" | "square" | "product" | "sine", 0-based columns)`` of one feature name."""
    m = _TERM.match(name.replace(" ", ""))
    if not m:
        raise ConfigError(f"unknown feature {name!r}: use x1, x1^2, x1*x2 or sin(x1) (columns from x1)")
    kind = ("raw", "square", "product", "product", "sine")
    groups = m.groups()
    first = next(i for i, g in enumerate(groups) if g is not None)
    columns = tuple(int(g) - 1 for g in groups if g is not None)
    if min(columns) < 0:
        raise ConfigError(f"feature {name!r}: columns count from x1")
    return kind[first], columns


def check(names: Sequence[str], n_columns: int | None = None) -> list[str]:
    """``names`` as a list of canonical feature names, checked (against ``n_columns`` raw
    columns when given): one-line errors for unknown, repeated or out-of-range ones."""
    if isinstance(names, str):
        names = [part for part in names.split(",") if part.strip()]
    names = [str(n).replace(" ", "") for n in names]
    if not names:
        raise ConfigError("features: give at least one, e.g. x1,x2")
    if len(names) > MAX_FEATURES:
        raise ConfigError(f"features: at most {MAX_FEATURES}, got {len(names)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"features: each at most once, got {', '.join(names)}")
    for name in names:
        _, columns = _columns(name)
        if n_columns is not None and max(columns) >= n_columns:
            raise DataError(f"feature {name} reads column x{max(columns) + 1} but the data has "
                            f"{n_columns} feature column(s)")
    return names


def expand(X: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Raw inputs (N, F) -> features (N, len(names)) float64, in the order of ``names``."""
    out = np.empty((X.shape[0], len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        kind, c = _columns(name)
        if max(c) >= X.shape[1]:
            raise DataError(f"feature {name} reads column x{max(c) + 1} but the data has {X.shape[1]} "
                            "feature column(s)")
        col = X[:, c[0]].astype(np.float64)
        with np.errstate(over="ignore"):  # checked below, with a message
            if kind == "square":
                col = col * col
            elif kind == "product":
                col = col * X[:, c[1]]
            elif kind == "sine":
                col = np.sin(col)
        if not np.isfinite(col).all() and np.isfinite(X[:, list(c)]).all():
            read = " and ".join(f"x{i + 1}" for i in sorted(set(c)))
            raise DataError(f"feature {name} overflows: {read} reach {np.max(np.abs(X[:, list(c)])):.3g}, "
                            "so it exceeds the float maximum (1.8e308): rescale the column")
        out[:, j] = col
    return out


def onnx(graph, X: str, names: Sequence[str]) -> str:
    """:func:`expand` in ONNX (see :mod:`backprop.edges.onnx_export`): raw columns ``X`` (N, F)
    float64 -> features (N, len(names)) float64, in the order of ``names``."""
    def column(i: int) -> str:
        return graph.node("Gather", [X, graph.constant([i], "int64")], axis=1)  # (N, 1)

    out = []
    for name in names:
        kind, c = _columns(name)
        col = column(c[0])
        if kind == "square":
            col = graph.node("Mul", [col, col])
        elif kind == "product":
            col = graph.node("Mul", [col, column(c[1])])
        elif kind == "sine":
            col = graph.node("Sin", [col])
        out.append(col)
    return graph.node("Concat", out, axis=1)
