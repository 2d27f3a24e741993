"""benchmarks/under_load.py: the load holds a core, and a run's CPU time is its own."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import time

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "under_load.py"


@pytest.fixture(scope="module")
def under_load():
    spec = importlib.util.spec_from_file_location("under_load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_runs_cpu_time_leaves_out_the_load_beside_it(under_load, tmp_path):
    spin = [sys.executable, "-c", "import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.3: pass"]
    sleep = [sys.executable, "-c", "import time; time.sleep(0.6)"]
    wall, cpu = under_load.timed_run(spin, str(tmp_path))
    assert cpu >= 0.3 and wall >= 0.3
    load = under_load.start_load(1, "python")
    try:
        time.sleep(0.2)
        wall, cpu = under_load.timed_run(sleep, str(tmp_path))  # the busy loop spins all along
    finally:
        under_load.stop_load(load)
    assert wall >= 0.6 and cpu < 0.3
    assert all(p.poll() is not None for p in load)  # stopped and reaped
