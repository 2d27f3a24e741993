"""array-api-strict: the standard and nothing else, for tests.

It runs on a non-default device so that a creation call that forgets
``device=`` (and would silently land on the CPU) fails loudly, on a machine
without a GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Backend, UnknownDevice


class StrictBackend(Backend):
    name = "strict"

    def __init__(self, device_name: str = "device1") -> None:
        import array_api_strict as xps

        # The newest standard the project targets: Python scalars in where/maximum.
        xps.set_array_api_strict_flags(api_version="2024.12")
        try:
            device = xps.Device(device_name)
        except ValueError as exc:
            raise UnknownDevice(
                f"unknown array-api-strict device {device_name!r}: use 'strict' "
                "(device1), 'strict:device2' or 'strict:CPU_DEVICE'"
            ) from exc
        self._xps = xps
        from array_api_strict._array_object import Array  # not exported publicly

        self._array_type = Array
        super().__init__(xps, device, f"strict:{device_name}")

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self._array_type)

    def _to_own_device(self, x: Any) -> Any:
        return x if x.device == self.device else x.to_device(self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        # array-api-strict refuses np.asarray on its fake non-CPU devices.
        return np.asarray(x.to_device(self._xps.Device("CPU_DEVICE")))

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "device": self.label,
            "version": self._xps.__version__,
            "device_name": "array-api-strict fake device (tests only)",
        }
