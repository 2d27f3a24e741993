"""NumPy on the CPU: the laptop default."""

from __future__ import annotations

import os
from typing import Any

import array_api_compat.numpy as xp_numpy
import numpy as np

from .base import Backend


class NumpyBackend(Backend):
    name = "numpy"
    wide_products = True

    def __init__(self) -> None:
        super().__init__(xp_numpy, "cpu", "cpu")

    def is_native(self, x: Any) -> bool:
        # NumPy reductions return scalars (np.float32...), its stand-in for 0-d arrays.
        return isinstance(x, (np.ndarray, np.generic))

    def _from_host(self, host: np.ndarray) -> np.ndarray:
        return host

    def quiet_overflow(self):
        return np.errstate(over="ignore", invalid="ignore", divide="ignore")

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "device": self.label,
            "version": np.__version__,
            "device_name": f"CPU ({os.cpu_count()} logical cores)",
        }
