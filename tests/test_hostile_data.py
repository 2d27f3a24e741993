"""User data a hostile tester would hand over: reordered or repeated columns, numbers near
the float limits, endless or over-long lines, files bigger than memory, odd NPZ arrays."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from backprop import datafiles, features
from backprop.errors import DataError
from backprop.preprocessing import Transform, moments
from conftest import run_cli

run = run_cli  # (exit status, stdout, stderr) of ``backprop ARGV``


def table(columns: dict[str, np.ndarray]) -> str:
    """CSV text: a header of the dict's names, then its columns (numbers in full)."""
    rows = zip(*(np.asarray(c).tolist() for c in columns.values()))
    return ",".join(columns) + "\n" + "".join(",".join(map(repr, row)) + "\n" for row in rows)


def blobs(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two features, the class set by the first only: a column swap is visible."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    return X, (X[:, 0] > 0).astype(int)


# -- item 2: evaluate matches columns (and the target) by name, as predict does --------
def test_evaluate_reads_columns_and_target_by_name(tmp_path, capsys):
    X, y = blobs()
    train = tmp_path / "train.csv"
    train.write_text(table({"a": X[:, 0], "b": X[:, 1], "label": y}))
    model = tmp_path / "m.safetensors"
    code, _, err = run(["train", train, "--epochs", "30", "--save", model, "--quiet"], capsys)
    assert code == 0, err
    scores = []
    for name, columns in [("same.csv", {"a": X[:, 0], "b": X[:, 1], "label": y}),
                          ("swapped.csv", {"b": X[:, 1], "a": X[:, 0], "label": y}),
                          ("target_first.csv", {"label": y, "b": X[:, 1], "a": X[:, 0]})]:
        (tmp_path / name).write_text(table(columns))
        code, out, err = run(["evaluate", model, tmp_path / name, "--json"], capsys)
        assert code == 0, err
        scores.append({k: v for k, v in json.loads(out).items() if k != "data"})
    assert scores[0]["accuracy"] > 0.9
    assert scores[1] == scores[0] and scores[2] == scores[0]  # the very same numbers


def test_a_header_with_some_of_the_models_names_is_refused(tmp_path, capsys):
    X, y = blobs()
    train = tmp_path / "train.csv"
    train.write_text(table({"a": X[:, 0], "b": X[:, 1], "label": y}))
    model = tmp_path / "m.safetensors"
    assert run(["train", train, "--epochs", "2", "--save", model, "--quiet"], capsys)[0] == 0
    other = tmp_path / "other.csv"
    other.write_text(table({"a": X[:, 0], "c": X[:, 1], "label": y}))
    for command in ("evaluate", "predict"):
        code, _, err = run([command, model, other], capsys)
        assert code == 2 and err == (f"backprop: error: {other} has no column 'b' of the model's "
                                     "features (a, b): name the columns as in training\n"), err


# -- item 3: duplicate column names ----------------------------------------------------
@pytest.mark.parametrize("header, message", [
    ("a,a,label", "the header names 'a' twice (columns 1 and 2)"),
    ("label,a,label", "the header names 'label' twice (columns 1 and 3)"),
])
def test_duplicate_column_names_are_refused(tmp_path, header, message):
    path = tmp_path / "dup.csv"
    path.write_text(f"\n{header}\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError) as caught:
        datafiles.read_csv(str(path), target="label")
    assert str(caught.value) == f"{path} line 2: {message}: give each column its own name"


# -- item 4: numbers near the float limits ------------------------------------------------
def test_moments_are_bit_identical_on_ordinary_data():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(500, 4)) * [1.0, 1e3, 1e-3, 0.0] + [0.0, 5.0, -2.0, 7.0]
    mean, std = moments(A)
    np.testing.assert_array_equal(mean, A.mean(axis=0))
    np.testing.assert_array_equal(std, np.where(A.std(axis=0) > 0, A.std(axis=0), 1.0))


def test_moments_of_values_near_the_float_maximum():
    c = 1.5 * 2.0 ** 1023  # mean c/3; deviations -4c/3 (-2**1024: beyond the float maximum), 2c/3, 2c/3
    A = np.array([[-c], [c], [c]])
    mean, std = moments(A)
    assert mean[0] == c / 3 and std[0] == pytest.approx(np.sqrt(8.0) / 3 * c, rel=1e-15)
    t = Transform.fit(A, np.array([0, 1, 1]), "classification")
    np.testing.assert_allclose(t.inputs(A).ravel(), [-np.sqrt(2), 1 / np.sqrt(2), 1 / np.sqrt(2)],
                               rtol=1e-15)
    r = Transform.fit(np.zeros((3, 1)), A.ravel(), "regression")
    np.testing.assert_allclose(r.outputs(r.targets(A.ravel())).ravel(), A.ravel(), rtol=1e-15)


@pytest.mark.parametrize("scale", [1e160, 1e300, 1e-170])
def test_a_scaled_column_standardizes_as_the_unscaled_one(scale):
    X, y = blobs()
    plain = Transform.fit(X, y, "classification").inputs(X)
    scaled = Transform.fit(X * [scale, 1.0], y, "classification").inputs(X * [scale, 1.0])
    np.testing.assert_allclose(scaled, plain, rtol=1e-13, atol=1e-13)


def test_training_on_values_near_the_float_maximum_learns(tmp_path, capsys):
    X, y = blobs(200)
    path = tmp_path / "huge.csv"
    path.write_text(table({"a": X[:, 0] * 1e307, "b": X[:, 1], "label": y}))
    code, out, err = run(["train", path, "--epochs", "40", "--json"], capsys)
    assert code == 0 and err == "", err
    assert json.loads(out.splitlines()[-1])["val_accuracy"] > 0.9  # the feature is not zeroed


def test_a_feature_cross_that_overflows_is_refused():
    X = np.array([[1e160, 1.0], [-2e160, 2.0]])
    with pytest.raises(DataError, match=r"^feature x1\^2 overflows: x1 reach 2e\+160, so it exceeds"):
        features.expand(X, ["x2", "x1^2"])
    assert np.isfinite(features.expand(X, ["x2", "x1*x2", "sin(x1)"])).all()


def test_a_number_beyond_the_float_range_is_named(tmp_path):
    path = tmp_path / "far.csv"
    path.write_text("a,b,label\n1,1e400,0\n2,3,1\n")
    with pytest.raises(DataError, match=r"line 2: column 'b' holds 1e400, beyond the largest float"):
        datafiles.read_csv(str(path))


# -- item 18 (data): +nan cells, trailing delimiters ---------------------------------------
@pytest.mark.parametrize("cell", ["+nan", "-NaN", "nan"])
def test_a_nan_cell_is_a_missing_value(tmp_path, cell):
    path = tmp_path / "nan.csv"
    path.write_text(f"a,b,label\n1,2,0\n3,{cell},1\n")
    with pytest.raises(DataError) as caught:
        datafiles.read_csv(str(path))
    assert str(caught.value) == (f"{path} line 3: column 'b' has a missing value ({cell!r}): "
                                 "drop or fill in those rows first")
    path.write_text(f"a,b,label\n1,2,0\n3,4,{cell}\n")
    with pytest.raises(DataError, match=re.escape(f"line 3: the target 'label' is missing ('{cell}')")):
        datafiles.read_csv(str(path))


@pytest.mark.parametrize("text", ["a,b,label,\n1,2,0,\n3,4,1,\n", "a,b,label,\n1,2,0\n3,4,1\n",
                                  "a,b,label\n1,2,0,\n3,4,1\n", "1,2,0,\n3,4,1,\n"])
def test_trailing_delimiters_start_no_column(tmp_path, text):
    path = tmp_path / "trailing.csv"
    path.write_text(text)
    data = datafiles.read_csv(str(path))
    np.testing.assert_array_equal(data.X, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(data.y, [0, 1])
    assert data.target_name == ("label" if text.startswith("a") else "column_2")


def test_an_unnamed_column_gets_a_name(tmp_path):
    path = tmp_path / "index.csv"
    path.write_text(",a,label\n0,1.5,x\n1,2.5,y\n")
    data = datafiles.read_csv(str(path))
    assert data.feature_names == ["column_0", "a"] and data.y.tolist() == ["x", "y"]


# -- item 10: bounded reading ----------------------------------------------------------------
def test_devices_and_pipes_are_refused_without_reading(tmp_path, capsys):
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.csv")  # opening it would wait for a writer forever
    for name in ("zero.csv", "pipe.csv"):
        code, _, err = run(["train", tmp_path / name], capsys)
        assert code == 2 and err == (f"backprop: error: {tmp_path / name} is not a regular file (a device, "
                                     "pipe or socket may never end): save the data to a file first\n")


def test_an_endless_line_is_refused_having_read_at_most_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(datafiles, "MAX_LINE", 1000)
    monkeypatch.setattr(datafiles, "_CHUNK", 256)
    path = tmp_path / "long.csv"
    with open(path, "wb") as handle:
        handle.write(b"a,b,label\n1,2,0\n")
        handle.truncate(1 << 36)  # 64 GiB of NUL bytes (sparse): no line ever ends
    read = []

    def counting_open(*args, **kwargs):
        handle = open(*args, **kwargs)
        original = handle.read
        handle.read = lambda n=-1: read.append(len(chunk := original(n))) or chunk
        return handle

    monkeypatch.setattr(datafiles, "open", counting_open, raising=False)
    with pytest.raises(DataError) as caught:
        datafiles.read_csv(str(path))
    assert str(caught.value) == (f"{path} line 3 is longer than 1,000 bytes: is it a CSV file? "
                                 "(data this wide belongs in an .npz file)")
    assert sum(read) <= 1000 + 256 + 16


def test_the_csv_module_reader_holds_no_more_than_the_limit_of_a_line(monkeypatch):
    import io
    monkeypatch.setattr(datafiles, "MAX_LINE", 100)
    handle = io.StringIO("a,b\n" + "1" * 10_000)
    lines = datafiles._lines(handle, "x.csv")
    assert next(lines) == "a,b\n"
    with pytest.raises(DataError, match="x.csv line 2 is longer than 100 bytes"):
        next(lines)
    assert handle.tell() == 4 + 101


def test_a_file_bigger_than_free_memory_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "rows.csv"
    path.write_text("a,b,label\n" + "1,2,0\n" * 99_999)
    monkeypatch.setattr(datafiles, "_free_memory", lambda: 2**20)
    monkeypatch.setattr(datafiles, "_read_numbers", lambda *a: pytest.fail("read before the check"))
    with pytest.raises(DataError) as caught:
        datafiles.read_csv(str(path))
    assert str(caught.value) == (f"{path} has up to 100,000 rows of 3 columns, which take 2.3 MiB as "
                                 "float64 numbers, but 1.0 MiB of memory is free: read fewer rows or "
                                 "columns, or use a machine with more memory")


def test_picking_columns_reuses_the_arrays_memory(monkeypatch):
    monkeypatch.setattr(datafiles, "_ROWS", 3)  # several blocks
    A = np.arange(70.0).reshape(10, 7)
    expected = A[:, [5, 0, 2]].copy()
    X = datafiles._take_columns(A, [5, 0, 2])
    np.testing.assert_array_equal(X, expected)
    assert np.shares_memory(X, A) and X.flags.c_contiguous


SAME_EITHER_WAY = {
    "numbers.csv": "a,b,label\n1.5,2,0\n-3e-5,4,1\n0.1,7,2\n",
    "names.csv": "a;b;label\n1;2;setosa\n3;4; virginica\n5;6;setosa\n",
    "quoted.csv": 'a,"b, the second",label\n"1.5",2,"x"\n3,"4",y\n',
    "crlf_tabs.tsv": "a\tb\tlabel\r\n1\t2\t0.5\r\n3\t4\t1.5\r\n",
    "bom_headerless.csv": "\ufeff1,2,1\n3,4,0\n",
    "numeric_names.csv": "a,b,label\n1,2,1\n3,4,1.0\n5,6,2\n",
}


@pytest.mark.parametrize("name", sorted(SAME_EITHER_WAY))
def test_numpys_reader_and_the_csv_module_read_the_same(tmp_path, monkeypatch, name):
    path = tmp_path / name
    path.write_text(SAME_EITHER_WAY[name], encoding="utf-8")
    fast = datafiles._read_numbers
    used = []
    monkeypatch.setattr(datafiles, "_read_numbers", lambda *a: used.append(fast(*a)) or used[-1])
    quick = datafiles.read_csv(str(path))
    assert used[-1] is not None  # these files never need the csv module
    monkeypatch.setattr(datafiles, "_read_numbers", lambda *a: None)
    exact = datafiles.read_csv(str(path))
    for a, b in [(quick.X, exact.X), (quick.y, exact.y)]:
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert quick.feature_names == exact.feature_names and quick.target_name == exact.target_name


def test_blank_rows_and_missing_cells_take_the_csv_module_with_their_line(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("a,b,label\n\n1,2,0\n , ,\n3,4,1\n5,?,1\n")
    with pytest.raises(DataError, match=r"line 6: column 'b' has a missing value \('\?'\)"):
        datafiles.read_csv(str(path))
    path.write_text("a,b,label\n\n1,2,0\n , ,\n3,4,1\n")
    np.testing.assert_array_equal(datafiles.read_csv(str(path)).X, [[1, 2], [3, 4]])


# -- item 13 (NPZ): y of a shape or type that is no target --------------------------------
@pytest.mark.parametrize("y, shown", [
    (np.array(3.0), "float64 of shape ()"),
    (np.zeros(4, dtype=[("a", "f8"), ("b", "i4")]), "[('a', '<f8'), ('b', '<i4')] of shape (4,)"),
    (np.zeros(4, dtype="V8"), "|V8 of shape (4,)"),
    (np.zeros(4, dtype=complex), "complex128 of shape (4,)"),
    (np.zeros((4, 1, 1)), "float64 of shape (4, 1, 1)"),
])
def test_npz_targets_that_are_no_labels_or_numbers(tmp_path, y, shown):
    path = tmp_path / "odd.npz"
    np.savez(path, X=np.zeros((4, 2)), y=y)
    with pytest.raises(DataError) as caught:
        datafiles.read_npz(str(path))
    assert str(caught.value) == (f"{path}: y must be a 1-D array of labels or numbers (2-D for "
                                 f"several targets), got {shown}")


def test_free_memory_is_the_smaller_of_the_machine_and_the_containers(monkeypatch):
    import io
    files = {"/proc/meminfo": "MemTotal: 9000 kB\nMemAvailable: 1000 kB\n",
             "/sys/fs/cgroup/memory.max": "500000\n", "/sys/fs/cgroup/memory.current": "100000\n"}
    monkeypatch.setattr(datafiles, "open", lambda name, *a: io.StringIO(files[name]), raising=False)
    assert datafiles._free_memory() == 400_000
    files["/sys/fs/cgroup/memory.max"] = "max\n"  # no limit
    assert datafiles._free_memory() == 1000 * 1024


def test_a_text_column_before_the_default_target_is_named_as_the_likely_target(tmp_path, capsys):
    path = tmp_path / "first.csv"
    path.write_text("species,a,b\ncat,1,2\ndog,2,3\n")
    code, _, err = run(["train", path], capsys)
    assert code == 2 and err == (f"backprop: error: {path} line 2: column 'species' holds text ('cat'), but "
                                 "features must be numbers: if 'species' is the target, name it with "
                                 "--target 'species' (target= in Python); otherwise encode it as numbers "
                                 "(e.g. one column per category) or drop the column\n")
    # With the target named, a text feature is only a text feature.
    code, _, err = run(["train", path, "--target", "a"], capsys)
    assert code == 2 and "if 'species' is the target" not in err and "encode it as numbers" in err
