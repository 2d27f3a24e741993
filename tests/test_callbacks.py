"""The seams of fit: drivers (mini-batch, data-parallel, full-batch) and callbacks.

Each test states an exact expectation: the order of the hooks, bit-equal weights
(before a divergent epoch, the best epoch, SciPy's own iterates), or an interface
that cannot be written into (frozen or slotted objects).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import backprop as bp
from backends.comm import Solo
from backprop import drivers
from backprop.callbacks import Callback, FitContext


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int), np.sin(X[:, 0]) + 0.1 * X[:, 2]


def weights(model):
    return [np.array(p, copy=True) for p in model.parameter_list()]


def assert_same_bits(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


class Recorder(Callback):
    """Writes down every hook it sees, with the weights at that moment."""

    def __init__(self):
        self.events, self.weights, self.records = [], {}, []

    def on_begin(self, fit):
        self.events.append(("begin", fit.model.epoch))
        self.weights["begin"] = weights(fit.model)

    def on_epoch_begin(self, epoch, fit):
        self.events.append(("epoch_begin", epoch))
        self.weights[epoch] = weights(fit.model)

    def on_epoch_end(self, record, fit):
        self.events.append(("epoch_end", record["epoch"]))
        self.records.append(record)
        self.weights["end", record["epoch"]] = weights(fit.model)

    def on_end(self, fit):
        self.events.append(("end", fit.model.epoch))
        self.weights["end"] = weights(fit.model)


def test_a_callback_object_sees_begin_each_epoch_and_end_in_order(numpy_backend):
    X, y, _ = data()
    model = bp.mlp([3, 5, 2], seed=0)
    seen = Recorder()
    plain = []  # the plain f(record, model) protocol runs beside it, and its True stops
    history = model.fit(X, y, epochs=5, batch_size=16, callbacks=[
        seen, lambda record, m: plain.append(record["epoch"]) or record["epoch"] == 3])
    assert seen.events == [("begin", 0), ("epoch_begin", 0), ("epoch_end", 1), ("epoch_begin", 1),
                           ("epoch_end", 2), ("epoch_begin", 2), ("epoch_end", 3), ("end", 3)]
    assert plain == [1, 2, 3]
    assert [r is h for r, h in zip(seen.records, history.records)] == [True] * 3
    # A second fit counts on: its epochs and records follow the first's.
    model.fit(X, y, epochs=2, batch_size=16, callbacks=[seen])
    assert seen.events[-6:] == [("begin", 3), ("epoch_begin", 3), ("epoch_end", 4), ("epoch_begin", 4),
                                ("epoch_end", 5), ("end", 5)]
    assert [r["epoch"] for r in model.history.records] == [1, 2, 3, 4, 5]


def test_a_callback_that_is_neither_is_refused_in_one_line(numpy_backend):
    X, y, _ = data()
    model = bp.mlp([3, 5, 2], seed=0)
    before = weights(model)
    with pytest.raises(bp.ConfigError, match="a callback is a Callback or a function f\\(record, model\\)"):
        model.fit(X, y, epochs=1, callbacks=[3])
    assert_same_bits(weights(model), before)
    assert model.epoch == 0


@pytest.mark.parametrize("comm", [None, Solo()], ids=["mini-batch", "data-parallel"])
def test_divergence_rolls_back_to_the_exact_weights_before_the_epoch(numpy_backend, comm):
    # A gradient hook poisons the third epoch: the model keeps the weights from before it,
    # bit for bit, with two epochs recorded and the optimizer started afresh.
    X, y, _ = data()
    model = bp.mlp([3, 5, 2], seed=0, dtype="float64")
    seen = Recorder()

    def poison(grads, step):
        return [g * np.nan for g in grads] if step.optimizer.t >= 6 else None  # 3 batches an epoch

    with pytest.raises(bp.TrainingDiverged, match="in epoch 3: lower the learning rate"):
        model.fit(X, y, epochs=5, batch_size=16, gradient_hooks=[poison], callbacks=[seen], comm=comm)
    assert seen.events[-2:] == [("epoch_end", 2), ("epoch_begin", 2)]  # no record, no end
    assert_same_bits(weights(model), seen.weights[2])
    assert not np.array_equal(seen.weights[2][0], seen.weights[1][0])
    assert model.epoch == 2 and len(model.history) == 2
    assert model.optimizer.t == 0 and model.optimizer.state == []


def test_early_stopping_keeps_its_best_and_where_training_reached(numpy_backend):
    # One home: the best epoch's weights restored at the end, the last epoch's kept for a fit
    # that continues the same early stopping, which starts from them.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)  # noise: it overfits
    Xv, yv = rng.normal(size=(20, 3)), rng.integers(0, 2, 20)
    model = bp.mlp([3, 16, 2], seed=0, dtype="float64")
    seen = Recorder()  # runs after early stopping: at each epoch end it sees the weights trained
    watch = bp.EarlyStopping(patience=50)
    model.fit(X, y, optimizer="adam", lr=0.05, epochs=8, batch_size=8, validation_data=(Xv, yv),
              early_stopping=watch, callbacks=[seen])
    val = model.history["val_loss"]
    assert watch.best_epoch == 1 + int(np.argmin(val)) < 8
    assert_same_bits(weights(model), seen.weights["end", watch.best_epoch])
    assert_same_bits(seen.weights["end"], weights(model))  # the user's on_end runs after the restore
    assert_same_bits(watch.best_params, seen.weights["end", watch.best_epoch])
    assert_same_bits(model.state.resume_params, seen.weights["end", 8])
    model.fit(X, y, epochs=1, batch_size=8, validation_data=(Xv, yv), early_stopping=watch, callbacks=[seen])
    assert_same_bits(seen.weights["begin"], seen.weights["end", 8])
    assert model.state.resume_params is not None  # epoch 9 is not the best either
    # A new early stopping does not continue the old one: training goes on from the best weights.
    best = weights(model)
    model.fit(X, y, epochs=1, batch_size=8, validation_data=(Xv, yv), early_stopping=3, callbacks=[seen])
    assert_same_bits(seen.weights["begin"], best)
    assert model.state.resume_params is None  # its only epoch is its best


def lbfgs_oracle(model, X, t, maxiter, maxfun=15000):
    """SciPy's L-BFGS-B run directly on the model's mean squared error: its iterates, their
    losses, and its result."""
    from scipy.optimize import minimize

    loss = bp.losses.get("mse")
    step = bp.Step(model, loss, bp.optimizers.get("gd"))
    T = t[:, None]

    def objective(theta):
        model.set_flat_parameters(theta)
        value, _, grads = step.gradients(X, T)
        return float(value), np.concatenate([np.reshape(g, (-1,)) for g in grads])

    iterates = []

    def record(intermediate_result):
        iterates.append(intermediate_result.x.copy())

    theta0 = np.array(model.flat_parameters(), dtype=np.float64)
    result = minimize(objective, theta0, jac=True, method="L-BFGS-B", callback=record,
                      options={"maxiter": maxiter, "maxfun": maxfun, "gtol": 1e-4, "maxcor": 10})
    return iterates, [objective(x)[0] for x in iterates], result


@pytest.mark.parametrize("stop_at", [None, 4])
def test_an_lbfgs_fit_is_scipys_iterations_one_per_epoch(numpy_backend, stop_at):
    X, _, t = data()
    model = bp.mlp([3, 4, 1], activation="tanh", seed=0, dtype="float64")
    iterates, losses, _ = lbfgs_oracle(bp.mlp([3, 4, 1], activation="tanh", seed=0, dtype="float64"), X, t, 8)
    stop = [] if stop_at is None else [lambda record, m: record["epoch"] == stop_at]
    history = model.fit(X, t, loss="mse", optimizer="lbfgs", epochs=8, callbacks=stop)
    epochs = 8 if stop_at is None else stop_at
    assert len(iterates) == 8 and len(history) == epochs and history.converged is None
    assert model.flat_parameters().tobytes() == iterates[epochs - 1].tobytes()
    assert history["train_loss"] == pytest.approx(losses[:epochs], rel=1e-14, abs=0)
    assert model.optimizer.t == epochs


def test_an_lbfgs_fit_out_of_evaluations_keeps_scipys_result_and_says_why(numpy_backend):
    # SciPy stops before fit's epochs are over: the model holds its result, and why comes back.
    X, _, t = data()
    model = bp.mlp([3, 4, 1], activation="tanh", seed=0, dtype="float64")
    oracle = bp.mlp([3, 4, 1], activation="tanh", seed=0, dtype="float64")
    iterates, losses, result = lbfgs_oracle(oracle, X, t, 8, maxfun=6)
    assert result.nit == 6 and "EVALUATIONS EXCEEDS LIMIT" in result.message
    history = model.fit(X, t, loss="mse", optimizer="lbfgs", max_fun=6, epochs=8)
    assert model.flat_parameters().tobytes() == result.x.tobytes()
    assert history["train_loss"] == pytest.approx(losses, rel=1e-14, abs=0)
    assert history.converged == f"L-BFGS: {result.message.lower()}"


class Strict:
    """A full-batch optimizer's view of fit's bookkeeping: two methods, no attribute to write."""

    __slots__ = ("calls", "stop_at")

    def __init__(self, stop_at=None):
        self.calls, self.stop_at = [], stop_at

    def begin(self, epoch):
        self.calls.append(("begin", epoch))

    def end(self, total, correct, extra=None):
        self.calls.append(("end", float(total), None if correct is None else float(correct), extra))
        return len(self.calls) // 2 == self.stop_at


def full_batch(model, optimizer, X, y, loss):
    opt = bp.optimizers.get(optimizer, goal=0.5) if optimizer == "lm" else bp.optimizers.get(optimizer)
    step = bp.Step(model, bp.losses.get(loss), opt)
    T = np.asarray(y, dtype=np.float64)[:, None] if loss == "mse" else np.eye(2)[y]
    labels = None if loss == "mse" else np.asarray(y)
    batch = drivers.FullBatchData(step, drivers.TrainingData(X, T, labels, None), weight_sum=None)
    return opt, batch


@pytest.mark.parametrize("optimizer, loss", [("lm", "mse"), ("newton", "mse"), ("lbfgs", "ce")])
def test_full_batch_optimizers_report_through_return_values(numpy_backend, optimizer, loss):
    X, y, t = data()
    model = bp.mlp([3, 3, 1 if loss == "mse" else 2], activation="tanh", seed=0, dtype="float64")
    opt, batch = full_batch(model, optimizer, X, t if loss == "mse" else y, loss)
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.weight_sum = 1.0
    epochs = Strict(stop_at=3)
    reason = opt.run(batch, range(5, 10), epochs)
    begun = [c[1] for c in epochs.calls if c[0] == "begin"]
    ended = [c for c in epochs.calls if c[0] == "end"]
    assert [c[0] for c in epochs.calls] == ["begin", "end"] * len(begun)
    assert begun == list(range(5, 5 + len(begun))) and 1 <= len(begun) <= 3
    assert all(np.isfinite(c[1]) for c in ended)
    assert (ended[0][2] is None) == (loss == "mse")  # a classifier's right count
    if optimizer == "lm":  # the goal of 0.5 is reached at once: a reason comes back, and no stop asked
        assert begun == [5] and reason.startswith("the loss") and "reached the goal 0.5" in reason
        assert ended[0][3] == {"mu": opt.mu}
    else:
        assert begun == [5, 6, 7] and reason is None


def test_the_bookkeeping_and_the_context_take_no_new_attributes(numpy_backend):
    X, y, _ = data()
    model = bp.mlp([3, 3, 2], seed=0)
    context = FitContext(model, model.state, bp.History(), bp.optimizers.get("adam"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.history = None
    epochs = drivers.Epochs(context, [], bp.losses.get("ce"), None, drivers.Alone(), np.eye(2)[y], 1024)
    for name in ("safe", "weight_sum", "history"):
        with pytest.raises(AttributeError):
            setattr(epochs, name, None)


def test_the_math_tier_imports_nothing_host_side():
    # fit reaches data parallelism through the driver that backprop.host.distributed
    # registers (drivers.register_ranks), so no module of the network math imports host-side
    # code, at the top or inside a function (the package's own plumbing aside).
    import pathlib
    import re

    root = pathlib.Path(bp.__file__).parent
    tiers = "host|edges|apps|cli|playground|contenders"
    host_side = re.compile(rf"^\s*(from|import)\s+(backprop\.|\.)({tiers})\b", re.M)
    plumbing = {"__init__.py", "__main__.py", "_moved.py"}
    math = [p for p in root.glob("*.py") if p.name not in plumbing]
    assert {"training.py", "drivers.py", "callbacks.py"} <= {p.name for p in math}
    assert [p.name for p in math if host_side.search(p.read_text())] == []
    assert isinstance(drivers.ranks(Solo()), bp.distributed.Ranks)
    assert isinstance(drivers.ranks(None), drivers.Alone)
