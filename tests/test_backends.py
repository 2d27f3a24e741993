"""Device strings, the host RNG, host<->device moves, and what `info` reports."""

from __future__ import annotations

import ast
import copy
import importlib.util
import pathlib
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

import backends
from backends import (
    BackendError,
    BackendUnavailable,
    NotNumeric,
    UnknownDevice,
    get_backend,
)
from backends.registry import SPEC_HELP
from conftest import assert_belongs

BACKENDS_DIR = pathlib.Path(backends.__file__).resolve().parent


@pytest.mark.parametrize("spec,name,label", [
    ("cpu", "numpy", "cpu"), ("numpy", "numpy", "cpu"), ("CPU", "numpy", "cpu"),
    ("strict", "strict", "strict:device1"), ("strict:device2", "strict", "strict:device2"),
])
def test_specs(spec, name, label):
    backend = get_backend(spec)
    assert (backend.name, backend.label, backend.spec) == (name, label, label)
    assert get_backend(backend) is backend
    assert get_backend(backend.spec) is backend


@pytest.mark.parametrize("spec,why", [
    ("tpu", SPEC_HELP), ("mps", SPEC_HELP), ("", SPEC_HELP),
    ("cuda:x", "GPU indices are integers, e.g. cuda:1"),
    ("cpu:1", "the NumPy backend has only 'cpu'"),
])
def test_unknown_specs_say_what_to_use(spec, why):
    with pytest.raises(UnknownDevice) as info:
        get_backend(spec)
    assert str(info.value) == f"unknown device {spec!r}: {why}"
    assert isinstance(info.value, ValueError) and isinstance(info.value, BackendError)


@pytest.mark.parametrize("spec,message", [
    ("strict:device9", "unknown array-api-strict device 'device9': use 'strict' (device1), "
                       "'strict:device2' or 'strict:CPU_DEVICE'"),
    ("torch:nonsense", "unknown torch device 'nonsense': use 'torch', 'torch:cpu' or 'torch:cuda[:N]'"),
    ("torch:mps", "unsupported torch device 'mps': use 'torch:cpu' or 'torch:cuda'"),
])
def test_unknown_devices_of_a_library_are_unknown_devices(spec, message):
    if spec.startswith("torch"):
        pytest.importorskip("torch")
    with pytest.raises(UnknownDevice) as info:
        get_backend(spec)
    assert str(info.value) == message


@pytest.mark.parametrize("spec", [0, None, b"cpu", ["cpu"]])
def test_a_device_that_is_not_a_string_is_an_unknown_device(spec):
    with pytest.raises(UnknownDevice) as info:
        get_backend(spec)
    assert str(info.value) == f"device must be a string such as 'cpu' or 'cuda', got {spec!r}"


def test_exception_types():
    """One BackendError to catch; each also the built-in type callers caught before."""
    assert issubclass(BackendError, Exception) and not issubclass(BackendError, (ValueError, TypeError,
                                                                                  RuntimeError))
    assert BackendUnavailable.__mro__[1:3] == (BackendError, RuntimeError)
    assert UnknownDevice.__mro__[1:3] == (BackendError, ValueError)
    assert NotNumeric.__mro__[1:3] == (BackendError, TypeError)
    assert not issubclass(UnknownDevice, TypeError)
    names = ("BackendError", "BackendUnavailable", "UnknownDevice", "NotNumeric")
    assert [name for name in names if name not in backends.__all__
            or getattr(backends, name, None) is not getattr(backends.base, name)] == []


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
    with pytest.raises(BackendUnavailable, match=r"pip install 'cupy-cuda12x>=13' for a CUDA 12") as info:
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


# -0.0, infinities, a NaN and the smallest float32 subnormal: a copy keeps every bit.
AWKWARD = np.array([[1 / 7, -0.0, np.inf], [-np.inf, np.nan, float(np.finfo(np.float32).smallest_subnormal)]])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def same_bits_nan_as_nan(a: np.ndarray, b: np.ndarray) -> bool:
    """NaN where ``b`` has NaN, whatever its payload (a GPU's cast gives the canonical
    0x7fffffff, NumPy's 0x7fc00000), and every other element bit for bit (-0.0, subnormals)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    nan = np.isnan(b)
    return bool(np.array_equal(np.isnan(a), nan)) and a[~nan].tobytes() == b[~nan].tobytes()


def test_nan_as_nan_ignores_only_the_nan_payload():
    expected = AWKWARD.astype("float32")
    other_nan = expected.copy()
    other_nan.view(np.uint32)[1, 1] = 0x7FFFFFFF  # a GPU's NaN
    assert same_bits_nan_as_nan(other_nan, expected) and not same_bits(other_nan, expected)
    for where, wrong in [((0, 1), 0.0), ((0, 0), np.nextafter(np.float32(1 / 7), 1)), ((1, 1), 1.0),
                         ((1, 2), 0.0)]:  # +0 for -0, one ulp off, a number for NaN, a flushed subnormal
        off = expected.copy()
        off[where] = wrong
        assert not same_bits_nan_as_nan(off, expected), (where, wrong)


def test_asarray_and_to_numpy_round_trip(backend):
    for dtype in ("float32", "float64"):
        x = backend.asarray(AWKWARD, dtype)
        assert_belongs(x, backend, dtype, (2, 3))
        back = backend.to_numpy(x)
        assert type(back) is np.ndarray
        assert same_bits(back, AWKWARD.astype(dtype))  # cast on the host: same bits
    backend.synchronize()


def test_a_native_array_passes_through_or_is_cast_on_the_device(backend):
    x = backend.asarray(AWKWARD, "float64")
    assert backend.asarray(x) is x  # right library, device and dtype: nothing to do
    assert backend.asarray(x, "float64") is x
    y = backend.asarray(x, "float32")
    assert_belongs(y, backend, "float32", (2, 3))
    assert same_bits_nan_as_nan(backend.to_numpy(y), AWKWARD.astype("float32"))  # cast on the device
    z = backend.asarray(x, copy=True)
    assert z is not x
    assert_belongs(z, backend, "float64", (2, 3))
    assert same_bits(backend.to_numpy(z), AWKWARD)


@pytest.mark.parametrize("host", [np.arange(4, dtype=np.int64), np.array([True, False]),
                                  np.ones(3, np.float32), np.ones(3, np.float64)],
                         ids=["int64", "bool", "float32", "float64"])
def test_asarray_keeps_the_host_dtype_when_none_is_given(backend, host):
    x = backend.asarray(host)
    assert_belongs(x, backend, host.dtype.name, host.shape)
    assert same_bits(backend.to_numpy(x), host)


def test_asarray_copy_never_aliases(backend):
    host = np.zeros(3)
    x = backend.asarray(host, "float64", copy=True)
    host[0] = 1.0
    assert same_bits(backend.to_numpy(x), np.zeros(3))
    y = backend.asarray(x, copy=True)  # a native array copied on its device
    x[1] = 2.0
    assert same_bits(backend.to_numpy(y), np.zeros(3))
    assert same_bits(backend.to_numpy(x), np.array([0.0, 2.0, 0.0]))


def test_asarray_copy_of_another_librarys_array_never_aliases(other_backend):
    x = other_backend.asarray(np.zeros(3), "float64")
    y = get_backend("cpu").asarray(x, copy=True)  # torch:cpu would hand over its own buffer
    x[0] = 3.0
    assert same_bits(y, np.zeros(3))


@pytest.mark.parametrize("data,dtype", [
    (np.array(["a", "b"]), "<U1"), (np.array([1.0, "x"], dtype=object), "object"),
    (["a", "b"], "<U1"), (np.array([1 + 2j]), "complex128"),
])
def test_asarray_refuses_what_is_not_numbers(backend, data, dtype):
    with pytest.raises(NotNumeric) as info:
        backend.asarray(data)
    assert str(info.value) == (f"expected numbers but got {dtype} data: convert it to floats, and "
                               "encode class labels as integers 0..K-1")
    assert isinstance(info.value, TypeError) and isinstance(info.value, BackendError)


def test_arrays_move_between_backends(other_backend):
    host = AWKWARD.copy()
    x = other_backend.asarray(host, "float64")
    y = get_backend("cpu").asarray(x)  # a device array handed to the CPU backend
    assert type(y) is np.ndarray and same_bits(y, host)
    assert backends.backend_for(x) is other_backend
    assert same_bits(backends.to_numpy_any(x), host)


# -- pickling and deep copies ------------------------------------------------------
def test_a_backend_pickles_and_deep_copies_to_itself(backend):
    """It holds modules that cannot be pickled: a copy is the cached backend for its spec."""
    assert get_backend(backend.spec, tf32=backend.tf32) is backend
    assert pickle.loads(pickle.dumps(backend)) is backend
    assert pickle.loads(pickle.dumps(backend, protocol=0)) is backend
    assert copy.deepcopy(backend) is backend
    assert copy.copy(backend) is backend
    holder = {"backend": backend, "weights": [np.zeros(2)]}
    copied = copy.deepcopy(holder)
    assert copied["backend"] is backend and copied["weights"][0] is not holder["weights"][0]


@pytest.mark.parametrize("spec,tf32,same_as", [
    ("cpu", True, ("cpu", False)),  # the CPU ignores TF32: one backend
    ("strict", True, ("strict:device1", False)),
    ("torch", True, ("torch:cpu", True)),
    ("torch:cpu:0", False, ("torch:cpu", False)),
    ("STRICT:device2", False, ("strict:device2", False)),  # a fake device of its own
    ("array-api-strict:CPU_DEVICE", True, ("strict:CPU_DEVICE", False)),
])
def test_spellings_of_one_device_give_one_backend(spec, tf32, same_as):
    if spec.startswith("torch"):
        pytest.importorskip("torch")
    backend = get_backend(spec, tf32=tf32)
    assert backend is get_backend(same_as[0], tf32=same_as[1])
    assert (backend.spec, backend.tf32) == same_as
    assert pickle.loads(pickle.dumps(backend)) is backend and copy.deepcopy(backend) is backend


@pytest.mark.parametrize("spec", ["torch:cuda", "cuda"])
def test_a_gpu_backend_pickles_to_itself(spec):
    backend = _gpu_or_skip(spec)
    assert backend.spec == ("torch:cuda:0" if spec == "torch:cuda" else "cuda:0")
    assert pickle.loads(pickle.dumps(backend)) is backend and copy.deepcopy(backend) is backend
    fast = get_backend(spec, tf32=True)
    assert fast is not backend and fast.tf32 is True
    assert pickle.loads(pickle.dumps(fast)) is fast and copy.deepcopy(fast) is fast


def test_a_pickled_backend_loads_in_a_fresh_process():
    data = pickle.dumps(get_backend("strict:device2"))
    code = ("import pickle, sys; b = pickle.loads(sys.stdin.buffer.read()); "
            "print(b.name, b.spec, b.tf32, b.device)")
    out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True).stdout
    assert out.decode().split() == ["strict", "strict:device2", "False", "array_api_strict.Device('device2')"]


def test_host_rng_pickles_and_deep_copies_with_its_state():
    rng = backends.HostRNG(7, stream=3)
    rng.uniform(0, 1, (5,))  # move it off the start
    pickled, copied = pickle.loads(pickle.dumps(rng)), copy.deepcopy(rng)
    for other in (pickled, copied):
        assert (other.seed, other.stream) == (7, 3) and other is not rng
        assert other.get_state() == rng.get_state()
    expected = rng.normal(1.0, (6,))
    assert same_bits(pickled.normal(1.0, (6,)), expected)
    assert same_bits(copied.normal(1.0, (6,)), expected)
    assert same_bits(pickled.permutation(20), copied.permutation(20))  # independent copies


# -- layering ----------------------------------------------------------------------
def _backends_imports() -> dict[str, set[str]]:
    """Module of backends/ -> the modules of backends/ it imports, lazily or not."""
    graph: dict[str, set[str]] = {}
    for path in sorted(BACKENDS_DIR.glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 1 and module:
                    names.add(module.split(".")[0])
                elif node.level == 1:
                    names.update(alias.name for alias in node.names)
                elif module == "backends":
                    names.add("__init__")
                elif module.startswith("backends."):
                    names.add(module.split(".")[1])
                elif module.split(".")[0] == "backprop":
                    names.add("backprop")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    top, _, sub = alias.name.partition(".")
                    if top == "backends":
                        names.add(sub.split(".")[0] if sub else "__init__")
                    elif top == "backprop":
                        names.add("backprop")
        graph[path.stem] = names
    return graph


def test_backends_imports_form_no_cycle_and_never_reach_backprop():
    """base.py and host.py sit below registry.py (no lazy import back up either), and
    the backends package never imports the network code."""
    graph = _backends_imports()
    assert graph["host"] == set()
    assert graph["base"] == {"host", "rng"}
    assert [name for name, imports in graph.items() if "backprop" in imports] == []
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join(path + (name,))}"
        if name in done:
            return
        for imported in graph.get(name, ()):
            visit(imported, path + (name,))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_base_loads_and_converts_without_the_registry():
    """Run it: backends.base alone (the package's __init__ skipped) pulls in only host and
    rng, even when asarray converts another library's array."""
    code = f"""
import sys, types
package = types.ModuleType("backends")
package.__path__ = [{str(BACKENDS_DIR)!r}]
sys.modules["backends"] = package
import array_api_strict as xps
from backends.numpy_backend import NumpyBackend
x = NumpyBackend().asarray(xps.asarray([1.5, 2.5]), "float32")
assert x.tolist() == [1.5, 2.5] and str(x.dtype) == "float32", x
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] == "backends")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["backends", "backends.base", "backends.host", "backends.numpy_backend",
                           "backends.rng"]


def test_available_backends_lists_reasons():
    rows = backends.available_backends()
    assert [(row["name"], row["spec"]) for row in rows] == [
        ("numpy", "cpu"), ("cupy", "cuda"), ("torch", "torch"), ("torch", "torch:cuda"),
        ("strict", "strict")]
    for row, module in zip(rows, ("numpy", "cupy", "torch", "torch", "array_api_strict")):
        assert set(row) >= {"name", "spec", "installed", "usable", "reason"}
        assert row["installed"] is (importlib.util.find_spec(module) is not None)
        assert row["usable"] is (row["reason"] is None)
        if row["usable"]:
            assert row["device"] == get_backend(row["spec"]).label
        else:
            assert isinstance(row["reason"], str) and row["reason"] and "\n" not in row["reason"]
    assert (rows[0]["usable"], rows[0]["reason"], rows[0]["device"]) == (True, None, "cpu")
    assert (rows[-1]["usable"], rows[-1]["device"]) == (True, "strict:device1")  # a test dependency


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
    """The tiers are folders: the network math (the modules directly in backprop/) imports no
    array library and no host-side one by name; the host-side edges (edges/, host/) and the
    applications (apps/, cli/, playground/) may use NumPy as the host format, and none of
    them names a GPU library."""
    root = pathlib.Path(__file__).resolve().parents[1] / "backprop"
    any_library = re.compile(r"^\s*(import|from)\s+(numpy|cupy|torch|array_api_strict|scipy|sklearn|"
                             r"matplotlib|safetensors|mpi4py)\b", re.M)
    gpu_library = re.compile(r"^\s*(import|from)\s+(cupy|torch|array_api_strict)\b", re.M)
    contenders = root / "contenders"  # bench's yardsticks: naming the libraries is their point
    math = list(root.glob("*.py"))
    assert len(math) >= 15
    assert [p.name for p in math if any_library.search(p.read_text())] == []
    contender = re.compile(r"^\s*(import|from)\s+(backprop)?\.?contenders\b", re.M)
    assert [p.name for p in math if contender.search(p.read_text())] == []
    host = [p for p in root.rglob("*.py") if p not in math and contenders not in p.parents]
    assert {p.parent.name for p in host} == {"edges", "host", "apps", "cli", "playground"}
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


# Which tier may import which, at module level: each folder only from the ones below it. The
# package's face (__init__, __main__, the old paths in _moved) gathers every tier and is left out.
MAY_IMPORT = {
    "math": {"math"},
    "host": {"math", "host"},
    "edges": {"math", "host", "edges"},
    "apps": {"math", "host", "edges", "apps"},
    "playground": {"math", "host", "edges", "apps", "playground"},
    "cli": {"math", "host", "edges", "apps", "playground", "cli", "contenders"},
    "contenders": set(),
}
FACE = {"__init__.py", "__main__.py", "_moved.py"}


def _tier(root: pathlib.Path, path: pathlib.Path) -> str:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else "math"


def _imported_tiers(root: pathlib.Path, path: pathlib.Path) -> set[str]:
    """The tiers of the backprop modules ``path`` imports at module level (relative or absolute)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found |= {_tier(root, root / n.split(".")[1]) if "." in n else "math"
                      for n in names if n.startswith("backprop.")}
            continue
        if node.level == 0:
            if not (node.module or "").startswith("backprop."):
                continue
            parts = node.module.split(".")[1:]
        else:
            here = list(path.relative_to(root).parts[:-1])
            parts = here[:len(here) - (node.level - 1)] + (node.module.split(".") if node.module else [])
        heads = parts[:1] or [a.name for a in node.names]  # "from . import x": x is the module
        found |= {head if (root / head).is_dir() else "math" for head in heads}
    return found


def test_each_tier_imports_only_the_tiers_below_it():
    """The folders are the tiers (ARCHITECTURE.md's table): the math imports no host-side edge or
    application, the host side no application, and so on; read from every module-level import."""
    root = pathlib.Path(__file__).resolve().parents[1] / "backprop"
    wrong = []
    for path in sorted(root.rglob("*.py")):
        if path.name in FACE and path.parent == root:
            continue
        tier = _tier(root, path)
        wrong += [f"{path.relative_to(root)} imports {other}"
                  for other in sorted(_imported_tiers(root, path) - MAY_IMPORT[tier])]
    assert wrong == []
    assert {_tier(root, p) for p in root.rglob("*.py")} == set(MAY_IMPORT)  # every folder has its rule
