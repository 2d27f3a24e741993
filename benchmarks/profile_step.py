"""Where a training step's time goes, for one `backprop bench` size on one device.

    python benchmarks/profile_step.py --size small --device cuda

Prints, per step:
  wall    the bench's measure: a block of steps, then the loss read (the device is done);
  issue   the same block without waiting for the device: on a GPU, when this is close to
          `wall`, the step is bound by Python and kernel launches, not by the GPU;
  wait    wall - issue: time the host spends waiting for the device at the block's end;
and a cProfile of one block with the time grouped by where it is spent: our code
(backprop/, including the array operators such as @ and + that it calls, which cProfile
cannot see apart), array-api-compat's wrappers, the array library's own Python code,
its compiled functions, and the rest. cProfile itself slows Python down, so read the
shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

from backends import get_backend
from backprop import bench
from backprop.step import train_epoch

GROUPS = (("backprop/", "our code (backprop/)"), ("backends/", "our code (backends/)"),
          ("array_api_compat", "array-api-compat"), ("/numpy/", "NumPy (Python)"),
          ("/cupy/", "CuPy (Python)"), ("/cupy_backends/", "CuPy (Python)"))


def group_of(filename: str, function: str) -> str:
    for needle, name in GROUPS:
        if needle in filename:
            return name
    if filename == "~":  # a compiled function
        lib = "CuPy" if "cupy" in function else "NumPy" if "numpy" in function else "Python"
        return f"{lib} (compiled)"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="small", choices=tuple(bench.SIZES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--optimizer", default="momentum", choices=tuple(bench.OPTIMIZER_SETTINGS))
    parser.add_argument("--blocks", type=int, default=7)
    args = parser.parse_args()

    size = bench.SIZES[args.size]
    backend = get_backend(args.device)
    loss = "bce" if size.layers[-1] == 1 else "ce"
    n_batches = bench.distinct_batches(size, 4)
    X, labels = bench.synthetic_data(size, 0, n_batches)
    trainer = bench.BackpropTrainer(backend, size, "relu", loss, bench.OPTIMIZER_SETTINGS[args.optimizer],
                                    "float32", X, labels, 0)
    spans = bench.batch_spans(size, n_batches, size.steps)
    trainer.run(bench.batch_spans(size, n_batches, size.warmup))

    walls, issues = [], []
    with backend.activate():
        for _ in range(args.blocks):
            started = time.perf_counter()
            total, _ = train_epoch(trainer.step, trainer.X, trainer.T, trainer.labels, spans)
            issued = time.perf_counter()
            float(total)  # what fit does once per epoch: the device must finish
            done = time.perf_counter()
            issues.append((issued - started) / size.steps)
            walls.append((done - started) / size.steps)
    wall, issue = statistics.median(walls), statistics.median(issues)
    print(f"{size.name} ({size.label}, batch {size.batch}) on {backend.label}, "
          f"{size.steps} steps per block, median of {args.blocks} blocks")
    print(f"  wall  {bench.format_time(wall)}/step")
    print(f"  issue {bench.format_time(issue)}/step ({100 * issue / wall:.0f}% of wall)")
    print(f"  wait  {bench.format_time(wall - issue)}/step")

    profiler = cProfile.Profile()
    profiler.enable()
    trainer.run(spans)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    shares: dict[str, float] = {}
    calls = 0
    for (filename, _, function), (_, ncalls, tottime, _, _) in stats.items():
        name = group_of(filename, function)
        shares[name] = shares.get(name, 0.0) + tottime
        calls += ncalls
    total_time = sum(shares.values())
    print(f"  cProfile of one block: {calls / size.steps:.0f} Python-visible calls per step")
    for name, spent in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<24} {100 * spent / total_time:5.1f}%")
    top = sorted(stats.items(), key=lambda kv: -kv[1][2])[:8]
    print("  most time (own, per step):")
    for (filename, line, function), (_, ncalls, tottime, _, _) in top:
        where = filename.split("site-packages/")[-1].split("/main/")[-1]
        print(f"    {bench.format_time(tottime / size.steps):>9}  {ncalls / size.steps:5.1f}x  "
              f"{function} ({where}:{line})")


if __name__ == "__main__":
    main()
