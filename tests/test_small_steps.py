"""Steps that long host-side functions were split into, each held to what it does: the
readers' refusals and decodings, the pictures' panels, the bench's rows and report, the
prediction table, and a backend's ``asarray``."""

from __future__ import annotations

import numpy as np
import pytest

from backprop import datafiles
from backprop.errors import DataError


# -- data files ------------------------------------------------------------------------
def test_a_target_only_pythons_float_reads_is_numbers_from_either_reader(tmp_path, monkeypatch):
    # NumPy's C reader refuses "1_0"; the class-name retry then finds every name a number.
    path = tmp_path / "underscores.csv"
    path.write_text("a,b,label\n1,2,1_0\n3,4,2\n5,6,1_0\n")
    quick = datafiles.read_csv(str(path))
    monkeypatch.setattr(datafiles, "_read_numbers", lambda *a: None)
    exact = datafiles.read_csv(str(path))
    for ds in (quick, exact):
        assert ds.y.dtype == np.float64
        np.testing.assert_array_equal(ds.y, [10.0, 2.0, 10.0])


@pytest.mark.parametrize("arrays, expected", [
    (dict(X=np.ones((3, 2)), y=np.zeros(3), X_val=np.ones((2, 3)), y_val=np.zeros(2)),
     "X_val has 3 columns but X has 2"),
    (dict(X=np.ones((3, 2)), y=np.zeros(3), X_test=np.ones((2, 2)), y_test=np.zeros(4)),
     "X_test has 2 rows but y_test has 4: they must match"),
    (dict(X=np.ones((3, 2)), y=np.zeros(3), X_val=np.ones((2, 2))),
     "has only one of X_val and y_val: give both or neither"),
])
def test_an_npz_part_that_does_not_fit_x_is_refused(tmp_path, arrays, expected):
    path = tmp_path / "parts.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=expected):
        datafiles.read_npz(str(path))


def test_an_npz_with_all_its_parts_reads_each(tmp_path):
    path = tmp_path / "parts.npz"
    rng = np.random.default_rng(0)
    parts = {k: rng.normal(size=(n, 2)) for k, n in (("X", 5), ("X_val", 3), ("X_test", 2))}
    parts |= {f"y{k[1:]}": np.arange(len(v)) for k, v in parts.items()}
    np.savez(path, **parts)
    ds = datafiles.read_npz(str(path))
    for got, key in ((ds.X, "X"), (ds.y, "y"), (ds.X_val, "X_val"), (ds.y_val, "y_val"),
                     (ds.X_test, "X_test"), (ds.y_test, "y_test")):
        np.testing.assert_array_equal(got, parts[key])
    only_inputs = datafiles.read_npz(str(path), inputs_only=True)
    np.testing.assert_array_equal(only_inputs.y, parts["y"])
