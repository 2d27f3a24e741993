"""What machine a benchmark ran on, and how many CPU threads the libraries use."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
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
"""Multiply-adds per training step (batch × parameters) below which a step gets one BLAS thread.

Measured on a 2-core AMD EPYC (OpenBLAS 0.3.31, float32, Adam, numpy backend): the median
time of a step at 2 threads ÷ at 1 thread, quiet / with a second CPU-bound process running:

=================================  =============  =========  ========
network, batch                     multiply-adds  quiet      busy
=================================  =============  =========  ========
64-128-128-10, 32 (digits)         8.4e5          1.23       1.48
64-128-128-10, 64                  1.7e6          1.32       1.91
64-256-256-10, 128                 1.1e7          1.00       1.53
784-512-512-10, 64                 4.3e7          0.69       1.20
784-512-512-10, 256                1.7e8          0.70       2.06
784-512-512-10, 1024 (medium)      6.9e8          0.55       1.51
=================================  =============  =========  ========

Below about 1e7 a second thread gains nothing even on a quiet machine (the threads' hand-offs
cost what the split saves) and loses 1.5-2x when another process holds a core; above it a quiet
machine gains 30-45%, which the rule keeps (it cannot know the load to come).
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
    with _controller().limit(limits=threads), _torch_threads(backend, threads):
        yield
    _controller()  # rescanned now if the epochs imported a module (SciPy): this fit pays, not the next


_CONTROLLERS: dict[int, object] = {}


def _controller():
    """threadpoolctl's view of the loaded thread pools, kept while no module is imported: building
    it scans every loaded library (about a millisecond with SciPy), too slow for each fit."""
    from threadpoolctl import ThreadpoolController

    loaded = len(sys.modules)  # a new import may bring its own BLAS or OpenMP
    if loaded not in _CONTROLLERS:
        _CONTROLLERS.clear()
        _CONTROLLERS[loaded] = ThreadpoolController()
    return _CONTROLLERS[loaded]


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
