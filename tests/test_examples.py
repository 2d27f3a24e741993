"""The examples run as printed: ``examples/custom_layer.py`` registers a layer and an optimizer
from outside the package, trains, saves, loads, pickles and gradchecks them."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from backprop import checkpoint

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_a_custom_layer_and_optimizer_work_end_to_end(tmp_path):
    script = ROOT / "examples" / "custom_layer.py"
    done = subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("trained: loss ") and "SignMomentum(lr=0.01" in lines[0]
    assert lines[1] == "saved custom.safetensors, loaded and pickled: same weights True"
    assert lines[2].startswith("gradient check: ok")
    header = checkpoint.read_header(str(tmp_path / "custom.safetensors"))
    assert header["layers"][1] == {"type": "scale", "config": {"features": 16}}
    assert header["optimizer"]["name"] == "signmomentum"
