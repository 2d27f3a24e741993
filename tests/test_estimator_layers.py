"""The estimators beyond the MLP: ``dropout=``, ``layers=`` (an architecture as text) and
``input_shape=`` (samples of several axes), with scikit-learn's conventions."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

from backprop.errors import ConfigError, DataError
from backprop.estimators import BackpropClassifier, BackpropRegressor

CONV = "conv1d(8, 5, padding=2), relu, globalavgpool1d, dense(3)"

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def signals(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of noisy sines of 16 steps, (N, 1, 16), told apart by their frequency and
    shifted by a random phase (what a convolution sees wherever it is)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    t = np.arange(16)
    X = np.stack([np.sin(0.4 * (k + 1) * t + rng.uniform(0, 6)) + 0.3 * rng.normal(size=16) for k in y])
    return X[:, None, :], y


def test_dropout_adds_a_dropout_layer_after_each_hidden_layer_and_trains():
    X, y = load_iris(return_X_y=True)
    clf = BackpropClassifier((16, 8), dropout=0.2, random_state=0, max_iter=300, learning_rate_init=0.01)
    clf.fit(X, y)
    names = [type(layer).__name__.lower() for layer in clf.model_.layers]
    assert names == ["dense", "relu", "dropout", "dense", "relu", "dropout", "dense"]
    assert [layer.rate for layer in clf.model_.layers if names[clf.model_.layers.index(layer)] == "dropout"] \
        == [0.2, 0.2]
    assert clf.score(X, y) > 0.9
    # predictions run in inference mode: no mask, the same answer twice
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))
    # dropout=0 is the MLP as before, weight for weight
    plain = BackpropClassifier((16, 8), random_state=0, max_iter=5).fit(X, y)
    zero = BackpropClassifier((16, 8), dropout=0.0, random_state=0, max_iter=5).fit(X, y)
    np.testing.assert_array_equal(plain.model_.flat_parameters(), zero.model_.flat_parameters())
    assert len(zero.model_.layers) == 5


def test_a_conv_classifier_fits_predicts_scores_pickles_and_clones():
    X, y = signals()
    clf = BackpropClassifier(layers=CONV, random_state=0, max_iter=60, learning_rate_init=0.01)
    assert clf.fit(X, y) is clf
    assert [type(layer).__name__.lower() for layer in clf.model_.layers] == \
        ["conv1d", "relu", "globalavgpool1d", "dense"]  # logits: cross-entropy owns the softmax
    assert tuple(clf.model_.input_shape) == (1, 16) and clf.n_layers_ == 3 and clf.n_outputs_ == 3
    assert clf.score(X, y) > 0.9
    assert set(clf.predict(X[:10])) <= {0, 1, 2} and clf.predict_proba(X).shape == (120, 3)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    fresh = clone(clf)
    assert not hasattr(fresh, "model_") and fresh.get_params() == clf.get_params()
    np.testing.assert_array_equal(fresh.fit(X, y).predict_proba(X), clf.predict_proba(X))
    # warm_start continues the same network on samples of several axes
    model = clf.model_
    clf.set_params(warm_start=True, max_iter=2).fit(X, y)
    assert clf.model_ is model


def test_input_shape_reshapes_rows_into_samples():
    X, y = signals()
    rows = X.reshape(len(X), 16)
    kw = dict(layers=CONV, random_state=0, max_iter=20, learning_rate_init=0.01)
    shaped = BackpropClassifier(input_shape=(1, 16), **kw).fit(rows, y)
    given = BackpropClassifier(**kw).fit(X, y)
    assert shaped.n_features_in_ == 16
    np.testing.assert_array_equal(shaped.predict_proba(rows), given.predict_proba(X))
    with pytest.raises(DataError, match=r"input_shape=\(1, 15\): give X of shape \(N, 15\) or \(N, 1, 15\)"):
        BackpropClassifier(input_shape=(1, 15), **kw).fit(rows, y)


def test_a_regressor_gets_the_output_its_loss_needs():
    X, _ = signals(60)
    target = X[:, 0, :4].sum(axis=1)
    reg = BackpropRegressor(layers="conv1d(4, 3), relu, flatten, dense(1)", random_state=0, max_iter=30)
    assert reg.fit(X, target).predict(X).shape == (60,)
    counts = np.round(np.exp(0.3 * target))
    poisson = BackpropRegressor(layers="flatten, dense(1)", loss="poisson", random_state=0, max_iter=5)
    assert type(poisson.fit(X, counts).model_.layers[-1]).name == "exp"  # appended where left out


@pytest.mark.parametrize("params, error, message", [
    (dict(layers=CONV, hidden_layer_sizes=(10,)), ConfigError,
     r"^layers gives the whole network: drop hidden_layer_sizes$"),
    (dict(layers=CONV, activation="tanh", dropout=0.1), ConfigError,
     r"^layers gives the whole network: drop activation, dropout$"),
    (dict(input_shape=(1, 16)), ConfigError,
     r"^input_shape gives each sample's shape for layers=: give layers too, or drop input_shape$"),
    (dict(layers="conv1d(8, 5), relu, flatten, dense(4)"), ConfigError,
     r"the layers end in 4 outputs but the data needs 3: end layers with dense\(3\)$"),
    (dict(layers="conv1d(8, 5) relu"), ConfigError, r"cannot read the layers"),
    (dict(layers=CONV, input_shape=(1, 0)), ConfigError, r"^input_shape must be positive integers"),
    (dict(dropout=1.5), InvalidParameterError, r"'dropout' parameter"),
    (dict(layers=3), InvalidParameterError, r"'layers' parameter"),
])
def test_refusals_in_one_line(params, error, message):
    X, y = signals(30)
    with pytest.raises(error, match=message):
        BackpropClassifier(max_iter=1, **params).fit(X if "layers" in params else X[:, 0], y)


def test_the_defaults_beside_layers_are_no_conflict_and_nd_x_needs_layers():
    X, y = signals(30)
    for hidden in ((100,), [100], 100):  # the defaults, however spelled
        BackpropClassifier(hidden, "relu", layers=CONV, dropout=0, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="Found array with dim 3"):  # the MLP reads rows, as scikit-learn's
        BackpropClassifier(max_iter=1).fit(X, y)


def test_coefs_are_the_mlps_and_refused_for_other_layers():
    X, y = signals(30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = BackpropClassifier(layers="flatten, dense(8), relu, dense(3)", max_iter=1).fit(X, y)
        conv = BackpropClassifier(layers=CONV, max_iter=1).fit(X, y)
    assert [W.shape for W in dense.coefs_] == [(16, 8), (8, 3)]
    assert [b.shape for b in dense.intercepts_] == [(8,), (3,)]
    with pytest.raises(AttributeError, match=r"^coefs_ and intercepts_ are an MLP's Dense weights, and this "
                                             r"network has conv1d layers: read model_.layers\[i\].params"):
        _ = conv.coefs_
    assert not hasattr(conv, "intercepts_")


def test_device_samples_of_several_axes_train_there():
    xp = pytest.importorskip("array_api_strict")
    X, y = signals(60)
    kw = dict(layers=CONV, random_state=0, max_iter=5, learning_rate_init=0.01)
    on_host = BackpropClassifier(**kw).fit(X, y)
    for given, extra in ((xp.asarray(X), {}), (xp.asarray(X.reshape(60, 16)), dict(input_shape=(1, 16)))):
        clf = BackpropClassifier(**kw, **extra).fit(given, xp.asarray(y))
        assert clf.model_.backend.name == "strict" and tuple(clf.model_.input_shape) == (1, 16)
        P = clf.predict_proba(given)
        assert isinstance(P, type(given))
        np.testing.assert_allclose(np.asarray(P), on_host.predict_proba(X), rtol=1e-12, atol=1e-12)


def test_a_pickle_from_before_these_parameters_loads_with_their_defaults():
    X, y = load_iris(return_X_y=True)
    clf = BackpropClassifier((8,), random_state=0, max_iter=5).fit(X, y)
    state = clf.__getstate__()
    for name in ("dropout", "layers", "input_shape"):
        del state[name]
    old = BackpropClassifier.__new__(BackpropClassifier)
    old.__setstate__(state)
    assert (old.dropout, old.layers, old.input_shape) == (0.0, None, None)
    assert old.get_params() == clf.get_params()
    np.testing.assert_array_equal(old.predict_proba(X), clf.predict_proba(X))
