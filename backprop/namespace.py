"""The Array API namespace of an array, looked up once per array type, and its device.

``array_api_compat.array_namespace`` costs a few microseconds per call, which
is a real share of a small network's training step; the namespace depends only
on the array's type, so it is cached by type.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace
from array_api_compat import device as _compat_device

_BY_TYPE: dict[type, Any] = {}


def namespace_of(x: Any) -> Any:
    """The Array API namespace of ``x`` (``array_api_compat.numpy`` for NumPy arrays...)."""
    xp = _BY_TYPE.get(type(x))
    if xp is None:
        xp = _BY_TYPE[type(x)] = array_namespace(x)
    return xp


def device_of(x: Any) -> Any:
    """The device ``x`` lives on, as its namespace's creation functions take it (``device=``)."""
    return _compat_device(x)
