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
