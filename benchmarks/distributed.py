"""Data-parallel scaling: step time, communication time and efficiency for 1, 2, ... ranks.

    python benchmarks/distributed.py                      # 1 and 2 ranks, 1 thread each, on the CPU
    python benchmarks/distributed.py --ranks 1 2 4 --out benchmarks/results/distributed.json
    python benchmarks/distributed.py --device cuda --threads 0   # one GPU per rank (NCCL when CuPy has it)

Without ``--worker`` the script launches itself under ``mpiexec -n R`` for each R and
prints one table. Each worker trains the medium network (784-512-512-10, float32,
Adam) on synthetic data through ``fit(comm=...)``, the same loop ``backprop train
--distributed`` runs, and times whole epochs after a warm-up epoch:

- **strong scaling**: the global batch stays 1024 and the data set stays fixed, so
  each rank's part shrinks as ranks are added. Efficiency = T(1) / (R · T(R)), T the
  time per global batch.
- **weak scaling**: each rank keeps 1024 rows per step (the global batch grows to
  1024 · R, the data with it). Efficiency = T(1) / T(R).

Communication time is the time spent inside the gradient all-reduce, waiting for the
slowest rank included; the 1-rank row through the distributed path shows what the
flat buffer costs, beside a plain ``fit`` without a communicator.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = [784, 512, 512, 10]


def worker(args: argparse.Namespace) -> None:
    from threadpoolctl import threadpool_limits

    from backends.comm import connect
    from backprop.model import mlp

    if args.threads:
        threadpool_limits(args.threads)
    gpu = args.device.startswith("cuda")
    comm = connect(gpu=gpu)
    device = f"cuda:{comm.local_rank}" if args.device == "cuda" else args.device
    reduce, spent = comm.allreduce, {"s": 0.0, "calls": 0}

    def timed(buffer):  # time inside the all-reduce (a GPU's queued work is waited for first)
        if gpu:
            model.backend.synchronize()
        started = time.perf_counter()
        out = reduce(buffer)
        if gpu:
            model.backend.synchronize()
        spent["s"] += time.perf_counter() - started
        spent["calls"] += 1
        return out

    comm.allreduce = timed
    batch = args.batch * (comm.size if args.mode == "weak" else 1)
    n = batch * args.steps
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], n)
    rows = []
    for use_comm in ([False, True] if comm.size == 1 else [True]):
        model = mlp(SIZES, output="softmax", device=device, dtype="float32", seed=0)
        model.fit(X, y, optimizer="adam", epochs=1, batch_size=batch, comm=comm if use_comm else None)
        spent.update(s=0.0, calls=0)
        history = model.fit(X, y, epochs=args.epochs, batch_size=batch, comm=comm if use_comm else None)
        seconds = statistics.median(history["seconds"])
        rows.append({"mode": args.mode, "ranks": comm.size, "path": comm.name if use_comm else "plain",
                     "global_batch": batch, "step_ms": 1e3 * seconds / args.steps,
                     "comm_ms": 1e3 * spent["s"] / max(spent["calls"], 1) if use_comm else 0.0,
                     "samples_per_s": n / seconds, "device": model.backend.label,
                     "threads": args.threads, "params": model.n_params})
    if comm.root:
        print(json.dumps(rows))


def launch(ranks: int, args: argparse.Namespace, mode: str) -> list[dict]:
    from backends.comm import mpiexec_path

    mpiexec = mpiexec_path() or "mpiexec"
    threads = str(args.threads or "")
    env = {**os.environ, "PYTHONPATH": ROOT}
    if threads:
        env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    command = [mpiexec, "-n", str(ranks), sys.executable, "-m", "mpi4py", os.path.abspath(__file__),
               "--worker", "--mode", mode, "--device", args.device, "--threads", str(args.threads), "--batch",
               str(args.batch), "--steps", str(args.steps), "--epochs", str(args.epochs)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads per rank (0: the library's own)")
    parser.add_argument("--batch", type=int, default=1024, help="global batch (strong), per rank (weak)")
    parser.add_argument("--steps", type=int, default=8, help="global batches per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up epoch")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="strong", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    rows = []
    for mode in ("strong", "weak"):
        for ranks in args.ranks:
            if mode == "weak" and ranks == 1:
                rows += [dict(r, mode="weak") for r in rows if r["mode"] == "strong" and r["ranks"] == 1]
                continue
            rows += launch(ranks, args, mode)
    base = {r["mode"]: r["step_ms"] for r in rows if r["ranks"] == 1 and r["path"] == "plain"}
    print("| scaling | ranks | path | global batch | step ms | all-reduce ms (share) | samples/s | "
          "efficiency |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ideal = base[r["mode"]] / (r["ranks"] if r["mode"] == "strong" else 1)
        r["efficiency"] = ideal / r["step_ms"]
        r["comm_share"] = r["comm_ms"] / r["step_ms"]
        print(f"| {r['mode']} | {r['ranks']} | {r['path']} | {r['global_batch']} | {r['step_ms']:.1f} | "
              f"{r['comm_ms']:.2f} ({100 * r['comm_share']:.1f}%) | {r['samples_per_s']:,.0f} | "
              f"{r['efficiency']:.2f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"network": SIZES, "threads_per_rank": args.threads, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
