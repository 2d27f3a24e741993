"""A training step's arrays, allocated once and reused step after step.

A step of a given batch shape makes the same arrays every time: each layer's output,
the gradient it hands back, the loss's gradient. Allocating them afresh costs more
than the arithmetic on a small network (the allocator and the library's Python layer)
and, on a large one, page faults: a NumPy array above a few hundred kilobytes is fresh
memory from the operating system every step. A :class:`Workspace` keeps them: while it
is in use (``with workspace.using():``, which :class:`~backprop.step.Step` does around
its forward and backward passes), :func:`take` hands a layer the same buffer for the
same (layer, name, shape, dtype) step after step, and the layer writes into it through
:func:`ops` (``out=``, which the standard lacks: see :mod:`backends.inplace`). Outside
a step (inference, the Jacobian, gradient checks) :func:`take` returns a new array, so
nothing else keeps buffers alive or sees them overwritten.

What a layer may rely on: a buffer is its own until the next step of the same kind begins.
A layer that runs twice in one pass gets a second buffer for its second use. The short last batch of
an epoch has another shape, hence buffers of its own.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from typing import Any

from backends.inplace import Into, into

from ._typing import Array
from .namespace import device_of, namespace_of

_ACTIVE: ContextVar[Workspace | None] = ContextVar("backprop_workspace", default=None)


class Workspace:
    """The buffers of one training step (of a :class:`~backprop.step.Step`).

    A step's passes ask for their buffers in the same order every time, so they are kept as a
    sequence per kind of step (``using(key)``, the batch's shape): the i-th :meth:`take` of a
    step gets the i-th buffer, after a check that it is the same owner, name, shape and dtype
    (a pass that changes drops the rest of its sequence and allocates anew)."""

    max_bytes = 64 * 2**20
    """The most a kind of step keeps: past it, a step's later buffers are new arrays, as without a
    workspace (at that size an allocation is a small share of the step's products, and memory
    the scarcer resource; the 784-512-512-10 network at batch 1024 keeps 16 MiB, LeNet-5 at 128
    45 MiB, the 4096-4096-4096-1000 one at 4096 would keep 0.7 GB on top of its 0.7 GB)."""

    def __init__(self, xp: Any = None) -> None:
        # For a library whose operations cannot write into a given array, buffers would only
        # cost memory: the passes then allocate as the standard does (see backends.inplace).
        self.enabled = xp is None or into(xp).in_place
        self._sequences: dict[Any, list[tuple[Any, str, Array]]] = {}
        self._sequence: list[tuple[Any, str, Array]] = []
        self._next, self._full = 0, False

    def using(self, key: Any = None) -> Workspace:
        """``with workspace.using(key):`` within the block (one step's passes, of the kind ``key``),
        :func:`take` reuses this workspace's buffers (unless it is not ``enabled``: then new
        arrays, as outside a step). A plain context manager: a generator-based one costs a
        microsecond a step, a visible share of a small network's."""
        self._sequence = self._sequences.setdefault(key, [])
        self._next, self._full = 0, False
        return self

    def __enter__(self) -> Workspace:
        self._token = _ACTIVE.set(self if self.enabled else None)
        return self

    def __exit__(self, *exc: Any) -> None:
        _ACTIVE.reset(self._token)

    def take(self, owner: Any, name: str, shape: tuple[int, ...], dtype: Any, like: Array) -> Array | None:
        """The buffer ``name`` of ``owner`` with this shape (a tuple) and dtype, on ``like``'s device:
        the same array as at the last step of this kind, new the first time (it holds whatever was
        left in it); None once this kind of step holds :attr:`max_bytes` (a new array then)."""
        i, sequence = self._next, self._sequence
        self._next = i + 1
        if i < len(sequence):
            held_owner, held_name, buffer = sequence[i]
            if held_owner is owner and held_name == name and buffer.shape == shape and buffer.dtype == dtype:
                return buffer
            del sequence[i:]  # this step's passes differ from the last one's from here on
        if self._full or _bytes(sequence) + math.prod(shape) * dtype.itemsize > self.max_bytes:
            self._full = True  # and every later buffer of this step: the sequence stays in step
            return None
        buffer = namespace_of(like).empty(shape, dtype=dtype, device=device_of(like))
        sequence.append((owner, name, buffer))
        return buffer

    @property
    def buffers(self) -> list[Array]:
        """Every buffer held, in the order the passes take them."""
        return [buffer for sequence in self._sequences.values() if sequence for _, _, buffer in sequence]

    def clear(self) -> None:
        """Let go of every buffer (memory wanted back)."""
        self._sequences.clear()
        self._sequence, self._next = [], 0


def _bytes(sequence: list[tuple[Any, str, Array]]) -> int:
    """The bytes a sequence holds (its arrays are NumPy's, CuPy's or torch's: see ``enabled``)."""
    return sum(math.prod(buffer.shape) * buffer.dtype.itemsize for _, _, buffer in sequence)


def take(owner: Any, name: str, shape: tuple[int, ...], like: Array, dtype: Any = None) -> Array | None:
    """The step's buffer ``name`` of ``owner`` (``shape`` a tuple, ``like``'s dtype unless ``dtype``), or None
    outside a step: pass it as ``out=`` to an :func:`ops` operation, which then makes a new array."""
    active = _ACTIVE.get()
    if active is None:
        return None
    # Workspace.take's hit, inlined: a call less for each of a step's dozen buffers.
    i, sequence = active._next, active._sequence
    if i < len(sequence):
        held_owner, held_name, buffer = sequence[i]
        if (held_owner is owner and held_name == name and buffer.shape == shape
                and buffer.dtype == (like.dtype if dtype is None else dtype)):
            active._next = i + 1
            return buffer
    return active.take(owner, name, shape, like.dtype if dtype is None else dtype, like)


_OPS: dict[type, Into] = {}


def ops(x: Array) -> Into:
    """The ``out=`` operations for ``x``'s array library (:mod:`backends.inplace`), by array type."""
    found = _OPS.get(type(x))
    if found is None:
        found = _OPS[type(x)] = into(namespace_of(x))
    return found
