"""Device strings, the host RNG, host<->device moves, and what `info` reports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import backends
from backends import BackendUnavailable, get_backend
from conftest import assert_belongs


@pytest.mark.parametrize("spec,name,label", [
    ("cpu", "numpy", "cpu"), ("numpy", "numpy", "cpu"), ("CPU", "numpy", "cpu"),
    ("strict", "strict", "strict:device1"), ("strict:device2", "strict", "strict:device2"),
])
def test_specs(spec, name, label):
    backend = get_backend(spec)
    assert (backend.name, backend.label) == (name, label)
    assert get_backend(backend) is backend


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "cpu:1", "mps", ""])
def test_unknown_specs_say_what_to_use(spec):
    with pytest.raises(ValueError, match="unknown device"):
        get_backend(spec)


def test_missing_or_broken_cupy_gives_one_clear_line(monkeypatch):
    """No raw CUDA traceback: a one-line BackendUnavailable that says what to do."""
    import builtins

    from backends import cupy_backend

    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    monkeypatch.setattr(backends.registry, "_CACHE", {})
    with pytest.raises(BackendUnavailable, match=r"pip install 'backprop\[cuda12\]'") as info:
        get_backend("cuda")
    assert "\n" not in str(info.value)
    module, reason = cupy_backend.probe_cupy(0)
    assert module is None and "not installed" in reason


def test_cupy_without_a_driver_is_reported(monkeypatch):
    """CuPy installed, no GPU: the CUDA error is folded into one line with what to check."""
    import types

    from backends import cupy_backend

    class FakeRuntime:
        @staticmethod
        def getDeviceCount():
            raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient\nmore")

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=FakeRuntime)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    module, reason = cupy_backend.probe_cupy(0)
    assert module is fake
    assert "no CUDA GPU is usable" in reason and "nvidia-smi" in reason and "\n" not in reason


def test_rng_is_seeded_and_streams_are_independent():
    a, b = backends.HostRNG(5), backends.HostRNG(5)
    np.testing.assert_array_equal(a.uniform(-1, 1, (3, 2)), b.uniform(-1, 1, (3, 2)))
    np.testing.assert_array_equal(a.permutation(10), b.permutation(10))
    assert not np.array_equal(backends.HostRNG(5, stream=1).permutation(50),
                              backends.HostRNG(5, stream=0).permutation(50))
    state = a.get_state()
    first = a.normal(1.0, (4,))
    a.set_state(state)
    np.testing.assert_array_equal(a.normal(1.0, (4,)), first)
    with pytest.raises(ValueError, match="seed"):
        backends.HostRNG(-1)


def test_asarray_and_to_numpy_round_trip(backend):
    host = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    for dtype in ("float32", "float64"):
        x = backend.asarray(host, dtype)
        assert_belongs(x, backend, dtype, (2, 3))
        back = backend.to_numpy(x)
        assert isinstance(back, np.ndarray) and back.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(back, host.astype(dtype))  # cast on the host: same bits
    assert backend.asarray(backend.asarray(host)) is not None
    backend.synchronize()


def test_asarray_copy_never_aliases(backend):
    host = np.zeros(3)
    x = backend.asarray(host, "float64", copy=True)
    host[0] = 1.0
    assert backend.to_numpy(x)[0] == 0.0


def test_arrays_move_between_backends(other_backend):
    host = np.linspace(0, 1, 5)
    x = other_backend.asarray(host, "float64")
    y = get_backend("cpu").asarray(x)  # a device array handed to the CPU backend
    np.testing.assert_array_equal(y, host)
    assert backends.backend_for(x) is other_backend


def test_available_backends_lists_reasons():
    rows = backends.available_backends()
    specs = [row["spec"] for row in rows]
    assert specs[:2] == ["cpu", "cuda"]
    for row in rows:
        assert set(row) >= {"name", "spec", "installed", "usable", "reason"}
        assert row["usable"] == (row["reason"] is None)
    assert rows[0]["usable"]


def test_info_command_runs():
    out = subprocess.run([sys.executable, "-m", "backprop", "info"], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("backprop ") and "cpu" in out and "usable" in out
    data = subprocess.run([sys.executable, "-m", "backprop", "info", "--json"], capture_output=True,
                          text=True, check=True).stdout
    import json

    parsed = json.loads(data)
    assert parsed["backends"][0]["spec"] == "cpu" and parsed["backends"][0]["usable"] is True


def test_network_code_names_no_array_library():
    """backprop/'s network math never imports numpy, cupy or torch by name.

    The host-side modules (files, checkpoints, plots, the command line) may use
    NumPy as the host format; none of them may name a GPU library."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "backprop"
    host_side = {"datasets.py", "datafiles.py", "preprocessing.py", "checkpoint.py", "plots.py", "bench.py"}
    any_library = re.compile(r"^\s*(import|from)\s+(numpy|cupy|torch|array_api_strict)\b", re.M)
    gpu_library = re.compile(r"^\s*(import|from)\s+(cupy|torch|array_api_strict)\b", re.M)
    math = [p for p in root.glob("*.py") if p.name not in host_side]
    assert len(math) >= 10
    assert [p.name for p in math if any_library.search(p.read_text())] == []
    host = [p for p in root.rglob("*.py") if p not in math]
    assert [p.name for p in host if gpu_library.search(p.read_text())] == []


@pytest.mark.parametrize("spec", ["cuda", "torch:cuda"])
def test_tf32_is_off_unless_asked_for_and_scoped_to_its_backend(spec):
    """TF32 switches are process-wide in CuPy and torch: each backend sets its own
    choice only while active, and restores the previous one."""
    plain = _gpu_or_skip(spec, tf32=False)
    fast = get_backend(spec, tf32=True)
    if spec == "cuda":
        import numpy
        from cupy._core import _routines_linalg as linalg

        def mode():
            return linalg.get_compute_type(numpy.float32) == linalg.COMPUTE_TYPE_TF32
    else:
        import torch

        def mode():
            return torch.backends.cuda.matmul.allow_tf32

    outside = mode()
    with fast.activate():
        assert mode() is True
        with plain.activate():
            assert mode() is False
        assert mode() is True
    assert mode() == outside


def _gpu_or_skip(spec, **kwargs):
    try:
        return get_backend(spec, **kwargs)
    except BackendUnavailable as exc:
        pytest.skip(f"{spec}: {exc}")
