"""Training-step speed on each device, measured the same way for every contender.

What is timed is :func:`backprop.step.train_epoch`, the loop ``fit`` runs
every epoch: forward, loss, backward and optimizer update per batch, with the loss
and the hit count kept on the device and read once at the end of the block. That
read is the block's only synchronisation, so the clock stops only after the
device has finished. A block is ``steps`` training steps; the reported step time
is the median over ``repeats`` blocks, after ``warmup`` untimed steps.

Contenders (``--compare``) run the same network, batches, dtype, optimizer and
starting weights, block by block in turn with ours (interleaved), so that a slow
moment of the machine hits all of them alike and their ratio is fair.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from backends import BackendUnavailable, get_backend

from .. import losses, optimizers
from ..errors import ConfigError
from ..model import mlp
from ..step import Step, train_epoch
from ..targets import as_inputs, as_targets

DATA_CAP_BYTES = 256 * 2**20  # distinct batches kept on the device per size; more are cycled


@dataclass(frozen=True)
class Size:
    """A network and batch to time, with how many steps to run.

    ``warmup`` untimed steps, then ``repeats`` blocks of ``steps`` timed steps.
    """

    name: str
    layers: tuple[int, ...]
    batch: int
    warmup: int
    steps: int
    repeats: int
    data: str = "teacher"  # "xor": the four XOR points; "teacher": labels from a random linear map

    @property
    def label(self) -> str:
        return "-".join(map(str, self.layers))


SIZES = {
    "xor": Size("xor", (2, 2, 1), 4, warmup=100, steps=200, repeats=9, data="xor"),
    "small": Size("small", (784, 512, 512, 10), 128, warmup=10, steps=50, repeats=7),
    "medium": Size("medium", (784, 512, 512, 10), 1024, warmup=5, steps=10, repeats=7),
    "large": Size("large", (4096, 4096, 4096, 1000), 4096, warmup=1, steps=1, repeats=5),
}


def custom_size(layers: list[int], batch: int, steps: int | None = None,
                repeats: int | None = None) -> Size:
    """A size from ``--layers`` and ``--batch-size``; steps scale inversely with the work."""
    if len(layers) < 2 or any(w < 1 for w in layers):
        raise ConfigError(f"--layers needs at least two positive widths, e.g. 784,512,10; got {layers}")
    if steps is None:
        steps = int(min(200, max(1, 1e10 // flops_per_step(layers, batch))))
    return Size("custom", tuple(layers), batch, warmup=max(1, steps // 5), steps=steps,
                repeats=repeats or 5)


def with_counts(size: Size, steps: int | None, repeats: int | None) -> Size:
    """``size`` with ``--steps``/``--repeats`` applied where given."""
    warmup = size.warmup if steps is None else max(1, steps // 5)
    return replace(size, warmup=warmup, steps=steps or size.steps, repeats=repeats or size.repeats)


def flops_per_step(layers: list[int] | tuple[int, ...], batch: int) -> int:
    """Floating-point operations of the matrix products in one training step.

    Each Dense layer (a -> b) costs 2*N*a*b forward, the same for its weight
    gradient, and the same again for its input gradient, which the first layer
    skips (nobody needs dL/dX). Elementwise work is not counted: it is a small
    share of the arithmetic, though not of the time, at small sizes.
    """
    pairs = list(zip(layers[:-1], layers[1:]))
    total = sum(6 * batch * a * b for a, b in pairs)
    return total - 2 * batch * pairs[0][0] * pairs[0][1]


OPTIMIZER_SETTINGS = {
    "sgd": {"name": "sgd", "lr": 0.01},
    "momentum": {"name": "momentum", "lr": 0.01, "momentum": 0.9},
    "adam": {"name": "adam", "lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
}


def _our_optimizer(settings: dict) -> optimizers.Optimizer:
    if settings["name"] == "adam":
        return optimizers.Adam(settings["lr"], settings["beta1"], settings["beta2"], settings["eps"])
    return optimizers.SGD(settings["lr"], settings.get("momentum", 0.0))


def synthetic_data(size: Size, seed: int, n_batches: int) -> tuple[np.ndarray, np.ndarray]:
    """Host inputs (n_batches * batch, n_in) float64 and int64 labels.

    XOR size: the four XOR points repeated. Others: standard normal inputs labelled
    by a random linear "teacher", so the loss falls as it would on real data.
    """
    rng = np.random.default_rng(seed)
    n, n_in, n_out = n_batches * size.batch, size.layers[0], size.layers[-1]
    if size.data == "xor":
        points = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        X = np.resize(points, (n, 2))
        return X, (X[:, 0] != X[:, 1]).astype(np.int64)
    X = rng.standard_normal((n, n_in))
    teacher = rng.standard_normal((n_in, max(n_out, 1)))
    scores = X @ teacher
    labels = (scores[:, 0] > 0) if n_out == 1 else np.argmax(scores, axis=1)
    return X, labels.astype(np.int64)


def batch_spans(size: Size, n_batches: int, count: int) -> list[tuple[int, int]]:
    """``count`` consecutive batches, cycling over the ``n_batches`` held on the device."""
    b = size.batch
    return [((i % n_batches) * b, (i % n_batches + 1) * b) for i in range(count)]


def distinct_batches(size: Size, itemsize: int) -> int:
    per_batch = size.batch * (size.layers[0] + size.layers[-1]) * itemsize
    return max(1, min(size.steps, DATA_CAP_BYTES // per_batch))


class BackpropTrainer:
    """Our model, trained through ``train_epoch`` (the real ``fit`` loop)."""

    label = "backprop"

    def __init__(self, backend: Any, size: Size, activation: str, loss: str, optimizer: dict,
                 dtype: str, X: np.ndarray, labels: np.ndarray, seed: int) -> None:
        self.backend = backend
        self.model = mlp(list(size.layers), activation=activation, device=backend, dtype=dtype, seed=seed)
        model = self.model
        self.loss = losses.get(loss)
        self.step = Step(model, self.loss, _our_optimizer(optimizer))
        with backend.activate():
            self.X = as_inputs(backend, model.dtype, X, model.n_inputs)
            self.T, self.labels = as_targets(backend, model.dtype, labels, self.loss, model.n_outputs,
                                             X.shape[0])

    def initial_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W, b) per Dense layer as host arrays: the others start from these."""
        params = list(self.model.parameters().values())
        host = [self.backend.to_numpy(p).copy() for p in params]  # NumPy's to_numpy is a view
        return list(zip(host[0::2], host[1::2]))

    def run(self, spans: list[tuple[int, int]]) -> float:
        """Train one step per batch in ``spans``; the mean loss, read once at the end."""
        with self.backend.activate():
            total, _ = train_epoch(self.step, self.X, self.T, self.labels, spans)
            return float(total) / sum(stop - start for start, stop in spans)


def gemm_ceiling(backend: Any, dtype: str, widest: int = 1024) -> dict:
    """The device's matrix-multiply rate: one large square product of ``dtype``.

    n = 8192 on a GPU. On a CPU, n is the widest layer measured, between 1024 and
    4096: a BLAS runs a little faster on larger products, and a ceiling measured
    smaller than the network's own products would be beaten by them. The best of
    3 after one warm-up: noise only ever slows a product down.
    """
    n = 8192 if backend.is_gpu else min(4096, max(1024, widest))
    xp = backend.xp
    with backend.activate():
        rng = np.random.default_rng(0)
        A = backend.asarray(rng.random((n, n), dtype=np.dtype(dtype)), dtype)
        B = backend.asarray(rng.random((n, n), dtype=np.dtype(dtype)), dtype)
        times = []
        for i in range(4):
            backend.synchronize()
            started = time.perf_counter()
            C = xp.matmul(A, B)
            backend.synchronize()
            if i:
                times.append(time.perf_counter() - started)
        del A, B, C
    seconds = min(times)
    return {"gemm": f"{n}x{n}x{n}", "flops_per_s": 2 * n**3 / seconds}


CONTENDERS = ("torch", "numpy-reference")
"""What ``--compare`` may name: PyTorch eager, and the hand-written NumPy (CuPy on a GPU) step."""


@dataclass
class Settings:
    """What ``backprop bench`` measures (see ``backprop bench --help``)."""

    sizes: list[Size]
    devices: list[str]
    compare: list[str] = field(default_factory=list)
    dtype: str = "float32"
    precision: str = "default"  # or "tf32"
    optimizer: str = "momentum"
    activation: str = "relu"
    seed: int = 0



def tolerance(precision_a: str, precision_b: str) -> tuple[float, float]:
    """(rtol, atol): how far two runs' losses may drift apart after the timed steps.

    Two float32 runs that round differently (another GEMM kernel, another
    summation order) drift apart slowly over hundreds of steps, by about 1e-3 of
    the loss after a few hundred; a wrong gradient or update is off by far more.
    TF32 keeps 10 mantissa bits of each product's inputs, so it drifts further.
    """
    if "tf32" in (precision_a, precision_b):
        return 5e-2, 1e-3
    if precision_a == precision_b == "float64":
        return 1e-6, 1e-9
    return 1e-2, 1e-4


def _precision(settings: Settings, backend: Any) -> str:
    if settings.precision == "tf32" and backend.is_gpu and settings.dtype == "float32":
        return "tf32"
    return settings.dtype


def _contenders(settings: Settings, backend: Any, weights: list, size: Size, loss: str,
                X: np.ndarray, labels: np.ndarray) -> tuple[list, list[str]]:
    """The --compare trainers for ``backend`` as (label, backend that holds their memory,
    factory), and a note for each one that cannot run here."""
    made, notes = [], []
    common = dict(weights=weights, activation=settings.activation, loss=loss,
                  optimizer=OPTIMIZER_SETTINGS[settings.optimizer], dtype=settings.dtype, X=X, labels=labels)
    tf32 = _precision(settings, backend) == "tf32"
    for what in settings.compare:
        try:
            if backend.name not in ("numpy", "cupy"):
                raise BackendUnavailable(f"it runs beside cpu and cuda devices only, not {backend.label}")
            if what == "torch":
                from backprop.contenders.torch_reference import TorchTrainer

                device = "cpu" if backend.name == "numpy" else backend.label
                holder = get_backend(f"torch:{device}", tf32=tf32)  # raises when torch is missing
                made.append(("torch", holder, lambda d=device: TorchTrainer(d, tf32=tf32, **common)))
            else:
                from backprop.contenders.handwritten import HandwrittenTrainer

                label = "numpy-reference" if backend.name == "numpy" else "cupy-reference"
                made.append((label, backend, lambda: HandwrittenTrainer(backend, **common)))
        except BackendUnavailable as exc:
            notes.append(f"--compare {what} skipped on {backend.label}: {exc}")
    return made, notes


def _build(holder: Any, factory: Callable[[], Any]) -> tuple[Any, int | None]:
    """A trainer and the memory building it left on ``holder`` (weights, optimizer, data)."""
    with holder.track_memory() as built:
        trainer = factory()
    return trainer, built.held


def _warm_up(holder: Any, trainer: Any, spans: list[tuple[int, int]], held: int | None) -> int | None:
    """Runs the untimed steps; the peak memory: what building left plus the most the warm-up
    adds. Measured apart from building, so that the host copies of the starting weights,
    taken in between for the contenders, count against no one."""
    with holder.track_memory() as warmed:
        trainer.run(spans)
    if held is None or warmed.bytes is None:
        return None
    return held + warmed.bytes


def _time_blocks(trainers: list, block: list[tuple[int, int]], repeats: int) -> tuple[list, list]:
    """Seconds per step of each trainer in each of ``repeats`` blocks, taking turns, and the
    loss each reached last: ([[s, ...] per trainer], [loss per trainer])."""
    times: list[list[float]] = [[] for _ in trainers]
    last_loss = [math.nan] * len(trainers)
    for r in range(repeats):
        # Who goes first rotates, so that no one always runs right after a warm cache.
        for k in range(len(trainers)):
            i = (k + r) % len(trainers)
            started = time.perf_counter()
            last_loss[i] = trainers[i].run(block)  # ends by reading the loss: the device is done
            times[i].append((time.perf_counter() - started) / len(block))
    return times, last_loss


def _row(settings: Settings, size: Size, backend: Any, ceiling: float, impl: str, spent: list[float],
         peak_bytes: int | None, final: float) -> dict:
    """One row of the report: a trainer's median step on one size and device, and what follows."""
    step = statistics.median(spent)
    flops = flops_per_step(size.layers, size.batch)
    return {
        "size": size.name, "layers": size.label, "batch": size.batch, "device": backend.label,
        "impl": impl, "dtype": settings.dtype, "precision": _precision(settings, backend),
        "warmup": size.warmup, "steps": size.steps, "repeats": size.repeats,
        "step_s": step, "step_s_min": min(spent), "step_s_max": max(spent),
        "samples_per_s": size.batch / step, "flops_per_step": flops, "tflops": flops / step / 1e12,
        "ceiling_fraction": flops / step / ceiling, "peak_memory_bytes": peak_bytes,
        "loss": final,
    }


def _measure_size(settings: Settings, size: Size, backend: Any, ceiling: float,
                  progress: Callable[[str], None]) -> tuple[list[dict], list[str]]:
    """Rows for one size on one device: ours and each contender, interleaved."""
    loss = "bce" if size.layers[-1] == 1 else "ce"
    optimizer = OPTIMIZER_SETTINGS[settings.optimizer]
    itemsize = np.dtype(settings.dtype).itemsize
    n_batches = distinct_batches(size, itemsize)
    X, labels = synthetic_data(size, settings.seed, n_batches)
    warm = batch_spans(size, n_batches, size.warmup)
    block = batch_spans(size, n_batches, size.steps)

    ours, held = _build(backend, lambda: BackpropTrainer(backend, size, settings.activation, loss, optimizer,
                                                         settings.dtype, X, labels, settings.seed))
    weights = ours.initial_weights()  # the contenders start from ours, before the warm-up moves them
    trainers, peaks = [("backprop", ours)], [_warm_up(backend, ours, warm, held)]
    made, notes = _contenders(settings, backend, weights, size, loss, X, labels)
    for label, holder, factory in made:
        trainer, held = _build(holder, factory)
        trainers.append((label, trainer))
        peaks.append(_warm_up(holder, trainer, warm, held))

    times, last_loss = _time_blocks([trainer for _, trainer in trainers], block, size.repeats)
    rows = [_row(settings, size, backend, ceiling, label, spent, peak_bytes, final)
            for (label, _), spent, peak_bytes, final in zip(trainers, times, peaks, last_loss)]
    ours_step = rows[0]["step_s"]
    for row in rows:
        row["backprop_speedup"] = row["step_s"] / ours_step  # > 1: ours is faster
        progress(f"{row['size']:<7} {row['device']:<8} {row['impl']:<16} {format_time(row['step_s'])}/step")
    return rows, notes


def format_time(seconds: float) -> str:
    """``1.23 ms``, ``45.6 µs``, ``2.10 s``."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def _agreement(rows: list[dict]) -> list[dict]:
    """Loss after the timed steps: every run against ours on the first device.

    ``ok`` is None where a loss is not finite (the run diverged: nothing to compare).
    """
    out = []
    for name in dict.fromkeys(r["size"] for r in rows):
        group = [r for r in rows if r["size"] == name]
        ref = group[0]
        for other in group[1:]:
            rtol, atol = tolerance(ref["precision"], other["precision"])
            diff = abs(other["loss"] - ref["loss"])
            rel = diff / max(abs(ref["loss"]), 1e-12)
            finite = math.isfinite(ref["loss"]) and math.isfinite(other["loss"])
            out.append({"size": name, "a": f"{ref['impl']}@{ref['device']}",
                        "b": f"{other['impl']}@{other['device']}", "loss_a": ref["loss"],
                        "loss_b": other["loss"], "abs_diff": diff, "rel_diff": rel, "rtol": rtol,
                        "atol": atol, "ok": bool(diff <= atol + rtol * abs(ref["loss"])) if finite else None})
    return out


def _speedups(rows: list[dict]) -> list[dict]:
    """Ours on each other device against ours on the first one (the CPU by default)."""
    out = []
    for name in dict.fromkeys(r["size"] for r in rows):
        ours = [r for r in rows if r["size"] == name and r["impl"] == "backprop"]
        for other in ours[1:]:
            out.append({"size": name, "device": other["device"], "over": ours[0]["device"],
                        "speedup": ours[0]["step_s"] / other["step_s"]})
    return out


def _check_settings(settings: Settings) -> None:
    """Refuses settings that cannot be measured, before any device is touched."""
    if settings.precision == "tf32" and settings.dtype != "float32":
        raise ConfigError("--precision tf32 applies to float32: drop it or use --dtype float32")
    if not settings.sizes:
        raise ConfigError("no sizes to measure: pass --sizes or --layers")
    bad = [s.name for s in settings.sizes if s.data == "xor" and s.layers[-1] != 1]
    if bad:
        raise ConfigError(f"size {bad[0]} trains on XOR: it needs one output")


def _backends(settings: Settings) -> list[Any]:
    """One backend per device named, none twice (two names may mean one device)."""
    tf32 = settings.precision == "tf32"
    backends_ = [get_backend(spec, tf32=tf32) for spec in settings.devices]
    labels = [b.label for b in backends_]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--devices names a device twice: {','.join(settings.devices)}")
    return backends_


def _new_report(settings: Settings, labels: list[str]) -> dict[str, Any]:
    """The report before any measurement: the settings and the machine."""
    from backends.machine import describe_cpu

    report: dict[str, Any] = {
        "settings": {"sizes": [s.name for s in settings.sizes], "devices": labels,
                     "compare": settings.compare, "dtype": settings.dtype, "precision": settings.precision,
                     "optimizer": OPTIMIZER_SETTINGS[settings.optimizer], "activation": settings.activation,
                     "seed": settings.seed},
        "machine": describe_cpu(), "devices": [], "results": [], "notes": [],
    }
    if "torch" in settings.compare:
        from backprop.contenders.torch_reference import torch_threads

        report["machine"]["torch_threads"] = torch_threads()
    return report


def _describe_device(settings: Settings, backend: Any, progress: Callable[[str], None]) -> dict:
    """A device's entry in the report, with its measured matrix-multiply ceiling."""
    progress(f"measuring the matrix-multiply ceiling of {backend.label}")
    ceiling = gemm_ceiling(backend, settings.dtype, max(max(s.layers) for s in settings.sizes))
    return {"device": backend.label, **backend.describe(), "precision": _precision(settings, backend),
            "ceiling_gemm": ceiling["gemm"], "ceiling_tflops": ceiling["flops_per_s"] / 1e12}


def run(settings: Settings, progress: Callable[[str], None] = lambda line: None) -> dict:
    """Measure every size on every device; the report that ``backprop bench`` prints.

    Raises BackendUnavailable (a device cannot run here) or ConfigError (bad settings).
    """
    _check_settings(settings)
    backends_ = _backends(settings)
    report = _new_report(settings, [b.label for b in backends_])
    report["devices"] = [_describe_device(settings, backend, progress) for backend in backends_]
    for size in settings.sizes:
        for backend, device in zip(backends_, report["devices"]):
            rows, notes = _measure_size(settings, size, backend, device["ceiling_tflops"] * 1e12, progress)
            report["results"] += rows
            report["notes"] += [n for n in notes if n not in report["notes"]]
    report["speedups"] = _speedups(report["results"])
    report["agreement"] = _agreement(report["results"])
    report["ok"] = all(a["ok"] is not False for a in report["agreement"])
    return report
