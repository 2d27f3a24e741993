"""One Adam training step of two convolutional networks, backprop on NumPy beside PyTorch eager.

    python benchmarks/cnn_step.py [--threads 2] [--rounds 30] [--keep-heap]

The networks of issue 24's targets, the same weights in both:

- ``cnn1d``: three strided Conv1D layers of 25 channels (kernels 5, 3, 3, stride 2) on 1x40
  inputs, ReLU between, then one dense layer to 5 classes; batch 100.
- ``lenet``: LeNet-5 on 1x28x28: conv 6@5x5 (padding 2), max pool 2, conv 16@5x5, max pool 2,
  120, 84, 10, ReLU; batch 128.

Both sides run float32 with the same thread count (``torch.set_num_threads``; NumPy's BLAS
through ``threadpoolctl``), interleaved round after round; the best and the median step of
each are printed, with their ratio (PyTorch's time over ours: above 1, ours is faster).

``--keep-heap`` asks glibc (``mallopt``) to serve every array from its heap and never hand the
heap back, for both sides. By default glibc returns the memory freed at the end of a step to
the system, and the next step pays the kernel for fresh zeroed pages again (LeNet: about 4,000
page faults and several ms of system time per step on NumPy); the option shows the step
without that cost. Only on glibc (Linux).
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import backprop as bp
from backprop.step import Step

NETS = {
    "cnn1d": ((1, 40), 100, 5, "conv1d(25, 5, stride=2), relu, conv1d(25, 3, stride=2), relu, "
                                "conv1d(25, 3, stride=2), relu, flatten, dense(5)"),
    "lenet": ((1, 28, 28), 128, 10, "conv2d(6, 5, padding=2), relu, maxpool2d(2), conv2d(16, 5), relu, "
                                    "maxpool2d(2), flatten, dense(120), relu, dense(84), relu, dense(10)"),
}


def _torch_twin(model: bp.Sequential) -> torch.nn.Sequential:
    """The same network in torch.nn with the same weights (W transposed for Dense)."""
    mods = []
    for layer in model.layers:
        kind = type(layer).name
        if kind in ("conv1d", "conv2d"):
            c = layer.config()
            conv = (torch.nn.Conv1d if kind == "conv1d" else torch.nn.Conv2d)(
                c["in_channels"], c["out_channels"], c["kernel_size"], stride=c["stride"],
                padding=c["padding"] if isinstance(c["padding"], (int, list, tuple)) else 0)
            conv.weight.data = torch.from_numpy(np.asarray(layer.params["W"]).copy())
            conv.bias.data = torch.from_numpy(np.asarray(layer.params["b"]).copy())
            mods.append(conv)
        elif kind == "dense":
            dense = torch.nn.Linear(layer.in_features, layer.out_features)
            dense.weight.data = torch.from_numpy(np.asarray(layer.params["W"]).T.copy())
            dense.bias.data = torch.from_numpy(np.asarray(layer.params["b"]).copy())
            mods.append(dense)
        elif kind == "maxpool2d":
            mods.append(torch.nn.MaxPool2d(2))
        elif kind == "flatten":
            mods.append(torch.nn.Flatten())
        elif kind == "relu":
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def _timed(run, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def measure(name: str, rounds: int) -> dict:
    shape, batch, classes, text = NETS[name]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch, *shape)).astype(np.float32)
    y = rng.integers(0, classes, size=batch)
    model = bp.Sequential(bp.spec.parse(text), input_shape=shape, seed=0)
    twin = _torch_twin(model)
    step = Step(model, bp.losses.get("ce"), bp.optimizers.get("adam", lr=1e-3))
    T = model.backend.asarray(np.eye(classes, dtype=np.float32)[y])
    opt = torch.optim.Adam(twin.parameters(), lr=1e-3)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()

    def ours():
        step(X, T)

    def theirs():
        opt.zero_grad()
        loss_fn(twin(Xt), yt).backward()
        opt.step()

    with torch.no_grad():  # the same network: the same outputs before training
        agree = float(np.max(np.abs(np.asarray(model(X)) - twin(Xt).numpy())))
    for run in (ours, theirs):  # warm up: workspaces, lazy state
        run()
    mine, torchs = [], []
    for _ in range(rounds):
        mine += _timed(ours, 1)
        torchs += _timed(theirs, 1)
    return {"net": name, "agree": agree, "ours_best": min(mine), "ours_median": statistics.median(mine),
            "torch_best": min(torchs), "torch_median": statistics.median(torchs)}


def keep_heap() -> None:
    """glibc: no array in its own mmap (M_MMAP_THRESHOLD, -3) and no heap trimming (M_TRIM_THRESHOLD, -1)."""
    libc = ctypes.CDLL("libc.so.6")
    if not (libc.mallopt(-3, 1 << 30) and libc.mallopt(-1, 1 << 30)):
        raise SystemExit("--keep-heap: glibc refused mallopt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--keep-heap", action="store_true",
                        help="glibc keeps freed memory for the next step (both sides); see the docstring")
    args = parser.parse_args()
    if args.keep_heap:
        keep_heap()
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        for name in NETS:
            r = measure(name, args.rounds)
            print(f"{name:6s} ours {1e3 * r['ours_best']:7.2f} ms (median {1e3 * r['ours_median']:7.2f})   "
                  f"torch {1e3 * r['torch_best']:7.2f} ms (median {1e3 * r['torch_median']:7.2f})   "
                  f"torch/ours {r['torch_best'] / r['ours_best']:.2f}x   (outputs agree to {r['agree']:.1e})")


if __name__ == "__main__":
    main()
