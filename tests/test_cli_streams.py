"""What the command line does with its output streams: a reader that goes away, an
encoding that cannot write a label, and one error prefix for every command."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from backprop.cli import main

CLI = [sys.executable, "-m", "backprop"]


def test_a_closed_pipe_ends_quietly_with_the_sigpipe_status():
    # `backprop train xor --json | head -1`: the reader leaves after one line.
    proc = subprocess.Popen([*CLI, "train", "xor", "--json", "--epochs", "20000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert first.startswith(b'{"type": "epoch"')
    assert code == 141 and err == ""  # no BrokenPipeError traceback, no "Exception ignored"


def test_a_label_the_output_encoding_cannot_write_is_one_line(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    rows = "".join(f"{a},{b},{'café' if a > 0 else 'niño'}\n" for a, b in X)
    (tmp_path / "u.csv").write_text("a,b,label\n" + rows, encoding="utf-8")
    (tmp_path / "in.csv").write_text("a,b\n1,2\n-1,0\n")
    assert main(["train", str(tmp_path / "u.csv"), "--epochs", "2", "--quiet",
                 "--save", str(tmp_path / "u.safetensors")]) == 0
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run([*CLI, "predict", str(tmp_path / "u.safetensors"), str(tmp_path / "in.csv"),
                           "--proba"], capture_output=True, env=env, timeout=120)
    err = done.stderr.decode("ascii")  # the message itself passes the narrow encoding
    assert done.returncode == 2 and err.count("\n") == 1, err
    assert err.startswith("backprop: error: the output holds") and "PYTHONIOENCODING=utf-8" in err
    # Text for people is shown all the same, with '?' for what the encoding lacks.
    done = subprocess.run([*CLI, "train", "xor", "--epochs", "2"], capture_output=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith(b"backprop ? numpy on cpu ? float32 ? xor")


def test_option_errors_have_the_same_prefix_as_every_other_error(capsys):
    try:
        main(["train", "--epochs", "x"])
    except SystemExit as stop:
        assert stop.code == 2
    err = capsys.readouterr().err
    assert err.startswith("backprop: error: argument --epochs") and "backprop train --help" in err


def test_out_of_memory_in_a_run_says_what_is_big(capsys, monkeypatch):
    from backprop import model as model_module

    def oom(*args, **kwargs):
        raise MemoryError("Unable to allocate 80.0 GiB")

    monkeypatch.setattr(model_module.Sequential, "fit", oom)
    code = main(["train", "xor", "--hidden", "3"])
    err = capsys.readouterr().err
    # xor: 2-3-2 (softmax over two classes): 2*3+3 + 3*2+2 = 17 parameters; 4 samples.
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("backprop: error: out of memory (MemoryError): the model has 17 parameters")
    assert "its targets and outputs for 4 samples of 2 outputs" in err


def test_output_to_a_full_disk_is_one_line():
    with open("/dev/full", "w") as full:
        done = subprocess.run([*CLI, "info"], stdout=full, stderr=subprocess.PIPE, timeout=120)
    err = done.stderr.decode()
    assert done.returncode == 2 and err == ("backprop: error: cannot write the output (No space left on "
                                            "device): free some space or write elsewhere\n")


def test_predict_out_dash_is_standard_output(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "xor", "--epochs", "2", "--quiet", "--save", "xor.safetensors"]) == 0
    (tmp_path / "four.csv").write_text("x0,x1\n0,0\n0,1\n1,0\n1,1\n")
    capsys.readouterr()
    assert main(["predict", "xor.safetensors", "four.csv", "--out", "-"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "prediction" and len(out.splitlines()) == 5
    assert not (tmp_path / "-").exists()
