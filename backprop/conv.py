"""Convolutions: ``Conv1D`` and ``Conv2D`` (cross-correlation, as PyTorch's ``nn.Conv1d/2d``).

One code path serves both (``_Conv``, with ``spatial`` = 1 or 2 axes). The forward pass is
im2col and one matrix product: the input is padded into a channels-major copy (C, N, *S_pad),
and strided slices pick the entries each kernel offset meets at every output position, stacked
into the columns (C·K, N·L) (K kernel entries, L output positions), so ``Y = W2 @ cols`` with
``W2`` the weights (out, C, *kernel) reshaped to (out, C·K), no copy. The slices go one spatial
axis at a time (a 5×5 kernel: 5 slices along the width stacked, then 5 along the height of
that), which gives the same columns as one slice per kernel entry with longer runs to copy. The
backward pass is the transpose: ``dW2 = dY2 @ colsᵀ`` (one matrix product) and
``dcols = W2ᵀ @ dY2``, which col2im adds back onto the input, axis by axis in reverse. The
standard has no scatter-add, so col2im is a sum of shifted slices: for each offset, the strided
slice of the padded gradient that offset read in the forward pass gets that offset's columns
added (``dXp[slice] += D[:, i]``); within one offset the slice meets each entry at most once, so
the add is exact, and overlapping windows (stride below the dilated kernel) add up over the
offsets, while entries no window reads (stride above it) stay zero.

Channels-major columns keep each slice's runs as long as an output row and each matrix product
one contiguous product; the output (N, out, *O) is a view of the product (out, N·L), which a
next convolution without padding reads back channels-major without a copy.

The second-order pieces follow from linearity: the Jacobian rows of ``W`` are per-sample
``dY_n @ cols_nᵀ``, and the R-operator convolves the directions
(``R{Y} = conv(R{X}, W) + conv(X, V_W) + V_b``).
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable
from typing import Any

from . import initializers, workspace
from ._typing import Array, Backward
from .errors import ConfigError
from .layers import Layer, register
from .namespace import device_of


def _ints(value: Any, n: int, what: str, owner: str, *, low: int = 1) -> tuple[int, ...]:
    """``value`` (an int, or a sequence of ``n`` ints) as ``n`` ints >= ``low``."""
    items = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(items) != n or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low
                              for v in items):
        form = "an integer" if n == 1 else f"an integer or {n} integers"
        raise ConfigError(f"{owner} {what} must be {form} >= {low}, got {value!r}")
    return tuple(int(v) for v in items)


def _compact(values: tuple[int, ...]) -> int | list[int]:
    """A setting as config() saves it: one int when every axis agrees, else a list."""
    return values[0] if len(set(values)) == 1 else list(values)


class _Conv(Layer):
    """Convolution over ``spatial`` axes (1 or 2); see the module docstring for the method.

    Shapes: ``X`` (N, in, *S) -> ``Y`` (N, out, *O), O_i = (S_i + pad_i - dilation_i·(k_i - 1) - 1)
    // stride_i + 1; ``W`` (out, in, *kernel), ``b`` (out,).
    """

    spatial = 0  # the number of spatial axes: set by the subclasses
    second_order = True

    def __init__(self, out_channels: int, kernel_size: int | tuple[int, ...], *,
                 stride: int | tuple[int, ...] = 1, padding: int | str | tuple[int, ...] = 0,
                 dilation: int | tuple[int, ...] = 1, init: str | Callable = "auto", bias: float = 0.0,
                 in_channels: int | None = None) -> None:
        super().__init__()
        owner, n = type(self).__name__, self.spatial
        self.out_channels = _ints(out_channels, 1, "out_channels", owner)[0]
        self.in_channels = None if in_channels is None else _ints(in_channels, 1, "in_channels", owner)[0]
        self.kernel_size = _ints(kernel_size, n, "kernel_size", owner)
        self.stride = _ints(stride, n, "stride", owner)
        self.dilation = _ints(dilation, n, "dilation", owner)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ConfigError(f"{owner} padding must be 'valid', 'same' or a number, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ConfigError(f"{owner} padding='same' needs stride 1 (got {self.stride}): give the "
                                  "padding as a number instead")
            self.padding: str | tuple[int, ...] = padding
        else:
            self.padding = _ints(padding, n, "padding", owner, low=0)
        if isinstance(bias, bool) or not isinstance(bias, numbers.Real):
            raise ConfigError(f"{owner} bias must be a number, got {bias!r}")
        self.bias = float(bias)
        self.init = init

    # -- settings and shapes -------------------------------------------------------------
    def config(self) -> dict:
        init = initializers.saved_name(self.init)
        padding = self.padding if isinstance(self.padding, str) else _compact(self.padding)
        return {"out_channels": self.out_channels, "kernel_size": _compact(self.kernel_size),
                "stride": _compact(self.stride), "padding": padding, "dilation": _compact(self.dilation),
                "init": init, "bias": self.bias, "in_channels": self.in_channels}

    @classmethod
    def from_config(cls, config: dict) -> _Conv:
        return cls(**{**config, "init": initializers.loadable(config.get("init"))})

    def _pads(self) -> list[tuple[int, int]]:
        """(before, after) zeros per spatial axis; "same" pads d·(k - 1) in all, the odd one after
        (as PyTorch's padding="same")."""
        if self.padding == "valid":
            return [(0, 0)] * self.spatial
        if self.padding == "same":
            totals = [d * (k - 1) for k, d in zip(self.kernel_size, self.dilation)]
            return [(t // 2, t - t // 2) for t in totals]
        return [(p, p) for p in self.padding]

    def _out_sizes(self, sizes: tuple[int, ...]) -> tuple[int, ...]:
        """The output's spatial sizes O for inputs of spatial sizes S (may be < 1: refused by the caller)."""
        return tuple((s + lo + hi - d * (k - 1) - 1) // st + 1 for s, (lo, hi), k, d, st
                     in zip(sizes, self._pads(), self.kernel_size, self.dilation, self.stride))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        name, shape = type(self).__name__, tuple(input_shape)
        axes = "(channels, length)" if self.spatial == 1 else "(channels, height, width)"
        if len(shape) != self.spatial + 1:
            raise ConfigError(f"{name} takes {axes} samples, got {shape}: give the model input_shape= "
                              "(or Reshape the samples before it)")
        if self.in_channels is not None and shape[0] != self.in_channels:
            raise ConfigError(f"{name} expecting {self.in_channels} input channels got samples of shape "
                              f"{shape}: make in_channels the previous layer's channels")
        out = self._out_sizes(shape[1:])
        if min(out) < 1:
            raise ConfigError(f"{name} with kernel {self.kernel_size}, dilation {self.dilation} and padding "
                              f"{self.padding} does not fit samples of shape {shape}: use a smaller kernel "
                              "or more padding")
        return (self.out_channels, *out)

    def infer(self, input_shape: tuple[int, ...]) -> None:
        if self.in_channels is None and len(input_shape) == self.spatial + 1:
            self.in_channels = int(input_shape[0])

    def multiply_adds(self, input_shape: tuple[int, ...]) -> int:
        """out × C·K at each output position: the im2col product's share of one sample."""
        return math.prod(self.param_shapes()["W"]) * math.prod(self.output_shape(input_shape)[1:])

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        if self.in_channels is None:
            raise ConfigError(f"{type(self).__name__}({self.out_channels}, ...) does not know its input "
                              "channels before a model builds it: give in_channels= or put it in a model")
        return {"W": (self.out_channels, self.in_channels, *self.kernel_size), "b": (self.out_channels,)}

    def build(self, backend: Any, dtype: Any, rng: Any, *, next_layer: Layer | None = None) -> None:
        super().build(backend, dtype, rng)
        shape = self.param_shapes()["W"]
        init = self.init
        if init == "auto":
            init = "he_uniform" if getattr(next_layer, "rectifier", False) else "glorot_uniform"
        kernel = math.prod(self.kernel_size)  # fan in and out count every kernel entry, as PyTorch and Keras
        W = initializers.get(init)(rng, shape, self.in_channels * kernel, self.out_channels * kernel)
        self.params = {"W": backend.asarray(W, dtype),
                       "b": backend.asarray([self.bias] * self.out_channels, dtype)}
        self.grads = {}

    # -- im2col and col2im ----------------------------------------------------------------
    def _offset_slices(self, axis: int, out: tuple[int, ...]) -> list[tuple[slice, ...]]:
        """Per offset of the kernel along spatial ``axis``, the index that picks the entries it meets
        at every output position along that axis. Both :meth:`_im2col` and :meth:`_col2im` go one
        spatial axis at a time, and in each of their stages that axis sits at position
        ``spatial + 1`` (see there), so the index is the same."""
        d, st, o = self.dilation[axis], self.stride[axis], out[axis]
        lead = (slice(None),) * (self.spatial + 1)
        return [(*lead, slice(i * d, i * d + st * (o - 1) + 1, st), ...)  # the axes after it kept whole
                for i in range(self.kernel_size[axis])]

    def _inner(self, sizes: tuple[int, ...]) -> tuple[slice, ...]:
        """The index of the unpadded input inside the padded (C, B, *S_pad)."""
        return (slice(None), slice(None), *(slice(lo, lo + s) for s, (lo, _) in zip(sizes, self._pads())))

    def _im2col(self, X: Array) -> tuple[Array, tuple[int, ...]]:
        """X (B, C, *S) -> (cols (C·K, B·L), O): column (b, position) holds the window's entries,
        channel major and kernel offset minor, as ``W`` (out, C, *kernel) reshaped to (out, C·K)."""
        xp = self._ns(X)
        B, C, sizes = X.shape[0], X.shape[1], tuple(X.shape[2:])
        out = self._out_sizes(sizes)
        major = xp.permute_dims(X, (1, 0, *range(2, X.ndim)))  # (C, B, *S): each channel's block contiguous
        into = workspace.ops(X)
        if any(lo or hi for lo, hi in self._pads()):
            padded = (C, B, *(s + lo + hi for s, (lo, hi) in zip(sizes, self._pads())))
            Xp = workspace.take(self, "padded", padded, X)  # a step's buffer holds old values: zeroed
            Xp = xp.zeros(padded, dtype=X.dtype, device=device_of(X)) if Xp is None else _zeroed(Xp)
            Xp[self._inner(sizes)] = major
        else:
            Xp = major
        # One axis at a time, the last first, each stage's offsets stacked at axis 1: before the stage
        # of axis a, A is (C, k_a+1.., B, S_0..S_a, O_a+1..) (axis a at position spatial + 1), after
        # it (C, k_a.., B, S_0..S_a-1, O_a..). Stacking per axis copies longer runs than one slice
        # per kernel entry would.
        A = Xp
        for axis in reversed(range(self.spatial)):
            pieces = [A[index] for index in self._offset_slices(axis, out)]
            stacked = (A.shape[0], len(pieces), *pieces[0].shape[1:])
            A = into.stack(pieces, 1, out=workspace.take(self, f"cols{axis}", stacked, X))
        return xp.reshape(A, (-1, B * math.prod(out))), out  # (C, *kernel, B, *O) -> (C·K, B·L)

    def _col2im(self, dcols: Array, B: int, C: int, sizes: tuple[int, ...]) -> Array:
        """The transpose of :meth:`_im2col`: dcols (C·K, B·L) -> dX (B, C, *S). No scatter-add in
        the standard: each offset's columns are added onto the strided slice it was read from."""
        xp = self._ns(dcols)
        out = self._out_sizes(sizes)
        padded = [s + lo + hi for s, (lo, hi) in zip(sizes, self._pads())]
        D = xp.reshape(dcols, (C, *self.kernel_size, B, *out))
        # The stages of _im2col in reverse: axis a's offsets are added onto the strided slices they
        # were read from, (C, k_a.., B, S_0..S_a-1, O_a..) -> (C, k_a+1.., B, S_0..S_a, O_a+1..).
        for axis in range(self.spatial):
            shape = list(D.shape[:1] + D.shape[2:])
            shape[self.spatial + 1] = padded[axis]
            dXp = workspace.take(self, f"dcols{axis}", tuple(shape), dcols)
            dXp = xp.zeros(tuple(shape), dtype=dcols.dtype, device=device_of(dcols)) if dXp is None \
                else _zeroed(dXp)
            for i, index in enumerate(self._offset_slices(axis, out)):
                dXp[index] += D[:, i, ...]
            D = dXp
        return xp.permute_dims(dXp[self._inner(sizes)], (1, 0, *range(2, len(sizes) + 2)))  # (B, C, *S)

    def _rows(self, Y2: Array, B: int, out: tuple[int, ...]) -> Array:
        """(..., out, B·L) products -> (..., B, out, *O) outputs (a view: no copy)."""
        xp, lead = self._ns(Y2), Y2.ndim - 2
        shaped = xp.reshape(Y2, (*Y2.shape[:-2], self.out_channels, B, *out))
        return xp.permute_dims(shaped, (*range(lead), lead + 1, lead, *range(lead + 2, shaped.ndim)))

    def _flat_delta(self, dY: Array) -> Array:
        """dY (..., B, out, *O) -> (..., out, B·L), the layout of the products (a copy: in a step's
        buffer inside a step)."""
        xp, lead = self._ns(dY), dY.ndim - self.spatial - 2
        swapped = xp.permute_dims(dY, (*range(lead), lead + 1, lead, *range(lead + 2, dY.ndim)))
        buffer = workspace.take(self, "delta", tuple(swapped.shape), dY)
        if buffer is not None:
            buffer[...] = swapped
            swapped = buffer
        return xp.reshape(swapped, (*dY.shape[:lead], self.out_channels, -1))

    # -- the passes -------------------------------------------------------------------------
    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        W, b = self.params["W"], self.params["b"]
        if X.dtype != W.dtype:  # NumPy would silently promote float32 weights to float64
            raise TypeError(f"{type(self).__name__} got {X.dtype} input but holds {W.dtype} weights: "
                            "cast the input")
        xp, into = self._ns(X), workspace.ops(X)
        B, C, sizes = X.shape[0], X.shape[1], tuple(X.shape[2:])
        cols, out = self._im2col(X)
        W2 = xp.reshape(W, (self.out_channels, -1))  # (out, C·K)
        # the layer's one matrix product: (out, C·K) @ (C·K, B·L), in a step's buffer
        Y2 = into.matmul(W2, cols, out=workspace.take(self, "Y2", (W2.shape[0], cols.shape[1]), X))
        Y2 += b[:, None]

        def backward(dY: Array) -> Array:
            dY2 = self._flat_delta(dY)  # (out, B·L)
            held = self.grads.get("W")  # the model's view: the product goes straight into it
            target = None if held is None else xp.reshape(held, W2.shape)
            dW2 = into.matmul(dY2, cols.T, out=target)
            self.set_grad("W", held if dW2 is target else xp.reshape(dW2, W.shape))
            self.set_grad("b", xp.sum(dY2, axis=1))
            if not input_grad:
                return None
            dcols = into.matmul(W2.T, dY2, out=workspace.take(self, "dcols", tuple(cols.shape), dY2))
            return self._col2im(dcols, B, C, sizes)

        return self._rows(Y2, B, out), backward

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        """ONNX's Conv (W (out, in, *kernel) is its layout) where the runtime has it; elsewhere (ONNX
        Runtime in float64) this forward's own im2col: the zero-padded map's strided slice at
        each kernel offset, in C order, stacked as (N, C·K, L) and one MatMul by W (out, C·K)."""
        xp, pads = self._ns(self.params["W"]), self._pads()
        W, b = self.params["W"], self.params["b"]
        if graph.supports("Conv"):
            return graph.node("Conv", [x, graph.constant(W), graph.constant(b)],
                              kernel_shape=list(self.kernel_size), strides=list(self.stride),
                              dilations=list(self.dilation),
                              pads=[lo for lo, _ in pads] + [hi for _, hi in pads])
        out = self._out_sizes(tuple(input_shape[1:]))
        padded = graph.pad(x, pads)
        axis, offsets = graph.constant([2], "int64"), itertools.product(*(range(k) for k in self.kernel_size))
        starts = ([o * d for o, d in zip(offset, self.dilation)] for offset in offsets)
        slices = [graph.node("Unsqueeze", [graph.strided(padded, s, self.stride, out), axis]) for s in starts]
        width = int(input_shape[0]) * math.prod(self.kernel_size)
        cols = graph.node("Reshape", [graph.node("Concat", slices, axis=2),  # (N, C, K, *out)
                                      graph.constant([0, width, math.prod(out)], "int64")])
        Y = graph.node("MatMul", [graph.constant(xp.reshape(W, (self.out_channels, width))), cols])
        Y = graph.node("Add", [Y, graph.constant(xp.reshape(b, (self.out_channels, 1)))])
        return graph.node("Reshape", [Y, graph.constant([0, self.out_channels, *out], "int64")])

    def jacobian_rows(self, X: Array, dY: Array) -> list[Array]:
        """Per sample n, dz/dW = dY_n @ cols_nᵀ (the columns times the delta, summed over output
        positions), laid out as W: (N, out·in·K); dz/db = the delta summed over positions: (N, out)."""
        xp = self._ns(X)
        N = X.shape[0]
        cols, _ = self._im2col(X)
        cols = xp.permute_dims(xp.reshape(cols, (cols.shape[0], N, -1)), (1, 2, 0))  # (N, L, C·K)
        dY2 = xp.permute_dims(xp.reshape(self._flat_delta(dY), (self.out_channels, N, -1)), (1, 0, 2))
        return [xp.reshape(dY2 @ cols, (N, -1)), xp.sum(dY2, axis=2)]  # dY2 (N, out, L)

    def r_forward(self, X: Array, RX: Array | None, V: dict[str, Array], *,
                  train: bool = False) -> tuple[Array, Array | None, Any]:
        """R{Y} = conv(R{X}, W) + conv(X, V_W) + V_b, with V_W (P, out, in, *kernel), V_b (P, out),
        R{X} (P, N, in, *S) or None."""
        xp = self._ns(X)
        W, b = self.params["W"], self.params["b"]
        B = X.shape[0]
        cols, out = self._im2col(X)  # (C·K, B·L)
        P = V["W"].shape[0]
        W2, VW2 = xp.reshape(W, (self.out_channels, -1)), xp.reshape(V["W"], (P, self.out_channels, -1))
        RY2 = VW2 @ cols + V["b"][:, :, None]  # (P, out, B·L)
        Rcols = None
        if RX is not None:
            Rcols, _ = self._im2col(xp.reshape(RX, (P * B, *RX.shape[2:])))  # (C·K, P·B·L)
            Rcols = xp.permute_dims(xp.reshape(Rcols, (Rcols.shape[0], P, -1)), (1, 0, 2))  # (P, C·K, B·L)
            RY2 = RY2 + W2 @ Rcols
        tape = (cols, Rcols, W2, VW2, B, tuple(X.shape[1:]))
        return self._rows(W2 @ cols + b[:, None], B, out), self._rows(RY2, B, out), tape

    def r_backward(self, tape: Any, dY: Array, RdY: Array) -> tuple[Array, Array, list[tuple[Array, Array]]]:
        """R{dW2} = R{dY2} colsᵀ + dY2 R{cols}ᵀ, R{db} = Σ R{dY}, R{dcols} = W2ᵀ R{dY2} + V_W2ᵀ dY2; dX
        and R{dX} by col2im."""
        cols, Rcols, W2, VW2, B, (C, *sizes) = tape
        xp = self._ns(dY)
        P = RdY.shape[0]
        dY2, RdY2 = self._flat_delta(dY), self._flat_delta(RdY)  # (out, B·L), (P, out, B·L)
        RdW2 = RdY2 @ cols.T  # (P, out, C·K)
        if Rcols is not None:
            RdW2 = RdW2 + dY2 @ xp.permute_dims(Rcols, (0, 2, 1))
        Rdcols = W2.T @ RdY2 + xp.permute_dims(VW2, (0, 2, 1)) @ dY2  # (P, C·K, B·L)
        Rdcols = xp.reshape(xp.permute_dims(Rdcols, (1, 0, 2)), (Rdcols.shape[1], -1))  # (C·K, P·B·L)
        RdX = self._col2im(Rdcols, P * B, C, tuple(sizes))
        pieces = [(xp.reshape(dY2 @ cols.T, (-1,)), xp.reshape(RdW2, (P, -1))),
                  (xp.sum(dY2, axis=1), xp.sum(RdY2, axis=2))]
        dX = self._col2im(W2.T @ dY2, B, C, tuple(sizes))
        return dX, xp.reshape(RdX, (P, B, C, *sizes)), pieces


class Conv1D(_Conv):
    """1-D convolution: ``X`` (N, in, L) -> ``Y`` (N, out, L_out), ``W`` (out, in, k), ``b`` (out,).

    ``Conv1D(out_channels, kernel_size, *, stride=1, padding=0, dilation=1, init="auto", bias=0.0)``:
    ``padding`` "valid" (none), "same" (stride 1: the output as long as the input; an even kernel
    pads one more after) or a number of zeros on each side; ``init`` as Dense's ("auto": He
    before a rectifier, Glorot otherwise; fan in = in·k); ``bias`` the constant the biases start
    at. The input channels come from the input shape (``in_channels=`` fixes them).
    """

    spatial = 1


class Conv2D(_Conv):
    """2-D convolution: ``X`` (N, in, H, W) -> ``Y`` (N, out, H_out, W_out), ``W`` (out, in, kh, kw),
    ``b`` (out,).

    Arguments as :class:`Conv1D`'s; ``kernel_size``, ``stride``, ``padding`` and ``dilation`` take
    one int for both axes or a (height, width) pair.
    """

    spatial = 2


register("conv1d", Conv1D)
register("conv2d", Conv2D)


def _zeroed(buffer: Array) -> Array:
    """``buffer`` set to zeros in place (a step's buffer holds the last step's values)."""
    buffer[...] = 0.0
    return buffer
