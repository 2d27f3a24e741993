"""The command line as a user meets it: every command, the data formats, checkpoints, plots,
and one-line errors for bad input. Most tests call ``backprop.cli.main`` in-process; a few
run the installed entry point in a subprocess (Ctrl-C, the console script)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from backends import available_backends
from backprop import checkpoint
from backprop.cli import main
from conftest import resume_matches_a_straight_run, run_cli

USABLE = {row["spec"] for row in available_backends() if row["usable"]}


run = run_cli  # (exit status, stdout, stderr) of ``backprop ARGV``


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def write(path, text: str):
    path.write_text(text)
    return path


@pytest.fixture
def iris_like(tmp_path):
    """A CSV with a header, three numeric features and string class names, separable."""
    rng = np.random.default_rng(0)
    rows = ["length,width,height,species"]
    for name, centre in (("setosa", 0.0), ("versicolor", 3.0), ("virginica", 6.0)):
        for _ in range(40):
            x = centre + rng.normal(0, 0.5, 3)
            rows.append(f"{x[0]:.3f},{x[1]:.3f},{x[2]:.3f},{name}")
    order = [rows[0]] + [rows[1:][i] for i in rng.permutation(len(rows) - 1)]
    return write(tmp_path / "flowers.csv", "\n".join(order) + "\n")


# -- train: output -------------------------------------------------------------
def test_default_run_is_digits_with_test_accuracy(capsys):
    code, out, err = run(["train", "--json"], capsys)
    assert code == 0, err
    lines = json_lines(out)
    epochs, summary = lines[:-1], lines[-1]
    assert [r["epoch"] for r in epochs] == list(range(1, len(epochs) + 1)) and len(epochs) >= 10
    for record in epochs:
        assert record["type"] == "epoch"
        assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds", "samples_per_s",
                "device", "backend"} <= set(record)
    assert summary["type"] == "summary" and summary["status"] in ("completed", "early_stopping")
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
                "seconds", "samples_per_s", "device", "backend"):
        assert key in summary, key
    assert summary["device"] == "cpu" and summary["backend"] == "numpy"
    assert summary["test_accuracy"] > 0.95


@pytest.mark.parametrize("name", ["xor", "moons", "circles", "spirals", "blobs", "sine"])
def test_every_builtin_trains(name, capsys):
    code, out, err = run(["train", name, "--epochs", "3", "--json"], capsys)
    assert code == 0, err
    summary = json_lines(out)[-1]
    assert summary["epochs"] == 3
    if name == "sine":
        assert {"test_mse", "test_mae", "test_r2", "test_loss"} <= set(summary)
    else:
        assert 0.0 <= summary["train_accuracy"] <= 1.0


def test_xor_and_moons_are_learned(capsys):
    code, out, _ = run(["train", "xor", "--json"], capsys)
    assert code == 0 and json_lines(out)[-1]["train_accuracy"] == 1.0
    code, out, _ = run(["train", "moons", "--epochs", "60", "--json"], capsys)
    assert code == 0 and json_lines(out)[-1]["test_accuracy"] > 0.93
    code, out, _ = run(["train", "sine", "--epochs", "200", "--json"], capsys)
    assert code == 0 and json_lines(out)[-1]["test_r2"] > 0.9


def test_human_output_has_banner_and_summary(capsys):
    code, out, err = run(["train", "blobs", "--epochs", "2", "--hidden", "8,8", "--optimizer", "momentum",
                          "--lr", "0.05"], capsys)
    assert code == 0, err
    banner = out.splitlines()[0]
    for part in ("numpy on cpu", "float32", "blobs", "2-8-8-4", "parameters", "momentum lr 0.05"):
        assert part in banner, (part, banner)
    assert "test" in out and "accuracy" in out and "done at epoch 2" in out


def test_quiet_prints_nothing(capsys):
    code, out, err = run(["train", "xor", "--epochs", "2", "--quiet"], capsys)
    assert code == 0 and out == "" and err == ""


# -- data files ------------------------------------------------------------------
def test_csv_with_class_names_train_save_predict_evaluate(iris_like, tmp_path, capsys):
    model = tmp_path / "flowers.safetensors"
    code, out, err = run(["train", iris_like, "--save", model, "--json"], capsys)
    assert code == 0, err
    assert json_lines(out)[-1]["val_accuracy"] > 0.9
    # Prediction input: the training file itself (target column dropped by name).
    code, out, err = run(["predict", model, iris_like, "--proba"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "prediction,p_setosa,p_versicolor,p_virginica"
    truth = [line.rsplit(",", 1)[1] for line in iris_like.read_text().splitlines()[1:]]
    predicted = [line.split(",")[0] for line in lines[1:]]
    assert np.mean(np.array(predicted) == np.array(truth)) > 0.95
    probabilities = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # Columns reordered, target absent: selected by header name.
    reordered = tmp_path / "inputs.csv"
    rows = [line.split(",") for line in iris_like.read_text().splitlines()]
    reordered.write_text("\n".join(",".join([r[2], r[0], r[1]]) for r in rows) + "\n")
    out_file = tmp_path / "pred.csv"
    code, _, err = run(["predict", model, reordered, "--out", out_file], capsys)
    assert code == 0, err
    assert out_file.read_text().splitlines()[1:] == predicted
    code, out, err = run(["evaluate", model, iris_like, "--json"], capsys)
    assert code == 0, err
    scores = json_lines(out)[0]
    assert scores["split"] == "all" and scores["samples"] == 120 and scores["accuracy"] > 0.95


def test_csv_without_header_target_index_and_regression(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = 3.0 * X[:, 0] - 2.0 * X[:, 2] + 100.0  # real target first: --target 0
    path = tmp_path / "reg.csv"
    np.savetxt(path, np.column_stack([y, X]), delimiter=",", fmt="%.6f")
    code, out, err = run(["train", path, "--target", "0", "--epochs", "40", "--json",
                          "--save", tmp_path / "reg.safetensors"], capsys)
    assert code == 0, err
    summary = json_lines(out)[-1]
    assert summary["val_r2"] > 0.95 and summary["val_mae"] < 1.0  # MAE in the target's units
    code, out, err = run(["predict", tmp_path / "reg.safetensors", path], capsys)
    assert code == 0, err
    predicted = np.array([float(v) for v in out.splitlines()[1:]])
    assert np.abs(predicted - y).mean() < 1.0  # back in the target's units (around 100)


def test_npz_with_test_split_reports_test_metrics(tmp_path, capsys):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(1200, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", X=X[:1000], y=y[:1000], X_test=X[1000:], y_test=y[1000:])
    code, out, err = run(["train", tmp_path / "d.npz", "--json"], capsys)
    assert code == 0, err
    summary = json_lines(out)[-1]
    assert summary["test_accuracy"] > 0.9 and "val_accuracy" in summary


@pytest.mark.parametrize("loss", ["bce", "mse", "sse"])
def test_other_losses_on_classes(loss, capsys):
    code, out, err = run(["train", "moons", "--loss", loss, "--epochs", "30", "--json"], capsys)
    assert code == 0, err
    assert json_lines(out)[-1]["test_accuracy"] > 0.85


# -- checkpoints -----------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "nesterov", "rmsprop"])
def test_resume_is_bit_identical_float64(optimizer, tmp_path, capsys):
    common = ["train", "moons", "--dtype", "float64", "--optimizer", optimizer, "--quiet"]
    resume_matches_a_straight_run(common, 10, tmp_path, capsys)  # weights, optimizer state: every bit
    assert checkpoint.read_header(tmp_path / "half.st")["epoch"] == 10


def test_resume_with_early_stopping_continues_its_count(tmp_path, capsys):
    common = ["train", "spirals", "--dtype", "float64", "--early-stopping", "1000", "--quiet"]
    assert run([*common, "--epochs", "12", "--save", tmp_path / "straight.st"], capsys)[0] == 0
    assert run([*common, "--epochs", "6", "--save", tmp_path / "half.st"], capsys)[0] == 0
    assert run(["train", "--resume", tmp_path / "half.st", "--epochs", "12", "--quiet"], capsys)[0] == 0
    a, b = load_file(tmp_path / "straight.st"), load_file(tmp_path / "half.st")
    assert sorted(a) == sorted(b)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_refuses_architecture_changes_and_spent_epochs(tmp_path, capsys):
    path = tmp_path / "m.st"
    assert run(["train", "xor", "--epochs", "5", "--save", path, "--quiet"], capsys)[0] == 0
    before = path.read_bytes()
    code, _, err = run(["train", "--resume", path, "--hidden", "9"], capsys)
    assert code == 2 and "--hidden cannot change when resuming" in err
    code, _, err = run(["train", "--resume", path, "--epochs", "5"], capsys)
    assert code == 2 and "already trained 5 epochs" in err
    assert path.read_bytes() == before


def test_save_is_atomic(tmp_path, capsys, monkeypatch):
    path = tmp_path / "m.st"
    assert run(["train", "xor", "--epochs", "5", "--save", path, "--quiet"], capsys)[0] == 0
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", crash)  # the crash comes after part of the data is written
    code, _, err = run(["train", "--resume", path, "--epochs", "9", "--quiet"], capsys)
    assert code == 2 and "No space left on device" in err
    assert path.read_bytes() == before  # the previous checkpoint, whole
    assert os.listdir(tmp_path) == ["m.st"]  # no temporary file left behind
    assert checkpoint.load(str(path)).model.epoch == 5


@pytest.mark.parametrize("spec", ["strict", "torch", "cuda"])
def test_model_trained_on_another_device_predicts_on_cpu(spec, tmp_path, capsys):
    if spec not in USABLE:
        pytest.skip(f"{spec} is not usable here")
    path = tmp_path / "m.st"
    code, _, err = run(["train", "moons", "--epochs", "5", "--device", spec, "--save", path, "--quiet"],
                       capsys)
    assert code == 0, err
    inputs = tmp_path / "in.csv"
    np.savetxt(inputs, np.random.default_rng(3).normal(size=(50, 2)), delimiter=",")
    code, on_cpu, err = run(["predict", path, inputs, "--proba"], capsys)  # no device flag: the CPU
    assert code == 0, err
    code, on_device, err = run(["predict", path, inputs, "--proba", "--device", spec], capsys)
    assert code == 0, err
    a = np.array([[float(v) for v in line.split(",")] for line in on_cpu.splitlines()[1:]])
    b = np.array([[float(v) for v in line.split(",")] for line in on_device.splitlines()[1:]])
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert checkpoint.read_header(str(path))["trained_on"] != "cpu"


def test_python_api_save_and_load(tmp_path):
    import backprop as bp

    X = np.random.default_rng(0).normal(size=(64, 3))
    y = (X[:, 0] > 0).astype(int)
    model = bp.mlp([3, 5, 2], dtype="float64", device="strict")
    model.fit(X, y, epochs=3, batch_size=16)
    checkpoint.save(model, str(tmp_path / "api.st"))
    back = checkpoint.load(str(tmp_path / "api.st"))
    assert back.model.backend.name == "numpy" and back.model.epoch == 3
    np.testing.assert_array_equal(back.model.predict_proba(X), model.predict_proba(X))
    assert back.model.optimizer.t == model.optimizer.t


# -- plots -----------------------------------------------------------------------
def test_plots_are_written(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    folder = tmp_path / "plots"
    code, _, err = run(["train", "moons", "--epochs", "3", "--plot", folder, "--quiet"], capsys)
    assert code == 0, err
    for name in ("curves.png", "decision_boundary.png"):
        data = (folder / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    code, _, err = run(["train", "sine", "--epochs", "3", "--plot", folder, "--quiet"], capsys)
    assert code == 0 and (folder / "fit.png").stat().st_size > 10_000


def test_plot_without_matplotlib_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    code, _, err = run(["train", "xor", "--plot", tmp_path], capsys)
    # The package index's 'backprop' is another project: the hint names matplotlib itself.
    assert code == 2 and "pip install 'matplotlib>=3.5' (or pip install -e '.[plot]'" in err
    assert "backprop[" not in err


# -- bad input: one line, exit 2, nothing saved damaged ---------------------------------
CSV_PROBLEMS = {
    "text.csv": ("a,b,c\n1,x,0\n2,3,1\n", "holds text ('x')"),
    "missing.csv": ("a,b,c\n1,,0\n2,3,1\n", "missing value"),
    "nan.csv": ("a,b,c\n1,NaN,0\n2,3,1\n", "missing value"),
    "inf.csv": ("a,b,c\n1,inf,0\n2,3,1\n", "infinity"),
    "ragged.csv": ("a,b,c\n1,2,0\n2,3\n", "line 3 has 2 fields"),
    "empty.csv": ("", "is empty"),
    "header_only.csv": ("a,b,c\n", "no data rows"),
    "single_class.csv": ("a,b,c\n1,2,0\n2,3,0\n3,4,0\n", "single class"),
}


@pytest.mark.parametrize("name", sorted(CSV_PROBLEMS))
def test_bad_csv(name, tmp_path, capsys):
    text, expected = CSV_PROBLEMS[name]
    code, out, err = run(["train", write(tmp_path / name, text), "--val-split", "0"], capsys)
    assert code == 2 and expected in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def _pickle_file(tmp_path):
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    return path


def _truncated(tmp_path):
    main(["train", "xor", "--epochs", "2", "--save", str(tmp_path / "good.st"), "--quiet"])
    data = (tmp_path / "good.st").read_bytes()
    (tmp_path / "cut.st").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.st"


def _flipped(tmp_path):
    main(["train", "xor", "--epochs", "2", "--save", str(tmp_path / "good.st"), "--quiet"])
    data = bytearray((tmp_path / "good.st").read_bytes())
    data[-3] ^= 0x01
    (tmp_path / "flip.st").write_bytes(bytes(data))
    return tmp_path / "flip.st"


def _foreign(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3)}, str(tmp_path / "other.safetensors"))
    return tmp_path / "other.safetensors"


@pytest.mark.parametrize("make, expected", [
    (_pickle_file, "not a backprop checkpoint"),
    (_truncated, "truncated or corrupted"),
    (_flipped, "checksum does not match"),
    (_foreign, "safetensors file but not a backprop checkpoint"),
])
def test_bad_checkpoints(make, expected, tmp_path, capsys):
    path = make(tmp_path)
    capsys.readouterr()
    for argv in (["evaluate", path, "xor"], ["predict", path, path], ["train", "--resume", path],
                 ["gradcheck", path]):
        code, _, err = run(argv, capsys)
        assert code == 2 and expected in err, (argv, err)
        assert err.count("\n") == 1


def test_npz_problems(tmp_path, capsys):
    np.savez(tmp_path / "obj.npz", X=np.array([[1], [2]], dtype=object), y=np.array([0, 1]))
    np.savez(tmp_path / "noy.npz", X=np.ones((3, 2)))
    np.savez(tmp_path / "nan.npz", X=np.array([[1.0], [np.nan]]), y=np.array([0, 1]))
    np.savez(tmp_path / "rows.npz", X=np.ones((3, 2)), y=np.array([0, 1]))
    for name, expected in (("obj.npz", "pickled"), ("noy.npz", "needs X and y"),
                           ("nan.npz", "NaN or infinity"), ("rows.npz", "X has 3 rows but y has 2")):
        code, _, err = run(["train", tmp_path / name], capsys)
        assert code == 2 and expected in err, err


@pytest.mark.parametrize("argv, expected", [
    (["train", "imagenet"], "unknown data set 'imagenet'"),
    (["train", "no/such/file.csv"], "no such file"),
    (["train", "digits", "--target", "label"], "target column is for CSV files"),
    (["train", "--device", "tpu"], "unknown device 'tpu'"),
    (["train", "--activation", "swish"], "invalid choice: 'swish'"),
    (["train", "--optimizer", "newton-raphson"], "invalid choice: 'newton-raphson'"),
    (["train", "--loss", "hinge"], "invalid choice: 'hinge'"),
    (["train", "--lr", "0"], "--lr: must be a positive number"),
    (["train", "--lr", "-0.1"], "--lr: must be a positive number"),
    (["train", "--batch-size", "0"], "--batch-size: must be a positive integer"),
    (["train", "--epochs", "-3"], "--epochs: must be a positive integer"),
    (["train", "--epochs", "0"], "--epochs: must be a positive integer"),
    (["train", "--hidden", "10,abc"], "expected widths like 128,64"),
    (["train", "sine", "--loss", "ce"], "needs class labels"),
    (["train", "--momentum", "0.9"], "momentum is for sgd"),
    (["train", "xor", "--early-stopping", "3", "--val-split", "0"], "watches the validation loss"),
    (["train", "xor", "--val-split", "0.1"], "leaves no validation"),
    (["evaluate", "missing.st", "xor"], "no such checkpoint"),
])
def test_bad_options(argv, expected, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and expected in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_shapes_that_do_not_fit_the_model(tmp_path, capsys):
    path = tmp_path / "m.st"
    assert run(["train", "moons", "--epochs", "2", "--save", path, "--quiet"], capsys)[0] == 0
    code, _, err = run(["evaluate", path, "digits"], capsys)
    assert code == 2 and "64 features but the model takes 2" in err
    wide = write(tmp_path / "wide.csv", "1,2,3,4\n5,6,7,8\n")
    code, _, err = run(["predict", path, wide], capsys)
    assert code == 2 and "4 columns but the model takes 2 features" in err


def test_save_never_overwrites_a_foreign_file(tmp_path, capsys):
    data = write(tmp_path / "data.csv", "a,b\n1,0\n2,1\n")
    code, _, err = run(["train", "xor", "--save", data], capsys)
    assert code == 2 and "not a backprop checkpoint: it is left alone" in err
    assert data.read_text() == "a,b\n1,0\n2,1\n"
    code, _, err = run(["train", "xor", "--save", tmp_path / "no" / "dir" / "m.st"], capsys)
    assert code == 2 and "does not exist" in err


@pytest.mark.skipif("cuda" in USABLE, reason="a GPU is usable here")
def test_cuda_without_a_gpu_is_one_line(capsys):
    code, _, err = run(["train", "xor", "--device", "cuda"], capsys)
    assert code == 2 and err.startswith("backprop: error: CuPy") and err.count("\n") == 1


def test_out_of_memory_suggests_a_smaller_batch(capsys, monkeypatch):
    from backprop import model as model_module

    def oom(*args, **kwargs):
        raise MemoryError("Unable to allocate 80.0 GiB")

    monkeypatch.setattr(model_module.Sequential, "fit", oom)
    code, _, err = run(["train", "xor"], capsys)
    assert code == 2 and "out of memory" in err and "--batch-size" in err


def test_divergence_names_the_epoch_and_keeps_a_good_checkpoint(tmp_path, capsys):
    path = tmp_path / "m.st"
    code, out, err = run(["train", "sine", "--optimizer", "sgd", "--lr", "10", "--save", path], capsys)
    assert code == 1
    assert "became nan in epoch 1" in err and "lower the learning rate" in err
    loaded = checkpoint.load(str(path))
    assert loaded.model.epoch == 0
    assert all(np.isfinite(np.asarray(p)).all() for p in loaded.model.parameters().values())


# -- other commands ----------------------------------------------------------------
def test_gradcheck_command(capsys):
    code, out, err = run(["gradcheck", "--activation", "softplus", "--loss", "ce"], capsys)
    assert code == 0, err
    assert "ok (tolerance" in out and "0.W" in out
    code, out, _ = run(["gradcheck", "--loss", "bce", "--outputs", "2", "--json"], capsys)
    result = json_lines(out)[0]
    assert result["ok"] and result["worst"] < 1e-6 and "X" in result["errors"]


def test_gradcheck_of_a_saved_model(tmp_path, capsys):
    path = tmp_path / "m.st"
    assert run(["train", "blobs", "--epochs", "2", "--save", path, "--quiet"], capsys)[0] == 0
    code, out, err = run(["gradcheck", path], capsys)
    assert code == 0 and "ok" in out, err


def test_info_json(capsys):
    code, out, _ = run(["info", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and {"numpy", "cupy"} <= {row["name"] for row in info["backends"]}


# -- the real entry point ------------------------------------------------------------
def test_console_script_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "backprop", "train", "xor", "--epochs", "3", "--json"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["type"] == "summary"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_saves_and_exits_130(tmp_path):
    path = tmp_path / "m.st"
    proc = subprocess.Popen([sys.executable, "-m", "backprop", "train", "spirals", "--epochs", "1000000",
                             "--val-split", "0", "--json", "--save", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    assert proc.stdout.readline().startswith('{"type": "epoch"')  # training has started
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["status"] == "interrupted" and "Traceback" not in err
    saved = checkpoint.load(str(path))
    assert saved.model.epoch == summary["epochs"] > 0


def test_predict_from_npz_and_torch_backend_flag(tmp_path, capsys):
    path = tmp_path / "m.st"
    assert run(["train", "blobs", "--epochs", "5", "--save", path, "--quiet"], capsys)[0] == 0
    X = np.random.default_rng(4).normal(size=(7, 2))
    np.savez(tmp_path / "in.npz", X=X)
    code, out, err = run(["predict", path, tmp_path / "in.npz"], capsys)
    assert code == 0, err
    assert len(out.splitlines()) == 8 and set(out.splitlines()[1:]) <= {"0", "1", "2", "3"}
    if "torch" in USABLE:
        code, torch_out, err = run(["predict", path, tmp_path / "in.npz", "--backend", "torch"], capsys)
        assert code == 0 and torch_out == out, err
    code, _, err = run(["predict", path, tmp_path / "in.npz", "--backend", "cupy"], capsys)
    assert code == 2 and "--backend cupy needs a GPU" in err
