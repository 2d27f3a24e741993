"""CuPy on an NVIDIA GPU: the ``--device cuda`` path."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .base import Backend, BackendUnavailable, MemoryPeak
from .extras import requirements


def cuda_hint() -> str:
    """How to install CuPy for the driver's CUDA major version (read when needed: it reads metadata)."""
    return (f"pip install {requirements('cuda12') or 'cupy-cuda12x'} for a CUDA 12 driver or "
            f"{requirements('cuda13') or 'cupy-cuda13x'} for CUDA 13 (in a backprop checkout: "
            "pip install -e '.[cuda12]' or '.[cuda13]'); nvidia-smi shows the driver's CUDA version")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def probe_cupy(index: int = 0) -> tuple[Any, str | None]:
    """Import CuPy and run one tiny kernel on GPU ``index``.

    Returns ``(cupy_module, None)`` when usable, else ``(module_or_None, reason)``
    where ``reason`` is one line that says what to install or check. Nothing here
    lets a raw CUDA traceback escape.
    """
    try:
        import cupy
    except ImportError:
        return None, f"CuPy is not installed: {cuda_hint()}"
    except Exception as exc:  # a broken install raises all sorts of things
        return None, f"CuPy failed to import ({_first_line(exc)}): reinstall it: {cuda_hint()}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return cupy, (
            f"CuPy is installed but no CUDA GPU is usable ({_first_line(exc)}): check "
            "nvidia-smi, the NVIDIA driver, and that the cupy-cudaXXx package matches "
            "the driver's CUDA major version"
        )
    if count == 0:
        return cupy, "CuPy is installed but no CUDA GPU is visible: check nvidia-smi and CUDA_VISIBLE_DEVICES"
    if index >= count:
        return cupy, (f"cuda:{index} asked for, but only {count} GPU(s) are visible: "
                      f"use cuda:0..cuda:{count - 1}")
    try:
        with cupy.cuda.Device(index):
            # An elementwise kernel and a reduction: needs NVRTC and the CUDA libraries.
            value = float((cupy.arange(4, dtype=cupy.float32) * 2.0).sum())
        if value != 12.0:
            return cupy, f"cuda:{index} computed a wrong result in a self-test: check the GPU"
    except Exception as exc:
        return cupy, (
            f"CuPy sees GPU {index} but cannot run a kernel on it ({_first_line(exc)}): "
            "check that the CUDA runtime libraries match the cupy-cudaXXx package "
            f"({cuda_hint()})"
        )
    return cupy, None


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self, index: int = 0, tf32: bool = False) -> None:
        cupy, reason = probe_cupy(index)
        if reason is not None:
            raise BackendUnavailable(reason)
        import array_api_compat.cupy as xp_cupy

        self._cupy = cupy
        # CuPy keeps the float32 GEMM compute type in one process-wide setting (read
        # from CUPY_TF32 once). Each backend sets its own choice while it is active
        # and restores the previous one after, so a tf32=True model never turns TF32
        # on for another, and TF32 stays off unless asked for, whatever the environment.
        try:
            from cupy._core import _routines_linalg as linalg

            self._linalg = linalg
            self._compute_type = linalg.COMPUTE_TYPE_TF32 if tf32 else linalg.COMPUTE_TYPE_DEFAULT
        except Exception as exc:  # a private module: fail loudly only when TF32 was asked for
            if tf32:
                raise BackendUnavailable(
                    f"this CuPy version offers no way to enable TF32 ({_first_line(exc)})"
                ) from exc
            self._linalg = None
        super().__init__(xp_cupy, cupy.cuda.Device(index), f"cuda:{index}", tf32=tf32)

    @property
    def is_gpu(self) -> bool:
        return True

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self._cupy.ndarray)

    def _from_host(self, host: np.ndarray) -> Any:
        with self.activate():
            return self._cupy.asarray(host)

    def _to_own_device(self, x: Any) -> Any:
        if x.device.id == self.device.id:
            return x
        with self.activate():
            return self._cupy.asarray(x)  # peer copy

    def to_numpy(self, x: Any) -> np.ndarray:
        return self._cupy.asnumpy(x)

    def synchronize(self) -> None:
        self.device.synchronize()

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        # CuPy runs kernels on the current GPU: make this backend's GPU current, with
        # this backend's TF32 choice, and restore both afterwards.
        with self._cupy.cuda.Device(self.device.id):
            if self._linalg is None:
                yield
                return
            previous = self._linalg.get_compute_type(np.float32)
            self._linalg.set_compute_type(np.float32, self._compute_type)
            try:
                yield
            finally:
                self._linalg.set_compute_type(np.float32, previous)

    @contextlib.contextmanager
    def track_memory(self) -> Iterator[MemoryPeak]:
        # The pool keeps freed blocks until asked to release them, so what it holds
        # at the end is the block's high-water mark of reserved memory (rounded up to
        # its bins; blocks split off chunks still in use cannot be released first, so
        # a small block may reuse them and read a little low).
        peak = MemoryPeak("CuPy memory pool: reserved high-water mark")
        pool = self._cupy.get_default_memory_pool()
        with self.activate():
            self.synchronize()
            pool.free_all_blocks()
            base, used = pool.total_bytes(), pool.used_bytes()
            try:
                yield peak
            finally:
                self.synchronize()
                peak.bytes, peak.held = pool.total_bytes() - base, pool.used_bytes() - used

    def describe(self) -> dict:
        cupy = self._cupy
        props = cupy.cuda.runtime.getDeviceProperties(self.device.id)
        name = props["name"]
        free, total = self.device.mem_info
        return {
            "backend": self.name,
            "device": self.label,
            "version": cupy.__version__,
            "device_name": name.decode() if isinstance(name, bytes) else str(name),
            "memory_gib": round(total / 2**30, 1),
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        }
