"""Array operations that write into a given array (``out=``), per array library.

The Array API standard has in-place operators (``a += b``) but no ``out=``: a matrix
product or an elementwise function always returns a new array. A training step that
allocates nothing after its first call needs both, so this module gives each library's
own way: NumPy's and CuPy's ufuncs and ``matmul`` take ``out=``, PyTorch's functions
take ``out=`` too. Any other namespace (array-api-strict) returns a new array, as the
standard does: copying it into ``out`` would cost one more operation per call.

Every operation takes ``out=`` by keyword (``None``: a new array) and returns the result: ``out``
itself where the library writes into it, a new array otherwise, so callers always use what is
returned, and code written against :class:`Into` runs on every library. ``in_place`` says
whether ``out`` is honoured (a workspace is pointless otherwise). Python scalars keep the
array's dtype (NEP 50 for NumPy and CuPy, PyTorch's own rule), as the operators do.
"""

from __future__ import annotations

import importlib
from typing import Any

import array_api_compat

Array = Any


class Into:
    """The portable form: the namespace ``xp``'s own operations, each returning a new array."""

    in_place = False

    def __init__(self, xp: Any) -> None:
        self.xp = xp

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        return a @ b

    def add(self, a: Array, b: Any, out: Array | None = None) -> Array:
        return a + b

    def subtract(self, a: Any, b: Any, out: Array | None = None) -> Array:
        return a - b

    def multiply(self, a: Array, b: Any, out: Array | None = None) -> Array:
        return a * b

    def divide(self, a: Any, b: Any, out: Array | None = None) -> Array:
        return a / b

    def maximum(self, a: Array, b: float, out: Array | None = None) -> Array:
        return self.xp.maximum(a, b)

    def sqrt(self, a: Array, out: Array | None = None) -> Array:
        return self.xp.sqrt(a)

    def tanh(self, a: Array, out: Array | None = None) -> Array:
        return self.xp.tanh(a)

    def sign(self, a: Array, out: Array | None = None) -> Array:
        return self.xp.sign(a)

    def positive(self, a: Array, out: Array | None = None) -> Array:
        """1 where ``a > 0``, else 0 (NaN included), in ``a``'s dtype: a mask to multiply by."""
        return self.xp.astype(a > 0, a.dtype)

    def stack(self, arrays: list[Array], axis: int, out: Array | None = None) -> Array:
        return self.xp.stack(arrays, axis=axis)

    def exp(self, a: Array, out: Array | None = None) -> Array:
        return self.xp.exp(a)

    def log(self, a: Array, out: Array | None = None) -> Array:
        return self.xp.log(a)

    def sum0(self, a: Array, out: Array | None = None) -> Array:
        """The sum over axis 0 of a 2-d array (N, K) -> (K,)."""
        return self.xp.sum(a, axis=0)

    def row_sum(self, a: Array, out: Array | None = None) -> Array:
        """The sum of each row of (N, K), kept as (N, 1)."""
        return self.xp.sum(a, axis=1, keepdims=True)

    def row_max(self, a: Array, out: Array | None = None) -> Array:
        """The maximum of each row of (N, K), kept as (N, 1)."""
        return self.xp.max(a, axis=1, keepdims=True)


class UfuncInto(Into):
    """NumPy and CuPy: their ufuncs, ``matmul`` and ``sum`` take ``out=``."""

    in_place = True

    def __init__(self, xp: Any, lib: Any) -> None:
        super().__init__(xp)
        self.lib = lib
        for name in ("matmul", "add", "subtract", "multiply", "divide", "maximum", "sqrt", "tanh", "sign",
                     "exp", "log"):
            setattr(self, name, getattr(lib, name))  # the library's own: callers pass out= by keyword

    def stack(self, arrays: list[Array], axis: int, out: Array | None = None) -> Array:
        return self.lib.stack(arrays, axis=axis, out=out)

    def positive(self, a: Array, out: Array | None = None) -> Array:
        # the comparison's booleans written as 0 and 1 of out's dtype (a cast the ufunc does)
        if out is None:
            return (a > 0).astype(a.dtype)
        return self.lib.greater(a, 0, out=out, casting="unsafe")

    def sum0(self, a: Array, out: Array | None = None) -> Array:
        return self.lib.add.reduce(a, axis=0, out=out)  # sum's own Python layer costs more here

    def row_sum(self, a: Array, out: Array | None = None) -> Array:
        return self.lib.add.reduce(a, axis=1, keepdims=True, out=out)

    def row_max(self, a: Array, out: Array | None = None) -> Array:
        return self.lib.maximum.reduce(a, axis=1, keepdims=True, out=out)


class TorchInto(Into):
    """PyTorch: its functions take ``out=`` (scalars as the operators take them)."""

    in_place = True

    def __init__(self, xp: Any) -> None:
        super().__init__(xp)
        import torch

        self.torch = torch

    def matmul(self, a: Array, b: Array, out: Array | None = None) -> Array:
        return self.torch.matmul(a, b, out=out)

    def add(self, a: Array, b: Any, out: Array | None = None) -> Array:
        return self.torch.add(a, b, out=out)

    def subtract(self, a: Any, b: Any, out: Array | None = None) -> Array:
        if not self.torch.is_tensor(a):  # a scalar minus an array
            return self.torch.sub(self.torch.neg(b, out=out), -a, out=out)
        return self.torch.sub(a, b, out=out)

    def multiply(self, a: Array, b: Any, out: Array | None = None) -> Array:
        return self.torch.mul(a, b, out=out)

    def divide(self, a: Any, b: Any, out: Array | None = None) -> Array:
        return self.torch.div(a, b, out=out)

    def maximum(self, a: Array, b: float, out: Array | None = None) -> Array:
        return self.torch.clamp_min(a, b, out=out)

    def sqrt(self, a: Array, out: Array | None = None) -> Array:
        return self.torch.sqrt(a, out=out)

    def tanh(self, a: Array, out: Array | None = None) -> Array:
        return self.torch.tanh(a, out=out)

    def sign(self, a: Array, out: Array | None = None) -> Array:
        return self.torch.sign(a, out=out)

    def positive(self, a: Array, out: Array | None = None) -> Array:
        mask = self.torch.gt(a, 0)
        return mask.to(a.dtype) if out is None else out.copy_(mask)

    def stack(self, arrays: list[Array], axis: int, out: Array | None = None) -> Array:
        return self.torch.stack(arrays, dim=axis, out=out)

    def exp(self, a: Array, out: Array | None = None) -> Array:
        return self.torch.exp(a, out=out)

    def log(self, a: Array, out: Array | None = None) -> Array:
        return self.torch.log(a, out=out)

    def sum0(self, a: Array, out: Array | None = None) -> Array:
        return self.torch.sum(a, dim=0, out=out)

    def row_sum(self, a: Array, out: Array | None = None) -> Array:
        return self.torch.sum(a, dim=1, keepdim=True, out=out)

    def row_max(self, a: Array, out: Array | None = None) -> Array:
        return self.torch.amax(a, dim=1, keepdim=True, out=out)


_BY_NAMESPACE: dict[int, Into] = {}


def into(xp: Any) -> Into:
    """The operations with ``out=`` for the Array API namespace ``xp`` (cached per namespace)."""
    ops = _BY_NAMESPACE.get(id(xp))
    if ops is None:
        ops = _BY_NAMESPACE[id(xp)] = _make(xp)
    return ops


def _make(xp: Any) -> Into:
    if array_api_compat.is_numpy_namespace(xp):
        return UfuncInto(xp, importlib.import_module("numpy"))
    if array_api_compat.is_cupy_namespace(xp):
        return UfuncInto(xp, importlib.import_module("cupy"))
    if array_api_compat.is_torch_namespace(xp):
        return TorchInto(xp)
    return Into(xp)
