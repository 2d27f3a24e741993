"""`backprop train digits` on a quiet machine and beside CPU-bound work: wall time, and the ratio.

    python benchmarks/under_load.py                       # 5 runs each, load on every core
    python benchmarks/under_load.py --repeats 3 -- --threads 2

Runs ``python -m backprop train digits`` (its defaults, plus any arguments after ``--``) in a
subprocess and times it by the wall clock, alternately on the machine as it is ("quiet") and
while ``--load`` processes, one per core by default, each spin one core: a pure-Python busy
loop (``--kind python``: no memory traffic, no threads of its own) or NumPy products of 256×256
matrices with a one-thread BLAS (``--kind numpy``). Quiet and loaded runs take turns so that a
slow moment of the machine hits both; the medians and loaded ÷ quiet are printed. Issue 25's
target: within 1.5×.

Read the ratio against the fair share: with ``load`` busy processes on ``cores`` cores, a
one-thread run gets a whole core only while ``load < cores``; at ``load = cores`` it shares
``cores`` cores among ``cores + 1`` runnable processes, and 1 + 1/cores (1.5 on two cores) is
the slowdown of a run that loses nothing else. The run's CPU time (user + system, its own) shows
what the load added beyond the share: BLAS threads spinning while they wait for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPIN = {
    "python": "while True:\n    pass\n",
    "numpy": "import numpy as np\na = np.ones((256, 256))\nwhile True:\n    a @ a\n",
}


def start_load(count: int, kind: str) -> list[subprocess.Popen]:
    """``count`` processes, each holding one core busy until stopped."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return [subprocess.Popen([sys.executable, "-c", SPIN[kind]], env=env) for _ in range(count)]


def stop_load(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait()


def timed_run(command: list[str], cwd: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of one run of ``command``; a failed run stops the
    measurement. The CPU time is the run's alone: the load processes are reaped only after it."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(extra: list[str], repeats: int, load: int, kind: str) -> dict:
    """Quiet and loaded wall times of ``repeats`` runs each, taking turns, and their medians."""
    command = [sys.executable, "-m", "backprop", "train", "digits", *extra]
    runs: dict[str, list[tuple[float, float]]] = {"quiet": [], "loaded": []}
    with tempfile.TemporaryDirectory() as cwd:  # whatever a run writes stays out of the checkout
        timed_run(command, cwd)  # untimed: imports and the data set's first read warm the caches
        for _ in range(repeats):
            runs["quiet"].append(timed_run(command, cwd))
            processes = start_load(load, kind)
            try:
                time.sleep(0.5)  # the load running before the command starts
                runs["loaded"].append(timed_run(command, cwd))
            finally:
                stop_load(processes)
    out = {"command": " ".join(["backprop", *command[3:]]), "load": f"{load} x {kind} busy loop",
           "cores": os.cpu_count()}
    for name, pairs in runs.items():
        out[f"{name}_s"], out[f"{name}_cpu_s"] = [w for w, _ in pairs], [c for _, c in pairs]
        out[f"{name}_median_s"] = statistics.median(out[f"{name}_s"])
        out[f"{name}_median_cpu_s"] = statistics.median(out[f"{name}_cpu_s"])
    out["ratio"] = out["loaded_median_s"] / out["quiet_median_s"]
    out["cpu_ratio"] = out["loaded_median_cpu_s"] / out["quiet_median_cpu_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--load", type=int, default=os.cpu_count() or 1, help="busy processes (all cores)")
    parser.add_argument("--kind", choices=tuple(SPIN), default="python")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("extra", nargs="*", help="arguments for backprop train digits, after --")
    args = parser.parse_args()
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr)
    result = measure(args.extra, args.repeats, args.load, args.kind)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['command']}: {args.repeats} runs each, load {result['load']} on {result['cores']} cores")
    for name in ("quiet", "loaded"):
        runs = ", ".join(f"{s:.2f}" for s in result[f"{name}_s"])
        print(f"  {name:<6} median {result[f'{name}_median_s']:.2f} s  ({runs}); CPU time median "
              f"{result[f'{name}_median_cpu_s']:.2f} s")
    print(f"  loaded / quiet: {result['ratio']:.2f} (target: within 1.5); CPU time loaded / quiet: "
          f"{result['cpu_ratio']:.2f} (above 1: work added by the load, such as threads waiting on a core)")


if __name__ == "__main__":
    main()
