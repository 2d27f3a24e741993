"""Layers that only rearrange entries: ``Flatten`` and ``Reshape``.

Both keep the batch axis and move no number, so their backward pass is the inverse
reshape of ``dY``, and their second-order pieces are the same reshapes of the
directional derivatives (they have no parameters): Levenberg–Marquardt and Newton cover
them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ._typing import Array, Backward
from .errors import ConfigError
from .layers import Layer, register


class _Rearrange(Layer):
    """Base: ``Y = reshape(X, (N, *output_shape))``; subclasses say the output shape."""

    second_order = True

    def _pair(self, X: Array) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(input, output) per-sample shapes for this ``X`` (N, *in)."""
        shape = tuple(X.shape[1:])
        return shape, self.output_shape(shape)

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        xp = self._ns(X)
        inner, outer = self._pair(X)
        n = X.shape[0]
        Y = xp.reshape(X, (n, *outer))

        def backward(dY: Array) -> Array:
            return xp.reshape(dY, (n, *inner)) if input_grad else None

        return Y, backward

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        """Reshape to (N, *output_shape), C order as ours; 0 keeps the batch axis as it is."""
        shape = graph.constant([0, *self.output_shape(tuple(input_shape))], "int64")
        return graph.node("Reshape", [x, shape])

    def r_forward(self, X: Array, RX: Array | None, V: dict[str, Array], *,
                  train: bool = False) -> tuple[Array, Array | None, Any]:
        """R{Y} is R{X} reshaped: X (N, *in) -> (N, *out), R{X} (P, N, *in) -> (P, N, *out)."""
        xp = self._ns(X)
        inner, outer = self._pair(X)
        n = X.shape[0]
        RY = None if RX is None else xp.reshape(RX, (RX.shape[0], n, *outer))
        return xp.reshape(X, (n, *outer)), RY, (n, inner)

    def r_backward(self, tape: Any, dY: Array, RdY: Array) -> tuple[Array, Array, list[tuple[Array, Array]]]:
        """dX and R{dX}: dY (N, *out), R{dY} (P, N, *out) reshaped back to the input's shape."""
        n, inner = tape
        xp = self._ns(dY)
        return xp.reshape(dY, (n, *inner)), xp.reshape(RdY, (RdY.shape[0], n, *inner)), []


class Flatten(_Rearrange):
    """Every entry of a sample in one axis: (N, *shape) -> (N, prod(shape)), in C order (a
    (channels, height, width) map becomes channel after channel, row after row), as PyTorch's
    ``nn.Flatten`` and Keras's ``Flatten``."""

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)


class Reshape(_Rearrange):
    """Samples reshaped to ``shape`` (no batch axis), in C order; one entry may be -1, worked out
    from the others, as Keras's ``Reshape``. (N, *in) -> (N, *shape); the entries per sample
    must agree."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        dims = list(shape) if isinstance(shape, (list, tuple)) else None
        bad = dims is None or not dims or any(isinstance(d, bool) or not isinstance(d, int) for d in dims)
        if bad or sum(d == -1 for d in dims) > 1 or any(d < 1 and d != -1 for d in dims):
            raise ConfigError(f"Reshape takes a tuple of positive sizes (one of them may be -1), "
                              f"got {shape!r}")
        self.shape = tuple(dims)

    def config(self) -> dict:
        return {"shape": list(self.shape)}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        size, known = math.prod(input_shape), math.prod(d for d in self.shape if d != -1)
        if -1 in self.shape and size % known == 0:
            return tuple(size // known if d == -1 else d for d in self.shape)
        if -1 not in self.shape and size == known:
            return self.shape
        raise ConfigError(f"Reshape{self.shape} cannot take samples of shape {tuple(input_shape)}: their "
                          f"{size} entries do not fill it")


register("flatten", Flatten)
register("reshape", Reshape)
