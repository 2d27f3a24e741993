"""`backprop bench`: what it counts, what it prints, and that its runs compute the same thing.

No test here checks a speed: speed claims live in benchmarks/BENCHMARKS.md.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os

import pytest

from backends import BackendUnavailable, get_backend
from backends.machine import cpu_name, usable_cores
from backprop import bench
from backprop.cli import main

HAS_TORCH = importlib.util.find_spec("torch") is not None
ROW_KEYS = {"size", "layers", "batch", "device", "impl", "dtype", "precision", "warmup", "steps", "repeats",
            "step_s", "step_s_min", "step_s_max", "samples_per_s", "flops_per_step", "tflops",
            "ceiling_fraction", "peak_memory_bytes", "loss", "backprop_speedup", "threads"}
TINY = ["--layers", "4,8,3", "--batch-size", "16", "--steps", "4", "--repeats", "3"]


def run_json(capsys, *args: str) -> dict:
    assert main(["bench", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_flops_count_the_matrix_products_by_hand():
    # 2-2-1, batch 4: forward 2*4*(2*2 + 2*1) = 48; weight gradients 48 again; input
    # gradient of the second layer only, 2*4*2*1 = 16.
    assert bench.flops_per_step([2, 2, 1], 4) == 48 + 48 + 16
    # Large: 6 N sum(a b) minus the first layer's input gradient, 2 N a0 b0.
    n, pairs = 4096, [(4096, 4096), (4096, 4096), (4096, 1000)]
    expected = 6 * n * sum(a * b for a, b in pairs) - 2 * n * 4096**2
    assert bench.flops_per_step([4096, 4096, 4096, 1000], n) == expected


def test_issue_command_prints_the_table_for_xor_and_small(capsys):
    assert main(["bench", "--sizes", "xor,small", "--devices", "cpu"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("size"))
    for field in ("layers", "batch", "device", "impl", "precision", "step", "samples/s", "TFLOP/s",
                  "of peak", "memory"):
        assert field in header
    assert "matrix-multiply ceiling" in out
    table = [line.split() for line in out.splitlines() if line.startswith(("xor ", "small "))]
    assert [t[:3] for t in table] == [["xor", "2-2-1", "4"], ["small", "784-512-512-10", "128"]]
    assert all("cpu" in t and "backprop" in t and "float32" in t for t in table)


def test_json_report_has_every_key_and_the_devices_agree(capsys):
    compare = "numpy-reference,torch" if HAS_TORCH else "numpy-reference"
    report = run_json(capsys, *TINY, "--sizes", "xor", "--devices", "cpu,strict", "--compare", compare)
    assert set(report) >= {"settings", "machine", "devices", "results", "speedups", "agreement", "notes",
                           "ok"}
    machine = report["machine"]
    assert (machine["cpu"], machine["cores"], machine["logical_cpus"]) == (cpu_name(), usable_cores(),
                                                                            os.cpu_count())
    assert [d["device"] for d in report["devices"]] == ["cpu", "strict:device1"]
    assert all(d["ceiling_tflops"] > 0 for d in report["devices"])
    rows = report["results"]
    assert all(set(row) == ROW_KEYS for row in rows)
    impls = [(r["size"], r["device"], r["impl"]) for r in rows]
    expected_cpu = ["backprop", "numpy-reference"] + (["torch"] if HAS_TORCH else [])
    assert [i for s, d, i in impls if s == "xor" and d == "cpu"] == expected_cpu
    assert ("custom", "strict:device1", "backprop") in impls
    for row in rows:
        assert row["samples_per_s"] == pytest.approx(row["batch"] / row["step_s"])
        assert row["tflops"] == pytest.approx(row["flops_per_step"] / row["step_s"] / 1e12)
        assert row["step_s_min"] <= row["step_s"] <= row["step_s_max"]
    assert {(s["size"], s["device"], s["over"]) for s in report["speedups"]} == {
        ("xor", "strict:device1", "cpu"), ("custom", "strict:device1", "cpu")}
    # Same weights, data and math: the losses agree, and runs on NumPy agree exactly.
    assert report["ok"] and all(a["ok"] for a in report["agreement"])
    exact = [a for a in report["agreement"] if "torch" not in a["b"]]
    assert exact and all(a["abs_diff"] == 0 for a in exact)
    assert any("skipped on strict" in n for n in report["notes"])


def test_a_wrong_update_is_caught_by_the_loss_agreement(capsys, monkeypatch):
    from backprop.contenders.handwritten import HandwrittenTrainer

    original = HandwrittenTrainer._update

    def wrong(self, params, grads):  # a 10% larger step, as a sign slip or a bad constant would be
        self.opt = {**self.opt, "lr": bench.OPTIMIZER_SETTINGS["momentum"]["lr"] * 1.1}
        original(self, params, grads)

    monkeypatch.setattr(HandwrittenTrainer, "_update", wrong)
    code = main(["bench", *TINY, "--devices", "cpu", "--compare", "numpy-reference"])
    captured = capsys.readouterr()
    assert code == 1
    assert "DIFFERS" in captured.out
    assert "disagree on the custom loss" in captured.err


def test_memory_counts_weights_optimizer_state_and_data(capsys):
    options = ["--layers", "256,256,10", "--batch-size", "64", "--steps", "4", "--repeats", "1",
               "--devices", "cpu", "--optimizer", "adam", "--compare", "numpy-reference"]
    report = run_json(capsys, *options)
    ours, reference = report["results"]
    params = 256 * 256 + 256 + 256 * 10 + 10
    data = 4 * 64 * (256 + 10)  # 4 distinct batches of inputs and one-hot targets
    weights_and_moments = 3 * params * 4  # float32 weights, Adam's m and v
    assert weights_and_moments + data <= ours["peak_memory_bytes"] < 4 * (weights_and_moments + data)
    # The same network needs about the same memory either way (the host copy of the
    # starting weights handed to the contenders counts against neither).
    assert reference["impl"] == "numpy-reference"
    assert 0.8 < ours["peak_memory_bytes"] / reference["peak_memory_bytes"] < 1.25


def test_timed_block_reads_the_device_once_however_many_steps():
    from array_api_strict._array_object import Array

    backend = get_backend("strict")
    size = bench.custom_size([4, 8, 3], 8, steps=12)
    X, labels = bench.synthetic_data(size, 0, 12)
    trainer = bench.BackpropTrainer(backend, size, "relu", "ce", bench.OPTIMIZER_SETTINGS["adam"], "float32",
                                    X, labels, 0)
    reads = {"n": 0}
    original = Array.__float__

    def counted(self):
        reads["n"] += 1
        return original(self)

    Array.__float__ = counted
    try:
        for steps in (2, 12):
            reads["n"] = 0
            trainer.run(bench.batch_spans(size, 12, steps))
            assert reads["n"] == 1, steps
    finally:
        Array.__float__ = original


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    report = run_json(capsys, *TINY, "--devices", "cpu,strict", "--plot", str(path))
    assert report["plot"] == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["bench.svg", "bench.pdf"])
def test_plot_replaces_its_own_picture_never_a_users(tmp_path, capsys, name):
    pytest.importorskip("matplotlib")
    path = tmp_path / name
    run_json(capsys, *TINY, "--devices", "cpu", "--plot", str(path))
    first = path.read_bytes()
    run_json(capsys, *TINY, "--devices", "cpu", "--plot", str(path))  # its own: replaced
    assert path.read_bytes()[:4] == first[:4]
    path.write_text("my notes")
    code = main(["bench", *TINY, "--devices", "cpu", "--plot", str(path)])
    assert code == 2 and "is not a picture drawn by backprop" in capsys.readouterr().err
    assert path.read_text() == "my notes"


@pytest.mark.parametrize("args, message", [
    (["--devices", "tpu"], "unknown device 'tpu'"),
    (["--sizes", "huge"], "unknown size 'huge'"),
    (["--compare", "jax"], "unknown --compare choice 'jax'"),
    (["--dtype", "float64", "--precision", "tf32"], "--precision tf32 applies to float32"),
    (["--batch-size", "64"], "--batch-size goes with --layers"),
    (["--layers", "784"], "--layers needs at least two"),
    (["--sizes", "xor", "--layers", "2,3", "--steps", "0"], "must be a positive integer"),
    (["--layers", "none"], "--layers needs at least two"),
    (["--devices", ","], "--devices names no device"),
    (["--sizes", ","], "--sizes names no size"),
    (["--plot", "/nonexistent-folder/bench.png"], "does not exist or is not writable"),
    (["--plot", "bench.txt"], "give a .png, .svg or .pdf file name"),
])
def test_bad_options_end_in_one_line(capsys, args, message):
    try:
        code = main(["bench", *args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_missing_gpu_is_one_line_not_a_traceback(capsys):
    try:
        get_backend("cuda")
        pytest.skip("a GPU is usable here")
    except BackendUnavailable:
        pass
    assert main(["bench", "--sizes", "xor", "--devices", "cpu,cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("backprop: error:") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("spec", ["cuda"])
def test_cpu_and_gpu_agree_in_the_bench(capsys, spec):
    try:
        get_backend(spec)
    except BackendUnavailable as exc:
        pytest.skip(f"no usable GPU: {exc}")
    compare = "numpy-reference,torch" if HAS_TORCH else "numpy-reference"
    report = run_json(capsys, *TINY, "--sizes", "xor,small,cnn1d,lenet", "--steps", "20", "--devices",
                      f"cpu,{spec}", "--compare", compare)
    assert report["ok"] is True, report["agreement"]
    gpu_rows = [r for r in report["results"] if r["device"].startswith("cuda")]
    assert {r["impl"] for r in gpu_rows} >= {"backprop", "cupy-reference"}
    conv = {(r["size"], r["impl"]) for r in gpu_rows if r["size"] in ("cnn1d", "lenet")}
    impls = ["backprop"] + (["torch"] if HAS_TORCH else [])
    assert conv == {(s, i) for s in ("cnn1d", "lenet") for i in impls}
    assert all(r["peak_memory_bytes"] > 0 for r in gpu_rows if r["impl"] != "torch" or HAS_TORCH)


# -- the convolutional sizes -------------------------------------------------------------
CONV = ["--sizes", "cnn1d,lenet", "--steps", "2", "--repeats", "1"]


def test_conv_sizes_count_their_products_by_hand():
    # cnn1d, per sample: conv 1x40 -> 25x18 (kernel 5): 25*18 outputs of 1*5 multiply-adds; 25x18 ->
    # 25x8 and 25x8 -> 25x3 (kernel 3): 25*3 each; dense 75 -> 5. A step is 2 FLOPs per
    # multiply-add forward, for the weight gradient and for the input gradient (not the first layer's).
    macs = [25 * 18 * 5, 25 * 8 * 75, 25 * 3 * 75, 75 * 5]
    cnn1d = bench.SIZES["cnn1d"]
    assert cnn1d.flops() == 2 * 100 * (3 * sum(macs) - macs[0]) == 13_500_000
    assert cnn1d.label == "1x40-25x18-25x8-25x3-5" and cnn1d.n_outputs == 5
    # LeNet-5: conv 6@5x5 padding 2 keeps 28x28; pools halve; conv 16@5x5 on 6x14x14 gives 16x10x10.
    macs = [6 * 28 * 28 * 25, 16 * 10 * 10 * 6 * 25, 400 * 120, 120 * 84, 84 * 10]
    lenet = bench.SIZES["lenet"]
    assert lenet.flops() == 2 * 128 * (3 * sum(macs) - macs[0])
    assert lenet.label == "1x28x28-6x28x28-16x10x10-120-84-10" and lenet.n_outputs == 10
    assert (cnn1d.widest(), lenet.widest()) == (75, 400)  # W as (out, in·kernel): 25x75; dense 400x120
    # A dense 2 -> 3 on batch 4 is 24 multiply-adds: 48 FLOPs forward, 48 for dW, and 48 for dX only
    # where a layer before it (here a flatten) is not the first.
    def size(text: str) -> bench.Size:
        return bench.Size("t", (), 4, warmup=1, steps=1, repeats=1, network=text, input_shape=(1, 2))
    assert (size("flatten, dense(3)").flops(), size("reshape((2,)), dense(3)").flops()) == (144, 144)
    assert bench.Size("t", (), 4, 1, 1, 1, network="dense(3)", input_shape=(2,)).flops() == 96


@pytest.mark.parametrize("name, activation", [("cnn1d", "relu"), ("lenet", "tanh")])
def test_conv_sizes_train_step_for_step_as_torch_in_float64(name, activation):
    """The torch contender's network is ours: the same outputs before training and the same
    losses after three Adam steps, to float64 rounding."""
    pytest.importorskip("torch")
    from backprop.contenders.torch_reference import TorchTrainer

    size = dataclasses.replace(bench.SIZES[name], batch=8)
    X, labels = bench.synthetic_data(size, 0, 3)
    adam = bench.OPTIMIZER_SETTINGS["adam"]
    ours = bench.BackpropTrainer(get_backend("cpu"), size, activation, "ce", adam, "float64", X, labels, 0)
    kinds = [kind for kind, _, _ in ours.layer_copies()]
    assert activation in kinds and ("maxpool2d" in kinds) == (name == "lenet")
    theirs = TorchTrainer("cpu", ours.layer_copies(), "ce", adam, "float64", X, labels)
    first = ours.outputs(0, 8)
    assert first.shape == (8, size.n_outputs)
    assert abs(theirs.outputs(0, 8) - first).max() <= 1e-12 * abs(first).max()
    spans = bench.batch_spans(size, 3, 3)
    for span in spans:
        assert ours.run([span]) == pytest.approx(theirs.run([span]), rel=1e-12)
    assert abs(theirs.outputs(0, 8) - ours.outputs(0, 8)).max() <= 1e-10 * abs(first).max()


def test_conv_rows_are_measured_beside_torch_and_agree(tmp_path, capsys):
    """The issue's command: rows for both sizes on each device (the strict device standing in for a
    GPU), torch beside ours where installed, the hand-written MLP step declined in one note."""
    compare = "torch,numpy-reference" if HAS_TORCH else "numpy-reference"
    options = [*CONV, "--devices", "cpu,strict", "--compare", compare, "--optimizer", "adam"]
    if importlib.util.find_spec("matplotlib"):
        options += ["--plot", str(tmp_path / "conv.png")]
    report = run_json(capsys, *options)
    rows = report["results"]
    assert all(set(row) == ROW_KEYS for row in rows)
    cpu = ["backprop"] + (["torch"] if HAS_TORCH else [])
    assert [(r["size"], r["device"], r["impl"]) for r in rows] == [
        (size, device, impl) for size in ("cnn1d", "lenet")
        for device, impl in [*(("cpu", i) for i in cpu), ("strict:device1", "backprop")]]
    assert {r["layers"] for r in rows} == {bench.SIZES["cnn1d"].label, bench.SIZES["lenet"].label}
    assert all(r["flops_per_step"] == bench.SIZES[r["size"]].flops() for r in rows)
    assert report["ok"] and len(report["agreement"]) == len(rows) - 2
    exact = [a for a in report["agreement"] if "torch" not in a["b"]]  # NumPy and strict: the same sums
    assert len(exact) == 2 and all(a["abs_diff"] <= 1e-6 * a["loss_a"] for a in exact)
    declined = [n for n in report["notes"] if "numpy-reference" in n]
    assert declined == ["--compare numpy-reference does not apply to cnn1d, lenet: the hand-written step "
                        "trains MLPs only"]
    if "plot" in report:
        assert (tmp_path / "conv.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_torch_network_unlike_ours_stops_the_bench_before_timing(capsys, monkeypatch):
    pytest.importorskip("torch")
    from backprop.contenders import torch_reference

    original = torch_reference._module

    def slipped(torch, kind, config, params, dtype):  # a kernel flipped, as a transposition slip would
        if kind == "conv1d":
            params = {**params, "W": params["W"][..., ::-1]}
        return original(torch, kind, config, params, dtype)

    monkeypatch.setattr(torch_reference, "_module", slipped)
    monkeypatch.setattr(bench, "_time_blocks", lambda *a: pytest.fail("timed a network unlike ours"))
    with pytest.raises(RuntimeError, match="torch builds another cnn1d network than ours"):
        main(["bench", "--sizes", "cnn1d", "--steps", "2", "--repeats", "1", "--devices", "cpu",
              "--compare", "torch"])


def test_the_report_of_a_conv_measurement_line_for_line():
    from backprop.cli.bench import render

    settings = bench.Settings(sizes=[bench.SIZES["cnn1d"], bench.SIZES["lenet"]], devices=["cpu"],
                              compare=["torch", "numpy-reference"], optimizer="adam")
    cpu = get_backend("cpu")
    rows = [bench._row(settings, settings.sizes[i], cpu, 1e11, impl, spent, memory, loss)
            for i, impl, spent, memory, loss in [
                (0, "backprop", [2e-3, 1e-3, 3e-3], 2**20, 1.5),
                (0, "torch", [4e-3, 5e-3, 3e-3], None, 1.5),
                (1, "backprop", [0.03, 0.02, 0.04], 40 * 2**20, 2.25),
                (1, "torch", [0.01, 0.01, 0.02], None, 2.5)]]
    for row in rows:
        ours = next(r for r in rows if r["size"] == row["size"])["step_s"]
        row["backprop_speedup"] = row["step_s"] / ours
    report = {"settings": {"dtype": "float32", "optimizer": bench.OPTIMIZER_SETTINGS["adam"],
                           "activation": "relu", "seed": 0},
              "machine": {"cpu": "a CPU", "cores": 2, "blas": "openblas", "blas_threads": 2,
                          "torch_threads": 2},
              "devices": [{"device": "cpu", "device_name": "host", "ceiling_tflops": 0.1,
                           "ceiling_gemm": "1024x1024x1024", "precision": "float32"}],
              "results": rows, "speedups": [], "agreement": bench._agreement(rows),
              "notes": bench._not_applicable(settings)}
    # cnn1d: 13.5 MFLOP a step (counted above) in 2 ms is 0.00675 TFLOP/s, 6.8% of the 0.1 ceiling;
    # lenet: 289.8 MFLOP in 30 ms, 0.00966. The layers column: the input and each weighted layer's output.
    assert render(report).splitlines() == [
        "backprop bench: float32, adam (lr 0.001, beta1 0.9, beta2 0.999, eps 1e-08), relu, seed 0",
        "CPU: a CPU, 2 cores (openblas with 2 threads; torch 2 threads)",
        "cpu: host; matrix-multiply ceiling 0.1 TFLOP/s (1024x1024x1024 float32)",
        "",
        "size   layers                              batch  device  impl      precision      step  samples/s"
        "  TFLOP/s  of peak   memory  ours x",
        "cnn1d  1x40-25x18-25x8-25x3-5              100    cpu     backprop  float32     2.00 ms     50,000"
        "  0.00675     6.8%   1.0 MB",
        "                                                          torch     float32     4.00 ms     25,000"
        "  0.00337     3.4%        -    2.00",
        "lenet  1x28x28-6x28x28-16x10x10-120-84-10  128    cpu     backprop  float32    30.00 ms      4,267"
        "  0.00966     9.7%  40.0 MB",
        "                                                          torch     float32    10.00 ms     12,800"
        "    0.029    29.0%        -    0.33",
        "",
        "step: median over the timed blocks, the device synchronised before the clock is read. of peak:",
        "TFLOP/s over the device's matrix-multiply ceiling. ours x: how many times faster our fit loop runs",
        "than that row (below 1: slower), timed block by block in turn.",
        "loss after the timed steps, cnn1d: backprop@cpu 1.5, torch@cpu 1.5 (difference 0, relative 0): ok",
        "loss after the timed steps, lenet: backprop@cpu 2.25, torch@cpu 2.5 (difference 0.25, relative "
        "0.11): DIFFERS (allowed 0.0001 + 0.01 x loss)",
        "note: --compare numpy-reference does not apply to cnn1d, lenet: the hand-written step trains MLPs "
        "only",
    ]
