"""What ``tests/test_distributed.py`` runs under ``mpiexec``: ``python -m mpi4py mpi_cases.py CASE OUT ...``.

Each case runs on every rank and rank 0 writes one JSON result to OUT, which the
test reads. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from backends.comm import MPIComm
from backprop.errors import ConfigError, DataError
from backprop.model import mlp

N, FEATURES = 13, 3  # validation_split 0.25 holds out 3 and trains on 10

# name: (optimizer, loss, outputs, batch_size, dtype, fit extras)
CASES = {
    "momentum-ce": ("momentum", "ce", 3, 4, "float64", {}),
    "adam-ce-weighted": ("adam", "ce", 3, 3, "float64", {"sample_weight": True}),
    "sgd-mse-decay": ("sgd", "mse", 2, 4, "float64", {"weight_decay": 1e-3}),
    "adam-sse": ("adam", "sse", 2, 4, "float64", {}),
    "adam-bce-early": ("adam", "bce", 1, 4, "float64", {"early_stopping": 1, "lr": 0.1}),  # stops at 5
    "lbfgs-ce": ("lbfgs", "ce", 3, None, "float64", {}),
    "adam-ce-float32": ("adam", "ce", 3, 4, "float32", {}),
}


def data(loss: str, outputs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(N, FEATURES))
    if loss == "ce":
        y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.3)
    elif loss == "bce":
        y = (X[:, 0] * X[:, 2] + X[:, 1] > 0).astype(np.int64)
    else:
        y = np.stack([X[:, 0] * X[:, 1], np.sin(X[:, 2])], axis=1)[:, :outputs]
    return X, y, rng.uniform(0.2, 3.0, size=N)


def train(name: str, comm) -> tuple[np.ndarray, list[dict], bool]:
    optimizer, loss, outputs, batch, dtype, extra = CASES[name]
    X, y, weights = data(loss, outputs)
    extra = dict(extra)
    if extra.pop("sample_weight", False):
        extra["sample_weight"] = weights
    output = {"ce": "softmax", "bce": "sigmoid"}.get(loss)
    model = mlp([FEATURES, 6, outputs], activation="tanh", output=output, dtype=dtype, seed=3)
    history = model.fit(X, y, loss=loss, optimizer=optimizer, epochs=6, batch_size=batch,
                        validation_split=0.25, comm=comm, **extra)
    params = np.asarray(model.flat_parameters(), dtype=np.float64).copy()
    return params, history.records, history.stopped_early


def relative(a: np.ndarray, b: np.ndarray, floor: float = 1e-8) -> float:
    """Largest elementwise |a - b| / |b| over entries with |b| > floor (and |a - b| itself below)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.maximum(np.abs(b), floor)
    return float(np.max(np.abs(a - b) / scale)) if a.size else 0.0


def equivalence(out: str) -> None:
    comm = MPIComm()
    results = {}
    for name in CASES:
        params, records, stopped = train(name, comm)
        every = comm.comm.gather(params, root=0)
        if comm.rank:
            continue
        ref_params, ref_records, ref_stopped = train(name, None)
        keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
        series = [[r.get(k, 0.0) for r in records] for k in keys]
        ref_series = [[r.get(k, 0.0) for r in ref_records] for k in keys]
        results[name] = {
            "params": relative(params, ref_params),
            "records": relative(np.array(series), np.array(ref_series))
            if len(records) == len(ref_records) else float("inf"),
            "epochs": [len(records), len(ref_records)], "stopped": [stopped, ref_stopped],
            "ranks_identical": all(np.array_equal(p, every[0]) for p in every),
            "samples_per_s_seconds": [r["samples_per_s"] * r["seconds"] for r in records],
        }
    # Rank 0 broadcasts the starting point: ranks that built other weights (another seed, so
    # also another shuffle stream) end with the weights of rank 0's seed.
    X, y, _ = data("ce", 3)
    model = mlp([FEATURES, 6, 3], output="softmax", dtype="float64", seed=3 + comm.rank)
    model.fit(X, y, optimizer="adam", epochs=3, batch_size=4, comm=comm)
    seeded = comm.comm.gather(np.asarray(model.flat_parameters()).copy(), root=0)
    device_rngs = comm.comm.gather(model.state.device_rng.get_state(), root=0)  # seeded 3 + rank
    # A callback asking to stop on the last rank alone stops every rank after that epoch.
    model = mlp([FEATURES, 6, 3], output="softmax", dtype="float64", seed=3)
    history = model.fit(X, y, optimizer="adam", epochs=5, batch_size=4, comm=comm,
                        callbacks=[lambda record, _m: comm.rank == comm.size - 1 and record["epoch"] == 2])
    stopped_at = comm.comm.gather(len(history), root=0)
    if comm.rank == 0:
        reference = mlp([FEATURES, 6, 3], output="softmax", dtype="float64", seed=3)
        reference.fit(X, y, optimizer="adam", epochs=3, batch_size=4)
        results["replicated"] = max(relative(p, np.asarray(reference.flat_parameters())) for p in seeded)
        results["callback_stop_epochs"] = stopped_at
        results["device_rng_seeds"] = sorted({state["seed"] for state in device_rngs})
    # A distributed run saved after 2 epochs and resumed to 4 (optimizer moments, shuffle
    # stream and early-stopping progress from the checkpoint) matches 4 epochs in one process.
    from backprop.runner import Run

    settings = {"hidden": [8], "dtype": "float64", "batch_size": 50, "early_stopping": 3}
    path = f"{out}.safetensors"
    Run("moons", save=path, distributed=True, epochs=2, **settings).fit()
    Run(resume=path, distributed=True, epochs=4).fit()
    resumed = np.asarray(Run(resume=path, epochs=5).model.flat_parameters()).copy()  # not training
    if comm.rank == 0:
        straight = Run("moons", epochs=4, **settings)
        straight.fit()
        results["resumed"] = relative(resumed, np.asarray(straight.model.flat_parameters()))
    try:  # Levenberg–Marquardt refuses to train data-parallel
        model = mlp([FEATURES, 4, 1], dtype="float64")
        model.fit(*data("mse", 1)[:2], loss="mse", optimizer="lm", epochs=2, comm=comm)
        refusal = None
    except ConfigError as exc:
        refusal = str(exc)
    mixed = []  # ranks handing fit other rows or settings: refused on every rank, before any collective
    X, y, _ = data("ce", 3)
    for changed in ({"X": X + comm.rank}, {"epochs": 1 + comm.rank}, {"batch_size": 4 + comm.rank},
                    {"lr": 0.1 * (1 + comm.rank)}):
        try:
            mlp([FEATURES, 4, 3], output="softmax").fit(**{"X": X, "y": y, "epochs": 1, **changed},
                                                         comm=comm)
            mixed.append(None)
        except DataError as exc:
            mixed.append(str(exc))
    if comm.rank == 0:
        results["lm_refusal"] = refusal
        results["mixed_data"] = mixed
        results["size"] = comm.size
        with open(out, "w") as f:
            json.dump(results, f)


def failing(rank: str, epoch: str, kind: str, *argv: str) -> None:
    """``backprop train`` (the CLI's main) in which rank ``rank`` raises in epoch ``epoch``:
    a DataError (``kind`` "expected": one line, exit 2) or a RuntimeError (a bug: exit 1)."""
    from backprop import step
    from backprop.cli import main
    from backprop.errors import DataError

    comm = MPIComm()
    apply = step.Step.apply

    def broken(self, grads):
        if comm.rank == int(rank) and self.model.epoch + 1 == int(epoch):
            error = DataError if kind == "expected" else RuntimeError
            raise error(f"injected failure on rank {rank} in epoch {epoch}")
        return apply(self, grads)

    step.Step.apply = broken
    sys.exit(main(list(argv)))


def interrupt(log: str, rank: str, epoch: str, *argv: str) -> None:
    """``backprop train`` in which rank ``rank`` gets one SIGINT (a first Ctrl-C) in epoch
    ``epoch``; every rank writes its exit status to ``log.RANK``."""
    import os
    import signal

    from backprop import step
    from backprop.cli import main

    comm = MPIComm()
    apply = step.Step.apply

    def signalled(self, grads):
        if comm.rank == int(rank) and self.model.epoch + 1 == int(epoch) and not getattr(self, "sent", 0):
            self.sent = 1
            os.kill(os.getpid(), signal.SIGINT)
        return apply(self, grads)

    step.Step.apply = signalled
    code = main(list(argv))
    with open(f"{log}.{comm.rank}", "w") as f:
        f.write(f"{code}\n")
    sys.exit(code)


def cli(log: str, *argv: str) -> None:
    """``backprop train`` with every checkpoint write logged with the rank that made it;
    ``{rank}`` in an argument becomes the rank (a file per rank)."""
    from backprop import checkpoint
    from backprop.cli import main

    comm = MPIComm()
    save = checkpoint.save

    def logged(*args, **kwargs):
        with open(f"{log}.{comm.rank}", "a") as f:
            f.write(f"{comm.rank}\n")
        return save(*args, **kwargs)

    checkpoint.save = logged
    sys.exit(main([arg.replace("{rank}", str(comm.rank)) for arg in argv]))


if __name__ == "__main__":
    entry = {"equivalence": equivalence, "failing": failing, "cli": cli, "interrupt": interrupt}
    entry[sys.argv[1]](*sys.argv[2:])
