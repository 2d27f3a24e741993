"""The one-shot GPU check (benchmarks/gpu/check.sh) cannot rot: its dry run passes here.

The dry run stands array-api-strict's second device in for the GPU, so a change that
breaks the check (a renamed API, a moved module, a phase that no longer runs) fails CI
long before a GPU is lent.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("array_api_strict")
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="the check is a bash script using coreutils' timeout")

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("backprop info", "checks", "pytest", "mpi", "bench", "bench table", "sklearn", "cli")


def dry_run(out: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK_")}
    environ.update(OUT=str(out), PYTHON=sys.executable, **env)
    return subprocess.run(["bash", "benchmarks/gpu/check.sh", "--dry-run", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=300)


def summary_lines(out: Path) -> list[str]:
    files = sorted(out.iterdir(), key=lambda f: f.stat().st_mtime_ns)
    assert len(files) <= 8, [f.name for f in files]  # what comes back from a lent machine
    assert files[-1].name == "99_summary.txt", "the summary is written last"
    return files[-1].read_text().splitlines()


def test_the_dry_run_passes_with_every_phase_in_at_most_eight_files(tmp_path):
    done = dry_run(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    lines = summary_lines(tmp_path)
    for name in PHASES:
        if name == "mpi" and shutil.which("mpiexec") is None:
            assert "SKIP comm: no mpiexec (install the mpich wheel, README)" in lines
            continue
        assert any(line.startswith(f"PASS {name} (") for line in lines), (name, lines)
    # what needs CUDA says so instead of passing silently
    assert "SKIP tf32: TF32 needs CuPy on a GPU (device strict)" in lines
    assert "SKIP nccl: needs CuPy on a GPU" in lines
    assert not [line for line in lines if line.startswith("FAIL")]
    assert any(line.startswith("TALLY checks: ") and " 0 failed" in line for line in lines)
    assert any(line.startswith("TALLY cli: ") and " 0 failed" in line for line in lines)
    assert lines[-1].endswith("; 0 FAIL lines") and lines[-1].startswith("RESULT: ")


def test_a_failing_check_reaches_the_summary_and_the_exit_status(tmp_path):
    done = dry_run(tmp_path, "--phases", "checks", GPU_CHECK_INJECT_FAIL="1", GPU_CHECK_ONLY="cast")
    assert done.returncode != 0
    lines = summary_lines(tmp_path)
    assert "FAIL injected failure (GPU_CHECK_INJECT_FAIL, test only)" in lines
    assert any(line.startswith("FAIL checks: exit 1") for line in lines)
    # The one skipped phase: the wheels, which a dry run takes from this environment instead.
    assert "SKIP wheels: dry run: this environment's packages are used" in lines
    assert lines[-1] == "RESULT: 0 phases passed, 1 failed, 1 skipped; 2 FAIL lines"
