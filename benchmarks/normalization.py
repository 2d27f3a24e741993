"""Forward+backward time of BatchNorm (training mode) and LayerNorm, NumPy beside PyTorch's CPU layers.

    OMP_NUM_THREADS=1 python benchmarks/normalization.py [--shape 128,16,14,14] [--rounds 40]

One thread for both (``torch.set_num_threads(1)``; NumPy's elementwise work is single-threaded).
The layers run interleaved, round after round, and the best and the median of each are printed:
on a busy machine the best is the number to compare. Needs PyTorch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import backprop as bp


def _ours(layer, X, dY):
    def run():
        _, backward = layer.forward(X, train=True)
        backward(dY)
    return run


def _theirs(module, X, dY):
    Xt, dYt = torch.from_numpy(X).requires_grad_(True), torch.from_numpy(dY)

    def run():
        Xt.grad = None
        module.zero_grad()
        module(Xt).backward(dYt)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="128,16,14,14")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    shape = tuple(int(d) for d in args.shape.split(","))
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        X, dY = (rng.normal(size=shape).astype(dtype) for _ in range(2))
        tdt = getattr(torch, dtype)
        batchnorm = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(shape[1], dtype=tdt)
        runs = {}
        for name, ours, theirs in (("batchnorm", bp.BatchNorm(), batchnorm),
                                   ("layernorm", bp.LayerNorm(), torch.nn.LayerNorm(shape[1:], dtype=tdt))):
            bp.Sequential([ours], input_shape=shape[1:], dtype=dtype)
            runs[f"{name} numpy"], runs[f"{name} torch"] = _ours(ours, X, dY), _theirs(theirs, X, dY)
        times = {k: [] for k in runs}
        for _ in range(args.rounds):
            for k, run in runs.items():
                start = time.perf_counter()
                run()
                times[k].append(time.perf_counter() - start)
        for k, seen in times.items():
            best, median = min(seen) * 1e3, np.median(seen) * 1e3
            print(f"{dtype} {shape} {k}: best {best:.2f} ms, median {median:.2f} ms")


if __name__ == "__main__":
    main()
