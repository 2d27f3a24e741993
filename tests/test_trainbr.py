"""Bayesian regularization (``br``, MATLAB's trainbr): the evidence updates against a hand-worked
linear model, the trace, the stopping rules, resume, refusals, γ's behaviour, and backends."""

from __future__ import annotations

import json

import numpy as np
import pytest

import backprop as bp
from backprop.errors import ConfigError
from backprop.second_order import BayesianRegularization
from conftest import resume_matches_a_straight_run, run_cli


def line_data(n=12, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, 2))
    return x, x @ np.array([1.5, -0.5]) + 0.3 + rng.normal(0.0, noise, n)


def linear_model():
    return bp.Sequential([bp.Dense(2, 1)], dtype="float64", seed=3)


def jacobian_of(model, x):
    """J (N, P) of the linear model's outputs, column by column: exact for a linear map."""
    w = np.asarray(model.flat_parameters(), dtype=float).copy()
    base = np.asarray(model.predict(x), dtype=float).reshape(-1)
    cols = []
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = 1.0
        model.set_flat_parameters(model.xp.asarray(w + e))
        cols.append(np.asarray(model.predict(x), dtype=float).reshape(-1) - base)
    model.set_flat_parameters(model.xp.asarray(w))
    return np.stack(cols, axis=1), base


def brfit(model, x, y, epochs=1, **opt):
    optimizer = bp.optimizers.get("br", **opt)
    history = model.fit(x, y, loss="sse", optimizer=optimizer, epochs=epochs, batch_size="full",
                        validation_split=0.0, early_stopping=None)
    return optimizer, history


def test_one_step_and_evidence_update_match_a_hand_worked_linear_model():
    x, y = line_data()
    model = linear_model()
    J, z = jacobian_of(model, x)
    w = np.asarray(model.flat_parameters(), dtype=float).copy()
    a, b, mu = 0.7, 3.0, 0.005
    P, N = w.size, y.size
    # (βJᵀJ + (α+μ)I) δ = -(βJᵀe + αw), then γ, α, β at the new point from the old JᵀJ
    step = -np.linalg.solve(b * J.T @ J + (a + mu) * np.eye(P), b * J.T @ (z - y) + a * w)
    w1 = w + step
    e_d, e_w = float(np.sum((J @ step + z - y) ** 2)), float(w1 @ w1)
    gamma = P - a * np.trace(np.linalg.inv(b * J.T @ J + a * np.eye(P)))
    optimizer, history = brfit(model, x, y, alpha=a, beta=b, mu=mu)
    np.testing.assert_allclose(np.asarray(model.flat_parameters()), w1, rtol=1e-12)
    assert optimizer.gamma == pytest.approx(gamma, rel=1e-12)
    assert optimizer.alpha == pytest.approx(gamma / (2 * e_w), rel=1e-12)
    assert optimizer.beta == pytest.approx((N - gamma) / (2 * e_d), rel=1e-12)
    assert optimizer.mu == pytest.approx(mu * 0.1)
    record = history.records[-1]
    assert (record["gamma"], record["alpha"], record["beta"]) == (optimizer.gamma, optimizer.alpha,
                                                                   optimizer.beta)
    assert record["sum_sq_weights"] == pytest.approx(e_w, rel=1e-12)


def test_two_outputs_count_n_times_k_squares_with_mse():
    # K = 2 outputs under mse: the loss is E_D/(N·K), and β's count is N·K = 24, not N = 12
    x, y = line_data()
    Y = np.stack([y, 0.5 * y + x[:, 0]], axis=1)
    model = bp.Sequential([bp.Dense(2, 2)], dtype="float64", seed=3)
    J = np.asarray(bp.jacobian.jacobian(model, model.xp.asarray(x))[1]).reshape(24, -1)
    z = np.asarray(model.predict(x), dtype=float).reshape(-1)  # row n·K + k, as J's
    w = np.asarray(model.flat_parameters(), dtype=float).copy()
    a, b, mu = 0.4, 2.0, 0.005
    P = w.size
    step = -np.linalg.solve(b * J.T @ J + (a + mu) * np.eye(P), b * J.T @ (z - Y.reshape(-1)) + a * w)
    e_d, e_w = float(np.sum((J @ step + z - Y.reshape(-1)) ** 2)), float((w + step) @ (w + step))
    gamma = P - a * np.trace(np.linalg.inv(b * J.T @ J + a * np.eye(P)))
    optimizer = bp.optimizers.get("br", alpha=a, beta=b, mu=mu)
    model.fit(x, Y, loss="mse", optimizer=optimizer, epochs=1, batch_size="full", validation_split=0.0,
              early_stopping=None)
    np.testing.assert_allclose(np.asarray(model.flat_parameters()), w + step, rtol=1e-12)
    assert optimizer.gamma == pytest.approx(gamma, rel=1e-12)
    assert optimizer.beta == pytest.approx((24 - gamma) / (2 * e_d), rel=1e-12)
    assert optimizer.alpha == pytest.approx(gamma / (2 * e_w), rel=1e-12)


# the eigh path and eigvalsh beside the solves; P = 21 < N = 30 (parameter space) and P = 81
# (residual space: JJᵀ's eigenvalues and P - N zeros)
@pytest.mark.parametrize("eigh_below", [500, 0])
@pytest.mark.parametrize("hidden", [5, 20])
def test_the_trace_matches_a_direct_inverse(eigh_below, hidden):
    x, y = line_data(n=30)
    model = bp.mlp([2, hidden, 1], activation="tanh", dtype="float64", seed=1)
    optimizer = bp.optimizers.get("br", alpha=0.2, beta=5.0)
    optimizer.eigh_below = eigh_below
    step = type("S", (), {"model": model, "loss": bp.losses.get("sse")})()
    X, T = model.xp.asarray(x), model.xp.asarray(y[:, None])
    w = model.xp.asarray(np.asarray(model.flat_parameters(), dtype=float))
    *_, (e_d, e_w, grad, trace) = optimizer._start(step, X, T, None, {}, w)
    J = np.asarray(bp.jacobian.jacobian(model, X)[1]).reshape(30, -1)
    expected = np.trace(np.linalg.inv(5.0 * J.T @ J + 0.2 * np.eye(J.shape[1])))
    assert trace == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("eigh_below", [500, 0])
def test_a_wide_network_steps_in_residual_space_as_in_parameter_space(eigh_below):
    # N = 12 < P = 81: the Woodbury solve against the (P, P) system written out
    x, y = line_data(n=12)
    model = bp.mlp([2, 20, 1], activation="tanh", dtype="float64", seed=4)
    J = np.asarray(bp.jacobian.jacobian(model, model.xp.asarray(x))[1]).reshape(12, -1)
    w = np.asarray(model.flat_parameters(), dtype=float).copy()
    z = np.asarray(model.predict(x), dtype=float).reshape(-1)
    a, b, mu = 0.05, 40.0, 0.005
    P = w.size
    expected = w - np.linalg.solve(b * J.T @ J + (a + mu) * np.eye(P), b * J.T @ (z - y) + a * w)
    optimizer = bp.optimizers.get("br", alpha=a, beta=b, mu=mu)
    optimizer.eigh_below = eigh_below
    model.fit(x, y, loss="sse", optimizer=optimizer, epochs=1, batch_size="full", validation_split=0.0,
              early_stopping=None)
    assert optimizer.mu == pytest.approx(mu * 0.1)  # the first trial was taken
    np.testing.assert_allclose(np.asarray(model.flat_parameters()), expected, rtol=1e-9, atol=1e-12)
    gamma = P - a * np.trace(np.linalg.inv(b * J.T @ J + a * np.eye(P)))
    assert optimizer.gamma == pytest.approx(gamma, rel=1e-10)


# a linear model, where βλ ≫ α leaves γ near P, and a wide tanh network (P = 41 > N = 12),
# where γ is far below P and the fixed point takes several rounds
@pytest.mark.parametrize("wide", [False, True])
def test_the_first_update_is_the_fixed_point_of_gamma(wide):
    x, y = line_data()
    model = bp.mlp([2, 10, 1], activation="tanh", dtype="float64", seed=0) if wide else linear_model()
    J = np.asarray(bp.jacobian.jacobian(model, model.xp.asarray(x))[1]).reshape(12, -1)
    optimizer, _ = brfit(model, x, y)  # α = 0, β = 1: an LM step, then the fixed point
    lam = np.linalg.eigvalsh(J.T @ J)
    a, b = optimizer.alpha, optimizer.beta
    w1 = np.asarray(model.flat_parameters(), dtype=float)
    e_d = float(np.sum((np.asarray(model.predict(x)).reshape(-1) - y) ** 2))
    gamma = float(np.sum(b * lam / (b * lam + a)))
    assert optimizer.gamma == pytest.approx(gamma, rel=1e-6)  # converged: γ of the α, β it implies
    assert a == pytest.approx(optimizer.gamma / (2 * float(w1 @ w1)), rel=1e-12)
    assert b == pytest.approx((y.size - optimizer.gamma) / (2 * e_d), rel=1e-12)
    if wide:
        assert optimizer.gamma < 0.5 * model.n_params


def test_stopping_rules():
    x, y = line_data()
    _, history = brfit(linear_model(), x, y, epochs=3)
    assert len(history.records) == 3 and history.converged is None
    _, history = brfit(linear_model(), x, y, epochs=5, min_grad=1e6)
    assert len(history.records) == 1 and "min_grad" in history.converged
    # a linear model reaches F's minimum at once: the next trials fail until μ passes mu_max
    optimizer, history = brfit(linear_model(), x, y, epochs=200, min_grad=0.0, mu_max=1e3)
    assert len(history.records) < 200 and "mu_max" in history.converged
    assert 1e3 < optimizer.mu <= 1e4  # stopped on the first μ past mu_max


def test_a_resumed_command_line_run_is_bit_identical(tmp_path, capsys):
    common = ["train", "sine", "--optimizer", "br", "--hidden", "8", "--val-split", "0", "--quiet"]
    resume_matches_a_straight_run(common, 6, tmp_path, capsys)


def test_resume_from_a_checkpoint_is_exact(tmp_path):
    x, y = line_data(n=40)
    whole = bp.mlp([2, 4, 1], activation="tanh", dtype="float64", seed=0)
    brfit(whole, x, y, epochs=5)
    part = bp.mlp([2, 4, 1], activation="tanh", dtype="float64", seed=0)
    brfit(part, x, y, epochs=2)
    bp.checkpoint.save(part, tmp_path / "m.safetensors")
    loaded = bp.checkpoint.load(tmp_path / "m.safetensors").model
    loaded.fit(x, y, loss="sse", epochs=3, batch_size="full", validation_split=0.0, early_stopping=None)
    assert loaded.history["gamma"][-3:] == whole.history["gamma"][-3:]
    for name, value in whole.parameters().items():
        np.testing.assert_array_equal(loaded.parameters()[name], value)


@pytest.mark.parametrize("model, loss, says", [
    (lambda: bp.mlp([2, 3, 1], output="exp", dtype="float64"), "poisson", "squared errors"),
    (lambda: bp.Sequential([bp.Dense(2, 3), "tanh", bp.Dropout(0.5), bp.Dense(3, 1)], dtype="float64"),
     "mse", "Dropout"),
])
def test_refusals_in_one_line(model, loss, says):  # naming br, not the LM it is built on
    x, y = line_data()
    with pytest.raises(ConfigError, match=says) as caught:
        model().fit(x, np.abs(y), loss=loss, optimizer="br", epochs=1, batch_size="full",
                    validation_split=0.0)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("Bayesian regularization (br)")
    with pytest.raises(ConfigError, match="weight_decay"):
        bp.optimizers.get("br", weight_decay=1e-3)


def test_gamma_near_p_on_large_clean_data_and_far_below_on_small_noisy_data():
    rng = np.random.default_rng(0)
    big = rng.uniform(-1.0, 1.0, (600, 1))
    clean = np.sin(3.0 * big[:, 0])
    model = bp.mlp([1, 4, 1], activation="tanh", dtype="float64", seed=0)  # P = 13
    optimizer, _ = brfit(model, big, clean, epochs=300)
    assert optimizer.gamma > 0.9 * model.n_params
    small = rng.uniform(-1.0, 1.0, (25, 1))
    noisy = np.sin(3.0 * small[:, 0]) + rng.normal(0.0, 0.3, 25)
    model = bp.mlp([1, 20, 1], activation="tanh", dtype="float64", seed=0)  # P = 61
    optimizer, _ = brfit(model, small, noisy, epochs=300)
    assert optimizer.gamma < 0.25 * model.n_params


@pytest.mark.parametrize("hidden", [6, 20])  # P = 25 < N = 40 (parameter space), P = 81 (residual space)
def test_every_backend_takes_the_same_steps(other_backend, hidden):
    x, y = line_data(n=40)

    def run(device):
        model = bp.mlp([2, hidden, 1], activation="tanh", dtype="float64", seed=2, device=device)
        history = brfit(model, x, y, epochs=8)[1]
        return {k: model.backend.to_numpy(v) for k, v in model.parameters().items()}, history

    ref, ref_history = run("cpu")
    other, other_history = run(other_backend)
    for key in ref:
        assert np.max(np.abs(ref[key] - other[key])) <= 1e-10 * np.max(np.abs(ref[key])), key
    for name in ("gamma", "alpha", "beta", "train_loss"):
        np.testing.assert_allclose(other_history[name], ref_history[name], rtol=1e-10)


def test_the_class_is_registered_under_matlabs_name_too():
    assert type(bp.optimizers.get("trainbr")) is BayesianRegularization


@pytest.mark.parametrize("name", ["br", "lm"])
def test_mu_does_not_underflow_where_every_step_succeeds(name):
    # br's prior keeps each system well posed, so steps can succeed for hundreds of
    # iterations: μ × 0.1 would reach 0, from which × 10 never climbs to mu_max
    optimizer = bp.optimizers.get(name, mu=3e-20)
    optimizer._accepted()
    assert optimizer.mu == optimizer.mu_min == 1e-20 and optimizer.t == 1
    optimizer._accepted()
    assert optimizer.mu == 1e-20 and optimizer.t == 2


def test_a_weight_of_two_is_a_repeated_sample():
    # noisy data br does not interpolate: the weighted fit follows the repeated one to rounding
    x, y = line_data(n=15, seed=5, noise=0.3)
    w = np.random.default_rng(1).integers(0, 4, 15)
    a = bp.mlp([2, 6, 1], activation="tanh", dtype="float64", seed=0)
    b = bp.mlp([2, 6, 1], activation="tanh", dtype="float64", seed=0)
    for model, data in ((a, (x, y, w)), (b, (np.repeat(x, w, axis=0), np.repeat(y, w), None))):
        model.fit(data[0], data[1], sample_weight=data[2], loss="mse", optimizer="br", epochs=20,
                  batch_size="full", validation_split=0.0, early_stopping=None)
    np.testing.assert_allclose(a.history["gamma"], b.history["gamma"], rtol=1e-9)
    np.testing.assert_allclose(a.predict(x), b.predict(x), rtol=1e-9, atol=1e-12)


def test_a_prior_that_takes_every_weight_to_zero_stops_the_run_and_says_why():
    # four XOR points cannot support a parameter: the evidence drives α up until w = 0, a
    # stationary point of E_D, which no later step leaves
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0.0, 1.0, 1.0, 0.0])
    model = bp.mlp([2, 4, 1], activation="tanh", dtype="float64", seed=0)
    optimizer, history = brfit(model, x - 0.5, y - 0.5, epochs=50)
    assert len(history.records) < 50 and optimizer.gamma < 1e-2
    assert history.converged.startswith("the prior took every weight to 0") and "use lm" in history.converged


def test_the_memory_estimate_counts_the_space_the_solve_runs_in():
    # 200 points, P = 601: residual space, a (200, 200) solve; at 2,000 points a (601, 601) one
    # with the trace's two matrices beside
    model = bp.mlp([1, 200, 1], dtype="float64")
    loss = bp.losses.get("mse")
    optimizer = bp.optimizers.get("br", max_jacobian_bytes=4 * 2**20)
    optimizer.check(model, loss, 200)  # 2 x 0.92 MiB Jacobian + 4 x 0.31 MiB (12.9 MiB in (601, 601))
    with pytest.raises(ConfigError, match=r"Bayesian regularization \(br\) would need 29 MiB"):
        optimizer.check(model, loss, 2000)  # 2 x 9.2 MiB + 4 x 2.76 MiB (lm's 2 matrices: 24 MiB)


def test_the_run_summary_reports_the_last_gamma(capsys):
    # the library's run and the command line's JSON summary, γ of the last epoch; lm has none
    job = bp.runner.Run("sine", optimizer="br", hidden=[6], epochs=4)
    summary = job.fit()
    assert summary["gamma"] == job.model.history["gamma"][-1] and 0 < summary["gamma"] < summary["n_params"]
    code, out, _ = run_cli(["train", "sine", "--optimizer", "br", "--hidden", "6", "--epochs", "4", "--json"],
                           capsys)
    assert code == 0 and json.loads(out.splitlines()[-1])["gamma"] == summary["gamma"]
    assert "gamma" not in bp.runner.Run("sine", optimizer="lm", hidden=[6], epochs=2).fit()
