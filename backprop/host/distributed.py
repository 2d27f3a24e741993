"""Data-parallel training: every rank a replica, each global batch split across ranks.

Every rank holds the whole training set and the same model, draws the same
permutation each epoch (the shuffle RNG is replicated), and takes its contiguous
part of every **global** batch: rank r of R gets ``B // R`` rows, one more for the
first ``B % R`` ranks, so a short last batch may leave a rank nothing. The
gradient of the global batch's mean loss is then exact::

    g = sum over ranks of (b_r / B) * g_r      (g_r: the mean-loss gradient of rank r's b_r rows)

so each rank weighs its rows by ``b_r / B`` (1 for a summed loss; given to the loss
as sample weights, which makes its value the part's loss sum over B), the
communicator sums the one flat gradient buffer (P,), and every rank takes the
identical update. An empty part contributes zeros. The user's sample weights are
multiplied in: ``fit`` scales them to mean 1 over the whole training part before any
split.

Per epoch, the training totals, the validation totals (each rank evaluates its
own slice of the validation part) and "should we stop" are each reduced once, so
every rank records the same epoch and stops at the same one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends import to_numpy_any
from backends.comm import LAUNCH_HINT, Communicator, connect, launched_by_mpi, nccl_unusable

from .. import batching, flat
from .._typing import Array
from ..drivers import Alone, MiniBatch, TrainingData, register_ranks
from ..errors import ConfigError, DataError
from ..layers import chain
from ..losses import Loss


def part(n: int, rank: int, size: int) -> tuple[int, int]:
    """``(start, stop)`` of rank ``rank``'s contiguous part of ``n`` rows split over ``size``
    ranks: ``n // size`` rows each, one more for the first ``n % size`` (maybe empty)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


@dataclass
class Plan:
    """One rank's part of an epoch.

    Attributes
    ----------
    rows : int64 host array (n_local,)
        The data rows this rank trains on this epoch, batch after batch.
    spans : list of (start, stop)
        Each global batch's piece of ``rows`` (one per global batch; may be empty).
    shares : list of float
        ``b_r / B`` per batch for a mean loss (1 for a summed one): what this rank's
        gradient is scaled by before the sum.
    sizes : list of int
        Each global batch's size B.
    """

    rows: np.ndarray
    spans: list[tuple[int, int]]
    shares: list[float]
    sizes: list[int]


def plan(order: np.ndarray | None, n: int, batches: list[tuple[int, int]], rank: int, size: int,
         loss: Loss) -> Plan:
    """This rank's rows of each global batch of ``batches`` over the data in ``order`` (None: as is)."""
    order = np.arange(n, dtype=np.int64) if order is None else order
    rows, spans, shares, at = [], [], [], 0
    for start, stop in batches:
        lo, hi = part(stop - start, rank, size)
        rows.append(order[start + lo:start + hi])
        spans.append((at, at + hi - lo))
        shares.append((hi - lo) / (stop - start) if loss.reduction == "mean" else 1.0)
        at += hi - lo
    return Plan(np.concatenate(rows) if rows else order[:0], spans, shares, [b - a for a, b in batches])


def train_epoch(step: Any, comm: Communicator, X: Array, T: Array, labels: Array | None,
                S: Array | None, plan: Plan) -> tuple[float, float | None]:
    """One data-parallel pass: for each global batch, this rank's gradient scaled by its share,
    one all-reduce of one flat buffer (P,), then the hooks and the identical update.

    The share goes in as a sample weight on the rank's rows (a (b_r,) multiply in the
    loss, rather than one over all P gradients): the loss then averages over the global
    batch, ``sum of the rank's losses / B``.

    ``X`` (n_local, F), ``T`` (n_local, K), ``labels``, ``S``: this rank's rows (``plan.rows``).
    Returns the epoch's summed loss and right count over **every** rank, as Python floats
    (one small host reduction: the epoch's synchronisation).
    """
    model, loss = step.model, step.loss
    xp, dtype = model.xp, model.dtype
    shapes = [tuple(p.shape) for p in step.params]
    device = model.backend.device
    values, hits, counts, weights = [], [], [], {}
    for (lo, hi), share, size in zip(plan.spans, plan.shares, plan.sizes):
        if hi > lo:
            T_b, S_b = T[lo:hi, ...], None if S is None else S[lo:hi]
            if share != 1.0:
                if S_b is not None:
                    S_b = S_b * share
                else:  # one vector per part size and share (a few an epoch)
                    if (hi - lo, share) not in weights:
                        weights[hi - lo, share] = xp.full((hi - lo,), share, dtype=dtype, device=device)
                    S_b = weights[hi - lo, share]
            value, Z, _ = step.gradients(X[lo:hi, ...], T_b, S_b)
            buffer = model.flat_gradients()  # the model's own gradient buffer: reduced in place
            values.append(value)
            counts.append(float(size) if loss.reduction == "mean" else 1.0)
            hits.append(loss.correct(xp, Z, T_b, None if labels is None else labels[lo:hi]))
        else:  # nothing of this batch here: this rank adds zeros to the sum
            buffer = xp.zeros((model.n_params,), dtype=dtype, device=device)
        reduced = comm.allreduce(buffer)  # the one all-reduce of the step
        # Reduced in the model's own buffer: its views are the gradients, and the update runs
        # once over the flat buffers (Step.update); otherwise pieces of the sum.
        own = hi > lo and reduced is buffer and model.flat_pair(model.gradient_list()) is not None
        step.apply(model.gradient_list() if own else flat.unflatten(xp, reduced, shapes))
    return reduce_totals(comm, xp, model.backend, dtype, values, counts, hits, loss.classification)


def reduce_totals(comm: Communicator, xp: Any, backend: Any, dtype: Any, values: list, counts: list,
                  hits: list, classifier: bool) -> tuple[float, float | None]:
    """The sums over every rank of ``sum(values * counts)`` and of ``sum(hits)`` (None unless
    ``classifier``), from this rank's per-batch 0-d device arrays; one read from the device."""
    local = np.zeros(2)
    if values:  # a rank with no rows this epoch adds zeros
        parts = [xp.sum(xp.stack(values) * backend.asarray(np.asarray(counts), dtype))]
        if classifier:
            parts.append(xp.astype(xp.sum(xp.stack(hits)), dtype))
        read = to_numpy_any(xp.stack(parts))
        local[:read.shape[0]] = read
    total, correct = comm.allreduce_host(local)
    return float(total), (float(correct) if classifier else None)


def evaluate(model: Any, comm: Communicator, X: Array, T: Array, labels: Array | None, loss: Loss,
             batch_size: int) -> dict[str, float]:
    """Loss (and accuracy) on device arrays ``X`` (N, F), ``T`` (N, K) held by every rank: each
    evaluates its contiguous part and the totals are summed (one small reduction)."""
    xp, n = model.xp, X.shape[0]
    lo, hi = part(n, comm.rank, comm.size)
    layers = model.trunk(loss)
    values, hits, counts = [], [], []
    for start, stop in batching.spans(hi - lo, batch_size):
        Z, _ = chain(layers, X[lo + start:lo + stop, ...], input_grad=False)
        T_b = T[lo + start:lo + stop, ...]
        values.append(loss.forward(Z, T_b)[0])
        counts.append(float(stop - start) if loss.reduction == "mean" else 1.0)
        hits.append(loss.correct(xp, Z, T_b, None if labels is None else labels[lo + start:lo + stop]))
    total, correct = reduce_totals(comm, xp, model.backend, model.dtype, values, counts, hits,
                                   loss.classification)
    value, accuracy = batching.means(total, correct, n, T, loss)
    return {"loss": value} if accuracy is None else {"loss": value, "accuracy": accuracy}


def replicate(comm: Communicator, model: Any, optimizer: Any, watch: Any) -> None:
    """Make every rank's model, optimizer state, shuffle and device RNGs and early-stopping progress
    rank 0's.

    Every rank builds them the same way from the seed (or the same checkpoint), so this
    is a guarantee rather than a necessity: one broadcast before training, in host form.
    """
    if comm.size == 1:
        return
    state = model.state

    def host(arrays: list | None) -> list | None:
        return None if arrays is None else [to_numpy_any(a).copy() for a in arrays]

    snapshot = None
    if comm.root:
        snapshot = {
            "params": to_numpy_any(model.flat_parameters()).copy(),
            "t": optimizer.t,
            "slots": [{k: to_numpy_any(v).copy() for k, v in slots.items()} for slots in optimizer.state],
            "rng": state.shuffle_rng.get_state(), "epoch": state.epoch,
            "device_rng": None if state.device_rng is None else state.device_rng.get_state(),
            "resume": host(state.resume_params),
            "watch": None if watch is None else (watch.best, watch.waited, watch.best_epoch,
                                                 host(watch.best_params)),
        }
    snapshot = comm.bcast(snapshot)
    if comm.root:
        return
    backend, dtype = model.backend, model.dtype

    def device(arrays: list | None) -> list | None:
        return None if arrays is None else [backend.asarray(a, dtype, copy=True) for a in arrays]

    with backend.activate():
        model.set_flat_parameters(snapshot["params"])
        optimizer.reset(keep_owner=True)  # the new state is checked against the parameters at the next step
        optimizer.t = snapshot["t"]
        optimizer.state = [dict(zip(s, device(list(s.values())))) for s in snapshot["slots"]]
        state.shuffle_rng.set_state(snapshot["rng"])
        if snapshot["device_rng"] is not None:  # one mask stream: each rank keeps its rows of it
            state.device_rng.set_state(snapshot["device_rng"])
        state.epoch, state.resume_params = snapshot["epoch"], device(snapshot["resume"])
        if watch is not None:
            watch.best, watch.waited, watch.best_epoch, best = snapshot["watch"]
            watch.best_params = device(best)


def full_batch_gradients(step: Any, comm: Communicator, X: Array, T: Array, labels: Array | None,
                         S: Array | None) -> tuple[Array, list[Array], Array | None]:
    """``(loss, grads, right)`` of the whole batch ``X`` (N, F), ``T`` (N, K) that every rank holds,
    as a full-batch optimizer needs them: each rank differentiates its contiguous part, and
    the scaled gradient, the loss and the right count travel in one all-reduce of (P + 2,).
    ``right`` is None for a loss that counts none."""
    model, loss = step.model, step.loss
    xp, dtype, n, P = model.xp, model.dtype, X.shape[0], model.n_params
    lo, hi = part(n, comm.rank, comm.size)
    share = (hi - lo) / n if loss.reduction == "mean" else 1.0
    if hi > lo:
        value, Z, _ = step.gradients(X[lo:hi, ...], T[lo:hi, ...], None if S is None else S[lo:hi])
        right = loss.correct(xp, Z, T[lo:hi, ...], None if labels is None else labels[lo:hi])
        pieces = [model.flat_gradients() * share, xp.reshape(value * share, (1,))]
        if right is not None:
            pieces.append(xp.reshape(xp.astype(right, dtype), (1,)))
        buffer = xp.concat(pieces)
    else:
        buffer = xp.zeros((P + (2 if loss.classification else 1),), dtype=dtype, device=model.backend.device)
    buffer = comm.allreduce(buffer)
    grads = flat.unflatten(xp, buffer[:P], [tuple(p.shape) for p in step.params])
    return buffer[P], grads, (buffer[P + 1] if buffer.shape[0] > P + 1 else None)


class DataParallel(MiniBatch):
    """The data-parallel driver: every rank draws the same permutation, takes its part of each
    global batch (:func:`plan`, gathered once an epoch) and trains it with :func:`train_epoch`."""

    def __init__(self, step: Any, data: TrainingData, batch_size: int, shuffle: bool, rng: Any,
                 comm: Communicator) -> None:
        super().__init__(step, data, batch_size, shuffle, rng)
        self.comm = comm

    def train(self, order: np.ndarray | None) -> tuple[float, float | None]:
        d, model, comm = self.data, self.step.model, self.comm
        part = plan(order, d.n, self.spans, comm.rank, comm.size, self.step.loss)
        xp, rows = model.xp, model.backend.asarray(part.rows)
        Xe, Te = xp.take(d.X, rows, axis=0), xp.take(d.T, rows, axis=0)
        Le = None if d.labels is None else xp.take(d.labels, rows, axis=0)
        Se = None if d.S is None else xp.take(d.S, rows, axis=0)
        return train_epoch(self.step, comm, Xe, Te, Le, Se, part)


class Ranks(Alone):
    """The ranks of ``comm`` training one model together: what a fit asks of them (the same data,
    rank 0's start, validation split over them, stopping together, the mini-batch driver)."""

    def __init__(self, comm: Communicator) -> None:
        self.comm = comm

    def check_same(self, backend: Any, arrays: dict[str, Array | None], settings: dict[str, list]) -> None:
        check_same_data(self.comm, {**{name: None if a is None else backend.to_numpy(a)
                                       for name, a in arrays.items()}, **settings})

    def replicate(self, model: Any, optimizer: Any, watch: Any) -> None:
        replicate(self.comm, model, optimizer, watch)

    def evaluate(self, model: Any, X: Array, T: Array, labels: Array | None, loss: Loss,
                 batch_size: int) -> dict[str, float]:
        return evaluate(model, self.comm, X, T, labels, loss, batch_size)

    def agree(self, stop: bool) -> bool:
        return self.comm.any(stop)

    def mini_batch(self, *args: Any, **kwargs: Any) -> DataParallel:
        return DataParallel(*args, comm=self.comm, **kwargs)


register_ranks(Ranks)


def fingerprint(parts: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """``(name, shape, checksum)`` of each named part: a host array of any shape and dtype
    (object arrays by their values' text), a list of names, or None."""
    prints = []
    for name, value in parts.items():
        if value is None or isinstance(value, (list, tuple)):
            prints.append((name, None if value is None else len(value), repr(value)))
            continue
        a = np.ascontiguousarray(value)
        data = repr(a.tolist()).encode() if a.dtype.hasobject else a.tobytes()
        prints.append((name, a.shape, hashlib.sha256(a.dtype.str.encode() + data).hexdigest()))
    return prints


def check_same_data(comm: Communicator, parts: dict[str, Any]) -> None:
    """Raise the same DataError on every rank unless every rank holds the same ``parts`` as rank 0
    (shape and checksum of each: data, and settings as one-item lists): ranks that read
    different files or were given other settings would otherwise train on a mix, hang, or
    stop in a collective of another length. One gather of small objects, so that
    differing shapes cannot cut a message short."""
    if comm.size == 1:
        return
    every = comm.allgather(fingerprint(parts))
    differ = []
    for rank, prints in enumerate(every[1:], start=1):
        for (name, shape, digest), (_, shape0, digest0) in zip(prints, every[0]):
            if shape != shape0:
                differ.append(f"rank {rank} has {name} of shape {_shape(shape)}, rank 0 {_shape(shape0)}")
                break
            if digest != digest0:
                differ.append(f"rank {rank} has other values in {name}")
                break
    if differ:
        error = DataError(f"the ranks differ ({'; '.join(differ)}): every rank of {comm.size} must "
                          "read the same data (the same file on every machine) with the same settings")
        error.every_rank = True  # every rank raises it alike: the command line prints it once
        raise error


def _shape(shape: Any) -> str:
    if isinstance(shape, tuple):
        return " × ".join(map(str, shape))
    return "none" if shape is None else str(shape)


def join(device: str, distributed: bool | Communicator) -> tuple[Communicator, str, list[str]]:
    """``(communicator, this rank's device, notes)`` for a run asked to train data-parallel.

    ``distributed`` is True (join the MPI job this process was launched in) or a
    communicator to use as is. On CuPy GPUs the gradients go over NCCL when CuPy has it
    (else through the host over MPI, said in a note), and ``"cuda"`` without an index
    becomes the GPU of this rank's place on its machine.
    """
    notes = []
    gpu = device.split(":")[0] == "cuda"
    if isinstance(distributed, Communicator):
        comm = distributed
    else:
        comm = connect(gpu=gpu)
        if comm.size == 1 and not launched_by_mpi():
            notes.append(f"--distributed with one process: {LAUNCH_HINT}")
    if gpu:
        if comm.name != "nccl":
            notes.append(f"distributed on GPUs without NCCL ({nccl_unusable()}): the gradients go through "
                         "the host over MPI, one device synchronisation per step")
        if device == "cuda":
            device = f"cuda:{comm.local_rank}"
        elif comm.name == "nccl" and device != f"cuda:{comm.local_rank}":
            raise ConfigError(f"with NCCL each rank takes the GPU of its place on the machine: use --device "
                              f"cuda, not {device}")
    return comm, device, notes
