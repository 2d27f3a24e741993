"""What happens to data between the file and the network, and back.

A :class:`Transform` is fitted on the training part only (so validation and test
data tell the truth) and saved in the checkpoint, so that ``predict`` applies the
very same standardization and turns outputs back into the user's class names or
target units. Host NumPy throughout.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import DataError
from . import features as feature_terms

MAX_CLASSES = 100  # integer targets with more distinct values than this are read as regression


def infer_task(y: np.ndarray) -> str:
    """``"classification"`` for text, booleans and integer values with at most
    ``MAX_CLASSES`` distinct values; ``"regression"`` otherwise."""
    if y.dtype.kind in "USOb":
        return "classification"
    if y.ndim == 2 and y.shape[1] > 1:
        return "regression"
    values = np.asarray(y, dtype=np.float64).ravel()
    if np.all(values == np.round(values)) and len(np.unique(values)) <= MAX_CLASSES:
        return "classification"
    return "regression"


def moments(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations of A (N, F) as float64 (F,) each, a constant
    column's deviation given as 1 (centred, not scaled).

    Each column is first divided by a power of two near its largest magnitude: exact, so
    ordinary data get the very same bits, while the squares of values near the float
    maximum (1.8e308) no longer overflow to infinity, nor those near 1e-160 underflow to 0.
    """
    A = np.asarray(A, dtype=np.float64)
    peak = np.max(np.abs(A), axis=0, initial=0.0)
    scale = np.ldexp(1.0, np.frexp(peak)[1] - 1)  # peak / scale lies in [1, 2)
    scaled = A / scale
    std = scaled.std(axis=0) * scale  # at most the peak (Popoviciu), so finite
    return scaled.mean(axis=0) * scale, np.where(std > 0, std, 1.0)


def _standardize(A: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(A - mean) / std, halved around the subtraction (exact in binary) so that values
    either side of zero near the float maximum do not overflow it."""
    return (A * 0.5 - mean * 0.5) / std * 2.0


def _unstandardize(Z: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Z * std + mean, halved the same way: back to units that may reach the float maximum."""
    return (Z * 0.5 * std + mean * 0.5) * 2.0


def _label_text(value: Any) -> str:
    """A class label as text: a whole float as its integer (``2.0`` -> ``2``) up to 2**53, where
    floats stop being whole numbers one by one; beyond, as the float (``1e+308``, not 309 digits)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer() and abs(value) <= 2.0**53:
        return str(int(value))
    return str(float(value)) if isinstance(value, np.floating) else str(value)


class Transform:
    """Standardization of inputs (and of real targets) plus the class names.

    Attributes
    ----------
    task : "classification" or "regression"
    classes : list of str or None
        Class names in output order (classification).
    x_mean, x_std : (F,) float64 or None
        Over the network's inputs: the features when there are any.
    y_mean, y_std : (T,) float64 or None (regression targets)
    features : list of str or None
        Feature names computed from the raw columns first (see :mod:`backprop.features`);
        None: the raw columns are the inputs.
    n_columns : int or None
        Raw columns the features were computed from (checked on every call).
    input_shape : tuple of int or None
        Each sample's shape, channels first ((C, L) or (C, H, W)): the standardized columns of a
        row are reshaped to it (C order) for a network that takes maps; None: rows as they are.
    """

    def __init__(self, task: str, classes: list[str] | None = None, x_mean=None, x_std=None,
                 y_mean=None, y_std=None, *, features: list[str] | None = None,
                 n_columns: int | None = None, input_shape: Any = None) -> None:
        self.task = task
        self.classes = classes
        self.x_mean, self.x_std, self.y_mean, self.y_std = x_mean, x_std, y_mean, y_std
        self.features, self.n_columns = features, n_columns
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, task: str, standardize: bool = True,
            labels: np.ndarray | None = None, features: list[str] | None = None,
            input_shape: Any = None, center_targets: bool = True) -> Transform:
        """Statistics from the training part ``X`` (N, F), ``y``; class names from ``labels``
        (every label the data has, so that a class only the validation part holds is known),
        or from ``y``; the inputs are ``features`` of X's columns when given, reshaped to
        ``input_shape`` per sample when given. ``center_targets=False``: real targets are only
        scaled (mean 0 kept as the shift), for losses whose targets keep their sign."""
        n_columns = None
        if features is not None:
            features, n_columns = feature_terms.check(features, X.shape[1]), X.shape[1]
            X = feature_terms.expand(X, features)
        if input_shape is not None and math.prod(input_shape) != X.shape[1]:
            raise DataError(f"an input shape of {','.join(map(str, input_shape))} holds "
                            f"{math.prod(input_shape)} entries but each row has {X.shape[1]} inputs: give "
                            "sizes whose product is the number of inputs")
        classes = None
        x_mean = x_std = y_mean = y_std = None
        if task == "classification":
            if y.ndim != 1:
                raise DataError(f"class labels must be one column, got shape {y.shape}")
            every = y if labels is None else labels
            found = np.unique(every if every.dtype.kind in "US" else np.asarray(every))
            classes = [_label_text(v) for v in found]
            if len(classes) < 2:
                raise DataError(f"the target holds a single class ({classes[0]!r}): a classifier "
                                "needs at least two (check --target, or use --task regression)")
        elif y.dtype.kind in "USOb":
            raise DataError("the target holds text, so it cannot be regressed: use --task classification")
        if standardize:
            x_mean, x_std = moments(X)
            if task == "regression":
                y_mean, y_std = moments(y.reshape(len(y), -1))
                if not center_targets:
                    y_mean = np.zeros_like(y_mean)
        return cls(task, classes, x_mean, x_std, y_mean, y_std, features=features, n_columns=n_columns,
                   input_shape=input_shape)

    @property
    def n_inputs(self) -> int | None:
        """The network's input width, where the transform knows it."""
        if self.features is not None:
            return len(self.features)
        return None if self.x_mean is None else len(self.x_mean)

    @property
    def n_targets(self) -> int:
        return len(self.classes) if self.classes is not None else (
            1 if self.y_mean is None else len(self.y_mean))

    def inputs(self, X: np.ndarray) -> np.ndarray:
        """Raw inputs (N, F) -> what the network sees: (N, n_inputs), or (N, *input_shape)."""
        X = self._columns(X)
        return X if self.input_shape is None else X.reshape(len(X), *self.input_shape)

    def _columns(self, X: np.ndarray) -> np.ndarray:
        """Raw inputs (N, F) -> the network's inputs as columns (N, n_inputs): features, standardized."""
        if self.features is not None:
            if X.shape[1] != self.n_columns:
                raise DataError(f"the data has {X.shape[1]} features but the model was trained on "
                                f"{self.n_columns}: give the same columns as in training")
            X = feature_terms.expand(X, self.features)
        if self.x_mean is None:
            return X
        if X.shape[1] != len(self.x_mean):
            raise DataError(f"the data has {X.shape[1]} features but the model was trained on "
                            f"{len(self.x_mean)}: give the same columns as in training")
        return _standardize(X, self.x_mean, self.x_std)

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Raw targets -> class indices (N,) int64, or standardized real targets (N, T)."""
        if self.task == "classification":
            text = np.array([_label_text(v) for v in y.ravel()]) if y.dtype.kind not in "US" else y
            index = {name: i for i, name in enumerate(self.classes)}
            unknown = sorted(set(text.tolist()) - set(index))
            if unknown:
                raise DataError(f"labels {unknown[:5]} were not seen in training (classes: "
                                f"{', '.join(self.classes[:10])}{'...' if len(self.classes) > 10 else ''})")
            return np.array([index[t] for t in text.tolist()], dtype=np.int64)
        if y.dtype.kind in "USOb":
            raise DataError("the target holds text but the model is a regressor")
        Y = y.reshape(len(y), -1).astype(np.float64)
        return Y if self.y_mean is None else _standardize(Y, self.y_mean, self.y_std)

    def outputs(self, Y: np.ndarray) -> np.ndarray:
        """Regression outputs (N, T) in standardized units -> the target's units."""
        Y = np.asarray(Y, dtype=np.float64).reshape(len(Y), -1)
        return Y if self.y_mean is None else _unstandardize(Y, self.y_mean, self.y_std)

    # -- ONNX form (see backprop.edges.onnx_export) ------------------------------------
    def onnx_inputs(self, graph, X: str) -> str:
        """:meth:`_columns` in ONNX: raw inputs ``X`` (N, F) float64 -> the network's inputs as
        columns (N, n_inputs) float64 (features, then standardized, halved as :func:`_standardize`)."""
        if self.features is not None:
            X = feature_terms.onnx(graph, X, self.features)
        if self.x_mean is None:
            return X
        half = graph.node("Mul", [X, graph.constant(0.5, "float64")])
        centred = graph.node("Sub", [half, graph.constant(self.x_mean * 0.5, "float64")])
        scaled = graph.node("Div", [centred, graph.constant(self.x_std, "float64")])
        return graph.node("Mul", [scaled, graph.constant(2.0, "float64")])

    def onnx_outputs(self, graph, Y: str) -> str:
        """:meth:`outputs` in ONNX: regression outputs ``Y`` (N, T) float64 -> the target's units
        (halved as :func:`_unstandardize`)."""
        if self.y_mean is None:
            return Y
        half = graph.node("Mul", [graph.node("Mul", [Y, graph.constant(0.5, "float64")]),
                                  graph.constant(self.y_std, "float64")])
        shifted = graph.node("Add", [half, graph.constant(self.y_mean * 0.5, "float64")])
        return graph.node("Mul", [shifted, graph.constant(2.0, "float64")])

    # -- checkpoint form ------------------------------------------------------------
    def to_json(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(metadata, arrays) for a checkpoint."""
        arrays = {k: getattr(self, k) for k in ("x_mean", "x_std", "y_mean", "y_std")
                  if getattr(self, k) is not None}
        meta = {"task": self.task, "classes": self.classes}
        if self.features is not None:
            meta.update(features=self.features, n_columns=self.n_columns)
        if self.input_shape is not None:
            meta["input_shape"] = list(self.input_shape)
        return meta, arrays

    @classmethod
    def from_json(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Transform:
        features = meta.get("features")
        return cls(meta["task"], meta.get("classes"),
                   *(arrays.get(k) for k in ("x_mean", "x_std", "y_mean", "y_std")),
                   features=None if features is None else feature_terms.check(features),
                   n_columns=meta.get("n_columns"), input_shape=meta.get("input_shape"))
