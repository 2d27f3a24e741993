"""Seeded random numbers that are the same on every backend: on the host, and on the device.

The Array API standard has no random numbers, and each library's generator gives
different streams for the same seed. Drawing initial weights and shuffles on the
host with NumPy from one seed, then moving them, means NumPy, CuPy, PyTorch and
array-api-strict start from identical weights and see identical batches (:class:`HostRNG`).

Draws needed every step (dropout masks) cannot take a host copy each time: :class:`DeviceRNG`
computes them on the device with Philox-4x32-10, a counter-based generator written once
against the Array API, in exact integer arithmetic, so every backend gives the same bits.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any

import numpy as np


class Stream(IntEnum):
    """Every independent stream drawn from a seed, in one place: a new use takes a new number,
    and none may change (a resumed run, a saved checkpoint and the tests rely on each draw)."""

    WEIGHTS = 0  # initial weights
    SHUFFLE = 1  # the order of the samples, every epoch
    SPLIT = 2  # which samples are held out for validation
    JACOBIAN_COLUMNS = 3  # gradcheck: which Jacobian columns are compared
    LAYER_PROBE = 7  # gradcheck: the random output weights that turn a layer's output into a loss
    CHECKED_ENTRIES = 8  # gradcheck: which entries of each array are compared
    NOISE_PROBE = 9  # gradcheck: the direction along which the loss's roundoff is measured
    DROPOUT = 10  # the device generator's masks during training (FitState.device_rng)


class HostRNG:
    """NumPy PCG64 generator; every draw is a float64 (or int64) host array.

    Parameters
    ----------
    seed : int
        The seed. Equal seeds give equal streams on every machine.
    stream : int
        Which of the seed's independent streams to draw from.
    """

    def __init__(self, seed: int, stream: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.stream = int(stream)
        # Independent streams from one seed (weights, shuffles, splits), so that e.g.
        # changing the architecture does not change the order the batches come in.
        sequence = np.random.SeedSequence(self.seed, spawn_key=(self.stream,))
        self._gen = np.random.Generator(np.random.PCG64(sequence))

    def uniform(self, low: float, high: float, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform draws in [low, high), shape ``shape``."""
        return self._gen.uniform(low, high, size=shape)

    def normal(self, std: float, shape: tuple[int, ...]) -> np.ndarray:
        """Zero-mean normal draws with standard deviation ``std``, shape ``shape``."""
        return self._gen.normal(0.0, std, size=shape)

    def permutation(self, n: int) -> np.ndarray:
        """A random permutation of ``range(n)`` as int64, shape (n,)."""
        return self._gen.permutation(n).astype(np.int64)

    def integers(self, high: int, shape: tuple[int, ...]) -> np.ndarray:
        """Integers in [0, high), int64, shape ``shape``."""
        return self._gen.integers(0, high, size=shape, dtype=np.int64)

    # Checkpoints save and restore the stream exactly (issue: resume bit-identical).
    def get_state(self) -> dict:
        """The generator's state, a JSON-serializable dict."""
        return self._gen.bit_generator.state

    def set_state(self, state: dict) -> None:
        """Restore a state from :meth:`get_state`."""
        self._gen.bit_generator.state = state


# -- Philox-4x32-10 on the device ------------------------------------------------------------
# Salmon, Moraes, Dror and Shaw, "Parallel Random Numbers: As Easy as 1, 2, 3" (SC11, 2011);
# the constants and the round are Random123's (philox.h), as cuRAND's and oneMKL's Philox4x32-10.
_MASK32 = 0xFFFFFFFF
_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
_KEY_BUMPS = (0x9E3779B9, 0xBB67AE85)
ROUNDS = 10


def _mulhilo(m: int, a: Any) -> tuple[Any, Any]:
    """The high and low 32-bit words of ``m * a``: ``a`` int64 holding values below 2**32.

    The full product needs 64 unsigned bits, more than int64 holds, and torch multiplies no
    uint64: split ``a`` into 16-bit halves, so that every partial product stays below 2**49.
    """
    p_low, p_high = (a & 0xFFFF) * m, (a >> 16) * m
    middle = p_low + ((p_high & 0xFFFF) << 16)  # m * a = (p_high >> 16) * 2**32 + middle
    return (p_high >> 16) + (middle >> 32), middle & _MASK32


def _mulhilo_wide(m: int, a: Any) -> tuple[Any, Any]:
    """The same words as :func:`_mulhilo` from one product, for ``a`` uint64 (where the library
    multiplies uint64)."""
    product = a * m
    return product >> 32, product & _MASK32


def philox4x32(counter: tuple[Any, Any, Any, Any], key: tuple[int, int], rounds: int = ROUNDS, *,
               wide: bool = False) -> tuple:
    """Philox-4x32 of one block per element: four int64 arrays (equal shapes, values below 2**32)
    are the counter words, ``key`` two ints below 2**32; returns the four output words, the same.
    With ``wide`` the arrays are uint64 instead, and each product is one multiplication.

    Random123's known-answer vectors (``examples/kat_vectors``) hold for every backend:
    counter 0, key 0 gives ``6627e8d5 e169c58d bc57ac4c 9b00dbd8``.
    """
    x0, x1, x2, x3 = counter
    k0, k1 = key
    mulhilo = _mulhilo_wide if wide else _mulhilo
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + _KEY_BUMPS[0]) & _MASK32, (k1 + _KEY_BUMPS[1]) & _MASK32
        high0, low0 = mulhilo(_MULTIPLIERS[0], x0)
        high1, low1 = mulhilo(_MULTIPLIERS[1], x2)
        x0, x1, x2, x3 = high1 ^ x1 ^ k0, low1, high0 ^ x3 ^ k1, low0
    return x0, x1, x2, x3


def _key(seed: int) -> tuple[int, int]:
    """Philox's two key words from a seed: its low 64 bits, with any higher 64-bit parts XORed in."""
    folded = 0
    while seed:
        folded ^= seed & 0xFFFFFFFFFFFFFFFF
        seed >>= 64
    return folded & _MASK32, folded >> 32


class DeviceRNG:
    """A seeded counter-based generator whose draws are computed on the device.

    Draw ``i`` of the stream is Philox-4x32-10 of the counter ``(block, stream)`` under the key
    ``seed`` (cuRAND's layout: block in the low 64 bits, the stream in the high 64), so the state is
    three integers (``seed``, ``stream``, ``counter``: blocks of four 32-bit words used so far), which
    pickle, checkpoint as JSON and move to any device. Every draw is exact integer arithmetic
    followed by exact conversions, so NumPy, array-api-strict, PyTorch and CuPy give the same bits.
    The arithmetic is int64 with 32-bit products split in 16-bit halves (torch multiplies no
    uint64); a backend whose library multiplies uint64 (``Backend.wide_products``: NumPy) takes one
    product instead, the same words. No backend uses its library's own generator: none gives
    these draws.

    Parameters
    ----------
    seed : int
        The seed (non-negative; beyond 64 bits, the higher parts are folded in).
    stream : int
        Which of the seed's streams (:class:`Stream`), below 2**64.
    counter : int
        Blocks already drawn (0: the start of the stream).
    backend : Backend or None
        Where draws land; each draw may name another with ``backend=``.
    """

    def __init__(self, seed: int, stream: int = 0, counter: int = 0, backend: Any = None) -> None:
        for name, value, limit in (("seed", seed, None), ("stream", stream, 1 << 64),
                                   ("counter", counter, 1 << 64)):
            if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0
                    or (limit is not None and value >= limit)):
                bound = "" if limit is None else " below 2**64"
                raise ValueError(f"{name} must be a non-negative integer{bound}, got {value!r}")
        self.seed, self.stream, self.counter = int(seed), int(stream), int(counter)
        self.backend = backend

    def __repr__(self) -> str:
        return f"<DeviceRNG seed={self.seed} stream={self.stream} counter={self.counter}>"

    def to(self, backend: Any) -> DeviceRNG:
        """A copy with the same state that draws on ``backend`` (None: no device yet)."""
        return DeviceRNG(self.seed, self.stream, self.counter, backend)

    def get_state(self) -> dict:
        """The generator's state, a JSON-serializable dict."""
        return {"seed": self.seed, "stream": self.stream, "counter": self.counter}

    def set_state(self, state: dict) -> None:
        """Restore a state from :meth:`get_state` (checked as the constructor checks it)."""
        checked = DeviceRNG(state["seed"], state["stream"], state["counter"])
        self.seed, self.stream, self.counter = checked.seed, checked.stream, checked.counter

    def words(self, shape: tuple[int, ...], *, backend: Any = None) -> Any:
        """Uniform 32-bit words as int64 in [0, 2**32), shape ``shape``; advances the counter by
        ceil(size / 4) blocks (the rest of the last block is dropped)."""
        backend = self._backend(backend)
        with backend.activate():
            return self._words(backend, tuple(shape))

    def uniform(self, shape: tuple[int, ...], dtype: Any = "float32", *, backend: Any = None) -> Any:
        """Uniform floats in [0, 1) on the device, shape ``shape``: float32 from 24 bits of one
        word, float64 from 53 bits of two (both exact multiples of 2**-24 or 2**-53)."""
        backend = self._backend(backend)
        xp, dt, shape = backend.xp, backend.dtype(dtype), tuple(shape)
        if dt not in (xp.float32, xp.float64):
            raise ValueError(f"uniform draws are float32 or float64, not {dtype!r}")
        with backend.activate():
            if dt == xp.float32:
                return xp.astype(self._words(backend, shape) >> 8, dt) * (2.0 ** -24)
            pairs = self._words(backend, (math.prod(shape), 2))
            bits = (pairs[:, 0] >> 5) * (1 << 26) + (pairs[:, 1] >> 6)  # below 2**53: exact in float64
            return xp.reshape(xp.astype(bits, dt) * (2.0 ** -53), shape)

    def bernoulli(self, p: float, shape: tuple[int, ...], *, backend: Any = None) -> Any:
        """A boolean mask, True with probability ``p`` (a word below round-down(p * 2**32)), shape
        ``shape``; the comparison is of integers, so every backend gives the same mask."""
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        backend = self._backend(backend)
        with backend.activate():
            return self._words(backend, tuple(shape)) < math.floor(float(p) * 2.0 ** 32)

    def _backend(self, backend: Any) -> Any:
        backend = self.backend if backend is None else backend
        if backend is None:
            raise ValueError("this DeviceRNG has no device: pass backend=, or bind one with .to(backend)")
        return backend

    def _words(self, backend: Any, shape: tuple[int, ...]) -> Any:
        """The next ``shape`` words (int64): one counter per block run through Philox, the blocks'
        words laid out one after the other."""
        xp, size = backend.xp, math.prod(shape)
        blocks = -(-size // 4)
        index = xp.arange(blocks, dtype=xp.int64, device=backend.device)
        low = (self.counter & _MASK32) + index  # below 2**33: the carry goes to the next word
        high = ((self.counter >> 32) + (low >> 32)) & _MASK32
        stream = (xp.full_like(index, self.stream & _MASK32), xp.full_like(index, self.stream >> 32))
        counter, wide = (low & _MASK32, high) + stream, backend.wide_products
        if wide:  # the same words, about twice as fast
            counter = tuple(xp.astype(c, xp.uint64) for c in counter)
        out = xp.stack(philox4x32(counter, _key(self.seed), wide=wide), axis=1)
        self.counter = (self.counter + blocks) % (1 << 64)
        words = xp.reshape(xp.astype(out, xp.int64) if wide else out, (-1,))
        return xp.reshape(words[:size], shape)
