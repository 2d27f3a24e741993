"""A seeded host RNG shared by every backend.

The Array API standard has no random numbers, and each library's generator gives
different streams for the same seed. Drawing initial weights and shuffles on the
host with NumPy from one seed, then moving them, means NumPy, CuPy, PyTorch and
array-api-strict start from identical weights and see identical batches.
"""

from __future__ import annotations

from enum import IntEnum

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
