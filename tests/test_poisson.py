"""The exp output and the Poisson deviance loss: gradients, curvature, scikit-learn's and
PyTorch's values, the fused path, and a fit that recovers a rate."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import activations, checkpoint, losses
from backprop.cli import main
from backprop.errors import ConfigError, DataError
from backprop.hessian import hessian
from backprop.targets import as_targets
from conftest import assert_belongs, hessian_by_differences, load, to_np


def counts(shape, seed=0):
    """Log-means Z and Poisson counts T drawn at those means (zeros among them), float64."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(0.0, 1.5, shape)
    return Z, rng.poisson(np.exp(Z)).astype(np.float64)


def log_linear(n, seed=0):
    """X (n, 2) and counts y (n,) at the rate exp(0.5 + x1 - 0.7 x2), with that log-rate."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, (n, 2))
    log_rate = 0.5 + X[:, 0] - 0.7 * X[:, 1]
    return X, rng.poisson(np.exp(log_rate)).astype(np.float64), log_rate


def value(Z, T, S=None):
    """The loss as a float on NumPy float64."""
    xp = bp.get_backend("cpu").xp
    return float(losses.get("poisson").forward(xp.asarray(Z), xp.asarray(T),
                                               None if S is None else xp.asarray(S))[0])


# -- the exp activation -------------------------------------------------------------
def test_exp_is_an_output_activation_only():
    assert "exp" in activations.names(output=True) and "exp" not in activations.HIDDEN
    model = bp.mlp([2, 3, 1], output="exp")
    assert isinstance(model.layers[-1], activations.Exp)
    assert losses.for_output(model.layers[-1]) == losses.get("poisson")  # read as a mean before any fit


def test_exp_gradients(backend):
    X = backend.asarray(np.random.default_rng(1).normal(0.0, 2.0, (6, 5)))
    result = bp.gradcheck(activations.get("exp"), X)
    assert result.ok, str(result)
    assert result.worst < 1e-7


def test_exp_is_exact_up_to_the_float_maximum_and_never_nan(numpy_backend):
    layer = activations.get("exp")
    X = np.array([[-800.0, -700.0, 0.0, 700.0, 709.0, 710.0]])
    with np.errstate(over="ignore"):
        Y, backward = layer.forward(X)
        dX = backward(np.ones_like(X))
    np.testing.assert_array_equal(Y[0, :5], np.exp(X[0, :5]))  # finite up to log(float max) = 709.78
    assert Y[0, 0] == 0.0 and Y[0, -1] == np.inf and not np.isnan(dX).any()
    np.testing.assert_array_equal(dX, Y)


@pytest.mark.parametrize("dtype,edge", [("float64", 700.0), ("float32", 88.0)])
def test_exp_and_the_loss_stay_in_dtype_and_on_the_device_and_finite_to_the_edge(backend, dtype, edge):
    X = backend.asarray(np.array([[-edge, -1.0, 0.0], [1.0, 50.0, edge]]), dtype)
    T = backend.asarray(np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 5.0]]), dtype)
    Y, backward = activations.get("exp").forward(X, train=True)
    value, dZ = losses.get("poisson").forward(X, T)
    dX = backward(backend.asarray(np.ones((2, 3)), dtype))
    for out, shape in ((Y, (2, 3)), (dX, (2, 3)), (value, ()), (dZ, (2, 3))):
        assert_belongs(out, backend, dtype, shape)
        assert np.all(np.isfinite(to_np(out)))


# -- the loss -----------------------------------------------------------------------
def test_poisson_loss_gradients(backend):
    Z, T = counts((6, 3), seed=2)
    result = bp.gradcheck(losses.get("poisson"), backend.asarray(Z), backend.asarray(T))
    assert result.ok, str(result)


def test_a_model_ending_in_exp_trained_with_poisson_has_the_gradients_differences_say(backend):
    model = bp.mlp([4, 5, 2], activation="tanh", output="exp", device=backend, seed=4, bias=0.1)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(7, 4))
    y = rng.poisson(2.0, (7, 2)).astype(np.float64)
    result = bp.gradcheck(model, X, y, loss="poisson")
    assert result.ok, str(result)
    assert len(result.errors) == 5  # X, then W and b per layer


def test_the_value_is_scikit_learns_poisson_loss_constant_included():
    """MLPRegressor(loss="poisson").loss_ is sklearn.neural_network._base.poisson_loss of the
    exp outputs (before its L2 term): the same value, sample weights included."""
    base = pytest.importorskip("sklearn.neural_network._base")
    Z, T = counts((50, 3), seed=3)
    Z[0, 0], Z[1, 1] = -30.0, 30.0  # far tails: exp(z) tiny and huge
    assert value(Z, T) == pytest.approx(base.poisson_loss(T, np.exp(Z)), rel=1e-12, abs=0.0)
    w = np.random.default_rng(4).uniform(0.1, 3.0, 50)
    # the library's sample weights arrive scaled to mean 1 (see Loss.forward)
    assert value(Z, T, w / w.mean()) == pytest.approx(base.poisson_loss(T, np.exp(Z), w), rel=1e-12, abs=0.0)
    assert value(np.log(T + (T == 0)), T) == pytest.approx(np.exp(0.0) * np.mean(np.sum(T == 0, axis=1)),
                                                            rel=1e-12)  # 0 where t = exp(z) > 0


def test_value_gradient_and_curvature_are_scikit_learns_half_poisson_loss():
    """Per sample and output: HalfPoissonLoss (exp(z) - t z) plus its constant_to_optimal_zero
    (t log t - t) is the value, its gradient and hessian over N ours."""
    pytest.importorskip("sklearn")
    from sklearn._loss import HalfPoissonLoss

    half = HalfPoissonLoss()
    Z, T = counts((30, 1), seed=8)
    z, t = Z[:, 0], T[:, 0]
    expected = np.mean(half.loss(y_true=t, raw_prediction=z) + half.constant_to_optimal_zero(t))
    assert value(Z, T) == pytest.approx(expected, rel=1e-12)
    gradient, curvature = half.gradient_hessian(y_true=t, raw_prediction=z)
    loss, xp = losses.get("poisson"), bp.get_backend("cpu").xp
    np.testing.assert_allclose(loss.forward(xp.asarray(Z), xp.asarray(T))[1][:, 0], gradient / 30, rtol=1e-13)
    np.testing.assert_allclose(loss.curvature(xp, Z, T, np.ones_like(Z))[:, 0], curvature / 30, rtol=1e-13)


def test_the_value_is_pytorchs_poisson_nll_plus_the_constant():
    torch = pytest.importorskip("torch")
    Z, T = counts((40, 3), seed=6)
    nll = torch.nn.PoissonNLLLoss(log_input=True, full=False)(torch.tensor(Z), torch.tensor(T)).item()
    with np.errstate(divide="ignore", invalid="ignore"):
        constant = np.where(T > 0, T * np.log(T), 0.0) - T  # scikit-learn's, which PyTorch leaves out
    # PyTorch's mean runs over samples and outputs; scikit-learn's sums the outputs
    assert value(Z, T) == pytest.approx(nll * T.shape[1] + constant.sum() / len(T), rel=1e-12)


def test_the_loss_is_finite_for_large_negative_log_means_and_inf_not_nan_past_the_maximum(numpy_backend):
    T = np.array([[0.0, 3.0, 1e6]])
    assert np.isfinite(value(np.array([[-1e4, -1e4, -1e4]]), T))
    loss = losses.get("poisson")
    with np.errstate(over="ignore"):
        high, dZ = loss.forward(np.array([[800.0, 800.0, 800.0]]), T)
    assert float(high) == np.inf and np.all(dZ == np.inf)


def test_the_newton_curvature_agrees_with_differences_of_the_gradient(backend):
    for output, loss in (("exp", "poisson"), (None, "poisson"), ("exp", "mse")):  # fused, bare, exp's own
        model = bp.mlp([3, 4, 2], activation="tanh", output=output, dtype="float64", seed=0, device=backend)
        rng = np.random.default_rng(0)
        X, y = rng.normal(size=(6, 3)), rng.poisson(1.5, (6, 2)).astype(np.float64)
        L = losses.get(loss)
        with backend.activate():
            T, _ = as_targets(backend, model.dtype, y, L, 2, 6)
            _, _, H = hessian(model, L, backend.asarray(X, "float64"), T)
        H = to_np(H)
        numeric = hessian_by_differences(model, X, y, loss=loss)
        assert np.max(np.abs(H - numeric)) <= 1e-7 * np.max(np.abs(H)), (output, loss)
        np.testing.assert_array_equal(H, H.T)


@pytest.mark.parametrize("optimizer", ["gd", "newton"])
def test_a_weight_of_two_is_a_repeated_sample_and_zero_a_dropped_one(optimizer):
    X, y, _ = log_linear(12, seed=6)
    w = np.ones(len(X))
    w[[1, 4]] = [2.0, 0.0]  # still summing to N: the same total as the repeated data
    repeat = np.r_[np.arange(len(X)), 1]
    keep = repeat[repeat != 4]
    settings = dict(loss="poisson", optimizer=optimizer, epochs=4, batch_size="full",
                    **({"lr": 0.05} if optimizer == "gd" else {}))
    weighted = bp.mlp([2, 3, 1], activation="tanh", output="exp", dtype="float64", seed=0)
    weighted.fit(X, y, sample_weight=w, **settings)
    repeated = bp.mlp([2, 3, 1], activation="tanh", output="exp", dtype="float64", seed=0)
    repeated.fit(X[keep], y[keep], **settings)
    np.testing.assert_allclose(weighted.history["train_loss"], repeated.history["train_loss"], rtol=1e-9)
    for name, value in weighted.parameters().items():
        np.testing.assert_allclose(value, repeated.parameters()[name], rtol=1e-7, atol=1e-10)


def test_targets_must_be_counts_or_rates(numpy_backend):
    with pytest.raises(DataError, match="negative values: the Poisson loss needs counts or rates") as info:
        bp.mlp([2, 1], output="exp").fit(np.zeros((3, 2)), np.array([1.0, -0.5, 2.0]), loss="poisson")
    assert "\n" not in str(info.value)


def test_auto_stays_mse_for_real_targets_even_after_an_exp():
    xp = bp.get_backend("cpu").xp
    assert losses.auto(xp, xp.asarray([1.0, 2.0]), 1, activations.get("exp")) == losses.get("mse")


def test_levenberg_marquardt_refuses_it_and_newton_trains_it():
    X, y, _ = log_linear(200, seed=1)
    with pytest.raises(ConfigError):
        bp.mlp([2, 1], output="exp", dtype="float64").fit(X, y, loss="poisson", optimizer="lm", epochs=1)
    model = bp.mlp([2, 1], output="exp", dtype="float64", seed=0)
    history = model.fit(X, y, loss="poisson", optimizer="newton", epochs=20)
    assert history.records[-1]["train_loss"] < history.records[0]["train_loss"]
    W, b = (to_np(p) for p in model.parameter_list())
    np.testing.assert_allclose([*W.ravel(), *b], [1.0, -0.7, 0.5], atol=0.2)  # the log-linear truth


# -- the fused path and the fit -----------------------------------------------------
def test_a_fit_recovers_the_log_rate():
    X, y, log_rate = log_linear(2000, seed=0)
    model = bp.mlp([2, 8, 1], activation="tanh", output="exp", dtype="float64", seed=0)
    model.fit(X, y, loss="poisson", optimizer="adam", lr=0.01, epochs=60, batch_size=64)
    Xt, _, truth = log_linear(500, seed=9)
    predicted = np.log(model.predict(Xt))
    r2 = 1.0 - np.sum((predicted - truth) ** 2) / np.sum((truth - truth.mean()) ** 2)
    assert r2 > 0.9


def test_a_model_ending_in_exp_trains_on_the_log_means_and_predicts_their_exp():
    X, y, _ = log_linear(64, seed=2)
    model = bp.mlp([2, 4, 1], activation="tanh", output="exp", dtype="float64", seed=0)
    model.fit(X, y, loss="poisson", epochs=2)
    assert model.trunk(model.loss) == model.layers[:-1]  # the exp is the loss's, fused
    logits = to_np(model.forward(X, train=False, loss=model.loss)[0])  # the trunk's output
    np.testing.assert_array_equal(model.predict(X), np.exp(logits[:, 0]))
    np.testing.assert_array_equal(model.predict(X), to_np(model(X))[:, 0])  # the same as the layer's


def test_evaluate_scores_the_predicted_means():
    X, y, _ = log_linear(200, seed=7)
    model = bp.mlp([2, 4, 1], activation="tanh", output="exp", dtype="float64", seed=0)
    model.fit(X, y, loss="poisson", epochs=3)
    mean = model.predict(X)
    scores = model.evaluate(X, y)
    assert scores["mae"] == pytest.approx(np.mean(np.abs(mean - y)), rel=1e-12)
    r2 = 1.0 - np.sum((mean - y) ** 2) / np.sum((y - y.mean()) ** 2)
    assert scores["r2"] == pytest.approx(r2, rel=1e-12)
    assert scores["loss"] == pytest.approx(value(np.log(mean)[:, None], y[:, None]), rel=1e-12)


def test_a_model_without_exp_is_read_as_log_means_as_cross_entropy_reads_logits():
    """The rule of ce for a model without softmax: the outputs are what the loss reads (here the
    log-mean), and predict is the loss's meaning of them (here exp)."""
    X, y, _ = log_linear(64, seed=3)
    model = bp.mlp([2, 4, 1], activation="tanh", dtype="float64", seed=0)
    history = model.fit(X, y, loss="poisson", epochs=3)
    assert history.records[-1]["train_loss"] < history.records[0]["train_loss"]
    assert model.trunk(model.loss) == model.layers
    np.testing.assert_array_equal(model.predict(X), np.exp(to_np(model(X))[:, 0]))


def test_a_poisson_model_round_trips_a_checkpoint(tmp_path):
    X, y, _ = log_linear(64, seed=4)
    model = bp.mlp([2, 3, 1], output="exp", dtype="float64", seed=0)
    model.fit(X, y, loss="poisson", epochs=2)
    path = tmp_path / "p.safetensors"
    checkpoint.save(model, str(path))
    back = checkpoint.load(str(path)).model
    assert back.loss == losses.get("poisson") and isinstance(back.layers[-1], activations.Exp)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))


def test_the_command_line_trains_counts(tmp_path, capsys):
    X, y, _ = log_linear(300, seed=5)
    data = tmp_path / "counts.csv"
    np.savetxt(data, np.column_stack([X, y]), delimiter=",", header="a,b,y", comments="")
    assert main(["train", str(data), "--loss", "poisson", "--epochs", "2", "--quiet"]) == 2
    assert "give task regression" in capsys.readouterr().err  # integer counts read as classes
    saved = tmp_path / "counts.safetensors"
    code = main(["train", str(data), "--loss", "poisson", "--task", "regression", "--no-standardize",
                 "--epochs", "5", "--quiet", "--save", str(saved)])
    assert code == 0, capsys.readouterr().err
    model = checkpoint.load(str(saved)).model
    assert model.loss == losses.get("poisson")
    np.testing.assert_array_equal(model.predict(X), np.exp(to_np(model(X.astype(np.float32)))[:, 0]))


@pytest.mark.parametrize("spec", ["strict", "torch"])
def test_the_loss_is_the_same_number_on_other_backends(spec):
    backend = load(spec)
    Z, T = counts((9, 2), seed=7)
    got = float(to_np(losses.get("poisson").forward(backend.asarray(Z), backend.asarray(T))[0]))
    assert got == pytest.approx(value(Z, T), rel=1e-14)


def test_a_standardized_run_only_scales_counts_and_gradcheck_draws_counts(tmp_path, capsys):
    """poisson's targets keep their sign (Loss.centred_targets False): a run standardizes them by
    their deviation alone, and the gradient checker draws non-negative targets for it."""
    from backprop.cli import main

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3))
    y = rng.poisson(np.exp(0.6 * X[:, 0] + 0.3)).astype(float)
    path = str(tmp_path / "counts.npz")
    np.savez(path, X=X, y=y)
    job = bp.Run(path, loss="poisson", task="regression", epochs=30, seed=1)
    assert float(job.transform.y_mean[0]) == 0.0
    assert job.transform.y_std[0] == pytest.approx(np.std(job.train[1]), rel=1e-12)
    summary = job.fit()
    assert summary["val_r2"] > 0.4  # the noise leaves about 0.5 to explain
    assert bp.Run(path, loss="mse", task="regression", epochs=1).transform.y_mean[0] != 0.0
    assert main(["gradcheck", "--loss", "poisson", "--outputs", "2"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("ok (tolerance 1e-06)")
