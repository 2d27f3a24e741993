"""Data-parallel training: N ranks give one process's weights, failures end the job, rank 0 reports.

The MPI tests launch ``mpiexec -n 2`` and ``-n 3`` (3 ranks oversubscribe a 2-core
machine, which is fine) on ``tests/mpi_cases.py``; each launch checks several cases
and costs about a second. They skip with a reason without mpi4py or mpiexec.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from backends import BackendUnavailable
from backends.comm import Communicator, Solo, connect, mpiexec_path
from backprop import checkpoint, distributed
from backprop.errors import ConfigError
from backprop.losses import CrossEntropy, SquaredError
from backprop.model import mlp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _mpi_missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install -e '.[test]' brings it)"
    return None if mpiexec_path() else "no mpiexec (pip install mpich)"


needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))


def launch(n: int, *args: str, timeout: float = 60, cwd: str | None = None) -> subprocess.CompletedProcess:
    """``mpiexec -n n python -m mpi4py tests/mpi_cases.py args...``; a hang fails at ``timeout``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    script = os.path.join(HERE, "mpi_cases.py")
    command = [mpiexec_path(), "-n", str(n), sys.executable, "-m", "mpi4py", script, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


# -- the pieces, in one process -----------------------------------------------------------
@pytest.mark.parametrize("n, size", [(10, 3), (2, 3), (0, 2), (7, 1), (1024, 2)])
def test_parts_cover_the_rows_once_in_order(n, size):
    parts = [distributed.part(n, r, size) for r in range(size)]
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    sizes = [stop - start for start, stop in parts]
    assert max(sizes) - min(sizes) <= 1


def test_plan_splits_each_global_batch_and_weighs_by_share():
    order = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    batches = [(0, 4), (4, 8), (8, 10)]  # the last batch of 2 leaves rank 2 of 3 nothing
    plans = [distributed.plan(order, 10, batches, r, 3, CrossEntropy()) for r in range(3)]
    assert [p.rows.tolist() for p in plans] == [[9, 8, 5, 4, 1], [7, 3, 0], [6, 2]]
    assert plans[2].spans[-1] == (2, 2)  # empty
    for b in range(3):  # the shares of a batch add up to 1: the weighted sum is the global mean
        assert sum(p.shares[b] for p in plans) == pytest.approx(1.0)
    assert plans[0].shares == [0.5, 0.5, 0.5] and plans[2].shares == [0.25, 0.25, 0.0]
    summed = distributed.plan(order, 10, batches, 0, 3, SquaredError())
    assert summed.shares == [1.0, 1.0, 1.0]  # a summed loss adds up as is


def test_one_rank_through_the_distributed_path_matches_plain_fit():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 4)), rng.integers(0, 3, 50)
    models = []
    for comm in (None, Solo()):
        model = mlp([4, 8, 3], output="softmax", dtype="float64", seed=2)
        model.fit(X, y, optimizer="adam", epochs=4, batch_size=16, validation_split=0.2, comm=comm)
        models.append(model)
    a, b = (np.asarray(m.flat_parameters()) for m in models)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
    assert models[0].history["val_loss"] == pytest.approx(models[1].history["val_loss"], rel=1e-12)


class Halves(Communicator):
    """A fake 2-rank communicator whose all-reduce doubles: a rank whose peer holds the same
    part. It proves each rank's gradient is scaled by its share (b_r / B), not averaged."""

    size = 2

    def allreduce(self, buffer):
        buffer *= 2.0
        return buffer

    def allreduce_host(self, values):
        return 2.0 * np.asarray(values, dtype=np.float64)


def test_the_gradient_is_scaled_by_the_share_of_the_global_batch():
    # Rank 0 of 2 with its peer mirroring it: batch 4 gives 2 rows each, share 1/2, so the
    # summed gradient equals the mean gradient of rank 0's two rows.
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(4, 3)), np.array([0, 1, 1, 0])
    seen = []
    model = mlp([3, 2], output="softmax", dtype="float64", seed=0)
    reference = mlp([3, 2], output="softmax", dtype="float64", seed=0)
    loss_value, grads = reference.loss_and_gradients(X[:2], y[:2], loss="ce")
    model.fit(X, y, loss="ce", optimizer="sgd", lr=1e-9, epochs=1, batch_size=4, shuffle=False,
              comm=Halves(), gradient_hooks=[lambda g, step: seen.append([np.array(a) for a in g])])
    np.testing.assert_allclose(seen[0][0], grads["0.W"], rtol=1e-12)
    assert model.history["train_loss"][0] == pytest.approx(loss_value * 2 * 2 / 4, rel=1e-12)


@pytest.mark.parametrize("comm", [Solo(), Halves()], ids=["solo", "two-ranks"])
def test_the_distributed_loop_reads_from_the_device_once_per_epoch(comm, monkeypatch):
    # What keeps a GPU step asynchronous with NCCL: between the device all-reduces, nothing
    # in the loop reads a device array or uploads one per step (array-api-strict counts).
    from array_api_strict._array_object import Array

    from backends import get_backend

    counts = {"host": 0}
    for name in ("__float__", "__bool__", "__int__", "__index__"):
        original = getattr(Array, name)
        monkeypatch.setattr(Array, name, lambda self, _o=original: counts.__setitem__(
            "host", counts["host"] + 1) or _o(self))
    backend = get_backend("strict")
    from_host, to_host = backend._from_host, distributed.to_numpy_any
    monkeypatch.setattr(backend, "_from_host", lambda h: counts.__setitem__("host", counts["host"] + 1)
                        or from_host(h))
    monkeypatch.setattr(distributed, "to_numpy_any", lambda a: counts.__setitem__("host", counts["host"] + 1)
                        or to_host(a))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(96, 4)), rng.integers(0, 3, 96)
    seen = []
    for batch in (36, 4):  # 2 and 18 global batches per epoch
        model = mlp([4, 8, 3], output="softmax", device=backend, seed=0)
        counts["host"] = 0
        model.fit(X, y, epochs=3, batch_size=batch, validation_split=0.25, comm=comm)
        seen.append(counts["host"])
    assert seen[0] == seen[1], seen


def test_full_batch_optimizers_other_than_lbfgs_refuse_several_ranks():
    model = mlp([2, 3, 1], dtype="float64")
    X, y = np.random.default_rng(0).normal(size=(8, 2)), np.zeros(8)
    for name in ("lm", "newton"):
        with pytest.raises(ConfigError, match="does not train data-parallel"):
            model.fit(X, y, loss="mse", optimizer=name, epochs=1, comm=Halves())


def test_without_mpi4py_distributed_says_what_to_install_and_how_to_launch(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    hint = r"pip install 'mpi4py>=4' mpich \(or pip install -e '\.\[mpi\]'.*mpiexec -n N python -m mpi4py"
    with pytest.raises(BackendUnavailable, match=hint):
        connect()
    with pytest.raises(BackendUnavailable, match="mpiexec"):
        from backprop.runner import Run

        Run("moons", distributed=True, epochs=1)
    from backprop.cli import main

    assert main(["train", "moons", "--distributed", "--epochs", "1"]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("backprop: error: distributed training needs mpi4py") and "\n" not in line


def test_info_reports_mpi_and_nccl(capsys):
    from backprop.cli import main

    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["distributed"]
    assert set(report) == {"mpi", "nccl"}
    assert report["mpi"]["usable"] == (_mpi_missing() is None)
    if not report["nccl"]["usable"]:
        assert report["nccl"]["reason"]


def _nccl_missing() -> str | None:
    from backends.comm import nccl_unusable

    return _mpi_missing() or nccl_unusable()


@pytest.mark.skipif(_nccl_missing() is not None, reason=f"NCCL: {_nccl_missing()}")
def test_nccl_one_rank_matches_plain_cupy():
    # One rank: NCCL's all-reduce over one GPU is the identity; what this checks is the path
    # (the buffer's dtype and pointer, the stream, the device taken from the local rank).
    code = ("import numpy as np; from backends.comm import NCCLComm; from backprop.model import mlp; "
            "r = np.random.default_rng(0); X, y = r.normal(size=(300, 5)), r.integers(0, 3, 300); out = []\n"
            "for c in (None, NCCLComm()):\n"
            "    m = mlp([5, 16, 3], output='softmax', device='cuda:0', dtype='float64', seed=1)\n"
            "    m.fit(X, y, epochs=3, batch_size=64, comm=c)\n"
            "    out.append(np.asarray(m.flat_parameters().get()))\n"
            "print(float(np.max(np.abs(out[0] - out[1]))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 1e-12


# -- MPI: several processes ----------------------------------------------------------------
@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_give_the_weights_of_one_process(ranks, tmp_path):
    out = tmp_path / "result.json"
    done = launch(ranks, "equivalence", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["size"] == ranks
    for name, case in result.items():
        if not isinstance(case, dict):
            continue
        tolerance = 1e-5 if name.endswith("float32") else 1e-10  # float32: 2e-7 measured
        assert case["params"] < tolerance, (name, case)
        assert case["records"] < tolerance, (name, case)  # losses and accuracies, every epoch
        assert case["epochs"][0] == case["epochs"][1] and case["stopped"][0] == case["stopped"][1], name
        assert case["ranks_identical"], name  # every rank holds the same weights
        # The records count the global samples (10 trained on), not a rank's share.
        assert case["samples_per_s_seconds"] == pytest.approx([10.0] * case["epochs"][0]), name
    assert result["adam-bce-early"]["stopped"] == [True, True]  # early stopping decided together
    assert "does not train data-parallel" in result["lm_refusal"]
    assert [line.split(";")[0].split(")")[0] for line in result["mixed_data"]] == [
        f"the ranks differ (rank 1 has other values in {what}" for what in
        ("X", "the epochs", "the batch size", "the optimizer")]
    assert result["replicated"] < 1e-10  # rank 0's starting weights and shuffle stream everywhere
    assert result["callback_stop_epochs"] == [2] * ranks  # one rank's stop stops all
    assert result["device_rng_seeds"] == [3]  # rank 0's device generator (dropout masks) everywhere
    assert result["resumed"] < 1e-10  # --resume: saved state reaches every rank


@needs_mpi
def test_a_failing_rank_ends_the_job_with_its_error_and_leaves_the_checkpoint_intact(tmp_path):
    saved = tmp_path / "run.safetensors"
    first = launch(2, "cli", str(tmp_path / "log"), "train", "moons", "--hidden", "8", "--epochs", "2",
                   "--distributed", "--save", str(saved), "--quiet", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    digest = hashlib.sha256(saved.read_bytes()).hexdigest()
    for kind, code, what in (("expected", 2, "backprop: error: rank 1 of 2: injected failure"),
                             ("bug", 1, "RuntimeError: injected failure on rank 1")):
        started = time.perf_counter()
        done = launch(2, "failing", "1", "4", kind, "train", "--resume", str(saved), "--epochs", "8",
                      "--distributed", "--quiet", timeout=30, cwd=tmp_path)
        assert time.perf_counter() - started < 10
        assert done.returncode == code, done.stderr[-3000:]
        assert what in done.stderr
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == digest  # never touched
        assert checkpoint.load(str(saved)).model.epoch == 2


@needs_mpi
def test_rank_0_alone_prints_and_saves_and_counts_global_samples(tmp_path):
    saved, log = tmp_path / "m.safetensors", tmp_path / "log"
    done = launch(2, "cli", str(log), "train", "moons", "--hidden", "8", "--epochs", "3", "--batch-size",
                  "100", "--distributed", "--json", "--save", str(saved), "--plot", str(tmp_path / "plots"),
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line.get("type") for line in lines].count("summary") == 1 and len(lines) == 4
    summary = lines[-1]
    assert summary["ranks"] == 2 and summary["comm"] == "mpi"
    # moons trains on 720 samples (800 less a tenth held out): the job's throughput, not a rank's.
    assert summary["samples_per_s"] * summary["train_seconds"] == pytest.approx(3 * 720)
    for record in lines[:-1]:
        assert record["samples_per_s"] * record["seconds"] == pytest.approx(720)
    assert sorted(os.listdir(tmp_path)) == ["log.0", "m.safetensors", "plots"]  # rank 1 wrote nothing
    assert (tmp_path / "log.0").read_text() == "0\n"
    assert checkpoint.load(str(saved)).model.epoch == 3


@needs_mpi
def test_mpi_comm_alone_is_a_world_of_one():
    # In a child process: MPI, once started, stays started for the life of the process.
    code = ("import numpy as np; from backends.comm import MPIComm; c = MPIComm(); b = np.arange(3.0); "
            "assert (c.rank, c.size) == (0, 1) and c.allreduce(b) is b; "
            "assert c.allreduce_host([1.0, 2.0]).tolist() == [1.0, 2.0] and c.any(False) is False; "
            "assert c.bcast({'a': 1}) == {'a': 1}; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


# A spy between a communicator and its library: counts the sums it hands on and returns the
# library's answer. One rank's sum is its own values, bit for bit (-0.0, a subnormal, NaN's payload).
_SPY = """
import numpy as np
class Spy:
    def __init__(self, inner, name):
        self.inner, self.name, self.calls = inner, name, 0
    def __getattr__(self, attr):
        found = getattr(self.inner, attr)
        if attr != self.name:
            return found
        def counted(*args, **kwargs):
            self.calls += 1
            return found(*args, **kwargs)
        return counted
AWKWARD = np.array([1 / 7, -0.0, np.inf, -np.inf, np.nan, 5e-324, 2.0**60, -3.0])
"""


@needs_mpi
def test_mpi_sums_with_one_rank_call_mpi_and_give_the_exact_values():
    # MPI's all-reduce with one rank for real: NumPy buffers in place (float64 and float32),
    # a device buffer (array-api-strict's second device) staged through the host, the host totals.
    code = _SPY + """
import array_api_strict as xps
from mpi4py import MPI
from backends.comm import MPIComm
spy = Spy(MPI.COMM_WORLD, "Allreduce")
c = MPIComm(spy)
assert (c.rank, c.size) == (0, 1)
for dtype in (np.float64, np.float32):
    b = AWKWARD.astype(dtype)
    out = c.allreduce(b)
    assert out is b and out.tobytes() == AWKWARD.astype(dtype).tobytes(), out
d = xps.asarray(AWKWARD, device=xps.Device("device1"))
out = c.allreduce(d)
assert out is d and out.device == xps.Device("device1")
assert np.asarray(out.to_device(xps.Device("CPU_DEVICE"))).tobytes() == AWKWARD.tobytes()
assert c.allreduce_host([1.5, -2.0]).tolist() == [1.5, -2.0]
print(spy.calls)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["4"]  # every sum went to MPI: two in place, one staged, the totals


@pytest.mark.skipif(_nccl_missing() is not None, reason=f"NCCL: {_nccl_missing()}")
def test_nccl_sums_with_one_rank_call_nccl_and_give_the_exact_values():
    # The twin on a GPU: NCCL's all-reduce queued on the stream, in place, float64 and float32.
    code = _SPY + """
import cupy
from backends.comm import NCCLComm
c = NCCLComm()
spy = c.nccl_comm = Spy(c.nccl_comm, "allReduce")
for dtype in (np.float64, np.float32):
    b = cupy.asarray(AWKWARD.astype(dtype))
    out = c.allreduce(b)
    assert out is b and out.get().tobytes() == AWKWARD.astype(dtype).tobytes(), out
print(spy.calls)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2"]


@needs_mpi
def test_a_ctrl_c_on_one_rank_interrupts_every_rank_and_is_saved_as_such(tmp_path):
    # A first Ctrl-C reaching rank 1 alone: every rank stops after that epoch, exits 130, and
    # rank 0 says "interrupted" (not "done") and saves status "interrupted".
    saved, log = tmp_path / "m.safetensors", tmp_path / "code"
    done = launch(2, "interrupt", str(log), "1", "3", "train", "moons", "--hidden", "8", "--epochs", "50",
                  "--distributed", "--save", str(saved), "--plot", "plots", cwd=tmp_path)
    assert done.returncode == 130, done.stderr[-3000:]
    assert [(tmp_path / f"code.{r}").read_text() for r in (0, 1)] == ["130\n", "130\n"]
    assert "interrupted at epoch 3" in done.stdout and "done at" not in done.stdout, done.stdout
    # Rank 1's exit 130 ends the job (python -m mpi4py aborts on a non-zero exit), so it
    # waits until rank 0 has drawn its plots and printed its summary.
    assert sorted(os.listdir(tmp_path / "plots")) == ["confusion.png", "curves.png", "decision_boundary.png",
                                                      "performance.png"]
    assert "wrote plots/decision_boundary.png" in done.stdout
    ck = checkpoint.load(str(saved))
    assert ck.model.epoch == 3 and ck.extra["train"]["status"] == "interrupted"


@needs_mpi
def test_ranks_that_read_different_data_are_refused_in_one_line_naming_them(tmp_path):
    # Rank 1 reads the same shape with other values (it would train on a mix), rank 2 a row
    # fewer (its collectives would be cut short): one line names both, before any training.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    for rank, rows in ((0, X), (1, X + 1.0), (2, X[:-1])):
        labels = (rows[:, 0] > 0).astype(int)
        np.savetxt(tmp_path / f"data{rank}.csv", np.column_stack([rows, labels]), delimiter=",",
                   header="a,b,label", comments="", fmt="%.6f")
    done = launch(3, "cli", str(tmp_path / "log"), "train", "data{rank}.csv", "--epochs", "2",
                  "--distributed", "--quiet", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    ours = [line for line in done.stderr.splitlines() if not line.startswith("Abort(2)")]  # MPICH's own
    assert len(ours) == 1 and ours[0].startswith("backprop: error: the ranks differ (rank 1 "
                                                 "has other values in X; rank 2 has X of shape 39 × 2, "
                                                 "rank 0 40 × 2)"), done.stderr[-3000:]
    assert not list(tmp_path.glob("log.*"))  # nothing trained, nothing saved


def test_the_data_fingerprint_sees_values_shapes_dtypes_and_names():
    X = np.arange(6.0).reshape(3, 2)

    def parts(**changed):
        return {"X": X.copy(), "y": np.array(["a", "b", "a"]), "names": ["p", "q"], "v": None, **changed}

    base = distributed.fingerprint(parts())
    assert base == distributed.fingerprint(parts())
    for changed in ({"X": X + 1e-12}, {"X": X.astype(np.float32)}, {"X": X[:2]},
                    {"y": np.array(["a", "b", "b"])}, {"names": ["q", "p"]}, {"v": X}):
        assert distributed.fingerprint(parts(**changed)) != base, changed
