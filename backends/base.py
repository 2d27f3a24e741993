"""The backend object: what the network code needs and the Array API standard lacks."""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from array_api_compat import is_array_api_obj

from .host import to_numpy_any
from .rng import DeviceRNG, HostRNG

FLOAT_DTYPES = ("float32", "float64")
_NOT_NUMBERS = ("expected numbers but got {dtype} data: convert it to floats, and encode class "
                "labels as integers 0..K-1")


class BackendError(Exception):
    """A problem with the device or the array library that the user can fix.

    The message says how (what to install, which device string to use, how to
    encode the data). Catch this to report any of them in one line.
    """


class BackendUnavailable(BackendError, RuntimeError):
    """A backend was asked for that cannot run here; the message says what to do."""


class UnknownDevice(BackendError, ValueError):
    """A device string (or a non-string) that names no backend or no device of one."""


class NotNumeric(BackendError, TypeError):
    """Data of strings or objects handed to :meth:`Backend.asarray`; arrays hold numbers."""


class Backend:
    """One array library on one device.

    Attributes
    ----------
    name : str
        ``"numpy"``, ``"cupy"``, ``"torch"`` or ``"strict"``.
    xp : module
        The Array API namespace (``array_api_compat.numpy`` and so on).
    device : object
        The library's device object; pass it as ``device=`` to creation functions.
    label : str
        A human-readable device string, e.g. ``"cpu"`` or ``"cuda:0"``.
    tf32 : bool
        Whether float32 matrix products may use TF32 tensor cores (GPU only).
    """

    name: str = "?"
    wide_products: bool = False
    """Whether the library multiplies uint64 arrays exactly (:class:`DeviceRNG` then takes one
    product where the portable path takes two of 16-bit halves: the same draws, faster)."""

    def __init__(self, xp: Any, device: Any, label: str, tf32: bool = False) -> None:
        self.xp = xp
        self.device = device
        self.label = label
        self.tf32 = tf32

    def __repr__(self) -> str:
        return f"<Backend {self.name} on {self.label}>"

    def __reduce__(self) -> tuple[Callable[[str, bool], Backend], tuple[str, bool]]:
        # A backend holds modules (its namespace, CuPy, torch), which cannot be
        # pickled, and a process has one per device string and TF32 choice: pickling
        # and deep-copying carry the string and give back that one.
        return restore_backend, (self.spec, self.tf32)

    @property
    def spec(self) -> str:
        """A string that :func:`backends.get_backend` turns back into this backend."""
        return self.label

    @property
    def is_gpu(self) -> bool:
        return False

    # -- dtypes ------------------------------------------------------------------
    def dtype(self, dtype: Any) -> Any:
        """The namespace's dtype for ``"float32"``/``"float64"`` (or a dtype object)."""
        name = dtype_name(dtype)
        if name not in FLOAT_DTYPES + ("int64", "bool"):
            raise ValueError(f"unsupported dtype {dtype!r}: use 'float32' or 'float64'")
        return getattr(self.xp, name)

    # -- host <-> device ---------------------------------------------------------
    def is_native(self, x: Any) -> bool:
        """True when ``x`` is an array of this backend's library."""
        raise NotImplementedError

    def _from_host(self, host: np.ndarray) -> Any:
        return self.xp.asarray(host, device=self.device)

    def asarray(self, data: Any, dtype: Any = None, *, copy: bool = False) -> Any:
        """``data`` (host array, nested list, scalar or native array) on this device.

        Host data is converted to ``dtype`` on the host before the copy, so every
        backend receives the same bits (and half the bytes for float32). With
        ``copy=True`` the result never shares memory with ``data``.

        Raises
        ------
        NotNumeric
            The data is not numbers (strings, objects); the message says how to encode it.
        """
        if self.is_native(data):
            return self._native_asarray(data, dtype, copy)
        return self._host_asarray(data, dtype, copy)

    def _native_asarray(self, data: Any, dtype: Any, copy: bool) -> Any:
        """An array of this library, moved to this device and cast there where asked."""
        if not self._is_numeric(data):
            raise NotNumeric(_NOT_NUMBERS.format(dtype=data.dtype))
        x = self._to_own_device(data)
        if dtype is not None and x.dtype != self.dtype(dtype):
            x = self.xp.astype(x, self.dtype(dtype))
        if copy and x is data:
            x = self.xp.asarray(x, copy=True)
        return x

    def _host_asarray(self, data: Any, dtype: Any, copy: bool) -> Any:
        """Anything else (NumPy, lists, scalars, another library's array) through a contiguous
        host array of ``dtype``, cast on the host so that every backend gets the same bits."""
        foreign = not isinstance(data, np.ndarray) and is_array_api_obj(data)
        try:
            host = to_numpy_any(data) if foreign else np.asarray(data)
        except ValueError as exc:  # ragged nested lists
            raise NotNumeric(f"expected a rectangular array of numbers ({exc}): give rows of equal "
                             "length") from None
        if host.dtype.kind not in "biuf":
            raise NotNumeric(_NOT_NUMBERS.format(dtype=host.dtype))
        if dtype is not None:
            host = host.astype(dtype_name(dtype), copy=False)
        host = np.ascontiguousarray(host)
        if copy and (foreign or (isinstance(data, np.ndarray) and np.may_share_memory(host, data))):
            host = host.copy()  # NumPy and torch:cpu would otherwise alias the caller's memory
        return self._from_host(host)

    def _is_numeric(self, x: Any) -> bool:
        try:
            return bool(self.xp.isdtype(x.dtype, ("bool", "integral", "real floating")))
        except (TypeError, ValueError):  # NumPy strings and objects
            return False

    def _to_own_device(self, x: Any) -> Any:
        return x

    def to_numpy(self, x: Any) -> np.ndarray:
        """A NumPy copy (or view) of a device array; a host copy synchronizes."""
        return np.asarray(x)

    def synchronize(self) -> None:
        """Wait until queued device work has finished (no-op on the CPU)."""

    def activate(self) -> contextlib.AbstractContextManager:
        """A context in which this backend's device is the current one."""
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def track_memory(self) -> Iterator[MemoryPeak]:
        """Measure the memory that arrays take while the block runs.

        Yields a :class:`MemoryPeak`; when the block ends, ``bytes`` holds the most
        it added at any moment and ``held`` what it still holds. Host backends use
        ``tracemalloc`` (NumPy reports its buffers to it), which slows Python
        down: never wrap timed work in this.
        """
        peak = MemoryPeak("tracemalloc: host arrays allocated in the block")
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        try:
            yield peak
        finally:
            current, highest = tracemalloc.get_traced_memory()
            peak.bytes, peak.held = highest - base, current - base
            if started:
                tracemalloc.stop()

    def quiet_overflow(self) -> contextlib.AbstractContextManager:
        """A context that silences overflow warnings (NumPy's); the caller checks results."""
        return contextlib.nullcontext()

    # -- randomness --------------------------------------------------------------
    def rng(self, seed: int, stream: int = 0) -> HostRNG:
        """A seeded host generator; draws are moved with :meth:`asarray`."""
        return HostRNG(seed, stream)

    def device_rng(self, seed: int, stream: int = 0) -> DeviceRNG:
        """A seeded generator that draws on this device, the same bits on every backend."""
        return DeviceRNG(seed, stream, backend=self)

    # -- description -------------------------------------------------------------
    def describe(self) -> dict:
        """Facts for ``backprop info``: library version, device name, memory."""
        return {"backend": self.name, "device": self.label}


# backends.registry hands its get_backend over when it loads (see use_backend_factory), so
# that this module, which registry builds on, never imports it. Importing any module of
# the package runs backends/__init__.py, which imports registry: it is always set by the
# time a Backend exists.
_factory: Callable[..., Backend] | None = None


def use_backend_factory(factory: Callable[..., Backend]) -> None:
    """Make :func:`restore_backend` look backends up with ``factory(spec, tf32=...)``."""
    global _factory
    _factory = factory


def restore_backend(spec: str, tf32: bool = False) -> Backend:
    """The backend ``get_backend(spec, tf32=tf32)`` gives in this process.

    What unpickling and :func:`copy.deepcopy` call for a :class:`Backend` (see
    ``Backend.__reduce__``): a copy is the cached backend for the same device.
    """
    if _factory is None:
        raise RuntimeError("backends.registry is not loaded: import backends first")
    return _factory(spec, tf32=tf32)


class MemoryPeak:
    """The result of :meth:`Backend.track_memory`: the peak ``bytes`` a block added and
    the bytes it still ``held`` at its end (None: not measurable here)."""

    def __init__(self, how: str) -> None:
        self.bytes: int | None = None
        self.held: int | None = None
        self.how = how

    def __repr__(self) -> str:
        return f"<MemoryPeak {self.bytes} bytes ({self.how})>"


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an array library running out of memory: NumPy raises MemoryError,
    CuPy its OutOfMemoryError, torch torch.OutOfMemoryError (none shares a base class)."""
    return isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for ``"float32"``, ``np.float32``, ``xp.float32``, ``torch.float32``..."""
    if isinstance(dtype, str):
        return dtype
    text = str(dtype)
    for name in ("float32", "float64", "int64", "int32", "bool"):
        if name in text:
            return name
    try:
        return np.dtype(dtype).name
    except TypeError:
        return text
