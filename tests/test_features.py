"""Feature crosses, the L1 penalty and generated data options: what the playground builds on."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import datasets, features, optimizers
from backprop.errors import ConfigError, DataError
from backprop.runner import Run, restore


def test_feature_values_worked_out_by_hand():
    X = np.array([[1.0, 2.0], [3.0, -1.0]])
    got = features.expand(X, ["x2", "x1^2", "x1*x2", "sin(x1)", "x1"])
    want = np.array([[2.0, 1.0, 2.0, np.sin(1.0), 1.0], [-1.0, 9.0, -3.0, np.sin(3.0), 3.0]])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("names, error", [("x0", ConfigError), ("x1,x1", ConfigError),
                                          ("cos(x1)", ConfigError), ("x3", DataError), ("", ConfigError)])
def test_bad_features_are_refused(names, error):
    with pytest.raises(error):
        features.check(names, 2)


def test_a_run_with_features_saves_them_and_predict_computes_them(tmp_path):
    path = str(tmp_path / "m.safetensors")
    job = Run("moons", features="x1,x2,x1^2,x1*x2,sin(x2)", hidden=[6], epochs=3, save=path)
    job.fit()
    assert job.model.n_inputs == 5
    model, transform, head, _ = restore(path)
    X = datasets.load_builtin("moons").X_test[:7]
    expanded = features.expand(X, ["x1", "x2", "x1^2", "x1*x2", "sin(x2)"])
    by_hand = (expanded - transform.x_mean) / transform.x_std
    np.testing.assert_allclose(transform.inputs(X), by_hand, rtol=0, atol=0)
    np.testing.assert_array_equal(np.asarray(model.predict(transform.inputs(X))),
                                  np.asarray(job.model.predict(by_hand)))
    with pytest.raises(DataError, match="trained on 2"):
        transform.inputs(np.ones((3, 5)))


def test_l1_adds_lr_times_sign_to_weights_only():
    model = bp.mlp([3, 4, 2], activation="tanh", seed=0, dtype="float64")
    before = {k: np.array(v) for k, v in model.parameters().items()}
    opt = optimizers.get("sgd", 0.1, l1=0.01)
    grads = [np.zeros_like(p) for p in model.parameter_list()]
    opt.step(model.parameter_list(), grads)
    for name, value in model.parameters().items():
        if value.ndim >= 2:  # weights move by lr * l1 toward zero, biases stay
            np.testing.assert_allclose(value, before[name] - 0.1 * 0.01 * np.sign(before[name]), rtol=1e-15)
        else:
            np.testing.assert_array_equal(value, before[name])


def test_full_batch_optimizers_refuse_l1():
    with pytest.raises(ConfigError, match="L1"):
        Run("moons", optimizer="lbfgs", l1=0.1)


def test_generated_options_and_their_defaults():
    plain = datasets.load_builtin("moons")
    spelled = datasets.load_builtin("moons:n=1000,test=0.2,seed=1234,noise=0.2")
    np.testing.assert_array_equal(plain.X, spelled.X)
    small = datasets.load_builtin("spiral:n=100,test=0.5,seed=3,noise=0.1")
    assert len(small.X) == 50 and len(small.X_test) == 50
    np.testing.assert_array_equal(small.X, datasets.load_builtin("spiral:n=100,test=0.5,seed=3,noise=0.1").X)
    assert not np.array_equal(small.X, datasets.load_builtin("spiral:n=100,test=0.5,seed=4,noise=0.1").X)
    spelled = datasets.spec("spiral", n=100, noise=0.1, test=0.5, seed=3)
    assert spelled == "spiral:n=100,noise=0.1,test=0.5,seed=3"
    for bad in ("spiral:n=2", "spiral:noise=0.9", "digits:n=5", "spiral:size=5", "spiral:n=five"):
        with pytest.raises(DataError):
            datasets.load_builtin(bad)


def test_playground_sets_label_by_their_rule():
    q = datasets.load_builtin("quadrants:noise=0,test=0")
    np.testing.assert_array_equal(q.y, (q.X[:, 0] * q.X[:, 1] > 0).astype(int))
    c = datasets.load_builtin("circle:noise=0,test=0")
    np.testing.assert_array_equal(c.y, (np.hypot(c.X[:, 0], c.X[:, 1]) < 3.0).astype(int))
    g = datasets.load_builtin("gauss:noise=0,test=0")
    assert np.mean(np.sign(g.X.sum(axis=1)) == np.where(g.y == 1, 1, -1)) > 0.99
    s = datasets.load_builtin("spiral:noise=0,test=0")
    assert sorted(np.bincount(s.y)) == [250, 250] and np.abs(s.X).max() <= 5.0
