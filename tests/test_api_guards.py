"""The Python API refuses what cannot work, with one line naming what to do.

One fit at a time per model (real threads), optimizer settings checked where they are
made, set_parameters checked before anything is written, unknown keywords named with
the known ones, scikit-learn's partial_fit and sample_weight rules, fit's signature,
and accuracy per epoch for class indicators trained with a squared error.
"""

from __future__ import annotations

import inspect
import math
import threading

import numpy as np
import pytest

import backprop as bp
from backprop import optimizers
from backprop.errors import ConfigError, DataError
from backprop.estimators import BackpropClassifier, BackpropRegressor
from backprop.lbfgs import LBFGS
from backprop.second_order import LevenbergMarquardt, Newton

X_XOR = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
Y_XOR = np.array([0, 1, 1, 0])


def _blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)


# -- one fit at a time ------------------------------------------------------------------
def test_a_second_concurrent_fit_is_refused_and_the_first_runs_unharmed():
    X, y = _blobs()
    model = bp.mlp([3, 4, 2], seed=0)
    entered, release = threading.Event(), threading.Event()
    outcome: dict = {}

    def hold(record, _model):
        if record["epoch"] == 1:
            entered.set()
            release.wait(30)

    def first():
        outcome["history"] = model.fit(X, y, epochs=5, callbacks=[hold])

    def second():
        try:
            model.fit(X, y, epochs=3)
        except ConfigError as exc:
            outcome["refused"] = str(exc)

    a = threading.Thread(target=first)
    a.start()
    assert entered.wait(30)
    b = threading.Thread(target=second)
    b.start()
    b.join(30)
    release.set()
    a.join(30)
    assert "already training" in outcome["refused"] and "model.to()" in outcome["refused"]
    assert [r["epoch"] for r in outcome["history"].records] == [1, 2, 3, 4, 5]
    assert model.epoch == 5 and model.optimizer.t == 5 * math.ceil(60 / 32)


def test_a_callback_calling_fit_is_refused():
    model = bp.mlp([3, 4, 2], seed=0)
    X, y = _blobs()
    with pytest.raises(ConfigError, match="already training"):
        model.fit(X, y, epochs=2, callbacks=[lambda record, m: m.fit(X, y, epochs=1)])


def test_a_fit_that_raised_releases_the_model():
    model = bp.mlp([3, 4, 2], seed=0)
    X, y = _blobs()

    def boom(record, _model):
        raise RuntimeError("a callback's bug")

    with pytest.raises(RuntimeError):
        model.fit(X, y, epochs=2, callbacks=[boom])
    assert model.fit(X, y, epochs=2).records[-1]["epoch"] == 3


# -- optimizer settings ------------------------------------------------------------------
@pytest.mark.parametrize("make, name", [
    (lambda: optimizers.Adam(eps=-1), "eps"),
    (lambda: optimizers.Adam(eps=0.0), "eps"),
    (lambda: optimizers.Adam(eps=float("nan")), "eps"),
    (lambda: optimizers.Adam(beta1=1.0), "beta1"),
    (lambda: optimizers.Adam(beta2=-0.1), "beta2"),
    (lambda: optimizers.AdamW(beta2=float("nan")), "beta2"),
    (lambda: optimizers.Adam(lr=float("inf")), "learning rate"),
    (lambda: optimizers.Adam(lr=True), "learning rate"),
    (lambda: optimizers.RMSprop(rho=0.0), "rho"),
    (lambda: optimizers.RMSprop(eps=-1e-8), "eps"),
    (lambda: optimizers.SGD(momentum=1.0), "momentum"),
    (lambda: optimizers.SGD(momentum=float("nan")), "momentum"),
    (lambda: optimizers.SGD(momentum=0.9, nesterov="yes"), "nesterov"),
    (lambda: optimizers.GradientDescent(weight_decay=-1), "weight_decay"),
    (lambda: optimizers.Adam(l1=float("inf")), "l1"),
    (lambda: LevenbergMarquardt(max_jacobian_bytes=0), "max_jacobian_bytes"),
    (lambda: Newton(max_params=-3), "max_params"),
    (lambda: LBFGS(memory=0), "memory"),
])
def test_optimizer_settings_are_checked_at_construction(make, name):
    with pytest.raises(ConfigError, match=name):
        make()


def test_an_unknown_optimizer_keyword_names_the_known_ones():
    with pytest.raises(ConfigError, match="no setting 'foo': its settings are lr, beta1, beta2, eps"):
        optimizers.get("adam", foo=1)
    assert optimizers.get("momentum").momentum == 0.9 and optimizers.get("nesterov").nesterov
    assert optimizers.settings("lm")[:2] == ["max_jacobian_bytes", "mu"]  # no lr: it has none


def test_fit_passes_optimizer_settings_and_names_both_lists_for_an_unknown_one():
    X, y = _blobs()
    model = bp.mlp([3, 4, 2], seed=0)
    with pytest.raises(ConfigError, match=r"no keyword 'foo': it takes loss, optimizer.*beta1"):
        model.fit(X, y, optimizer="adam", foo=1)
    with pytest.raises(ConfigError, match=r"no keyword 'epoch'.*epochs"):
        model.fit(X, y, epoch=3)
    model.fit(X, y, optimizer="sgd", momentum=0.5, epochs=1)
    assert model.optimizer.momentum == 0.5
    with pytest.raises(ConfigError, match="pass optimizer='sgd'"):
        model.fit(X, y, momentum=0.7, epochs=1)  # the running optimizer's momentum is fixed


# -- set_parameters ----------------------------------------------------------------------
def test_set_parameters_refuses_unknown_names_non_finite_values_and_shapes_writing_nothing():
    model = bp.mlp([2, 3, 1], seed=0)
    before = {k: np.array(v) for k, v in model.parameters().items()}
    with pytest.raises(ConfigError, match="no parameter named '9.W': its parameters are 0.W, 0.b, 2.W, 2.b"):
        model.set_parameters({"9.W": np.zeros((3, 1))})
    bad = np.zeros((3, 1))
    bad[1, 0] = np.nan
    with pytest.raises(DataError, match="2.W holds NaN or infinity"):
        model.set_parameters({"0.b": np.ones(3), "2.W": bad})
    with pytest.raises(DataError, match=r"2.b has shape \(1,\), got \(2,\)"):
        model.set_parameters({"0.b": np.ones(3), "2.b": np.ones(2)})
    for name, value in model.parameters().items():
        assert np.array_equal(np.asarray(value), before[name]), name  # the valid 0.b was not written
    model.set_parameters({"0.b": np.ones(3)})
    assert np.array_equal(np.asarray(model.parameters()["0.b"]), np.ones(3))


# -- scikit-learn's rules ------------------------------------------------------------------
def test_partial_fit_refuses_other_classes_than_the_first_call():
    X, y = _blobs()
    clf = BackpropClassifier((4,), random_state=0).partial_fit(X, y, classes=[0, 1])
    clf.partial_fit(X, y, classes=[1, 0])  # the same classes, in any order
    with pytest.raises(ValueError, match=r"classes=\[0, 1, 2\] is not the same as on the first call"):
        clf.partial_fit(X, y, classes=[0, 1, 2])


def test_a_number_as_sample_weight_weighs_every_sample():
    X, y = _blobs()
    # A summed loss keeps the weights as given: weight 2 doubles the first epoch's loss exactly.
    plain = bp.mlp([3, 4, 1], seed=0, dtype="float64").fit(X, y.astype(float), loss="sse", optimizer="gd",
                                                           lr=1e-3, batch_size="full", epochs=1)
    twice = bp.mlp([3, 4, 1], seed=0, dtype="float64").fit(X, y.astype(float), loss="sse", optimizer="gd",
                                                           lr=1e-3, batch_size="full", epochs=1,
                                                           sample_weight=2)
    assert twice.records[0]["train_loss"] == 2 * plain.records[0]["train_loss"]
    for solver in ("adam", "lm"):
        a = BackpropClassifier((4,), solver=solver, random_state=0, max_iter=3)
        b = BackpropClassifier((4,), solver=solver, random_state=0, max_iter=3)
        with pytest.warns(Warning):
            a.fit(X, y, sample_weight=3.0)
            b.fit(X, y, sample_weight=np.full(len(y), 3.0))
        assert np.array_equal(a.predict_proba(X), b.predict_proba(X)), solver
    with pytest.warns(Warning):
        r = BackpropRegressor((4,), random_state=0, max_iter=3).fit(X, X[:, 1], sample_weight=0.5)
    assert r.n_iter_ == 3


# -- what help(model.fit) shows ----------------------------------------------------------
def test_fit_has_its_real_signature_and_a_docstring_with_shapes():
    model = bp.mlp([2, 3, 1])
    params = inspect.signature(model.fit).parameters
    assert list(params)[:4] == ["X", "y", "loss", "optimizer"]
    assert {"epochs", "batch_size", "validation_split", "sample_weight"} <= set(params)
    assert "X : array (N, n_inputs)" in inspect.getdoc(model.fit)


# -- accuracy for class indicators trained with a squared error ---------------------------
def _indicator_accuracy(model, X, y):
    P = np.asarray(model.predict(X, loss="mse")).reshape(len(X), -1)  # the outputs themselves
    guess = (P[:, 0] > 0.5).astype(int) if P.shape[1] == 1 else np.argmax(P, axis=1)
    return float(np.mean(guess == y))


def test_lm_on_classes_records_accuracy_as_the_reports_count_it():
    X, y = _blobs(80)
    Xv, yv = _blobs(40, seed=1)
    model = bp.mlp([3, 4, 1], output="sigmoid", dtype="float64", seed=0)
    history = model.fit(X, y.astype(float), loss="mse", optimizer="lm", epochs=4, class_targets=True,
                        validation_data=(Xv, yv.astype(float)))
    last = history.records[-1]
    # Full batch: the accuracy is counted after the iteration, on the weights the model keeps.
    assert last["train_accuracy"] == _indicator_accuracy(model, X, y)
    assert last["val_accuracy"] == _indicator_accuracy(model, Xv, yv)
    assert model.loss.name == "mse" and model.task() == "regression"  # the model's loss is unchanged
    plain = bp.mlp([3, 4, 1], output="sigmoid", dtype="float64", seed=0)
    record = plain.fit(X, y.astype(float), loss="mse", optimizer="lm", epochs=1).records[0]
    assert "train_accuracy" not in record  # without class_targets: a regression, as before


def test_mini_batch_and_one_hot_indicators_count_the_same_rule():
    X, y3 = _blobs(90)
    y3 = y3 + (X[:, 2] > 0.8)  # three classes
    model = bp.mlp([3, 5, 3], output="sigmoid", dtype="float64", seed=0)
    start = _indicator_accuracy(model, X, y3)
    # One full batch per epoch: epoch 1's accuracy is counted on the starting weights.
    history = model.fit(X, np.eye(3)[y3], loss="mse", optimizer="gd", batch_size="full", epochs=1,
                        class_targets=True)
    assert history.records[0]["train_accuracy"] == start


# -- what an out-of-memory message can say ------------------------------------------------
def test_size_note_says_what_is_big():
    model = bp.mlp([2, 16, 100_000])  # 100,000 classes: 2*16+16 + 16*100,000+100,000 parameters
    assert model.size_note(100_000) == (
        "the model has 1,700,048 parameters (6.8 MB in float32; the largest, 2.W, holds 1,600,000); "
        "its targets and outputs for 100,000 samples of 100,000 outputs take 80.0 GB")
    small = "the model has 13 parameters (52 B in float32; the largest, 0.W, holds 6)"
    assert bp.mlp([2, 3, 1]).size_note() == small


def test_regression_scores_of_targets_near_the_float_maximum():
    # Scaled by 2**600, squares of targets and errors pass the float range: R^2 (scale-free)
    # and MAE (linear) must still come out, MSE is truly beyond float64.
    from sklearn.metrics import mean_absolute_error, r2_score

    from backprop.evaluation import regression_scores

    rng = np.random.default_rng(0)
    T = rng.normal(size=(50, 2))
    P = T + 0.3 * rng.normal(size=(50, 2))
    c = 2.0 ** 600
    with np.errstate(over="ignore"):
        big = {k: float(v) for k, v in regression_scores(np, c * P, c * T).items()}
    assert big["r2"] == pytest.approx(r2_score(T, P), rel=1e-13)
    assert big["mae"] == pytest.approx(c * mean_absolute_error(T, P), rel=1e-13)
    assert big["mse"] == np.inf
    # N errors near the float maximum: their mean is finite although their sum is not.
    T = np.array([[1.7e308], [-1.7e308], [1.7e308], [-1.7e308]])
    with np.errstate(over="ignore"):  # the MSE itself is past the float range
        scores = regression_scores(np, np.zeros_like(T), T)
    assert float(scores["mae"]) == pytest.approx(1.7e308, rel=1e-15) and float(scores["r2"]) == 0.0


def test_lbfgs_goes_through_the_one_gradient_seam():
    # The seam's check holds for L-BFGS's objective too: a hook returning too few gradients.
    X = np.random.default_rng(0).normal(size=(20, 2))
    y = (X[:, 0] > 0).astype(int)
    model = bp.mlp([2, 3, 2], seed=0)
    with pytest.raises(ConfigError, match="returned 1 gradients for 4 parameters"):
        model.fit(X, y, optimizer="lbfgs", epochs=2, gradient_hooks=[lambda grads, step: grads[:1]])
    seen = []
    model = bp.mlp([2, 3, 2], seed=0)
    model.fit(X, y, optimizer="lbfgs", epochs=2, gradient_hooks=[lambda grads, step: seen.append(len(grads))])
    assert seen and set(seen) == {4}
