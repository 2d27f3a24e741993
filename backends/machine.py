"""What machine a benchmark ran on, and how many CPU threads the libraries use."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator

from .base import BackendUnavailable


def cpu_name() -> str:
    """The CPU model, e.g. ``"AMD EPYC 7B13"`` (Linux: /proc/cpuinfo; else platform)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def blas_info() -> dict:
    """The BLAS library NumPy uses and its thread count (via threadpoolctl, if present)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"blas": None, "blas_threads": None}
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return {"blas": f"{pool.get('internal_api')} {pool.get('version') or ''}".strip(),
                    "blas_threads": pool.get("num_threads")}
    return {"blas": None, "blas_threads": None}


@contextlib.contextmanager
def limit_threads(threads: int | None) -> Iterator[None]:
    """Run the block with at most ``threads`` BLAS/OpenMP threads (None: unchanged).

    PyTorch's own pool is set separately (see :mod:`backprop.contenders.torch_reference`).
    """
    if threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError as exc:
        raise BackendUnavailable("--threads needs threadpoolctl: pip install threadpoolctl") from exc
    with threadpool_limits(limits=threads):
        yield


def describe_cpu() -> dict:
    """CPU model, cores and BLAS threads, for a benchmark's report."""
    return {"cpu": cpu_name(), "cores": usable_cores(), "logical_cpus": os.cpu_count(),
            "platform": platform.platform(), **blas_info()}


ONE_THREAD_BELOW = 10_000_000
"""Multiply-adds per training step (forward pass) below which a step gets one BLAS thread.

Measured on a 2-core AMD EPYC (OpenBLAS, float32, Adam), the time of one step at 1 and at 2
threads, quiet / with a second CPU-bound process running (2 threads ÷ 1 thread):
64-128-128-10 batch 32 (8.3e5 multiply-adds) 0.91 / 0.73; batch 64 (1.7e6) 0.86 / 1.73;
64-256-256-10 batch 128 (1.1e7) 0.70 / 1.19; 784-512-512-10 batch 64 (4.3e7) 0.70 / 1.12,
batch 256 (1.7e8) 0.63 / 1.92, batch 1024 (6.9e8) 0.58 / 1.23. Below about 1e7 a second thread
saves at most ~15% on a quiet machine but can cost several times over when another process holds
a core (the threads spin waiting for each other); above it the quiet gain reaches 30-40%.
"""


def step_threads(multiply_adds: int, cores: int | None = None) -> int:
    """The BLAS threads a training step of ``multiply_adds`` (batch × Σ fan_in × fan_out) gets:
    one below :data:`ONE_THREAD_BELOW`, all ``cores`` (default: this process's usable cores) above."""
    cores = usable_cores() if cores is None else cores
    return 1 if multiply_adds < ONE_THREAD_BELOW else max(1, cores)


@contextlib.contextmanager
def training_threads(backend, multiply_adds: int, threads: int | None = None) -> Iterator[None]:
    """Run the block (a fit's epochs) with ``threads`` CPU threads (None: :func:`step_threads`'s rule).

    On the CPU backends: BLAS/OpenMP pools via threadpoolctl, and PyTorch's own pool
    (process-wide, so restored after); on a GPU backend nothing changes.
    """
    if backend.is_gpu:
        yield
        return
    threads = step_threads(multiply_adds) if threads is None else threads
    with limit_threads(threads), _torch_threads(backend, threads):
        yield


@contextlib.contextmanager
def _torch_threads(backend, threads: int) -> Iterator[None]:
    # torch.set_num_threads is process-wide: restore the count the caller had
    if backend.name != "torch":
        yield
        return
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
