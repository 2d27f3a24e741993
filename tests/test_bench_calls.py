"""benchmarks/array_calls.py: the counter of array-library calls per training step counts exactly."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

xps = pytest.importorskip("array_api_strict")
from array_api_strict._array_object import Array  # noqa: E402

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "array_calls.py"


@pytest.fixture(scope="module")
def calls():
    spec = importlib.util.spec_from_file_location("array_calls", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_known_sequence_is_counted_call_for_call(calls):
    a = xps.ones(3)
    with calls.CallCounter(xps, Array) as counter:
        b = xps.ones(3) + a  # ones, __add__
        b += 1.0  # __iadd__
        c = xps.sum(a @ b)  # __matmul__, sum (sum's own inner calls are not counted)
        b[0] = a[1]  # __getitem__, __setitem__
        with counter.during("update"):
            a *= 2.0  # __imul__, in the update
        float(c)  # a host read, counted apart
        xps.isdtype(a.dtype, "real floating")  # metadata: not counted
    assert dict(counter.counts) == {("loop", "ones"): 1, ("loop", "__add__"): 1, ("loop", "__iadd__"): 1,
                                    ("loop", "__matmul__"): 1, ("loop", "sum"): 1, ("loop", "__getitem__"): 1,
                                    ("loop", "__setitem__"): 1, ("update", "__imul__"): 1}
    assert dict(counter.reads) == {("loop", "__float__"): 1}
    assert (counter.total(), counter.total("update")) == (8, 1)
    # Everything patched is put back: nothing more is counted, and the library's own functions remain.
    xps.sum(a + a)
    assert counter.total() == 8
    assert Array.__add__.__qualname__ == "Array.__add__" and xps.sum.__module__.startswith("array_api_strict")


def test_a_step_is_split_at_its_entry_points(calls):
    # 4-8-6-3: three products forward, five backward (no input gradient of the first layer).
    counter = calls.count_steps([4, 8, 6, 3], 5, "sgd", steps=3)
    products = {phase: sum(n for (p, name), n in counter.counts.items()
                           if p == phase and name in ("__matmul__", "matmul", "__rmatmul__"))
                for phase in calls.PHASES}
    assert products == {"forward": 9, "loss": 0, "backward": 15, "update": 0, "loop": 0}
    per_step = calls.per_step(counter, 3)
    assert all(per_step[phase] > 0 for phase in calls.PHASES)
    assert per_step["total"] == pytest.approx(sum(per_step[phase] for phase in calls.PHASES))
    # The step itself is whole again afterwards.
    assert not counter._saved


def test_only_the_outermost_call_counts(calls):
    """A library function that calls another through the namespace is one call (one launch's worth)."""
    import types

    fake = types.ModuleType("fake")
    fake.inner = lambda x: x
    fake.outer = lambda x: fake.inner(x) + 1

    class Box:
        def __add__(self, other):
            return fake.outer(other)

    with calls.CallCounter(fake, Box) as counter:
        Box() + 1
        fake.outer(1)
        fake.inner(1)
    assert dict(counter.counts) == {("loop", "__add__"): 1, ("loop", "outer"): 1, ("loop", "inner"): 1}
