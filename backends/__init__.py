"""Everything that names an array library: device strings, RNG, host<->device moves.

The network code in :mod:`backprop` sees only a :class:`Backend` and its Array API
namespace ``xp``.
"""

from .base import (
    FLOAT_DTYPES,
    Backend,
    BackendError,
    BackendUnavailable,
    NotNumeric,
    UnknownDevice,
    dtype_name,
    is_out_of_memory,
)
from .host import to_numpy_any
from .registry import available_backends, backend_for, get_backend
from .rng import DeviceRNG, HostRNG, Stream

__all__ = [
    "FLOAT_DTYPES",
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "DeviceRNG",
    "HostRNG",
    "NotNumeric",
    "Stream",
    "UnknownDevice",
    "available_backends",
    "backend_for",
    "dtype_name",
    "get_backend",
    "is_out_of_memory",
    "to_numpy_any",
]
