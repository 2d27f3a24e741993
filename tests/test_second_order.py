"""Full-batch training: the Jacobian, Levenberg–Marquardt and L-BFGS, on every backend.

The targets of the issue that asked for them, where they are fast and deterministic:
the textbook XOR, the noisy sine, the Jacobian against central differences, host
traffic per iteration, resume, and the one-line refusals.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.cli import main
from backprop.gradcheck import jacobian_check
from backprop.jacobian import jacobian
from backprop.second_order import LevenbergMarquardt
from conftest import hessian_by_differences, load, to_np

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0.0, 1.0, 1.0, 0.0])


def textbook(hidden, seed, device="cpu"):
    """The 2-h-1 sigmoid network with U(-0.5, 0.5) weights and biases."""
    return bp.Sequential([bp.Dense(2, hidden, init="textbook", bias="textbook"), "sigmoid",
                          bp.Dense(hidden, 1, init="textbook", bias="textbook"), "sigmoid"],
                         dtype="float64", seed=seed, device=device)


def sine(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, (n, 1))
    return x, np.sin(2.0 * x[:, 0]) + x[:, 0] / 2.0 + rng.normal(0.0, 0.1, n)


def iterations_to_solve(model, limit, optimizer="lm"):
    """XOR: (first iteration with every output within 0.1 of its target, history)."""
    solved = []
    def within(record, m):
        solved.append(np.max(np.abs(m.predict(XOR_X) - XOR_Y)) < 0.1)

    history = model.fit(XOR_X, XOR_Y, loss="sse", optimizer=optimizer, epochs=limit, callbacks=[within])
    return next((i + 1 for i, ok in enumerate(solved) if ok), None), history


# -- the Jacobian -------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["cpu", "strict", "torch", "cuda"])
@pytest.mark.parametrize("activation,output", [("tanh", None), ("sigmoid", "sigmoid"), ("softplus", None)])
def test_the_jacobian_agrees_with_central_differences(spec, activation, output):
    backend = load(spec)
    model = bp.mlp([3, 5, 4, 2], activation=activation, output=output, dtype="float64", seed=1,
                   device=backend)
    X = np.random.default_rng(0).normal(size=(6, 3))
    result = jacobian_check(model, X, tolerance=1e-7)
    assert result.ok, str(result)
    assert sum(result.entries.values()) == model.n_params


def test_jacobian_rows_sum_to_the_loss_gradient(numpy_backend):
    # An independent identity: for SSE, dE/dtheta = J^T e exactly.
    model = bp.mlp([2, 3, 2], activation="tanh", dtype="float64", seed=0)
    X = np.random.default_rng(1).normal(size=(5, 2))
    T = np.random.default_rng(2).normal(size=(5, 2))
    Z, J = jacobian(model, X)
    _, grads = model.loss_and_gradients(X, T, loss="sse")
    expected = np.concatenate([g.ravel() for g in grads.values()])
    np.testing.assert_allclose(J.T @ (Z - T).ravel(), expected, rtol=1e-12, atol=1e-14)


def test_gradcheck_command_checks_the_jacobian(capsys):
    assert main(["gradcheck", "--jacobian", "--json"]) == 0
    assert '"jacobian": true' in capsys.readouterr().out


# -- Levenberg–Marquardt: the targets -----------------------------------------------------
def test_lm_solves_the_textbook_xor_2_2_1():
    results = [iterations_to_solve(textbook(2, seed), 100) for seed in range(30)]
    solved = [it for it, _ in results if it is not None and it <= 25]
    assert len(solved) >= 24, [it for it, _ in results]
    for it, history in results:
        if it is None or it > 25:  # every failure stops by itself
            assert len(history) < 100 and history.converged is not None


def test_lm_solves_xor_2_4_1_every_time():
    needed = [iterations_to_solve(textbook(4, seed), 30)[0] for seed in range(30)]
    assert all((it or 99) <= 30 for it in needed), needed


def test_lm_reaches_the_noise_floor_of_the_sine():
    x, t = sine()
    needed = []
    for seed in range(30):
        model = bp.mlp([1, 20, 1], activation="tanh", dtype="float64", seed=seed)
        history = model.fit(x, t, loss="mse", optimizer="lm", epochs=80, batch_size="full")
        needed.append(next((i + 1 for i, loss in enumerate(history["train_loss"]) if loss <= 0.0105), None))
    assert None not in needed and np.median(needed) <= 30, needed


def test_lm_damping_follows_trainlm_rules(numpy_backend):
    x, t = sine(n=50)
    model = bp.mlp([1, 6, 1], activation="tanh", dtype="float64", seed=0)
    history = model.fit(x, t, loss="mse", optimizer="lm", epochs=15, batch_size="full")
    mus = [1e-3] + history["mu"]
    losses = history["train_loss"]
    for before, after in zip(mus, mus[1:]):
        ratio = after / before
        # one accepted step per epoch: x0.1 after some number k >= 0 of x10 retries
        k = round(np.log10(ratio) + 1)
        assert k >= 0 and ratio == pytest.approx(10.0 ** (k - 1), rel=1e-9)
    assert all(b < a for a, b in zip(losses, losses[1:]))  # every accepted step lowers the loss


def test_lm_stops_at_the_error_goal(numpy_backend):
    x, t = sine(n=50)
    model = bp.mlp([1, 8, 1], activation="tanh", dtype="float64", seed=0)
    history = model.fit(x, t, loss="mse", optimizer=LevenbergMarquardt(goal=0.05), epochs=100)
    assert history.converged.startswith("the loss") and "goal 0.05" in history.converged
    assert history["train_loss"][-1] <= 0.05 < history["train_loss"][-2]


def test_lm_and_validation_early_stopping_restore_the_best_weights(numpy_backend):
    x, t = sine(n=60)
    model = bp.mlp([1, 30, 1], activation="tanh", dtype="float64", seed=0)
    history = model.fit(x, t, loss="mse", optimizer="lm", epochs=200, validation_split=0.3, early_stopping=6,
                        batch_size="full")
    best = int(np.argmin(history["val_loss"])) + 1
    assert history.best_epoch == best
    if history.stopped_early:
        assert len(history) == best + 6


# -- every backend computes the same iterates -------------------------------------------------
@pytest.mark.parametrize("optimizer", ["lm", "lbfgs"])
def test_iterates_agree_across_backends(other_backend, optimizer):
    x, t = sine(n=40)
    runs = []
    for backend in (bp.get_backend("cpu"), other_backend):
        model = bp.mlp([1, 5, 1], activation="tanh", dtype="float64", seed=3, device=backend)
        history = model.fit(x, t, loss="mse", optimizer=optimizer, epochs=8, batch_size="full")
        runs.append((history["train_loss"], to_np(model.flat_parameters())))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-9)
    np.testing.assert_allclose(runs[1][1], runs[0][1], rtol=1e-7, atol=1e-9)


# -- L-BFGS ------------------------------------------------------------------------------
def test_lbfgs_trains_any_loss_and_converges(numpy_backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    model = bp.mlp([2, 8, 2], activation="tanh", dtype="float64", seed=0)
    history = model.fit(X, y, loss="ce", optimizer="lbfgs", epochs=500)
    assert history.converged is not None and len(history) < 500
    assert history["train_accuracy"][-1] >= 0.97


def test_lbfgs_weight_decay_is_the_l2_penalty(numpy_backend):
    # At L-BFGS's optimum of loss + wd/2 |W|^2, the loss gradient balances -wd W.
    x, t = sine(n=40)
    model = bp.mlp([1, 4, 1], activation="tanh", dtype="float64", seed=0)
    lbfgs = bp.optimizers.get("lbfgs", weight_decay=0.1, tol=1e-10)
    model.fit(x, t, loss="mse", optimizer=lbfgs, epochs=2000)
    # L-BFGS stops on a relative loss change too: balanced to 1e-4 (a wrong factor of
    # the penalty, or decay on no or every parameter, is off by 1e-2).
    assert_l2_balance(model, x, t, 0.1, atol=1e-4)


def assert_l2_balance(model, x, t, decay, atol):
    """At the optimum of loss + decay/2 |W|^2: the loss gradient is -decay W, 0 for biases."""
    _, grads = model.loss_and_gradients(x, t)
    params = model.parameters()
    for name in ("0.W", "2.W"):
        np.testing.assert_allclose(grads[name], -decay * params[name], atol=atol)
    np.testing.assert_allclose(grads["0.b"], 0.0, atol=atol)


# -- host traffic ------------------------------------------------------------------------
def test_host_reads_per_iteration(monkeypatch):
    from array_api_strict._array_object import Array

    reads = {"n": 0}
    for name in ("__float__", "__bool__", "__int__", "__index__"):
        wrapped = getattr(Array, name)

        def counted(self, _wrapped=wrapped):
            reads["n"] += 1
            return _wrapped(self)

        monkeypatch.setattr(Array, name, counted)
    from backends import to_numpy_any

    copies = {"n": 0}

    def host(values):  # the one bulk read of an iteration's first trial
        copies["n"] += 1
        return to_numpy_any(values)

    monkeypatch.setattr("backprop.second_order._host", host)
    x, t = sine(n=30)
    model = bp.mlp([1, 4, 1], activation="tanh", dtype="float64", seed=0, device="strict")
    optimizer = LevenbergMarquardt()
    trials = []
    original_iterate = optimizer.iterate

    def iterate(step, X, T, S=None, work=None):
        before = (reads["n"], copies["n"])
        mu = optimizer.mu
        result = original_iterate(step, X, T, S, work)
        grown = round(np.log10(optimizer.mu / mu)) + 1 if result[1] is None else None
        trials.append((reads["n"] - before[0] + copies["n"] - before[1], grown))
        return result

    optimizer.iterate = iterate
    model.fit(x, t, loss="mse", optimizer=optimizer, epochs=6, batch_size="full")
    for count, retries in trials:
        assert retries is not None and count == retries + 1  # one read per mu trial


# -- resume, the command line, refusals -------------------------------------------------
@pytest.mark.parametrize("optimizer", ["lm", "lbfgs"])
def test_a_checkpoint_carries_the_full_batch_optimizer(tmp_path, numpy_backend, optimizer):
    x, t = sine(n=40)
    whole = bp.mlp([1, 5, 1], activation="tanh", dtype="float64", seed=0)
    whole.fit(x, t, loss="mse", optimizer=optimizer, epochs=10)
    part = bp.mlp([1, 5, 1], activation="tanh", dtype="float64", seed=0)
    part.fit(x, t, loss="mse", optimizer=optimizer, epochs=5)
    bp.checkpoint.save(part, str(tmp_path / "m.safetensors"))
    again = bp.checkpoint.load(str(tmp_path / "m.safetensors")).model
    assert again.optimizer.name == optimizer and again.optimizer.t == 5
    again.fit(x, t, epochs=5)
    if optimizer == "lm":  # mu is carried: 5 + 5 is one run of 10, bit for bit
        assert again.optimizer.mu == whole.optimizer.mu
        for name, value in whole.parameters().items():
            np.testing.assert_array_equal(again.parameters()[name], value)
    else:  # SciPy's curvature pairs are not: the run goes on, from the same point
        assert again.history["train_loss"][:5] == whole.history["train_loss"][:5]
        assert again.history["train_loss"][-1] < again.history["train_loss"][4]


def test_lm_from_the_command_line(tmp_path, capsys):
    path = str(tmp_path / "s.safetensors")
    assert main(["train", "sine", "--optimizer", "lm", "--hidden", "12", "--epochs", "20", "--save", path,
                 "--json"]) == 0
    lines = [__import__("json").loads(line) for line in capsys.readouterr().out.splitlines()]
    epochs, summary = lines[:-1], lines[-1]
    assert all("mu" in e for e in epochs) and summary["dtype"] == "float64"
    assert summary["test_r2"] > 0.9
    assert main(["train", "--resume", path, "--epochs", "25", "--quiet"]) == 0


@pytest.mark.parametrize("argv,message", [
    (["train", "digits", "--optimizer", "lm", "--hidden", "64,64"], "would need 3,"),
    (["train", "xor", "--optimizer", "lm", "--loss", "ce"], "minimizes squared errors"),
    (["train", "xor", "--optimizer", "lm", "--lr", "0.1"], "has no learning rate"),
    (["train", "xor", "--optimizer", "lm", "--batch-size", "2"], "trains on the full batch"),
])
def test_full_batch_refusals_are_one_line_before_training(argv, message, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert message in err and err.count("\n") == 1 and out == ""  # refused before the banner


# -- damped Newton ------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["cpu", "strict", "torch", "cuda"])
@pytest.mark.parametrize("activation,output,loss", [
    ("tanh", None, "mse"), ("sigmoid", "sigmoid", "sse"), ("softplus", None, "ce"),
    ("leaky_relu", None, "bce")])
def test_the_hessian_agrees_with_differences_of_the_gradient(spec, activation, output, loss):
    from backprop.hessian import hessian
    from backprop.targets import as_targets

    backend = load(spec)
    k = 3 if loss == "ce" else 2
    model = bp.mlp([3, 4, 3, k], activation=activation, output=output, dtype="float64", seed=0,
                   device=backend)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 3))
    y = {"ce": rng.integers(0, k, 6), "bce": rng.integers(0, 2, (6, k))}.get(loss, rng.normal(size=(6, k)))
    L = bp.losses.get(loss)
    with backend.activate():
        Xd = backend.asarray(X, "float64")
        T, _ = as_targets(backend, model.dtype, y, L, k, 6)
        _, g, H = hessian(model, L, Xd, T)
    H = to_np(H)
    numeric = hessian_by_differences(model, X, y, loss=loss)
    assert np.max(np.abs(H - numeric)) <= 1e-7 * np.max(np.abs(H))
    np.testing.assert_array_equal(H, H.T)
    model.loss_and_gradients(X, y, loss=loss)
    np.testing.assert_allclose(to_np(g), to_np(model.flat_gradients()), rtol=1e-12, atol=1e-15)


def test_newton_solves_the_textbook_xor_2_2_1():
    needed = [iterations_to_solve(textbook(2, seed), 100, "newton")[0] for seed in range(30)]
    assert sum(it is not None for it in needed) >= 28, needed


def test_newton_steps_go_downhill_and_agree_across_backends(other_backend):
    x, t = sine(n=30)
    runs = []
    for backend in (bp.get_backend("cpu"), other_backend):
        model = bp.mlp([1, 4, 1], activation="tanh", dtype="float64", seed=1, device=backend)
        history = model.fit(x, t, loss="mse", optimizer="newton", epochs=8)
        runs.append(history["train_loss"])
    assert all(b < a for a, b in zip(runs[0], runs[0][1:]))
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-9)


def test_newton_refuses_large_networks(capsys):
    assert main(["train", "moons", "--optimizer", "newton", "--hidden", "32,32"]) == 2
    assert "at most 300 parameters: use lm" in capsys.readouterr().err


def test_lbfgs_reads_one_scalar_and_one_gradient_per_evaluation(monkeypatch):
    from backprop import lbfgs

    reads = []
    real = lbfgs.to_numpy_any
    monkeypatch.setattr(lbfgs, "to_numpy_any", lambda x: (reads.append(tuple(x.shape)), real(x))[1])
    evaluations = {"n": 0}
    import scipy.optimize  # lbfgs imports minimize from it when it runs

    real_minimize = scipy.optimize.minimize

    def counted(fun, *args, **kwargs):
        def wrapped(theta):
            evaluations["n"] += 1
            return fun(theta)

        return real_minimize(wrapped, *args, **kwargs)

    monkeypatch.setattr(scipy.optimize, "minimize", counted)
    x, t = sine(n=30)
    model = bp.mlp([1, 4, 1], activation="tanh", dtype="float64", seed=0, device="strict")
    model.fit(x, t, loss="mse", optimizer="lbfgs", epochs=5)
    P = model.n_params
    # the starting point, then per evaluation: (loss, objective) and the gradient
    assert reads == [(P,)] + [(2,), (P,)] * evaluations["n"]


def test_lm_in_float32_says_it_solves_in_float64(capsys):
    assert main(["train", "xor", "--optimizer", "lm", "--dtype", "float32", "--quiet"]) == 0
    assert main(["train", "xor", "--optimizer", "lm", "--dtype", "float32", "--epochs", "3"]) == 0
    assert "solved in float64" in capsys.readouterr().err


@pytest.mark.parametrize("loss", ["mse", "sse"])
def test_lm_min_grad_reads_the_gradient_of_the_loss(numpy_backend, loss):
    x, t = sine(n=40)
    model = bp.mlp([1, 5, 1], activation="tanh", dtype="float64", seed=0)
    history = model.fit(x, t, loss=loss, optimizer=LevenbergMarquardt(min_grad=1e-2), epochs=100)
    reported = float(history.converged.split("gradient norm ")[1].split(" ")[0])
    _, grads = model.loss_and_gradients(x, t, loss=loss)  # the stop keeps the weights it measured
    true = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
    assert reported == pytest.approx(true, rel=2e-3) and true < 1e-2


@pytest.mark.parametrize("optimizer", ["lm", "newton"])
def test_damped_methods_apply_weight_decay(numpy_backend, optimizer):
    # At the optimum of loss + wd/2 |W|^2 the loss gradient balances -wd W (biases: 0).
    x, t = sine(n=40)
    model = bp.mlp([1, 4, 1], activation="tanh", dtype="float64", seed=0)
    model.fit(x, t, loss="mse", optimizer=bp.optimizers.get(optimizer, weight_decay=0.05, min_grad=1e-12),
              epochs=300)
    assert_l2_balance(model, x, t, 0.05, atol=1e-7)


def test_damped_methods_refuse_gradient_hooks(numpy_backend):
    x, t = sine(n=20)
    with pytest.raises(bp.ConfigError, match="hooks do not apply"):
        bp.mlp([1, 3, 1], dtype="float64").fit(x, t, loss="mse", optimizer="lm",
                                             gradient_hooks=[lambda g, s: g])


def test_lbfgs_epochs_are_timed_over_their_iteration(numpy_backend):
    import time

    x, t = sine(n=200)
    # SciPy's import and its first L-BFGS call cost a tenth of a second once per process: paid here
    bp.mlp([1, 20, 1], activation="tanh", dtype="float64", seed=0).fit(x, t, loss="mse", optimizer="lbfgs",
                                                                       epochs=2)
    model = bp.mlp([1, 20, 1], activation="tanh", dtype="float64", seed=0)
    started = time.perf_counter()
    history = model.fit(x, t, loss="mse", optimizer="lbfgs", epochs=30)
    total = time.perf_counter() - started
    assert sum(history["seconds"]) > 0.5 * total  # not ~0: each epoch's clock spans its iteration


def test_resuming_into_a_full_batch_optimizer(tmp_path, capsys):
    path = str(tmp_path / "m.safetensors")
    assert main(["train", "moons", "--epochs", "2", "--save", path, "--quiet"]) == 0
    assert main(["train", "--resume", path, "--optimizer", "lbfgs", "--epochs", "5", "--quiet"]) == 0
    assert bp.checkpoint.load(path).model.optimizer.name == "lbfgs"
    assert main(["train", "--resume", path, "--optimizer", "adam", "--epochs", "7", "--json"]) == 0
    summary = __import__("json").loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["epochs"] == 7


def test_newton_refuses_data_its_hessian_pass_cannot_hold():
    X = np.random.default_rng(0).normal(size=(20000, 2))
    model = bp.mlp([2, 16, 1], activation="tanh", dtype="float64")
    with pytest.raises(bp.ConfigError, match="MiB for its exact Hessian over 20,000 samples"):
        model.fit(X, X[:, 0], loss="mse", optimizer="newton")
