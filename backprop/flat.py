"""All of a model's parameters as one flat vector, with the layers' arrays kept in sync.

Second-order methods (a solve or a line search over ``theta``) and a one-buffer
all-reduce of gradients both want the parameters as one vector. The model lays
its parameters out in one contiguous buffer of shape (P,) and gives each layer a
reshaped slice of it, so that writing the vector writes the layers and the
optimizers' in-place updates of the layers show in the vector.

What this relies on: the Array API standard does not promise that slicing or
``reshape`` return views (it leaves it to the library, and says in-place updates
of a view are implementation-defined). NumPy, CuPy and PyTorch document that a
basic slice of a contiguous array and a reshape of it are views; array-api-strict
wraps NumPy and behaves the same. Rather than trusting a list, :func:`pack` checks
once that a write through the buffer reaches the layer arrays; where it does not
(a library that copies), the layers keep their own arrays and the flat vector is
a copy gathered on request, which is correct, only slower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ._typing import Array
from .namespace import device_of


def sizes(shapes: Sequence[tuple[int, ...]]) -> list[int]:
    """Number of entries of each shape."""
    return [math.prod(shape) for shape in shapes]


def flatten(xp: Any, arrays: Sequence[Array]) -> Array:
    """One new vector (P,) holding ``arrays`` one after another, each in C order."""
    return xp.concat([xp.reshape(a, (-1,)) for a in arrays])


def unflatten(xp: Any, vector: Array, shapes: Sequence[tuple[int, ...]]) -> list[Array]:
    """Pieces of ``vector`` (P,) reshaped to ``shapes``: views where the library gives them."""
    pieces, start = [], 0
    for shape, count in zip(shapes, sizes(shapes)):
        pieces.append(xp.reshape(vector[start:start + count], shape))
        start += count
    return pieces


def pack(xp: Any, arrays: Sequence[Array]) -> tuple[Array, list[Array]] | None:
    """``(buffer, views)``: the arrays copied into one buffer (P,) and views of it shaped like
    them, or None when this library's slices are not views (see the module docstring)."""
    if not arrays:
        return None
    buffer = flatten(xp, arrays)
    views = unflatten(xp, buffer, [tuple(a.shape) for a in arrays])
    # The probe: a write through the buffer must reach the first view, and a write
    # through the last view must reach the buffer.
    first, last = views[0], views[-1]
    saved = xp.asarray(buffer, copy=True)
    buffer[...] = 0.0
    last[...] = 1.0
    sees_buffer = bool(xp.all(first == 0.0)) if first is not last else True
    reaches_buffer = bool(buffer[-1] == 1.0)
    buffer[...] = saved
    return (buffer, views) if sees_buffer and reaches_buffer else None


def diagonal(xp: Any, A: Array) -> Array | None:
    """A writable view (n,) of the diagonal of the C-contiguous square matrix ``A`` (n, n)
    (a fresh product or elementwise result): every (n + 1)-th entry of its flat reshape, so
    that a damped solve can shift A's diagonal in place instead of building A + μI. None
    where this library's reshape or slices are not views (see the module docstring):
    callers then build the sum."""
    if not _diagonal_views(xp, A):
        return None
    n = A.shape[0]
    return xp.reshape(A, (n * n,))[::n + 1]


_VIEWS: dict[Any, bool] = {}


def _diagonal_views(xp: Any, A: Array) -> bool:
    """Whether a write through the strided slice of a reshape reaches the array: probed once
    per library on a small matrix like ``A`` (one host read per process, not per solve)."""
    if xp not in _VIEWS:
        probe = xp.zeros((2, 2), dtype=A.dtype, device=device_of(A))
        xp.reshape(probe, (4,))[::3][...] = 1.0
        _VIEWS[xp] = bool(xp.all(probe == xp.eye(2, dtype=A.dtype, device=device_of(A))))
    return _VIEWS[xp]
