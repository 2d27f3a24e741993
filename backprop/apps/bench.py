"""Training-step speed on each device, measured the same way for every contender.

What is timed is :func:`backprop.step.train_epoch`, the loop ``fit`` runs
every epoch: forward, loss, backward and optimizer update per batch, with the loss
and the hit count kept on the device and read once at the end of the block. That
read is the block's only synchronisation, so the clock stops only after the
device has finished. A block is ``steps`` training steps; the reported step time
is the median over ``repeats`` blocks, after ``warmup`` untimed steps.

Contenders (``--compare``) run the same network, batches, dtype, optimizer and
starting weights, block by block in turn with ours (interleaved), so that a slow
moment of the machine hits all of them alike and their ratio is fair. Before any
step, a contender's outputs on the first batch must be ours (the same network).

``--compare matmuls`` adds the size's own matrix products (:meth:`Size.products`), same shapes,
dtype, device and threads, timed alone the same way: the floor a step cannot go below, so
``step / matmuls`` reads how much the rest of the step (elementwise work, the loss, the
update, allocation, Python) costs on top of its arithmetic.

Every size runs under the thread rule ``fit`` applies (:func:`backends.machine.training_threads`
for batch × parameters, or ``threads`` where given), all of its rows alike.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from backends import BackendUnavailable, get_backend

from .. import losses, optimizers, spec
from ..errors import ConfigError
from ..layers import Layer
from ..model import Sequential, mlp
from ..step import Step, train_epoch
from ..targets import as_inputs, as_targets

DATA_CAP_BYTES = 256 * 2**20  # distinct batches kept on the device per size; more are cycled


@dataclass(frozen=True)
class LayerProduct:
    """A weighted layer's matrix products in one training step.

    Forward ``P (m, k) @ Q (k, n)``: a Dense layer's ``X (B, a) @ W (a, b)`` (the input is P), a
    convolution's ``W2 (out, C·K) @ cols (C·K, B·L)`` (:mod:`backprop.conv`'s im2col; the input,
    as its columns, is Q). Backward, with ``dY (m, n)``: ``Pᵀ @ dY`` (Q's gradient) and
    ``dY @ Qᵀ`` (P's), the input's one only where ``input_grad`` (the step's first layer has none).
    """

    m: int
    k: int
    n: int
    input: str  # "P" or "Q": which operand is the layer's input
    input_grad: bool

    def backward(self) -> list[str]:
        """The backward products as "PtdY" (Pᵀ @ dY) and "dYQt" (dY @ Qᵀ), in that order."""
        return [name for name, of in (("PtdY", "Q"), ("dYQt", "P")) if self.input_grad or of != self.input]

    def flops(self) -> int:
        """2 m k n for each of the layer's products."""
        return 2 * self.m * self.k * self.n * (1 + len(self.backward()))


@dataclass(frozen=True)
class Size:
    """A network and batch to time, with how many steps to run.

    ``warmup`` untimed steps, then ``repeats`` blocks of ``steps`` timed steps. The network is
    an MLP of widths ``layers`` (input, hidden..., output), or, where ``network`` is given
    (``layers`` empty), that :mod:`backprop.spec` text on samples of ``input_shape``
    (``{activation}`` in the text stands for the bench's activation), e.g.
    ``"conv1d(25, 5, stride=2), {activation}, flatten, dense(5)"``.
    """

    name: str
    layers: tuple[int, ...]
    batch: int
    warmup: int
    steps: int
    repeats: int
    data: str = "teacher"  # "xor": the four XOR points; "teacher": labels from a random linear map
    network: str = ""
    input_shape: tuple[int, ...] = ()

    def layer_list(self, activation: str = "relu") -> list[Layer]:
        """New, unbuilt layers of a size given as ``network`` text."""
        return spec.parse(self.network.format(activation=activation))

    def build(self, backend: Any, activation: str, dtype: str, seed: int) -> Sequential:
        """The network on ``backend`` with the weights ``seed`` draws (an MLP as :func:`mlp` makes it)."""
        if not self.network:
            return mlp(list(self.layers), activation=activation, device=backend, dtype=dtype, seed=seed)
        return Sequential(self.layer_list(activation), input_shape=self.input_shape, device=backend,
                          dtype=dtype, seed=seed)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one input sample: ``input_shape``, or an MLP's (inputs,)."""
        return tuple(self.input_shape) if self.network else (self.layers[0],)

    def shapes(self) -> list[tuple[Layer, tuple[int, ...]]]:
        """Each layer of ``network`` with its output shape per sample, from the layers' own shape
        rules (nothing is built)."""
        out, shape = [], self.sample_shape
        for layer in self.layer_list():
            layer.infer(shape)
            shape = tuple(layer.output_shape(shape))
            out.append((layer, shape))
        return out

    def weighted(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """(W's shape, output shape per sample) of each layer of ``network`` with a weight matrix
        ``W``, in order: the layers whose products :meth:`flops` counts."""
        return [(layer.param_shapes()["W"], shape) for layer, shape in self.shapes()
                if "W" in layer.param_shapes()]

    @property
    def n_outputs(self) -> int:
        """Outputs per sample: an MLP's last width, or the size of the network's last output."""
        return math.prod(self.shapes()[-1][1]) if self.network else self.layers[-1]

    @property
    def label(self) -> str:
        """``784-512-512-10``: the input and each weighted layer's output (``6x28x28`` for maps)."""
        if not self.network:
            return "-".join(map(str, self.layers))
        shapes = [self.sample_shape] + [out for _, out in self.weighted()]
        return "-".join("x".join(map(str, shape)) for shape in shapes)

    def flops(self) -> int:
        """:func:`flops_per_step` of this size's network and batch."""
        if not self.network:
            return flops_per_step(self.layers, self.batch)
        first = "W" in self.shapes()[0][0].param_shapes()  # the step asks no input gradient of it
        return _step_flops([_products(W, out) for W, out in self.weighted()], self.batch, first)

    def products(self) -> list[LayerProduct]:
        """Each weighted layer's matrix products, in order, as the layers form them (what the
        ``matmuls`` row times); their FLOPs are :meth:`flops`'s, counted another way."""
        if not self.network:
            layers = [((a, b), (b,)) for a, b in zip(self.layers[:-1], self.layers[1:])]
            first = True
        else:
            layers, first = self.weighted(), "W" in self.shapes()[0][0].param_shapes()
        out = []
        for i, (W, shape) in enumerate(layers):
            grad = bool(i) or not first
            if len(W) == 2:  # Dense, W (in, out)
                out.append(LayerProduct(self.batch, W[0], W[1], "P", grad))
            else:  # a convolution, W (out, C, *kernel) applied at prod(shape[1:]) positions per sample
                out.append(LayerProduct(W[0], math.prod(W[1:]), self.batch * math.prod(shape[1:]), "Q", grad))
        return out

    def widest(self) -> int:
        """The widest side of the network's weight matrices (a convolution's W as (out, in·kernel))."""
        if not self.network:
            return max(self.layers)
        return max(max(W[0], math.prod(W[1:])) for W, _ in self.weighted())


SIZES = {
    "xor": Size("xor", (2, 2, 1), 4, warmup=100, steps=200, repeats=9, data="xor"),
    "small": Size("small", (784, 512, 512, 10), 128, warmup=10, steps=50, repeats=7),
    "medium": Size("medium", (784, 512, 512, 10), 1024, warmup=5, steps=10, repeats=7),
    "large": Size("large", (4096, 4096, 4096, 1000), 4096, warmup=1, steps=1, repeats=5),
    "cnn1d": Size("cnn1d", (), 100, warmup=10, steps=40, repeats=7, input_shape=(1, 40),
                  network="conv1d(25, 5, stride=2), {activation}, conv1d(25, 3, stride=2), {activation}, "
                          "conv1d(25, 3, stride=2), {activation}, flatten, dense(5)"),
    "lenet": Size("lenet", (), 128, warmup=3, steps=10, repeats=7, input_shape=(1, 28, 28),
                  network="conv2d(6, 5, padding=2), {activation}, maxpool2d(2), conv2d(16, 5), {activation}, "
                          "maxpool2d(2), flatten, dense(120), {activation}, dense(84), {activation}, "
                          "dense(10)"),
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
    return _step_flops([a * b for a, b in zip(layers[:-1], layers[1:])], batch)


def _products(W: tuple[int, ...], out: tuple[int, ...]) -> int:
    """Multiply-adds per sample of a layer's forward product with weights of shape ``W``: each of its
    outputs ``out`` (channels or features first) sums W's entries per output channel (a Dense W
    (a, b): a per output; a convolution's (out, in, *kernel): in·kernel)."""
    return math.prod(out) * math.prod(W) // out[0]


def _step_flops(products: list[int], batch: int, first_skips: bool = True) -> int:
    """A step's matrix-product FLOPs from each weighted layer's multiply-adds per sample: forward,
    weight gradient and input gradient, 2 FLOPs per multiply-add each, but the input gradient of
    the first layer when it is weighted (``first_skips``: the training step asks none of it)."""
    return 2 * batch * (3 * sum(products) - (products[0] if first_skips else 0))


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
    """Host inputs (n_batches * batch, *sample_shape) float64 and int64 labels (n_batches * batch,).

    XOR size: the four XOR points repeated. Others: standard normal inputs labelled
    by a random linear "teacher", so the loss falls as it would on real data.
    """
    rng = np.random.default_rng(seed)
    n, n_in, n_out = n_batches * size.batch, math.prod(size.sample_shape), size.n_outputs
    if size.data == "xor":
        points = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        X = np.resize(points, (n, 2))
        return X, (X[:, 0] != X[:, 1]).astype(np.int64)
    X = rng.standard_normal((n, n_in))
    teacher = rng.standard_normal((n_in, max(n_out, 1)))
    scores = X @ teacher
    labels = (scores[:, 0] > 0) if n_out == 1 else np.argmax(scores, axis=1)
    return np.reshape(X, (n, *size.sample_shape)), labels.astype(np.int64)


def batch_spans(size: Size, n_batches: int, count: int) -> list[tuple[int, int]]:
    """``count`` consecutive batches, cycling over the ``n_batches`` held on the device."""
    b = size.batch
    return [((i % n_batches) * b, (i % n_batches + 1) * b) for i in range(count)]


def distinct_batches(size: Size, itemsize: int) -> int:
    per_batch = size.batch * (math.prod(size.sample_shape) + size.n_outputs) * itemsize
    return max(1, min(size.steps, DATA_CAP_BYTES // per_batch))


class BackpropTrainer:
    """Our model, trained through ``train_epoch`` (the real ``fit`` loop)."""

    label = "backprop"

    def __init__(self, backend: Any, size: Size, activation: str, loss: str, optimizer: dict,
                 dtype: str, X: np.ndarray, labels: np.ndarray, seed: int) -> None:
        self.backend = backend
        self.model = size.build(backend, activation, dtype, seed)
        model = self.model
        self.loss = losses.get(loss)
        self.step = Step(model, self.loss, _our_optimizer(optimizer))
        with backend.activate():
            self.X = as_inputs(backend, model.dtype, X, model.input_shape)
            self.T, self.labels = as_targets(backend, model.dtype, labels, self.loss, model.n_outputs,
                                             X.shape[0])

    def initial_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W, b) per Dense layer of an MLP as host arrays: the others start from these."""
        host = [weights for _, _, params in self.layer_copies() for weights in params.values()]
        return list(zip(host[0::2], host[1::2]))

    def layer_copies(self) -> list[tuple[str, dict, dict[str, np.ndarray]]]:
        """Each layer as (registry name, settings, parameters as host copies), for a contender to
        build the same network with the same starting weights."""
        return [(type(layer).name, layer.config(),
                 {k: self.backend.to_numpy(v).copy() for k, v in layer.params.items()})  # a view on NumPy
                for layer in self.model.layers]

    def outputs(self, start: int, stop: int) -> np.ndarray:
        """The network's outputs (logits) for the samples start:stop, on the host."""
        with self.backend.activate():
            return self.backend.to_numpy(self.model(self.X[start:stop])).copy()

    def run(self, spans: list[tuple[int, int]]) -> float:
        """Train one step per batch in ``spans``; the mean loss, read once at the end."""
        with self.backend.activate():
            total, _ = train_epoch(self.step, self.X, self.T, self.labels, spans)
            return float(total) / sum(stop - start for start, stop in spans)


class MatmulTrainer:
    """A size's own matrix products (:meth:`Size.products`) and nothing else, one step's worth per
    batch: forward through the layers, then backward from the last, each product allocating its
    result as the step's does. The operands are random arrays of the step's shapes and layouts
    (a transposed operand is a view, as the layers hand it to the BLAS)."""

    label = "matmuls"

    def __init__(self, backend: Any, products: list[LayerProduct], dtype: str, seed: int) -> None:
        self.backend = backend
        rng = np.random.default_rng(seed)
        with backend.activate():
            def draw(rows: int, cols: int) -> Any:
                return backend.asarray(rng.standard_normal((rows, cols)).astype(dtype), dtype)

            layers = [(draw(p.m, p.k), draw(p.k, p.n), draw(p.m, p.n), p) for p in products]
        self.pairs = [(P, Q) for P, Q, _, _ in layers]
        for P, Q, dY, p in reversed(layers):
            self.pairs += [(P.T, dY) if name == "PtdY" else (dY, Q.T) for name in p.backward()]

    def flops(self) -> int:
        """FLOPs of one step's products, from the operands' own shapes."""
        return sum(2 * A.shape[0] * A.shape[1] * B.shape[1] for A, B in self.pairs)

    def run(self, spans: list[tuple[int, int]]) -> float:
        """One step's products per batch in ``spans``, the device synchronised at the end; NaN
        for the loss (there is none)."""
        with self.backend.activate():
            for _ in spans:
                for A, B in self.pairs:
                    A @ B
            self.backend.synchronize()
        return math.nan


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


CONTENDERS = ("torch", "numpy-reference", "matmuls")
"""What ``--compare`` may name: PyTorch eager, the hand-written NumPy (CuPy on a GPU) step, and
the size's own matrix products timed alone (on every device)."""


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
    threads: int | None = None  # CPU threads for every row; None: the thread rule of fit


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


def _contenders(settings: Settings, backend: Any, ours: BackpropTrainer, size: Size, loss: str,
                X: np.ndarray, labels: np.ndarray) -> tuple[list, list[str]]:
    """The --compare trainers for ``backend`` as (label, backend that holds their memory,
    factory), and a note for each one that cannot run here. They start from ``ours``'s weights,
    taken before its warm-up moves them."""
    made, notes = [], []
    common = dict(loss=loss, optimizer=OPTIMIZER_SETTINGS[settings.optimizer], dtype=settings.dtype, X=X,
                  labels=labels)
    tf32 = _precision(settings, backend) == "tf32"
    for what in settings.compare:
        if what == "matmuls":  # any device: the products are the backend's own
            made.append(("matmuls", backend, partial(MatmulTrainer, backend, size.products(), settings.dtype,
                                                     settings.seed)))
            continue
        if what == "numpy-reference" and size.network:
            continue  # the hand-written step is an MLP's: said once for all sizes (see _not_applicable)
        try:
            if backend.name not in ("numpy", "cupy"):
                raise BackendUnavailable(f"it runs beside cpu and cuda devices only, not {backend.label}")
            if what == "torch":
                from backprop.contenders.torch_reference import TorchTrainer

                device = "cpu" if backend.name == "numpy" else backend.label
                holder = get_backend(f"torch:{device}", tf32=tf32)  # raises when torch is missing
                made.append(("torch", holder, partial(TorchTrainer, device, ours.layer_copies(), tf32=tf32,
                                                      **common)))
            else:
                from backprop.contenders.handwritten import HandwrittenTrainer

                label = "numpy-reference" if backend.name == "numpy" else "cupy-reference"
                made.append((label, backend, partial(HandwrittenTrainer, backend, ours.initial_weights(),
                                                     settings.activation, **common)))
        except BackendUnavailable as exc:
            notes.append(f"--compare {what} skipped on {backend.label}: {exc}")
    return made, notes


def _not_applicable(settings: Settings) -> list[str]:
    """One note naming the sizes the hand-written step cannot train (it is an MLP's), if asked for."""
    own = [s.name for s in settings.sizes if s.network]
    if "numpy-reference" not in settings.compare or not own:
        return []
    return [f"--compare numpy-reference does not apply to {', '.join(own)}: the hand-written step "
            "trains MLPs only"]


def _same_outputs(ours: BackpropTrainer, label: str, trainer: Any, size: Size, precisions: tuple[str, str],
                  span: tuple[int, int]) -> None:
    """Before any step: a contender's network gives our outputs on the first batch, or the bench
    stops (a contender built another network: a bug, and its timings would mean nothing)."""
    if not hasattr(trainer, "outputs"):
        return
    mine, theirs = ours.outputs(*span), trainer.outputs(*span)
    rtol, atol = tolerance(*precisions)
    worst = float(np.max(np.abs(mine - theirs) - rtol * np.abs(mine)))
    if not worst <= atol:
        raise RuntimeError(f"{label} builds another {size.name} network than ours: its outputs before "
                           f"training differ by up to {float(np.max(np.abs(mine - theirs))):.3g} (allowed "
                           f"{atol:g} + {rtol:g} x output); a bug in the contender, please report it")


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
    flops = size.flops()
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
    loss = "bce" if size.n_outputs == 1 else "ce"
    optimizer = OPTIMIZER_SETTINGS[settings.optimizer]
    itemsize = np.dtype(settings.dtype).itemsize
    n_batches = distinct_batches(size, itemsize)
    X, labels = synthetic_data(size, settings.seed, n_batches)
    warm = batch_spans(size, n_batches, size.warmup)
    block = batch_spans(size, n_batches, size.steps)

    ours, held = _build(backend, lambda: BackpropTrainer(backend, size, settings.activation, loss, optimizer,
                                                         settings.dtype, X, labels, settings.seed))
    # The contenders start from ours, before the warm-up moves them.
    made, notes = _contenders(settings, backend, ours, size, loss, X, labels)
    built = [(label, holder, *_build(holder, factory)) for label, holder, factory in made]
    precision = _precision(settings, backend)
    for label, _, trainer, _ in built:
        _same_outputs(ours, label, trainer, size, (precision, precision), warm[0])
    # the step's work as fit gives it to the thread rule (the optimizer's own count)
    with size_threads(settings, backend, ours.step.optimizer.step_work(size.batch, ours.model)) as threads:
        trainers, peaks = [("backprop", ours)], [_warm_up(backend, ours, warm, held)]
        for label, holder, trainer, held in built:
            trainers.append((label, trainer))
            peaks.append(_warm_up(holder, trainer, warm, held))
        times, last_loss = _time_blocks([trainer for _, trainer in trainers], block, size.repeats)
    rows = [_row(settings, size, backend, ceiling, label, spent, peak_bytes, final)
            for (label, _), spent, peak_bytes, final in zip(trainers, times, peaks, last_loss)]
    ours_step = rows[0]["step_s"]
    for row in rows:
        row["backprop_speedup"] = row["step_s"] / ours_step  # > 1: ours is faster
        row["threads"] = threads  # None on a GPU
        progress(f"{row['size']:<7} {row['device']:<8} {row['impl']:<16} {format_time(row['step_s'])}/step")
    return rows, notes


@contextlib.contextmanager
def size_threads(settings: Settings, backend: Any, multiply_adds: int) -> Iterator[int | None]:
    """Run the block under the CPU threads ``fit`` would give a step of ``multiply_adds``
    (``settings.threads`` where given), NumPy's BLAS and PyTorch's pool alike, so that every row of
    the size runs on the same threads; yields that count (None on a GPU, where nothing changes)."""
    from backends.machine import step_threads, training_threads

    threads = None if backend.is_gpu else settings.threads or step_threads(multiply_adds)
    with training_threads(backend, multiply_adds, settings.threads), contextlib.ExitStack() as stack:
        if threads is not None and "torch" in settings.compare:
            from backprop.contenders.torch_reference import torch_threads

            before = torch_threads()
            torch_threads(threads)
            stack.callback(torch_threads, before)
        yield threads


def floor_ratios(rows: list[dict]) -> list[dict]:
    """Per size and device with a ``matmuls`` row: our step over the time of its own matrix products
    (1.0: nothing but the products)."""
    out = []
    for row in rows:
        if row["impl"] != "matmuls":
            continue
        ours = next(r for r in rows if (r["size"], r["device"], r["impl"]) == (row["size"], row["device"],
                                                                               "backprop"))
        out.append({"size": row["size"], "device": row["device"], "step_s": ours["step_s"],
                    "matmuls_s": row["step_s"], "ratio": ours["step_s"] / row["step_s"]})
    return out


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
        group = [r for r in rows if r["size"] == name and r["impl"] != "matmuls"]  # no loss of its own
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
    bad = [s.name for s in settings.sizes if s.data == "xor" and s.n_outputs != 1]
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
    ceiling = gemm_ceiling(backend, settings.dtype, max(s.widest() for s in settings.sizes))
    return {"device": backend.label, **backend.describe(), "precision": _precision(settings, backend),
            "ceiling_gemm": ceiling["gemm"], "ceiling_tflops": ceiling["flops_per_s"] / 1e12}


def run(settings: Settings, progress: Callable[[str], None] = lambda line: None) -> dict:
    """Measure every size on every device; the report that ``backprop bench`` prints.

    Raises BackendUnavailable (a device cannot run here) or ConfigError (bad settings).
    """
    _check_settings(settings)
    backends_ = _backends(settings)
    report = _new_report(settings, [b.label for b in backends_])
    report["notes"] = _not_applicable(settings)
    report["devices"] = [_describe_device(settings, backend, progress) for backend in backends_]
    for size in settings.sizes:
        for backend, device in zip(backends_, report["devices"]):
            rows, notes = _measure_size(settings, size, backend, device["ceiling_tflops"] * 1e12, progress)
            report["results"] += rows
            report["notes"] += [n for n in notes if n not in report["notes"]]
    report["speedups"] = _speedups(report["results"])
    report["step_over_matmuls"] = floor_ratios(report["results"])
    report["agreement"] = _agreement(report["results"])
    report["ok"] = all(a["ok"] is not False for a in report["agreement"])
    return report
