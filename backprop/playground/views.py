"""What the playground page draws, computed from the model: grids over the data's plane.

Everything here runs on the thread that trains (the only one that touches the model)
and returns host NumPy or JSON-ready values. A grid of ``size`` x ``size`` points is
row-major with rows from the top of the plane (largest y) down and columns from the
left (smallest x), as a canvas draws it. Values the page colours are sent as bytes:
``-1 .. 1`` mapped to ``0 .. 255`` (clamped, as TensorFlow Playground's colour scale),
base64-encoded.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import numpy as np

from backends import to_numpy_any

CLASS_COLOURS = ("#f59322", "#0877bd", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf")
"""The page's colour of each class (the first two: TensorFlow Playground's orange and blue):
as many classes as it can draw apart."""


def encode(values: np.ndarray) -> str:
    """Values in [-1, 1] (clamped) -> base64 of one byte each, in C order."""
    q = np.rint((np.clip(np.asarray(values, dtype=np.float64), -1.0, 1.0) + 1.0) * 127.5)
    return base64.b64encode(q.astype(np.uint8).tobytes()).decode("ascii")


def decode(text: str) -> np.ndarray:
    """The inverse of :func:`encode` (to within 1/255): bytes -> float64 in [-1, 1]."""
    return np.frombuffer(base64.b64decode(text), dtype=np.uint8) / 127.5 - 1.0


@dataclass
class Plane:
    """Where the page draws: raw columns ``pair`` over ``domain`` (x0, x1, y0, y1); the
    other raw columns held at ``base`` (their training means). One column (1-D data):
    ``pair = (0,)`` and the y range is the target's."""

    pair: tuple[int, ...]
    domain: tuple[float, float, float, float]
    base: np.ndarray

    @classmethod
    def around(cls, X: np.ndarray, pair: tuple[int, ...], y: np.ndarray | None = None) -> Plane:
        """The box around the points of ``X`` (N, F) in columns ``pair``, with a 10% margin."""
        x0, x1 = span(X[:, pair[0]])
        y0, y1 = span(X[:, pair[1]] if len(pair) > 1 else np.asarray(y, dtype=np.float64).ravel())
        return cls(tuple(pair), (x0, x1, y0, y1), X.mean(axis=0))

    def points(self, size: int) -> np.ndarray:
        """Raw inputs (size * size, F) at the grid's cell centres (1-D: (size, F) along x)."""
        x0, x1, y0, y1 = self.domain
        # the fraction first: (i + 0.5) * width would overflow for a width near the float maximum
        xs = x0 + (np.arange(size) + 0.5) / size * (x1 - x0)
        if len(self.pair) == 1:
            P = np.tile(self.base, (size, 1))
            P[:, self.pair[0]] = xs
            return P
        ys = y1 - (np.arange(size) + 0.5) / size * (y1 - y0)  # top row first
        gx, gy = np.meshgrid(xs, ys)
        P = np.tile(self.base, (size * size, 1))
        P[:, self.pair[0]], P[:, self.pair[1]] = gx.ravel(), gy.ravel()
        return P


def span(values: np.ndarray) -> tuple[float, float]:
    """The drawn range of ``values`` (N,): their own with a 10% margin each side (infinite
    where that overflows: see :func:`drawable`)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = 0.1 * (hi - lo) if hi > lo else 1.0  # Python floats: an overflow is inf, not an error
    return lo - pad, hi + pad


def drawable(values: np.ndarray) -> bool:
    """Whether a grid can be laid over ``values`` (N,): its range and width are finite numbers."""
    lo, hi = span(values)
    return math.isfinite(hi - lo)


def hidden_outputs(model, Xn) -> tuple[list[np.ndarray], object]:
    """Every hidden unit's output and the network's output for network inputs ``Xn`` (N, I).

    Returns ``([(N, units) per hidden layer], device output (N, outputs))``: a hidden
    layer's output is what the next layer with parameters (a Dense) reads.
    """
    H = model.backend.asarray(Xn, model.dtype)
    seen: list[np.ndarray] = []
    weighted_seen = 0
    with model.backend.activate():
        for layer in model.layers:
            if layer.param_shapes():
                if weighted_seen:
                    seen.append(np.asarray(to_numpy_any(H), dtype=np.float64))
                weighted_seen += 1
            H = layer(H)  # inference
    return seen, H


def weights(model) -> list[list[list[float]]]:
    """Each weight matrix (inputs, outputs) of the layers that link units, rounded for the page's
    link widths."""
    return [np.round(np.asarray(to_numpy_any(layer.params["W"]), dtype=np.float64), 4).tolist()
            for layer in model.layers if layer.params.get("W") is not None and layer.params["W"].ndim == 2]


def snapshot(model, transform, head, plane: Plane, size: int, unit_size: int,
             y_range: tuple[float, float] | None) -> dict:
    """The picture of the model now: output grid (or curve), one small grid per hidden unit,
    and the weights. ``y_range``: a regression target's (low, high), for colours."""
    one_d = len(plane.pair) == 1
    out: dict = {"size": size, "unit_size": unit_size}
    P = plane.points(size)
    Xn = transform.inputs(P)
    if transform.task == "classification":
        scores = head.class_scores(model, Xn)  # (N, K) probabilities (or sigmoid outputs)
        if scores.shape[1] == 2:
            out["output"] = encode(2.0 * scores[:, 1] - 1.0)  # -1: first class, +1: second
        else:
            out["classes"] = base64.b64encode(np.argmax(scores, axis=1).astype(np.uint8).tobytes()).decode()
            out["output"] = encode(2.0 * np.max(scores, axis=1) - 1.0)  # confidence
    else:
        Y = transform.outputs(np.asarray(to_numpy_any(model.predict(Xn, loss=head.loss))))[:, 0]
        if one_d:
            # JSON has no NaN or Infinity (a diverged network's curve): such a point goes as null
            out["curve"] = [round(float(v), 5) if math.isfinite(v) else None for v in Y]
        else:
            lo, hi = y_range
            out["output"] = encode(2.0 * (Y - lo) / max(hi - lo, 1e-12) - 1.0)
    units_at = plane.points(unit_size)
    hidden, _ = hidden_outputs(model, transform.inputs(units_at))
    out["units"] = [[encode(h[:, j]) for j in range(h.shape[1])] for h in hidden]
    out["weights"] = weights(model)
    return out
