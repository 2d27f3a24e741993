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
