"""`backprop bench --compare matmuls`: the step's own matrix products, timed alone.

The row is only a floor if its products are the step's: the same count and shapes, and the same
threads. No test here checks a speed.
"""

from __future__ import annotations

import collections
import dataclasses
import json

import pytest

from backends import get_backend
from backends.machine import step_threads
from backprop import bench
from backprop.cli import main

TINY = ["--layers", "4,8,6,3", "--batch-size", "5", "--steps", "3", "--repeats", "2", "--devices", "cpu"]


@pytest.mark.parametrize("name", list(bench.SIZES))
def test_the_products_count_the_flops_of_the_size(name):
    size = bench.SIZES[name]
    assert sum(p.flops() for p in size.products()) == size.flops()


def test_the_products_by_hand():
    # 4-8-3 on batch 5: forward X (5,4) @ W (4,8) and (5,8) @ (8,3); backward Xᵀ @ dY for both,
    # dY @ Wᵀ for the second only.
    size = bench.custom_size([4, 8, 3], 5)
    assert [(p.m, p.k, p.n, p.input, p.backward()) for p in size.products()] == [
        (5, 4, 8, "P", ["PtdY"]), (5, 8, 3, "P", ["PtdY", "dYQt"])]
    # cnn1d's first convolution: W2 (25, 1·5) @ cols (1·5, 100·18); its columns' gradient is not asked.
    first = bench.SIZES["cnn1d"].products()[0]
    assert (first.m, first.k, first.n, first.input, first.backward()) == (25, 5, 1800, "Q", ["dYQt"])


def _step_products(size: bench.Size, monkeypatch) -> collections.Counter:
    """(left shape, right shape) of every matrix product one real training step makes, on
    array-api-strict, through the step's public entry point."""
    import array_api_strict as xps
    from array_api_strict._array_object import Array

    seen: collections.Counter = collections.Counter()
    operator, function = Array.__matmul__, xps.matmul

    def recorded(a, b):
        seen[(tuple(a.shape), tuple(b.shape))] += 1
        return operator(a, b)

    def recorded_function(a, b, /):
        seen[(tuple(a.shape), tuple(b.shape))] += 1
        return function(a, b)

    X, labels = bench.synthetic_data(size, 0, 1)
    loss = "bce" if size.n_outputs == 1 else "ce"
    adam = bench.OPTIMIZER_SETTINGS["adam"]
    trainer = bench.BackpropTrainer(get_backend("strict"), size, "relu", loss, adam, "float64", X, labels, 0)
    monkeypatch.setattr(Array, "__matmul__", recorded)
    monkeypatch.setattr(xps, "matmul", recorded_function)
    trainer.run(bench.batch_spans(size, 1, 1))
    monkeypatch.undo()
    return seen


@pytest.mark.parametrize("size", [
    bench.custom_size([4, 8, 6, 3], 5),
    bench.custom_size([3, 7, 1], 4),
    dataclasses.replace(bench.SIZES["cnn1d"], batch=3),
    dataclasses.replace(bench.SIZES["lenet"], batch=2),
], ids=["mlp", "bce", "cnn1d", "lenet"])
def test_the_matmuls_row_multiplies_the_shapes_the_step_does(size, monkeypatch):
    timed = bench.MatmulTrainer(get_backend("cpu"), size.products(), "float64", 0)
    assert collections.Counter((tuple(A.shape), tuple(B.shape)) for A, B in timed.pairs) == \
        _step_products(size, monkeypatch)
    assert timed.flops() == size.flops()


def test_the_matmuls_row_and_its_ratio_in_the_report(capsys):
    assert main(["bench", *TINY, "--compare", "numpy-reference,matmuls", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["results"]
    assert [r["impl"] for r in rows] == ["backprop", "numpy-reference", "matmuls"]
    ours, _, floor = rows
    assert floor["flops_per_step"] == ours["flops_per_step"] and floor["loss"] is None  # no loss of its own
    assert floor["backprop_speedup"] == pytest.approx(floor["step_s"] / ours["step_s"])
    assert report["step_over_matmuls"] == [{"size": "custom", "device": "cpu", "step_s": ours["step_s"],
                                            "matmuls_s": floor["step_s"],
                                            "ratio": pytest.approx(ours["step_s"] / floor["step_s"])}]
    # The loss agreement compares the trainers only.
    assert [a["b"] for a in report["agreement"]] == ["numpy-reference@cpu"] and report["ok"]


def test_the_ratio_and_threads_lines_of_the_table():
    from backprop.cli.bench import render

    settings = bench.Settings(sizes=[bench.SIZES["xor"], bench.SIZES["medium"]], devices=["cpu"])
    xor, medium = settings.sizes
    rows = [bench._row(settings, size, get_backend("cpu"), 1e11, impl, [step], None, 0.5)
            for size, impl, step in [(xor, "backprop", 1e-4), (medium, "backprop", 0.0234),
                                     (medium, "matmuls", 0.0182)]]
    for row, threads in zip(rows, (1, 2, 2)):
        row.update(threads=threads, backprop_speedup=1.0)
    report = {"settings": {"dtype": "float32", "optimizer": bench.OPTIMIZER_SETTINGS["adam"],
                           "activation": "relu", "seed": 0},
              "machine": {"cpu": "a CPU", "cores": 2, "blas": None}, "devices": [], "results": rows,
              "speedups": [], "agreement": [], "notes": [], "step_over_matmuls": bench.floor_ratios(rows)}
    lines = render(report).splitlines()
    assert "step / matmuls, medium on cpu: 1.29 (23.40 ms a step, 18.20 ms for its matrix products alone)" \
        in lines
    assert "CPU threads, every row of a size alike (fit's rule, or --threads): xor 1, medium 2" in lines


@pytest.mark.parametrize("threads", [None, 2])
def test_every_row_of_a_size_runs_on_the_threads_fit_would_use(capsys, monkeypatch, threads):
    from threadpoolctl import threadpool_info

    seen = []
    for cls in (bench.BackpropTrainer, bench.MatmulTrainer):
        def watched(self, spans, _run=cls.run):
            seen.append((type(self).__name__, max(p["num_threads"] for p in threadpool_info())))
            return _run(self, spans)
        monkeypatch.setattr(cls, "run", watched)
    extra = [] if threads is None else ["--threads", str(threads)]
    assert main(["bench", *TINY, "--compare", "matmuls", "--json", *extra]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    expected = threads or step_threads(5 * (4 * 8 + 8 + 8 * 6 + 6 + 6 * 3 + 3))  # batch × parameters
    assert [r["threads"] for r in rows] == [expected, expected]
    assert {name for name, _ in seen} == {"BackpropTrainer", "MatmulTrainer"}
    assert {count for _, count in seen} == {expected}


@pytest.mark.parametrize("threads, compare", [(None, ["torch"]), (2, ["torch", "matmuls"]), (None, [])])
def test_torch_gets_the_threads_of_the_size_and_its_own_back(monkeypatch, threads, compare):
    """PyTorch's pool is set apart from the BLAS (threadpoolctl reaches it only where torch uses
    OpenMP): the size's count while it runs, the count it had after."""
    pytest.importorskip("torch")
    from backprop.contenders import torch_reference

    pool = {"n": 7}

    def torch_threads(n=None):
        if n is not None:
            pool["n"] = n
        return pool["n"]

    monkeypatch.setattr(torch_reference, "torch_threads", torch_threads)
    settings = bench.Settings(sizes=[], devices=["cpu"], compare=compare, threads=threads)
    with bench.size_threads(settings, get_backend("cpu"), 1000) as count:
        assert count == (threads or 1)
        assert pool["n"] == (count if compare else 7)
    assert pool["n"] == 7
