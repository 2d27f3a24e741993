"""``backends.inplace``: each library's ``out=`` operations compute what the standard's operations
compute, and write into ``out`` where the library can (the workspace relies on both)."""

from __future__ import annotations

import numpy as np
import pytest

from backends import get_backend
from backends.inplace import Into, into

CASES = [  # (operation, arguments as host arrays or scalars, what the standard computes)
    ("matmul", ("A", "B"), lambda a, b: a @ b),
    ("add", ("A2", "C"), lambda a, b: a + b),
    ("add", ("A2", 0.5), lambda a, b: a + b),
    ("subtract", ("A2", "C"), lambda a, b: a - b),
    ("subtract", (1.0, "A2"), lambda a, b: a - b),
    ("multiply", ("A2", 3.0), lambda a, b: a * b),
    ("divide", ("A2", "C"), lambda a, b: a / b),
    ("maximum", ("A2", 0.0), np.maximum),
    ("sqrt", ("P",), np.sqrt),
    ("tanh", ("A2",), np.tanh),
    ("sign", ("A2",), np.sign),
    ("positive", ("A2",), lambda a: (a > 0).astype(a.dtype)),
    ("exp", ("A2",), np.exp),
    ("log", ("P",), np.log),
    ("sum0", ("A2",), lambda a: a.sum(axis=0)),
    ("row_sum", ("A2",), lambda a: a.sum(axis=1, keepdims=True)),
    ("row_max", ("A2",), lambda a: a.max(axis=1, keepdims=True)),
]


def _host():
    rng = np.random.default_rng(0)
    return {"A": rng.normal(size=(4, 3)), "B": rng.normal(size=(3, 5)), "A2": rng.normal(size=(4, 5)),
            "C": rng.uniform(1, 2, size=(4, 5)), "P": rng.uniform(0.5, 2, size=(4, 5))}


@pytest.mark.parametrize("device", ["cpu", "strict", "torch"])
@pytest.mark.parametrize("name,args,expected", CASES, ids=[c[0] + str(i) for i, c in enumerate(CASES)])
def test_each_operation_computes_the_standards_result_into_out(device, name, args, expected):
    try:
        backend = get_backend(device)
    except Exception as error:  # torch may be absent
        pytest.skip(str(error))
    host = _host()
    values = [host[a] if isinstance(a, str) else a for a in args]
    want = expected(*values)
    arrays = [backend.asarray(v, "float64") if isinstance(v, np.ndarray) else v for v in values]
    ops = into(backend.xp)
    assert isinstance(ops, Into)
    out = backend.asarray(np.full(np.shape(want), 99.0), "float64")
    got = getattr(ops, name)(*arrays, out=out)
    np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-15, atol=1e-15)
    if ops.in_place:
        assert got is out
    fresh = getattr(ops, name)(*arrays, out=None)
    np.testing.assert_allclose(backend.to_numpy(fresh), want, rtol=1e-15, atol=1e-15)


def test_stack_into_out():
    backend = get_backend("cpu")
    a, b = np.ones((2, 3)), np.zeros((2, 3))
    out = np.empty((2, 2, 3))
    got = into(backend.xp).stack([a, b], 1, out=out)
    assert got is out
    np.testing.assert_array_equal(out, np.stack([a, b], axis=1))


def test_numpy_and_torch_write_in_place_strict_does_not():
    assert into(get_backend("cpu").xp).in_place
    assert not into(get_backend("strict").xp).in_place
