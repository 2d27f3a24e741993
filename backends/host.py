"""Any supported library's array, copied to the host as NumPy.

It imports nothing from :mod:`backends`, so that every module there (the base
class included) can use it without an import cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy_any(x: Any) -> np.ndarray:
    """A NumPy copy of an array from any supported library (host or device)."""
    if isinstance(x, np.ndarray):
        return x
    module = type(x).__module__.split(".")[0]
    if module == "cupy":
        return x.get()
    if module == "torch":
        return x.detach().to("cpu").numpy()
    if module == "array_api_strict":
        import array_api_strict as xps

        return np.asarray(x.to_device(xps.Device("CPU_DEVICE")))
    return np.asarray(x)
