"""``Transform``: standardization statistics, label encoding and the checkpoint form.

Expected numbers are worked out by hand for tiny arrays (and, where a check says
"NumPy's", compared bit for bit with ``np.mean``/``np.std`` with ddof=0).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from backprop.datafiles import DataError
from backprop.preprocessing import Transform

# column 0: 1, 2, 3 -> mean 2, population std sqrt(((-1)^2 + 0 + 1^2) / 3) = sqrt(2/3)
# column 1: constant 10 -> mean 10, std 0, kept as 1 (centred, not scaled)
X = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0]])
Y_REG = np.array([1.0, 4.0, 7.0])  # mean 4, population std sqrt((9 + 0 + 9) / 3) = sqrt(6)


def test_input_statistics_by_hand():
    t = Transform.fit(X, Y_REG, "regression")
    np.testing.assert_allclose(t.x_mean, [2.0, 10.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(t.x_std, [math.sqrt(2.0 / 3.0), 1.0], rtol=1e-15, atol=0)


def test_input_statistics_equal_numpy_population_std():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(50, 4))
    t = Transform.fit(data, rng.normal(size=50), "regression")
    np.testing.assert_array_equal(t.x_mean, np.mean(data, axis=0))
    np.testing.assert_array_equal(t.x_std, np.std(data, axis=0, ddof=0))
    assert not np.allclose(t.x_std, np.std(data, axis=0, ddof=1), rtol=1e-6)  # not the sample std


def test_inputs_standardizes_and_maps_a_constant_column_to_zero():
    t = Transform.fit(X, Y_REG, "regression")
    s = math.sqrt(2.0 / 3.0)
    out = t.inputs(X)
    np.testing.assert_allclose(out[:, 0], [-1.0 / s, 0.0, 1.0 / s], rtol=1e-15, atol=0)
    np.testing.assert_array_equal(out[:, 1], [0.0, 0.0, 0.0])
    # new data: the constant column is centred on the training value and not scaled
    np.testing.assert_allclose(t.inputs(np.array([[2.0, 13.0]])), [[0.0, 3.0]], rtol=1e-15, atol=0)


def test_inputs_refuses_another_number_of_features():
    t = Transform.fit(X, Y_REG, "regression")
    with pytest.raises(DataError, match="3 features"):
        t.inputs(np.ones((2, 3)))


def test_regression_targets_standardized_and_round_trip():
    t = Transform.fit(X, Y_REG, "regression")
    assert t.classes is None and t.n_targets == 1
    np.testing.assert_allclose(t.y_mean, [4.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(t.y_std, [math.sqrt(6.0)], rtol=1e-15, atol=0)
    z = t.targets(Y_REG)
    assert z.shape == (3, 1) and z.dtype == np.float64
    r = 3.0 / math.sqrt(6.0)
    np.testing.assert_allclose(z[:, 0], [-r, 0.0, r], rtol=1e-15, atol=1e-300)
    back = t.outputs(z)
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, Y_REG.reshape(3, 1), rtol=1e-12, atol=0)


def test_regression_two_targets_with_a_constant_one():
    Y = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])  # col 0: mean 3, std sqrt(8/3); col 1 constant
    t = Transform.fit(X, Y, "regression")
    assert t.n_targets == 2
    np.testing.assert_allclose(t.y_mean, [3.0, 5.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(t.y_std, [math.sqrt(8.0 / 3.0), 1.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(t.outputs(t.targets(Y)), Y, rtol=1e-12, atol=0)


def test_regression_rejects_text_targets():
    with pytest.raises(DataError, match="text"):
        Transform.fit(X, np.array(["a", "b", "c"]), "regression")


def test_classification_classes_are_sorted_text_and_targets_are_indices():
    y = np.array(["dog", "cat", "ant", "dog"])
    t = Transform.fit(np.ones((4, 2)), y, "classification")
    assert t.classes == ["ant", "cat", "dog"]
    assert t.n_targets == 3
    assert t.y_mean is None and t.y_std is None  # class labels are not standardized
    idx = t.targets(y)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, [2, 1, 0, 2])


def test_classification_integer_and_float_labels_become_text():
    # integers sort as numbers (2 before 10), then are named as text
    t = Transform.fit(np.ones((4, 1)), np.array([10, 2, 1, 2]), "classification")
    assert t.classes == ["1", "2", "10"]
    np.testing.assert_array_equal(t.targets(np.array([10, 2, 1])), [2, 1, 0])
    # whole floats name the same classes as the integers they equal
    tf = Transform.fit(np.ones((3, 1)), np.array([1.0, 0.0, 1.0]), "classification")
    assert tf.classes == ["0", "1"]
    np.testing.assert_array_equal(tf.targets(np.array([0, 1])), [0, 1])


def test_unknown_labels_are_named_in_the_error():
    t = Transform.fit(np.ones((3, 1)), np.array(["ant", "cat", "dog"]), "classification")
    with pytest.raises(DataError) as info:
        t.targets(np.array(["cat", "emu", "yak", "emu"]))
    message = str(info.value)
    assert "emu" in message and "yak" in message
    assert "cat" in message  # it also lists the known classes


def test_a_single_class_is_refused():
    with pytest.raises(DataError, match="single class"):
        Transform.fit(np.ones((3, 1)), np.array(["a", "a", "a"]), "classification")


def test_standardize_false_leaves_inputs_and_targets_unchanged():
    t = Transform.fit(X, Y_REG, "regression", standardize=False)
    assert t.x_mean is None and t.x_std is None and t.y_mean is None and t.y_std is None
    np.testing.assert_array_equal(t.inputs(X), X)
    np.testing.assert_array_equal(t.targets(Y_REG), Y_REG.reshape(3, 1))
    np.testing.assert_array_equal(t.outputs(Y_REG.reshape(3, 1)), Y_REG.reshape(3, 1))
    tc = Transform.fit(X, np.array(["b", "a", "b"]), "classification", standardize=False)
    np.testing.assert_array_equal(tc.inputs(X), X)
    assert tc.classes == ["a", "b"]


@pytest.mark.parametrize("task, y, standardize", [
    ("regression", Y_REG, True),
    ("classification", np.array(["b", "a", "b"]), True),
    ("regression", Y_REG, False),
], ids=["regression", "classification", "regression-unstandardized"])
def test_json_round_trip_is_exact(task, y, standardize):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(3, 2)) * [1.0, 1e-7]  # awkward values survive bit for bit
    t = Transform.fit(data, y, task, standardize=standardize)
    meta, arrays = t.to_json()
    meta = json.loads(json.dumps(meta))  # the metadata really is JSON
    arrays = {k: np.array(v, copy=True) for k, v in arrays.items()}
    back = Transform.from_json(meta, arrays)
    assert back.task == t.task and back.classes == t.classes
    for name in ("x_mean", "x_std", "y_mean", "y_std"):
        a, b = getattr(t, name), getattr(back, name)
        if a is None:
            assert b is None, name
        else:
            assert b.dtype == a.dtype
            np.testing.assert_array_equal(b, a, err_msg=name)
    np.testing.assert_array_equal(back.inputs(data), t.inputs(data))
    if task == "regression":
        np.testing.assert_array_equal(back.targets(y), t.targets(y))
    else:
        np.testing.assert_array_equal(back.targets(y), [1, 0, 1])


def test_class_labels_as_text_whole_numbers_and_huge_ones():
    from backprop.preprocessing import _label_text

    assert [_label_text(v) for v in (2.0, np.float64(-3.0), 2.5, 7, "cat")] == ["2", "-3", "2.5", "7", "cat"]
    assert [_label_text(v) for v in (1e308, np.float64(-1.7e308), 2.0**53)] == [
        "1e+308", "-1.7e+308", "9007199254740992"]
