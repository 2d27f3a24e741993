"""Steps that long host-side functions were split into, each held to what it does: the
readers' refusals and decodings, the pictures' panels, the bench's rows and report, the
prediction table, and a backend's ``asarray``."""

from __future__ import annotations

import numpy as np
import pytest

from backprop import datafiles
from backprop.errors import DataError


# -- data files ------------------------------------------------------------------------
def test_a_target_only_pythons_float_reads_is_numbers_from_either_reader(tmp_path, monkeypatch):
    # NumPy's C reader refuses "1_0"; the class-name retry then finds every name a number.
    path = tmp_path / "underscores.csv"
    path.write_text("a,b,label\n1,2,1_0\n3,4,2\n5,6,1_0\n")
    quick = datafiles.read_csv(str(path))
    monkeypatch.setattr(datafiles, "_read_numbers", lambda *a: None)
    exact = datafiles.read_csv(str(path))
    for ds in (quick, exact):
        assert ds.y.dtype == np.float64
        np.testing.assert_array_equal(ds.y, [10.0, 2.0, 10.0])


@pytest.mark.parametrize("arrays, expected", [
    (dict(X=np.ones((3, 2)), y=np.zeros(3), X_val=np.ones((2, 3)), y_val=np.zeros(2)),
     "X_val has 3 columns but X has 2"),
    (dict(X=np.ones((3, 2)), y=np.zeros(3), X_test=np.ones((2, 2)), y_test=np.zeros(4)),
     "X_test has 2 rows but y_test has 4: they must match"),
    (dict(X=np.ones((3, 2)), y=np.zeros(3), X_val=np.ones((2, 2))),
     "has only one of X_val and y_val: give both or neither"),
])
def test_an_npz_part_that_does_not_fit_x_is_refused(tmp_path, arrays, expected):
    path = tmp_path / "parts.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=expected):
        datafiles.read_npz(str(path))


def test_an_npz_with_all_its_parts_reads_each(tmp_path):
    path = tmp_path / "parts.npz"
    rng = np.random.default_rng(0)
    parts = {k: rng.normal(size=(n, 2)) for k, n in (("X", 5), ("X_val", 3), ("X_test", 2))}
    parts |= {f"y{k[1:]}": np.arange(len(v)) for k, v in parts.items()}
    np.savez(path, **parts)
    ds = datafiles.read_npz(str(path))
    for got, key in ((ds.X, "X"), (ds.y, "y"), (ds.X_val, "X_val"), (ds.y_val, "y_val"),
                     (ds.X_test, "X_test"), (ds.y_test, "y_test")):
        np.testing.assert_array_equal(got, parts[key])
    only_inputs = datafiles.read_npz(str(path), inputs_only=True)
    np.testing.assert_array_equal(only_inputs.y, parts["y"])


# -- pictures --------------------------------------------------------------------------
@pytest.fixture
def figures(monkeypatch):
    """Each figure as it is about to be written (the file itself is not needed here)."""
    pytest.importorskip("matplotlib")
    from backprop.edges import plots

    seen = []
    monkeypatch.setattr(plots, "_write", lambda plt, fig, path: seen.append(fig) or path)
    return plots, seen


def _lines(ax) -> list[tuple[str, str, list]]:
    """(label, line style, y values with NaN as None) of each line an axis holds."""
    return [(ln.get_label(), ln.get_linestyle(), [None if v != v else float(v) for v in ln.get_ydata()])
            for ln in ax.get_lines()]


def test_the_curves_draw_each_part_recorded_and_scale_a_positive_loss(figures):
    plots, seen = figures
    plots.curves([{"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.6, "val_loss": 0.7},
                  {"epoch": 2, "train_loss": 0.25, "train_accuracy": 0.8}], "c.png")
    plots.curves([{"epoch": 1, "train_loss": 0.0}], "c.png")
    loss, accuracy = seen[0].axes
    assert _lines(loss) == [("training", "-", [0.5, 0.25]), ("validation", "--", [0.7, None])]
    assert _lines(accuracy) == [("training", "-", [0.6, 0.8])]
    assert [ax.get_ylabel() for ax in seen[0].axes] == ["loss", "accuracy"]
    scales = (loss.get_yscale(), accuracy.get_yscale(), seen[1].axes[0].get_yscale())
    assert scales == ("log", "linear", "linear")
    assert seen[0]._suptitle.get_text() == "loss and accuracy per epoch"


def _bench_row(size: str, flops: float, device: str, impl: str, step: float, speedup: float) -> dict:
    return {"size": size, "flops_per_step": flops, "device": device, "impl": impl, "step_s": step,
            "backprop_speedup": speedup}


BENCH_REPORT = {
    "settings": {"dtype": "float32", "optimizer": {"name": "momentum"}, "activation": "relu"},
    "machine": {"cpu": "a CPU", "cores": 4},
    "devices": [{"device": "cpu", "device_name": "host"}, {"device": "cuda:0", "device_name": "a GPU"}],
    "results": [_bench_row("small", 2e9, "cpu", "backprop", 4e-3, 1.0),
                _bench_row("small", 2e9, "cpu", "torch", 6e-3, 1.5),
                _bench_row("small", 2e9, "cuda:0", "backprop", 1e-3, 1.0),
                _bench_row("xor", 1e2, "cpu", "backprop", 1e-5, 1.0),
                _bench_row("xor", 1e2, "cpu", "torch", 3e-5, 3.0),
                _bench_row("xor", 1e2, "cuda:0", "backprop", 2e-5, 1.0)],
    "speedups": [{"size": "small", "device": "cuda:0", "over": "cpu", "speedup": 4.0},
                 {"size": "xor", "device": "cuda:0", "over": "cpu", "speedup": 0.5}],
}


def test_the_bench_figure_draws_each_series_sorted_by_size(figures):
    plots, seen = figures
    plots.bench_figure(BENCH_REPORT, "b.png")
    left, right = seen[0].axes
    assert _lines(left) == [("backprop on cpu", "-", [1e-5, 4e-3]), ("torch on cpu", "--", [3e-5, 6e-3]),
                            ("backprop on cuda:0", "-", [2e-5, 1e-3])]
    assert [ln.get_color() for ln in left.get_lines()] == ["C0", "C1", "C2"]
    assert [t.get_text() for t in left.texts] == ["xor", "small"]  # along the first line only
    assert _lines(right)[:2] == [("ours on cuda:0 vs ours on cpu", "-", [0.5, 4.0]),
                                 ("ours vs torch on cpu", ":", [3.0, 1.5])]
    assert right.get_title() == "speedup (devices against cpu; ours against the others)"
    assert right.get_legend() is not None and (left.get_yscale(), right.get_yscale()) == ("log", "log")
    assert seen[0]._suptitle.get_text() == "backprop bench: float32, momentum, relu; a CPU (4 cores); a GPU"


def test_a_bench_figure_without_speedups_has_no_legend_on_the_right(figures):
    plots, seen = figures
    plots.bench_figure({**BENCH_REPORT, "results": BENCH_REPORT["results"][:1], "speedups": [],
                        "devices": BENCH_REPORT["devices"][:1]}, "b.png")
    left, right = seen[0].axes
    assert right.get_legend() is None and left.get_legend() is not None
    assert seen[0]._suptitle.get_text() == "backprop bench: float32, momentum, relu; a CPU (4 cores)"


# -- backprop bench: the text report ---------------------------------------------------
def _row(size: str, layers: str, batch: int, device: str, impl: str, step: float, speedup: float,
         memory: int | None) -> dict:
    return {"size": size, "layers": layers, "batch": batch, "device": device, "impl": impl,
            "precision": "float32", "step_s": step, "samples_per_s": batch / step,
            "tflops": 2e9 / step / 1e12, "ceiling_fraction": 0.125, "peak_memory_bytes": memory,
            "backprop_speedup": speedup}


RENDER_REPORT = {
    "settings": {"dtype": "float32", "optimizer": {"name": "momentum", "lr": 0.01, "momentum": 0.9},
                 "activation": "relu", "seed": 3},
    "machine": {"cpu": "a CPU", "cores": 4, "blas": "openblas", "blas_threads": 4, "torch_threads": 2},
    "devices": [{"device": "cpu", "device_name": "host", "ceiling_tflops": 0.5,
                 "ceiling_gemm": "1024x1024x1024", "precision": "float32"}],
    "results": [_row("small", "784-512-512-10", 128, "cpu", "backprop", 4e-3, 1.0, 3 * 2**20),
                _row("small", "784-512-512-10", 128, "cpu", "torch", 6e-3, 1.5, None),
                _row("small", "784-512-512-10", 128, "cuda:0", "backprop", 2.5, 1.0, 1500)],
    "speedups": [{"size": "small", "device": "cuda:0", "over": "cpu", "speedup": 0.0016}],
    "agreement": [{"size": "small", "a": "backprop@cpu", "b": b, "loss_a": 0.5, "loss_b": 0.5 + d,
                   "abs_diff": d, "rel_diff": 2 * d, "atol": 1e-4, "rtol": 1e-2, "ok": ok}
                  for b, d, ok in (("torch@cpu", 1e-6, True), ("backprop@cuda:0", 0.25, False),
                                   ("x@cpu", float("nan"), None))],
    "notes": ["cuda not measured: none here"],
}

LOSS_AFTER = "loss after the timed steps, small: backprop@cpu 0.5, "
RENDERED = [
    "backprop bench: float32, momentum (lr 0.01, momentum 0.9), relu, seed 3",
    "CPU: a CPU, 4 cores (openblas with 4 threads; torch 2 threads)",
    "cpu: host; matrix-multiply ceiling 0.5 TFLOP/s (1024x1024x1024 float32)",
    "",
    "size   layers          batch  device  impl      precision     step  samples/s  TFLOP/s  of peak"
    "  memory  ours x",
    "small  784-512-512-10  128    cpu     backprop  float32    4.00 ms     32,000      0.5    12.5%"
    "  3.0 MB",
    "                                      torch     float32    6.00 ms     21,333    0.333    12.5%"
    "       -    1.50",
    "                              cuda:0  backprop  float32     2.50 s         51   0.0008    12.5%"
    "  1.5 KB",
    "",
    "step: median over the timed blocks, the device synchronised before the clock is read. of peak:",
    "TFLOP/s over the device's matrix-multiply ceiling. ours x: how many times faster our fit loop runs",
    "than that row (below 1: slower), timed block by block in turn.",
    "speedup small: cuda:0 is 0.00x cpu",
    LOSS_AFTER + "torch@cpu 0.500001 (difference 1e-06, relative 2e-06): ok",
    LOSS_AFTER + "backprop@cuda:0 0.75 (difference 0.25, relative 0.5): DIFFERS (allowed 0.0001 + 0.01 x "
    "loss)",
    LOSS_AFTER + "x@cpu nan (difference nan, relative nan): not compared: a run diverged (lower the learning "
    "rate)",
    "note: cuda not measured: none here",
]


def test_the_bench_report_groups_its_rows_and_aligns_its_numbers():
    from backprop.cli.bench import render

    assert render(RENDER_REPORT).splitlines() == RENDERED


# -- backprop bench: measuring ---------------------------------------------------------
def test_timed_blocks_take_turns_and_count_seconds_per_step(monkeypatch):
    from backprop.apps import bench

    clock, calls = [0.0], []

    class Trainer:  # each step costs ``cost`` seconds of a fake clock
        def __init__(self, name: str, cost: float) -> None:
            self.name, self.cost = name, cost

        def run(self, spans):
            calls.append(self.name)
            clock[0] += self.cost * len(spans)
            return len(calls)  # the loss: which call this was

    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])
    times, last = bench._time_blocks([Trainer("a", 0.5), Trainer("b", 2.0), Trainer("c", 1.0)],
                                     [(0, 4)] * 4, 3)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # who goes first rotates
    assert times == [[0.5] * 3, [2.0] * 3, [1.0] * 3]
    assert last == [8, 9, 7]


def test_a_bench_row_is_the_median_step_and_what_follows_from_it():
    from backends import get_backend
    from backprop.apps import bench

    size = bench.Size("custom", (4, 8, 3), 16, warmup=1, steps=4, repeats=3)
    row = bench._row(bench.Settings(sizes=[size], devices=["cpu"]), size, get_backend("cpu"), 1e9, "torch",
                     [3.0, 1.0, 2.0], 1234, 0.25)
    flops = bench.flops_per_step([4, 8, 3], 16)
    assert row == {"size": "custom", "layers": "4-8-3", "batch": 16, "device": "cpu", "impl": "torch",
                   "dtype": "float32", "precision": "float32", "warmup": 1, "steps": 4, "repeats": 3,
                   "step_s": 2.0, "step_s_min": 1.0, "step_s_max": 3.0, "samples_per_s": 8.0,
                   "flops_per_step": flops, "tflops": flops / 2.0 / 1e12,
                   "ceiling_fraction": flops / 2.0 / 1e9, "peak_memory_bytes": 1234, "loss": 0.25}


@pytest.mark.parametrize("settings, message", [
    (dict(sizes=[], devices=["cpu"]), "no sizes to measure: pass --sizes or --layers"),
    (dict(devices=["cpu"], sizes=["xor3"]), "size xor3 trains on XOR: it needs one output"),
    (dict(devices=["cpu", "numpy"]), "--devices names a device twice: cpu,numpy"),
    (dict(devices=["cpu"], dtype="float64", precision="tf32"), "--precision tf32 applies to float32"),
])
def test_bench_settings_that_cannot_be_measured_are_refused_first(settings, message, monkeypatch):
    from backprop.apps import bench
    from backprop.errors import ConfigError

    monkeypatch.setattr(bench, "gemm_ceiling", lambda *a: pytest.fail("measured before refusing"))
    xor3 = bench.Size("xor3", (2, 2, 3), 4, warmup=1, steps=1, repeats=1, data="xor")
    sizes = [xor3 if s == "xor3" else s for s in settings.pop("sizes", [bench.SIZES["xor"]])]
    with pytest.raises(ConfigError, match=message):
        bench.run(bench.Settings(sizes=sizes, **settings))


# -- backprop predict: the table -------------------------------------------------------
def test_predictions_of_several_targets_are_named_and_keep_eight_digits(tmp_path, capsys):
    from backprop.apps import runner
    from conftest import run_cli

    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 3))
    Y = np.column_stack([1000 * X[:, 0] + 12345.678, X[:, 1] - X[:, 2]])
    np.savez(tmp_path / "two.npz", X=X, y=Y)
    np.savez(tmp_path / "in.npz", X=X[:5])
    model = tmp_path / "two.safetensors"
    argv = ["train", tmp_path / "two.npz", "--epochs", "2", "--save", model, "--quiet"]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    code, out, err = run_cli(["predict", model, tmp_path / "in.npz"], capsys)
    assert code == 0, err
    net, transform, _, _ = runner.restore(str(model), "cpu")
    expected = transform.outputs(np.asarray(net.predict(transform.inputs(X[:5]))))
    assert out.splitlines() == ["prediction_0,prediction_1"] + [f"{a:.8g},{b:.8g}" for a, b in expected]
    code, _, err = run_cli(["predict", model, tmp_path / "in.npz", "--proba"], capsys)
    assert code == 2 and "--proba is for classifiers; this model is a regressor" in err


@pytest.mark.parametrize("dtype, itemsize", [("float32", 4), ("float64", 8)])
def test_the_batches_a_bench_holds_are_counted_in_the_dtypes_bytes(dtype, itemsize, monkeypatch):
    from backends import get_backend
    from backprop.apps import bench

    seen = []

    def held(size, nbytes):
        seen.append(nbytes)
        raise StopIteration  # nothing else of the measurement is needed here

    monkeypatch.setattr(bench, "distinct_batches", held)
    size = bench.SIZES["xor"]
    with pytest.raises(StopIteration):
        bench._measure_size(bench.Settings(sizes=[size], devices=["cpu"], dtype=dtype), size,
                            get_backend("cpu"), 1e9, lambda line: None)
    assert seen == [itemsize]


def test_a_bench_report_names_each_device_with_its_ceiling(monkeypatch):
    from backends import get_backend
    from backprop.apps import bench

    widest, measured, said = [], [], []
    monkeypatch.setattr(bench, "gemm_ceiling", lambda b, dtype, w: widest.append((b.label, dtype, w))
                        or {"gemm": "8x8x8", "flops_per_s": 2e12})
    monkeypatch.setattr(bench, "_measure_size", lambda s, size, b, ceiling, p: measured.append(
        (size.name, b.label, ceiling)) or ([], [f"note on {b.label}"]))
    sizes = [bench.SIZES["xor"], bench.custom_size([3, 40, 2], 8)]
    report = bench.run(bench.Settings(sizes=sizes, devices=["cpu", "strict"], seed=7), said.append)
    assert widest == [("cpu", "float32", 40), ("strict:device1", "float32", 40)]
    assert report["devices"] == [{"device": b.label, **b.describe(), "precision": "float32",
                                  "ceiling_gemm": "8x8x8", "ceiling_tflops": 2.0}
                                 for b in (get_backend("cpu"), get_backend("strict"))]
    assert measured == [(s, d, 2e12) for s in ("xor", "custom") for d in ("cpu", "strict:device1")]
    assert said == [f"measuring the matrix-multiply ceiling of {d}" for d in ("cpu", "strict:device1")]
    assert report["settings"] == {"sizes": ["xor", "custom"], "devices": ["cpu", "strict:device1"],
                                  "compare": [], "dtype": "float32", "precision": "default",
                                  "optimizer": bench.OPTIMIZER_SETTINGS["momentum"], "activation": "relu",
                                  "seed": 7}
    assert report["notes"] == ["note on cpu", "note on strict:device1"]
    assert (report["results"], report["speedups"], report["agreement"], report["ok"]) == ([], [], [], True)
