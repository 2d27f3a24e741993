"""Pooling: ``MaxPool1D/2D``, ``AvgPool1D/2D`` (windows of a map) and ``GlobalAvgPool1D/2D``.

Shapes per sample, channels first: (C, L) for 1-D maps, (C, H, W) for 2-D. A window pool
takes ``pool_size`` first, then ``stride`` (the pool size by default) and ``padding`` (0 or a
number, at most half the pool size, as PyTorch), each an int or one per spatial axis. The
output size per axis is ``floor((n + 2 padding - pool) / stride) + 1`` (PyTorch's floor mode:
a last window that would run past the padded map is dropped).

- Max pooling pads with -inf, so padding never wins a window. Ties: the gradient goes to ONE
  entry, the first in the window in C order (row after row), as if the window's entries were
  read in that order and a later one had to be strictly larger to take over. PyTorch also
  picks one entry but does not document which. A NaN in a window makes its maximum NaN and
  sends its gradient nowhere (the loss is NaN by then, which stops a fit).
- Average pooling pads with zeros and divides by the whole window, padding included:
  PyTorch's default ``count_include_pad=True``.

Every window offset is a strided slice of the (padded) map, so the forward pass is a loop over
the pool's offsets, never over samples. The standard has no scatter-add: the backward pass
writes each offset's share into a zero gradient map through the same strided slice,
``dX[window] = dX[window] + share`` (a read, add and write of that slice), or a plain
assignment where windows do not overlap (stride >= pool size), since then each entry is written
once. The layers have no parameters and are piecewise linear in their input, so the
R-operator (Newton's exact Hessian) is the same pooling of R{X} and the same backward of
R{dY}; max pooling keeps its choice of entry, fixed near a point without ties.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

from ._typing import Array, Backward
from .errors import ConfigError
from .layers import Layer, register
from .namespace import device_of

_FORMS = {1: "(channels, length)", 2: "(channels, height, width)"}


def _per_axis(value: Any, dims: int, what: str, owner: str, least: int) -> tuple[int, ...]:
    """``value`` (an int, or ``dims`` of them) as one int per spatial axis, each >= ``least``."""
    items = list(value) if isinstance(value, (list, tuple)) else [value] * dims
    if len(items) != dims or any(isinstance(v, bool) or not isinstance(v, int) or v < least for v in items):
        kind = "a positive integer" if least else "a non-negative integer"
        raise ConfigError(f"{owner} {what} must be {kind} or {dims} of them, got {value!r}")
    return tuple(items)


def _padded(xp: Any, X: Array, pads: tuple[int, ...], fill: float) -> Array:
    """``X`` (..., *spatial) inside a border of ``fill``, ``pads[i]`` wide on both sides of axis i."""
    if not any(pads):
        return X
    d = len(pads)
    lead, spatial = tuple(X.shape[:-d]), tuple(X.shape[-d:])
    out = xp.full((*lead, *(n + 2 * p for n, p in zip(spatial, pads))), fill, dtype=X.dtype,
                  device=device_of(X))
    out[(..., *(slice(p, p + n) for n, p in zip(spatial, pads)))] = X
    return out


def _wrong_axes(layer: Layer, input_shape: tuple[int, ...]) -> ConfigError:
    """The refusal of a per-sample shape with the wrong number of axes for ``layer``."""
    return ConfigError(f"{type(layer).__name__} takes {_FORMS[layer.dims]} inputs, got {tuple(input_shape)}: "
                       "give the model that input_shape or put a Reshape before it")


class _WindowPool(Layer):
    """Base of the window pools: settings, shapes, and the window slices of one input shape.

    Subclasses give ``_pool(xp, X, plan) -> (Y, tape)`` on ``X`` (..., *spatial),
    ``_along(xp, RX, tape, plan)`` (the pooling's derivative applied to RX (..., *spatial)) and
    ``_unpool(xp, G, tape, plan)`` (its transpose: G (..., *out) -> (..., *spatial)).
    """

    second_order = True
    dims = 0  # spatial axes: 1 or 2

    def __init__(self, pool_size: int | tuple[int, ...], stride: int | tuple[int, ...] | None = None,
                 padding: int | tuple[int, ...] = 0) -> None:
        super().__init__()
        owner = type(self).__name__
        self.pool_size = _per_axis(pool_size, self.dims, "pool_size", owner, 1)
        self.stride = self.pool_size if stride is None else _per_axis(stride, self.dims, "stride", owner, 1)
        self.padding = _per_axis(padding, self.dims, "padding", owner, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.pool_size)):
            raise ConfigError(f"{owner} padding must be at most half the pool size (as PyTorch), got "
                              f"padding {padding!r} for pool size {pool_size!r}")

    def config(self) -> dict:
        def plain(values: tuple[int, ...]) -> int | list[int]:
            return values[0] if len(set(values)) == 1 else list(values)
        return {"pool_size": plain(self.pool_size), "stride": plain(self.stride),
                "padding": plain(self.padding)}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        out = self._sizes(tuple(input_shape))  # refuses a shape without channels first
        return (input_shape[0], *out)

    def _sizes(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output's spatial sizes for per-sample ``input_shape`` (C, *spatial) (floor mode), or
        a ConfigError for a shape the layer cannot take; no window is made (a loaded checkpoint
        asks this before anything is allocated)."""
        if len(input_shape) != self.dims + 1:
            raise _wrong_axes(self, input_shape)
        settings = list(zip(input_shape[1:], self.pool_size, self.stride, self.padding))
        if any(n + 2 * p < k for n, k, _, p in settings):
            raise ConfigError(f"{self!r} cannot take samples of shape {input_shape}: each spatial size "
                              "plus twice the padding must be at least the pool size")
        return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in settings)

    def _plan(self, input_shape: tuple[int, ...]) -> dict:
        """For per-sample ``input_shape`` (C, *spatial): ``padded`` (the padded spatial sizes),
        ``windows`` (one slice tuple per pool offset, in C order, each picking that offset of
        every window from the padded map), ``inner`` (the map inside the padding) and
        ``overlap`` (whether windows share entries)."""
        out, spatial = self._sizes(input_shape), input_shape[1:]
        windows = [(..., *(slice(o, o + s * (m - 1) + 1, s) for o, s, m in zip(offset, self.stride, out)))
                   for offset in itertools.product(*(range(k) for k in self.pool_size))]
        return {"windows": windows, "padded": tuple(n + 2 * p for n, p in zip(spatial, self.padding)),
                "inner": (..., *(slice(p, p + n) for n, p in zip(spatial, self.padding))),
                "overlap": any(s < k for k, s in zip(self.pool_size, self.stride))}

    def _scatter(self, xp: Any, shares: Any, like: Array, plan: dict) -> Array:
        """Sum each offset's share (..., *out) into the input's gradient (..., *spatial): the
        slice-adds the standard offers instead of a scatter-add, then the padding cut off."""
        lead = tuple(like.shape[:-self.dims])
        dXp = xp.zeros((*lead, *plan["padded"]), dtype=like.dtype, device=device_of(like))
        for window, share in zip(plan["windows"], shares):
            # Windows that do not overlap write each entry once: assignment, no read.
            dXp[window] = dXp[window] + share if plan["overlap"] else share
        return dXp[plan["inner"]] if any(self.padding) else dXp

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        """``X`` (N, C, *spatial) -> ``Y`` (N, C, *out); ``backward(dY)`` -> dX (N, C, *spatial)."""
        xp = self._ns(X)
        plan = self._plan(tuple(X.shape[1:]))
        Y, tape = self._pool(xp, X, plan)

        def backward(dY: Array) -> Array:
            return self._unpool(xp, dY, tape, plan) if input_grad else None

        return Y, backward

    def r_forward(self, X: Array, RX: Array | None, V: dict[str, Array], *,
                  train: bool = False) -> tuple[Array, Array | None, Any]:
        """Y and R{Y}: the pooling's derivative along R{X} (P, N, C, *spatial) -> (P, N, C, *out)."""
        xp = self._ns(X)
        plan = self._plan(tuple(X.shape[1:]))
        Y, tape = self._pool(xp, X, plan)
        RY = None if RX is None else self._along(xp, RX, tape, plan)
        return Y, RY, (tape, plan)

    def r_backward(self, tape: Any, dY: Array, RdY: Array) -> tuple[Array, Array, list[tuple[Array, Array]]]:
        """dX and R{dX}: the backward map is linear and fixed near the point, so R{dX} is the
        backward of R{dY} (P, N, C, *out); no parameters, no pieces."""
        xp = self._ns(dY)
        pooled, plan = tape
        return self._unpool(xp, dY, pooled, plan), self._unpool(xp, RdY, pooled, plan), []


class _MaxPool(_WindowPool):
    """Each window's largest entry; the gradient goes to it (ties: the first in C order)."""

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        """ONNX's MaxPool: its padding never wins a window (our -inf), floor mode (ceil_mode 0)."""
        return graph.node("MaxPool", [x], kernel_shape=list(self.pool_size), strides=list(self.stride),
                          pads=list(self.padding) * 2, ceil_mode=0)

    def _pool(self, xp: Any, X: Array, plan: dict) -> tuple[Array, tuple[Array, Array]]:
        """Y (..., *out), each window's largest entry, and the tape (the padded X, Y) from which
        :meth:`_firsts` finds the entry each window's gradient goes to."""
        Xp = _padded(xp, X, self.padding, -math.inf)
        windows = plan["windows"]
        best = Xp[windows[0]]
        for window in windows[1:]:
            best = xp.maximum(best, Xp[window])  # faster than tracking an argmax with where()
        return best, (Xp, best)

    def _firsts(self, xp: Any, tape: tuple[Array, Array], plan: dict) -> Iterator[Array]:
        """Per pool offset, in C order: where that offset holds its window's first maximum,
        (N, C, *out) booleans: the entries equal to the maximum that no earlier offset holds."""
        Xp, best = tape
        free = None  # windows whose maximum no earlier offset holds
        last = len(plan["windows"]) - 1
        for i, window in enumerate(plan["windows"]):
            equal = Xp[window] == best
            first = equal if free is None else equal & free
            yield first
            if i < last:  # first ⊆ free, so free & ~equal is free ^ first: one operation, not two
                free = ~equal if free is None else free ^ first

    def _along(self, xp: Any, RX: Array, tape: tuple[Array, Array], plan: dict) -> Array:
        """R{X} (..., N, C, *spatial) read at each window's first maximum: (..., N, C, *out)."""
        RXp = _padded(xp, RX, self.padding, 0.0)
        total = None
        for window, first in zip(plan["windows"], self._firsts(xp, tape, plan)):
            part = RXp[window] * xp.astype(first, RX.dtype)
            total = part if total is None else total + part
        return total

    def _unpool(self, xp: Any, G: Array, tape: tuple[Array, Array], plan: dict) -> Array:
        """G (..., N, C, *out) back to each window's first maximum, (..., N, C, *spatial)."""
        # A product with the 0/1 mask: NumPy's where() branches per entry, ten times slower here.
        shares = (G * xp.astype(first, G.dtype) for first in self._firsts(xp, tape, plan))
        return self._scatter(xp, shares, G, plan)


class _AvgPool(_WindowPool):
    """Each window's mean, the zero padding counted (PyTorch's ``count_include_pad=True``)."""

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        """ONNX's AveragePool with the padding counted (``count_include_pad=1``), floor mode; where
        the runtime lacks it (ONNX Runtime in float64), this forward's sum of strided slices of the
        zero-padded map over the pool size."""
        if graph.supports("AveragePool"):
            return graph.node("AveragePool", [x], kernel_shape=list(self.pool_size),
                              strides=list(self.stride), pads=list(self.padding) * 2, ceil_mode=0,
                              count_include_pad=1)
        out, padded = self._sizes(tuple(input_shape)), graph.pad(x, [(p, p) for p in self.padding])
        total = None
        for offset in itertools.product(*(range(k) for k in self.pool_size)):
            window = graph.strided(padded, list(offset), self.stride, out)
            total = window if total is None else graph.node("Add", [total, window])
        return graph.node("Div", [total, graph.constant(float(math.prod(self.pool_size)))])

    def _pool(self, xp: Any, X: Array, plan: dict) -> tuple[Array, None]:
        return self._along(xp, X, None, plan), None

    def _along(self, xp: Any, X: Array, tape: None, plan: dict) -> Array:
        """The window means of X (..., *spatial): (..., *out). Linear, so R{Y} is this of R{X}."""
        Xp = _padded(xp, X, self.padding, 0.0)
        total = None
        for window in plan["windows"]:
            total = Xp[window] if total is None else total + Xp[window]
        return total / math.prod(self.pool_size)

    def _unpool(self, xp: Any, G: Array, tape: None, plan: dict) -> Array:
        """G (..., *out) spread evenly over each window: (..., *spatial)."""
        share = G / math.prod(self.pool_size)
        return self._scatter(xp, (share for _ in plan["windows"]), G, plan)


class MaxPool1D(_MaxPool):
    """Max over windows of a 1-D map: (N, C, L) -> (N, C, L_out); see the module's notes."""

    dims = 1


class MaxPool2D(_MaxPool):
    """Max over windows of a 2-D map: (N, C, H, W) -> (N, C, H_out, W_out); see the module's notes."""

    dims = 2


class AvgPool1D(_AvgPool):
    """Mean over windows of a 1-D map: (N, C, L) -> (N, C, L_out); see the module's notes."""

    dims = 1


class AvgPool2D(_AvgPool):
    """Mean over windows of a 2-D map: (N, C, H, W) -> (N, C, H_out, W_out); see the module's notes."""

    dims = 2


class _GlobalAvgPool(Layer):
    """The mean of each channel over the whole map: (N, C, *spatial) -> (N, C), as PyTorch's
    ``adaptive_avg_pool`` to size 1 followed by a flatten. Linear: R{Y} is the mean of R{X}."""

    second_order = True
    dims = 0

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != self.dims + 1:
            raise _wrong_axes(self, input_shape)
        return (input_shape[0],)

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        """ReduceMean over the spatial axes (ONNX Runtime has no float64 GlobalAveragePool)."""
        return graph.node("ReduceMean", [x], axes=list(range(2, 2 + self.dims)), keepdims=0)

    def _mean(self, xp: Any, X: Array) -> Array:
        """(..., *spatial) -> (...)."""
        return xp.mean(X, axis=tuple(range(-self.dims, 0)))

    def _spread(self, xp: Any, G: Array, spatial: tuple[int, ...]) -> Array:
        """G (...) back over the map, each entry's share 1/size: (..., *spatial)."""
        share = xp.reshape(G / math.prod(spatial), (*G.shape, *(1 for _ in spatial)))
        return xp.zeros((*G.shape, *spatial), dtype=G.dtype, device=device_of(G)) + share

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        """``X`` (N, C, *spatial) -> ``Y`` (N, C); ``backward(dY)`` -> dX (N, C, *spatial)."""
        xp = self._ns(X)
        self.output_shape(tuple(X.shape[1:]))
        spatial = tuple(X.shape[2:])

        def backward(dY: Array) -> Array:
            return self._spread(xp, dY, spatial) if input_grad else None

        return self._mean(xp, X), backward

    def r_forward(self, X: Array, RX: Array | None, V: dict[str, Array], *,
                  train: bool = False) -> tuple[Array, Array | None, Any]:
        """Y (N, C) and R{Y} (P, N, C): the means of X and R{X} (P, N, C, *spatial)."""
        xp = self._ns(X)
        self.output_shape(tuple(X.shape[1:]))
        return self._mean(xp, X), None if RX is None else self._mean(xp, RX), tuple(X.shape[2:])

    def r_backward(self, tape: Any, dY: Array, RdY: Array) -> tuple[Array, Array, list[tuple[Array, Array]]]:
        """dX and R{dX}: dY (N, C) and R{dY} (P, N, C) spread over the map."""
        xp = self._ns(dY)
        return self._spread(xp, dY, tape), self._spread(xp, RdY, tape), []


class GlobalAvgPool1D(_GlobalAvgPool):
    """Each channel's mean over the length: (N, C, L) -> (N, C)."""

    dims = 1


class GlobalAvgPool2D(_GlobalAvgPool):
    """Each channel's mean over the map: (N, C, H, W) -> (N, C)."""

    dims = 2


for _cls in (MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D, GlobalAvgPool1D, GlobalAvgPool2D):
    register(_cls.__name__.lower(), _cls)
