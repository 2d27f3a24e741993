"""Device strings in, backend objects out; and what this machine can run."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from .base import Backend, BackendUnavailable, UnknownDevice, use_backend_factory
from .cupy_backend import cuda_hint
from .extras import install_hint
from .host import to_numpy_any  # noqa: F401  (its old home: backends.registry.to_numpy_any)

SPEC_HELP = (
    "use one of: cpu, numpy, cuda, cuda:N, cupy, torch, torch:cpu, torch:cuda[:N], strict"
)

# Backends are cheap to describe but not to create (CuPy runs a self-test kernel).
_CACHE: dict[tuple[str, bool], Backend] = {}


def _parse(spec: str) -> tuple[str, str]:
    """``"cuda:1"`` -> ``("cupy", "1")``; ``"torch:cuda"`` -> ``("torch", "cuda")``."""
    text = spec.strip().lower()
    head, _, rest = text.partition(":")
    if head in ("cpu", "numpy", "np"):
        if rest not in ("", "cpu", "0"):
            raise UnknownDevice(f"unknown device {spec!r}: the NumPy backend has only 'cpu'")
        return "numpy", ""
    if head in ("cuda", "gpu", "cupy"):
        if rest.startswith("cuda:"):  # "cupy:cuda:1"
            rest = rest[5:]
        index = rest or "0"
        if not index.isdigit():
            raise UnknownDevice(f"unknown device {spec!r}: GPU indices are integers, e.g. cuda:1")
        return "cupy", index
    if head in ("torch", "pytorch"):
        return "torch", rest or "cpu"
    if head in ("strict", "array_api_strict", "array-api-strict"):
        return "strict", spec.strip().partition(":")[2] or "device1"
    raise UnknownDevice(f"unknown device {spec!r}: {SPEC_HELP}")


def get_backend(spec: str | Backend = "cpu", *, tf32: bool = False) -> Backend:
    """The backend for a device string.

    Parameters
    ----------
    spec : str or Backend
        ``"cpu"``/``"numpy"``, ``"cuda"``/``"cuda:N"``/``"cupy"``, ``"torch"``,
        ``"torch:cuda[:N]"``, or ``"strict"`` (array-api-strict, for tests). A
        Backend passes through unchanged.
    tf32 : bool
        Allow TF32 tensor cores for float32 matrix products (GPU only; off by default
        because it keeps only 10 mantissa bits of each input).

    Raises
    ------
    UnknownDevice
        ``spec`` is not a string, or names no backend or device (a ValueError).
    BackendUnavailable
        The backend exists but cannot run here; the message says what to install or check.
    """
    if isinstance(spec, Backend):
        return spec
    if not isinstance(spec, str):
        raise UnknownDevice(f"device must be a string such as 'cpu' or 'cuda', got {spec!r}")
    kind, arg = _parse(spec)
    key = (f"{kind}:{arg}", bool(tf32))
    if key in _CACHE:
        return _CACHE[key]
    if kind == "numpy":
        from .numpy_backend import NumpyBackend

        backend: Backend = NumpyBackend()
    elif kind == "cupy":
        from .cupy_backend import CupyBackend

        backend = CupyBackend(int(arg), tf32=tf32)
    elif kind == "torch":
        from .torch_backend import TorchBackend

        backend = TorchBackend(arg, tf32=tf32)
    else:
        if importlib.util.find_spec("array_api_strict") is None:
            raise BackendUnavailable(
                f"array-api-strict is not installed: {install_hint('test')}"
            )
        from .strict_backend import StrictBackend

        backend = StrictBackend(arg)
    # One backend per device: "torch:cuda" and "torch:cuda:0" (or "cpu" with and without
    # tf32, which the CPU ignores) name the same one, and so must its own spec, which
    # pickling and deep-copying hand back to get_backend.
    own_kind, own_arg = _parse(backend.spec)
    backend = _CACHE.setdefault((f"{own_kind}:{own_arg}", bool(backend.tf32)), backend)
    _CACHE[key] = backend
    return backend


use_backend_factory(get_backend)


def available_backends() -> list[dict]:
    """Every backend this project knows, whether installed, and whether usable here.

    Returns
    -------
    list of dict
        One dict per backend with ``name``, ``spec`` (what to pass to
        :func:`get_backend`), ``installed``, ``usable`` and ``reason`` (why not, or
        ``None``), plus the device facts from :meth:`Backend.describe` when usable.
    """
    rows = []
    for name, spec, module in (
        ("numpy", "cpu", "numpy"),
        ("cupy", "cuda", "cupy"),
        ("torch", "torch", "torch"),
        ("torch", "torch:cuda", "torch"),
        ("strict", "strict", "array_api_strict"),
    ):
        row: dict[str, Any] = {"name": name, "spec": spec}
        row["installed"] = importlib.util.find_spec(module) is not None
        if not row["installed"]:
            hints = {
                "cupy": f"CuPy is not installed: {cuda_hint()}",
                "torch": "PyTorch is not installed (optional): pip install torch",
                "array_api_strict": "array-api-strict is not installed (tests): pip install array-api-strict",
            }
            row.update(usable=False, reason=hints.get(module, f"{module} is not installed"))
        else:
            try:
                row.update(get_backend(spec).describe(), usable=True, reason=None)
            except (BackendUnavailable, ValueError) as exc:
                row.update(usable=False, reason=str(exc))
            except Exception as exc:  # never let a broken library break `info`
                row.update(usable=False, reason=f"{type(exc).__name__}: {exc}")
        rows.append(row)
    return rows


def backend_for(x: Any) -> Backend:
    """The backend that owns array ``x`` (NumPy, CuPy, torch or array-api-strict)."""
    module = type(x).__module__.split(".")[0]
    if isinstance(x, np.ndarray):
        return get_backend("cpu")
    if module == "cupy":
        return get_backend(f"cuda:{x.device.id}")
    if module == "torch":
        return get_backend(f"torch:{x.device}")
    if module == "array_api_strict":
        name = str(x.device).split("'")[1] if "'" in str(x.device) else "device1"
        return get_backend(f"strict:{name}")
    raise TypeError(f"not an array of a supported library: {type(x).__name__}")
