"""The estimators against scikit-learn's ``MLPClassifier``/``MLPRegressor`` as the oracle: the same
parameters give the same numbers (initial weights, sgd with momentum, learning-rate schedules,
the stopping rule, the early-stopping split and scores, n_iter_, t_, loss_curve_, verbose lines),
and the fitted attributes scikit-learn documents."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import load_digits, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import MinMaxScaler, scale

from backprop import losses
from backprop.apps import estimators
from backprop.errors import DataError
from backprop.estimators import BackpropClassifier, BackpropRegressor

X_digits, y_digits = load_digits(n_class=3, return_X_y=True)
X_digits, y_digits = MinMaxScaler().fit_transform(X_digits[:120]), y_digits[:120]
X_reg, y_reg = make_regression(n_samples=80, n_features=6, noise=10, random_state=0)
y_reg = scale(y_reg)

DATA = {"multiclass": (MLPClassifier, BackpropClassifier, X_digits, y_digits),
        "binary": (MLPClassifier, BackpropClassifier, X_digits, y_digits == 1),
        "regression": (MLPRegressor, BackpropRegressor, X_reg, y_reg)}
RULES = {
    "sgd defaults (Nesterov momentum 0.9)": {},
    "classical momentum": {"nesterovs_momentum": False, "momentum": 0.5},
    "invscaling": {"learning_rate": "invscaling", "momentum": 0, "learning_rate_init": 0.5},
    "adaptive": {"learning_rate": "adaptive", "momentum": 0, "tol": 0.01, "n_iter_no_change": 2,
                 "learning_rate_init": 0.5},
    "early stopping": {"early_stopping": True, "validation_fraction": 0.2},
    "logistic units (their own initial bound)": {"activation": "logistic", "max_iter": 5},
}


def _both(data: str, **params):
    theirs, ours, X, y = DATA[data]
    # full batches in order: the only randomness left is the weights and the split, both drawn
    # from random_state as scikit-learn draws them; alpha 0, since scikit-learn's loss_ adds it
    params = {"hidden_layer_sizes": (7,), "solver": "sgd", "alpha": 0.0, "batch_size": len(X),
              "shuffle": False, "random_state": 3, "max_iter": 60, "learning_rate_init": 0.05, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return theirs(**params).fit(X, y), ours(**params).fit(X, y)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("data", DATA)
def test_sgd_and_its_schedules_and_stopping_give_scikit_learns_numbers(data, rule):
    theirs, ours = _both(data, **RULES[rule])
    for a, b in zip(theirs.coefs_ + theirs.intercepts_, ours.coefs_ + ours.intercepts_):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)
    assert (ours.n_iter_, ours.t_) == (theirs.n_iter_, theirs.t_)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-12)
    if theirs.validation_scores_ is None:
        assert ours.validation_scores_ is None and ours.best_validation_score_ is None
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-12)
    else:  # the same samples held out (stratified for one output), the same scores
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-12)
        assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=1e-12)
        assert ours.best_loss_ is None


@pytest.mark.parametrize("alpha", [0.0, 1e-3])
@pytest.mark.parametrize("data", DATA)
def test_lbfgs_gives_scikit_learns_iterates(data, alpha):
    # the same start, objective (penalty included), SciPy minimizer and gradient tolerance (tol,
    # met before max_iter): the same iterates
    theirs, ours = _both(data, solver="lbfgs", max_iter=30, alpha=alpha, tol=3e-3)
    for a, b in zip(theirs.coefs_ + theirs.intercepts_, ours.coefs_ + ours.intercepts_):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)
    assert ours.n_iter_ == theirs.n_iter_
    if alpha == 0.0:  # scikit-learn's loss_ adds the penalty; ours is the data's loss alone
        assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)


def test_fitted_attributes_are_scikit_learns():
    theirs, ours = _both("multiclass", max_iter=3)
    for name in ("n_layers_", "n_outputs_", "out_activation_", "n_iter_", "t_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    shapes = [(w.shape, b.shape) for w, b in zip(ours.coefs_, ours.intercepts_)]
    assert shapes == [((64, 7), (7,)), ((7, 3), (3,))]
    assert all(type(w) is np.ndarray for w in ours.coefs_ + ours.intercepts_)
    # host copies made when read: writing into one changes neither the model nor the next read
    before = ours.predict_proba(X_digits)
    ours.coefs_[0][...] = 0.0
    np.testing.assert_array_equal(ours.predict_proba(X_digits), before)
    assert np.any(ours.coefs_[0] != 0.0)
    assert not hasattr(BackpropClassifier(), "coefs_")
    binary, regression = _both("binary", max_iter=2), _both("regression", max_iter=2)
    for theirs, ours in (binary, regression):
        assert (ours.out_activation_, ours.n_outputs_) == (theirs.out_activation_, theirs.n_outputs_)


def test_multilabel_targets_train_one_logistic_output_per_label():
    X, Y = make_multilabel_classification(n_samples=60, n_classes=4, random_state=0)
    params = {"hidden_layer_sizes": (8,), "solver": "sgd", "batch_size": 60, "shuffle": False,
              "random_state": 0, "max_iter": 30, "learning_rate_init": 0.01}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs, ours = MLPClassifier(**params).fit(X, Y), BackpropClassifier(**params).fit(X, Y)
    assert ours.out_activation_ == "logistic" and ours.n_outputs_ == 4
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    # scikit-learn's loss sums the labels' log-losses (ours averages them): its units, its steps
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_[:len(ours.loss_curve_)], rtol=1e-3)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-6)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


@pytest.mark.parametrize("rule", ["adaptive", "early stopping"])
def test_verbose_prints_scikit_learns_lines(capsys, rule):
    theirs, _ = _both("binary", verbose=True, **RULES[rule])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"Iteration 1, loss = {theirs.loss_curve_[0]:.8f}"
    half = len(printed) // 2  # theirs, then ours: the same lines, the rate's drops and the stop included
    assert printed[half:] == printed[:half] and any("consecutive epochs" in line for line in printed)


def test_sparse_input_is_densified_once_or_refused_when_it_would_not_fit(monkeypatch):
    X = sparse.csr_matrix(X_digits)
    params = {"hidden_layer_sizes": (5,), "solver": "lbfgs", "random_state": 0, "max_iter": 20}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = BackpropClassifier(**params).fit(X_digits, y_digits)
        from_sparse = BackpropClassifier(**params).fit(X, y_digits)
    np.testing.assert_array_equal(from_sparse.coefs_[0], dense.coefs_[0])
    np.testing.assert_array_equal(from_sparse.predict_proba(sparse.csc_matrix(X)),
                                  dense.predict_proba(X_digits))
    monkeypatch.setattr(estimators, "_available_memory", lambda: X_digits.nbytes)  # less than twice its size
    with pytest.raises(DataError, match=r"^sparse X of shape \(120, 64\) takes .* dense, more than half"):
        BackpropClassifier(**params).fit(X, y_digits)


@pytest.mark.skipif("poisson" not in losses.names(), reason="the library has no 'poisson' loss registered")
def test_poisson_loss_is_scikit_learns():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(100, 2))
    y = rng.poisson(np.exp(X @ [1.0, -0.5] + 0.5))
    params = {"loss": "poisson", "hidden_layer_sizes": (3,), "activation": "tanh", "solver": "lbfgs",
              "alpha": 0.0, "random_state": 1, "max_iter": 5}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs, ours = MLPRegressor(**params).fit(X, y), BackpropRegressor(**params).fit(X, y)
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    assert isinstance(ours.model_.layers[-1], losses.get("poisson").link)  # the model says what it outputs
    # the same start, objective (half the Poisson deviance) and L-BFGS: the same iterates
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-8)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6)
