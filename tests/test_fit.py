"""The fit loop: batching, validation, early stopping, history, schedules, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop as bp


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 2)) * 0.5 + np.array([[0, 3], [3, 0], [-3, -3]])[y]
    return X, y


def test_history_records(backend):
    X, y = blobs()
    model = bp.mlp([2, 8, 3], output="softmax", device=backend)
    history = model.fit(X, y, epochs=3, batch_size=32, validation_split=0.25)
    assert len(history) == 3 and history["epoch"] == [1, 2, 3]
    for record in history.records:
        assert set(record) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                               "lr", "seconds", "samples_per_s"}
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in record.values())
        assert 0.0 <= record["val_accuracy"] <= 1.0
    assert history.history["train_loss"] == history["train_loss"]
    assert model.epoch == 3


def test_every_sample_is_used_once_per_epoch_whatever_the_batch_size(numpy_backend):
    # With the summed loss 'sse' and a tiny rate, one epoch of any batching moves the
    # weights by lr * (the full-batch gradient), up to O(lr^2): so every sample was
    # used exactly once, including the short last batch.
    X, y = blobs(n=50)
    target = y.astype(float)
    updates = []
    for batch_size in (1, 7, 50, "full"):
        model = bp.mlp([2, 4, 1], dtype="float64", seed=1)
        before = model.parameters()["0.W"].copy()
        model.fit(X, target, loss="sse", optimizer="gd", lr=1e-7, epochs=1, batch_size=batch_size)
        updates.append(model.parameters()["0.W"] - before)
    assert np.max(np.abs(updates[0])) > 1e-8
    for other in updates[1:]:
        np.testing.assert_allclose(other, updates[0], rtol=1e-4, atol=1e-4 * np.max(np.abs(updates[0])))


def test_training_learns_and_evaluates(backend):
    X, y = blobs(n=300)
    model = bp.mlp([2, 16, 3], output="softmax", device=backend, seed=0)
    model.fit(X[:200], y[:200], optimizer="adam", lr=0.01, epochs=20, batch_size=20)
    scores = model.evaluate(X[200:], y[200:])
    assert scores["accuracy"] > 0.95
    assert scores["loss"] < 0.2


def test_validation_data_and_early_stopping_restore_best(numpy_backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    y = rng.integers(0, 2, 40)  # pure noise: validation loss soon rises
    Xv, yv = rng.normal(size=(40, 5)), rng.integers(0, 2, 40)
    model = bp.mlp([5, 64, 64, 2], seed=0, dtype="float64")
    best_weights = {}

    def remember(record, m):
        best_weights[record["epoch"]] = {k: v.copy() for k, v in m.parameters().items()}

    history = model.fit(X, y, optimizer="adam", lr=0.01, epochs=200, batch_size=8,
                        validation_data=(Xv, yv), early_stopping=5, callbacks=[remember])
    assert history.stopped_early and len(history) < 200
    best = int(np.argmin(history["val_loss"])) + 1
    assert history.best_epoch == best
    assert len(history) == best + 5
    for name, value in model.parameters().items():
        np.testing.assert_array_equal(value, best_weights[best][name])
    assert model.evaluate(Xv, yv)["loss"] == pytest.approx(min(history["val_loss"]), rel=1e-12)


def test_callback_can_stop(numpy_backend):
    X, y = blobs()
    model = bp.mlp([2, 4, 3])
    history = model.fit(X, y, epochs=10, callbacks=[lambda record, m: record["epoch"] == 2])
    assert len(history) == 2


def test_fit_continues_with_the_same_optimizer(numpy_backend):
    X, y = blobs()
    a = bp.mlp([2, 4, 3], seed=0, dtype="float64")
    a.fit(X, y, epochs=4, optimizer="adam")
    b = bp.mlp([2, 4, 3], seed=0, dtype="float64")
    b.fit(X, y, epochs=2, optimizer="adam")
    b.fit(X, y, epochs=2)
    assert b.history["epoch"] == [1, 2, 3, 4]
    for name, value in a.parameters().items():
        np.testing.assert_array_equal(value, b.parameters()[name])


@pytest.mark.parametrize("schedule,expected", [
    ("constant", [0.1, 0.1, 0.1, 0.1]),
    (bp.StepDecay(step_size=2, gamma=0.5), [0.1, 0.1, 0.05, 0.05]),
    ("cosine", [0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05, 0.1 * (1 + math.cos(3 * math.pi / 4)) / 2]),
    (bp.ExponentialDecay(0.5), [0.1, 0.05, 0.025, 0.0125]),
])
def test_schedules(numpy_backend, schedule, expected):
    X, y = blobs()
    history = bp.mlp([2, 4, 3]).fit(X, y, optimizer="momentum", lr=0.1, schedule=schedule, epochs=4)
    assert history["lr"] == pytest.approx(expected)


def test_weight_decay_spares_biases(numpy_backend):
    model = bp.mlp([2, 3], dtype="float64", bias=1.0)
    opt = bp.SGD(lr=0.1, momentum=0.0, weight_decay=0.5)
    params = model.parameter_list()
    W0, b0 = params[0].copy(), params[1].copy()
    opt.step(params, [np.zeros_like(p) for p in params])
    np.testing.assert_allclose(params[0], W0 * (1 - 0.1 * 0.5))
    np.testing.assert_array_equal(params[1], b0)


def test_divergence_is_reported_and_weights_kept(numpy_backend):
    X = np.random.default_rng(0).normal(size=(32, 3)) * 100
    y = X.sum(axis=1) ** 3
    model = bp.mlp([3, 16, 1], dtype="float32")
    with pytest.raises(bp.TrainingDiverged, match="lower the learning rate"):
        model.fit(X, y, optimizer="gd", lr=10.0, epochs=50, batch_size=8)
    assert all(np.all(np.isfinite(v)) for v in model.parameters().values())


BAD_INPUTS = [
    (dict(X=np.ones((4, 3)), y=np.zeros(4)), "features but the model's first layer expects 2"),
    (dict(X=np.ones((4, 2)), y=np.zeros(5)), "5 rows but the inputs have 4"),
    (dict(X=np.ones(8), y=np.zeros(8)), "must be 2-D"),
    (dict(X=np.array([[1.0, np.nan]]), y=np.zeros(1)), "NaN"),
    (dict(X=np.ones((4, 2)), y=np.array([0, 1, 2, 3])), "labels 0..3 but the model has 3 outputs"),
    (dict(X=np.ones((4, 2)), y=np.array([0.5, 1, 2, 0]), loss="ce"), "non-integer"),
    (dict(X=np.ones((4, 2)), y=np.array(["a", "b", "a", "b"])), "encode class labels"),
    (dict(X=np.ones((4, 2)), y=np.zeros(4, int), batch_size=0), "batch_size"),
    (dict(X=np.ones((4, 2)), y=np.zeros(4, int), validation_split=1.5), "validation_split"),
    (dict(X=np.ones((4, 2)), y=np.zeros(4, int), early_stopping=3), "validation"),
    (dict(X=np.ones((4, 2)), y=np.zeros(4, int), optimizer="newton-raphson"), "unknown optimizer"),
    (dict(X=np.ones((4, 2)), y=np.zeros(4, int), loss="hinge"), "unknown loss"),
    (dict(X=np.ones((4, 2)), y=np.zeros(4, int), lr=-1.0), "positive"),
]


@pytest.mark.parametrize("kwargs,message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_gets_a_clear_error(numpy_backend, kwargs, message):
    model = bp.mlp([2, 4, 3])
    before = {k: v.copy() for k, v in model.parameters().items()}
    kwargs = dict(kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        model.fit(kwargs.pop("X"), kwargs.pop("y"), epochs=1, **kwargs)
    for name, value in model.parameters().items():
        np.testing.assert_array_equal(value, before[name])


def test_bad_construction_errors():
    with pytest.raises(ValueError, match="unknown device"):
        bp.mlp([2, 3], device="tpu")
    with pytest.raises(ValueError, match="float32"):
        bp.mlp([2, 3], dtype="int8")
    with pytest.raises(ValueError, match="in_features"):
        bp.Sequential([bp.Dense(2, 3), "relu", bp.Dense(4, 1)])
    with pytest.raises(ValueError, match="unknown activation"):
        bp.Sequential([bp.Dense(2, 3), "swish"])
    with pytest.raises(ValueError, match="unknown initializer"):
        bp.Sequential([bp.Dense(2, 3, init="orthogonal")])


def test_predict_before_fit_and_task_inference(numpy_backend):
    X = np.ones((5, 2))
    assert bp.mlp([2, 3], output="softmax").predict(X).shape == (5,)
    assert set(bp.mlp([2, 1], output="sigmoid").predict(X).tolist()) <= {0, 1}
    assert bp.mlp([2, 1]).predict(X).dtype == np.float32
    with pytest.raises(ValueError, match="classifier"):
        bp.mlp([2, 1]).predict_proba(X)
    with pytest.raises(ValueError, match="no loss known"):
        bp.mlp([2, 1]).evaluate(X, np.ones(5))


def test_binary_and_regression_metrics(numpy_backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    clf = bp.mlp([2, 8, 1], seed=0)
    clf.fit(X, y, epochs=30, lr=0.01)  # integer labels, one output: BCE
    assert clf.loss.name == "bce"
    assert clf.evaluate(X, y)["accuracy"] > 0.95
    assert clf.predict_proba(X).shape == (200, 1)
    reg = bp.mlp([2, 16, 1], activation="tanh", seed=0)
    target = np.sin(X[:, 0]) + X[:, 1]
    reg.fit(X, target, epochs=60, lr=0.01, batch_size=16)
    assert reg.loss.name == "mse"
    scores = reg.evaluate(X, target)
    assert scores["r2"] > 0.95 and scores["mae"] < 0.2 and set(scores) == {"loss", "mae", "r2"}


def test_cross_entropy_refuses_rows_that_do_not_sum_to_one(numpy_backend):
    multi_hot = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0], [0, 0, 1]], dtype=float)
    with pytest.raises(ValueError, match="sum to 1.*loss='bce'"):
        bp.mlp([2, 3]).fit(np.ones((4, 2)), multi_hot, loss="ce", epochs=1)


def test_auto_loss_choices(numpy_backend):
    X = np.random.default_rng(0).normal(size=(8, 2))
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    multilabel = np.random.default_rng(1).integers(0, 2, (8, 3))
    cases = [
        (bp.mlp([2, 3]), labels, "ce"),
        (bp.mlp([2, 3], output="softmax"), labels, "ce"),
        (bp.mlp([2, 1]), labels % 2, "bce"),
        (bp.mlp([2, 3], output="sigmoid"), multilabel, "bce"),
        (bp.mlp([2, 3]), multilabel, "bce"),
        (bp.mlp([2, 3]), multilabel.astype(float), "mse"),
    ]
    for model, y, expected in cases:
        model.fit(X, y, epochs=1)
        assert model.loss.name == expected


@pytest.mark.parametrize("value,stops", [(True, True), (False, False), (None, False), (3, True)])
def test_early_stopping_accepts_bools(numpy_backend, value, stops):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5)), rng.integers(0, 2, 40)
    history = bp.mlp([5, 32, 2]).fit(X, y, epochs=60, lr=0.05, validation_split=0.5,
                                     early_stopping=value)
    assert history.stopped_early == stops


def test_fit_settings_are_never_silently_dropped(numpy_backend):
    X, y = blobs()
    model = bp.mlp([2, 4, 3])
    model.fit(X, y, optimizer="sgd", lr=0.1, epochs=1)
    first = model.optimizer
    model.fit(X, y, lr=0.01, epochs=1)  # same optimizer, new rate
    assert model.optimizer is first and isinstance(first, bp.SGD) and first.base_lr == 0.01
    model.fit(X, y, weight_decay=0.1, schedule="cosine", epochs=1)
    assert first.weight_decay == 0.1 and first.schedule.name == "cosine"
    fresh = bp.mlp([2, 4, 3])
    fresh.fit(X, y, optimizer="adamw", epochs=1)
    assert fresh.optimizer.weight_decay == 0.01  # AdamW's own default, not fit's
    fresh2 = bp.mlp([2, 4, 3])
    fresh2.fit(X, y, weight_decay=1e-3, epochs=1)
    assert isinstance(fresh2.optimizer, bp.Adam) and fresh2.optimizer.weight_decay == 1e-3
    with pytest.raises(ValueError, match="constructor"):
        fresh2.fit(X, y, optimizer=bp.Adam(), lr=0.1)


def test_one_optimizer_per_model(numpy_backend):
    X, y = blobs()
    opt = bp.Adam()
    bp.mlp([2, 4, 3]).fit(X, y, optimizer=opt, epochs=1)
    with pytest.raises(ValueError, match="one\\s+optimizer per model"):
        bp.mlp([2, 8, 3]).fit(X, y, optimizer=opt, epochs=1)


def test_divergence_resets_the_optimizer(numpy_backend):
    X = np.random.default_rng(0).normal(size=(32, 3)) * 100
    model = bp.mlp([3, 16, 1])
    with pytest.raises(bp.TrainingDiverged):
        model.fit(X, X.sum(axis=1) ** 3, optimizer="momentum", lr=10.0, epochs=50, batch_size=8)
    assert model.optimizer.state == [] and model.optimizer.t == 0


def test_layers_belong_to_one_model(numpy_backend):
    dense = bp.Dense(2, 3)
    bp.Sequential([dense])
    with pytest.raises(ValueError, match="already holds the weights"):
        bp.Sequential([dense])


def test_copies_are_independent(other_backend):
    X, y = blobs()
    model = bp.mlp([2, 4, 3], device=other_backend, dtype="float64")
    model.fit(X, y, epochs=1)
    before = {k: other_backend.to_numpy(v).copy() for k, v in model.parameters().items()}
    copy = model.to("cpu")
    copy.fit(X, y, epochs=2)
    assert len(model.history) == 1 and len(copy.history) == 3
    for name, value in model.parameters().items():
        np.testing.assert_array_equal(other_backend.to_numpy(value), before[name])


def test_non_numeric_data_is_refused_on_every_backend(backend):
    model = bp.mlp([2, 3], device=backend)
    with pytest.raises(TypeError, match="y: expected numbers.*integers 0..K-1"):
        model.fit(np.ones((4, 2)), np.array(["a", "b", "a", "c"]), epochs=1)
    with pytest.raises(TypeError, match="X: expected numbers"):
        model.predict(np.array([["1", "2"]]))


def test_bad_batch_sizes_at_inference(numpy_backend):
    model = bp.mlp([2, 3], output="softmax")
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(np.ones((4, 2)), batch_size=-1)
    with pytest.raises(ValueError, match="batch_size"):
        model.evaluate(np.ones((4, 2)), np.zeros(4, int), loss="ce", batch_size=0)
    assert model.predict(np.ones((5, 2)), batch_size=2).shape == (5,)


def test_r2_of_a_constant_target_follows_scikit_learn(numpy_backend):
    model = bp.mlp([1, 1], dtype="float64")
    model.set_parameters({"0.W": [[0.0]], "0.b": [2.0]})
    X = np.arange(4.0)[:, None]
    assert model.evaluate(X, np.full(4, 2.0), loss="mse")["r2"] == 1.0
    assert model.evaluate(X, np.full(4, 3.0), loss="mse")["r2"] == 0.0
