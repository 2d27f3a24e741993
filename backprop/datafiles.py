"""Reading user data from CSV and NPZ files into host arrays.

CSV goes through the standard library's ``csv`` module (quoting, delimiters) and
then NumPy's string-to-float conversion one column at a time; NPZ through
``np.load(..., allow_pickle=False)``, so a file can never run code. Every problem
becomes a ``DataError``: one line naming the file, the line or column, and the fix.
"""

from __future__ import annotations

import csv
import os
from typing import Any

import numpy as np

from .datasets import BUILTIN, Dataset, load_builtin
from .errors import DataError

# Spellings of "no value" seen in the wild; all refused with one message.
MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "-", "#n/a"}




def _number_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _read_rows(path: str) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            sample = handle.read(64 * 1024)
            handle.seek(0)
            try:
                dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            rows = [row for row in csv.reader(handle, dialect) if any(f.strip() for f in row)]
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text CSV file (it is not UTF-8): export it as CSV") from None
    except csv.Error as exc:
        raise DataError(f"{path} is not valid CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path} is empty: it needs rows of features and a target column")
    return [[field.strip() for field in row] for row in rows]


def _has_header(rows: list[list[str]]) -> bool:
    """A first row with a text field above a numeric one is a header."""
    if len(rows) < 2:
        return any(_number_or_none(f) is None for f in rows[0])
    return any(_number_or_none(top) is None and _number_or_none(below) is not None
               for top, below in zip(rows[0], rows[1]))


def _target_index(target: str | int | None, names: list[str], path: str) -> int:
    width = len(names)
    if target is None:
        return width - 1
    if isinstance(target, str) and target in names:
        return names.index(target)
    try:
        index = int(target)
    except (TypeError, ValueError):
        raise DataError(
            f"{path} has no column {target!r}: its columns are {', '.join(names)}"
        ) from None
    if not -width <= index < width:
        raise DataError(f"{path} has {width} columns, so --target {index} does not exist "
                        f"(use 0..{width - 1}, or a column name)")
    return index % width


def _column_floats(cells: np.ndarray, name: str, first_line: int, path: str) -> np.ndarray:
    """One column of strings as float64, or a DataError naming the first bad cell."""
    lowered = np.char.lower(cells)
    missing = np.isin(lowered, list(MISSING))
    if missing.any():
        line = first_line + int(np.argmax(missing))
        raise DataError(f"{path} line {line}: column {name!r} has a missing value "
                        f"({str(cells[missing][0])!r}): drop or fill in those rows first")
    try:
        values = cells.astype(np.float64)
    except ValueError:
        bad = next(i for i, c in enumerate(cells) if _number_or_none(c) is None)
        raise DataError(
            f"{path} line {first_line + bad}: column {name!r} holds text ({str(cells[bad])!r}), but features "
            "must be numbers: encode it as numbers (e.g. one column per category) or drop the column"
        ) from None
    if not np.isfinite(values).all():
        line = first_line + int(np.argmax(~np.isfinite(values)))
        raise DataError(f"{path} line {line}: column {name!r} holds infinity: drop or fix those rows")
    return values


def _input_columns(header: list[str] | None, width: int, target: str | int | None,
                   feature_names: list[str] | None, path: str) -> list[int]:
    """Which columns of a prediction file are the model's features, in training order."""
    n = len(feature_names) if feature_names else width
    if header is not None and feature_names and set(feature_names) <= set(header):
        return [header.index(name) for name in feature_names]  # by name, in any order
    if width == n:
        return list(range(width))
    if width == n + 1:  # the training file's layout, target column included
        names = header or [f"column_{i}" for i in range(width)]
        t = _target_index(target, names, path)
        return [c for c in range(width) if c != t]
    raise DataError(f"{path} has {width} columns but the model takes {n} features: give those "
                    "columns (with the training file's header names, or in the same order)")


def read_csv(path: str, target: str | int | None = None, *, inputs_only: bool = False,
             feature_names: list[str] | None = None) -> Dataset:
    """A CSV file as a Dataset.

    Parameters
    ----------
    target : column name or index (negative counts from the end); default the last
    inputs_only : bool
        The file holds inputs for prediction (``y`` is zeros): the columns named as
        ``feature_names`` when the header has them, else every column, or every
        column but ``target`` when there is one column too many.
    """
    rows = _read_rows(path)
    header = _has_header(rows)
    names = rows[0] if header else [f"column_{i}" for i in range(len(rows[0]))]
    body = rows[1:] if header else rows
    first_line = 2 if header else 1
    if not body:
        raise DataError(f"{path} has a header but no data rows")
    width = len(names)
    for i, row in enumerate(body):
        if len(row) != width:
            raise DataError(f"{path} line {first_line + i} has {len(row)} fields but the "
                            f"{'header' if header else 'first line'} has {width}: fix the ragged rows")
    cells = np.array(body, dtype=str)
    t = None
    if inputs_only:
        columns = _input_columns(names if header else None, width, target, feature_names, path)
    else:
        if width < 2:
            raise DataError(f"{path} has one column: it needs feature columns and a target column")
        t = _target_index(target, names, path)
        columns = [c for c in range(width) if c != t]
    X = np.stack([_column_floats(cells[:, c], names[c], first_line, path) for c in columns], axis=1)
    y = None
    if t is not None and not inputs_only:
        raw = cells[:, t]
        lowered = np.char.lower(raw)
        missing = np.isin(lowered, list(MISSING))
        if missing.any():
            line = first_line + int(np.argmax(missing))
            raise DataError(f"{path} line {line}: the target {names[t]!r} is missing: drop those rows")
        try:
            y = raw.astype(np.float64)
        except ValueError:
            y = raw  # class names
    return Dataset(os.path.basename(path), X, y if y is not None else np.zeros(len(X)),
                   feature_names=[names[c] for c in columns],
                   target_name=None if t is None else names[t])


NPZ_KEYS = ("X", "y", "X_val", "y_val", "X_test", "y_test")


def read_npz(path: str, *, inputs_only: bool = False) -> Dataset:
    """An NPZ file with arrays ``X``, ``y`` and optionally ``X_val``, ``y_val``,
    ``X_test``, ``y_test`` (for prediction only ``X`` is needed)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            found = {k: archive[k] for k in archive.files if k in NPZ_KEYS}
            names = list(archive.files)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{path} holds Python objects (pickled arrays), which are never loaded "
                            "because they can run code: save plain numeric arrays") from None
        raise DataError(f"{path} is not a readable .npz file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc})") from None
    needed = ("X",) if inputs_only else ("X", "y")
    absent = [k for k in needed if k not in found]
    if absent:
        raise DataError(f"{path} has arrays {', '.join(names) or 'none'} but needs "
                        f"{' and '.join(needed)} (np.savez(path, X=X, y=y))")
    for part in ("val", "test"):
        if (f"X_{part}" in found) != (f"y_{part}" in found):
            raise DataError(f"{path} has only one of X_{part} and y_{part}: give both or neither")
    arrays = {}
    for key, value in found.items():
        if key.startswith("X"):
            if value.ndim == 1:
                value = value[:, None]
            if value.ndim != 2 or not np.issubdtype(value.dtype, np.number) or value.dtype.kind == "c":
                raise DataError(f"{path}: {key} must be a 2-D array of real numbers, got "
                                f"{value.dtype} of shape {value.shape}")
            value = value.astype(np.float64)
            if not np.isfinite(value).all():
                raise DataError(f"{path}: {key} contains NaN or infinity: drop or impute those values")
        elif value.dtype.kind == "f" and not np.isfinite(value).all():
            raise DataError(f"{path}: {key} contains NaN or infinity: drop those samples")
        arrays[key] = value
    X = arrays["X"]
    y = arrays.get("y", np.zeros(len(X)))
    for part in ("", "_val", "_test"):
        Xp, yp = arrays.get(f"X{part}"), arrays.get(f"y{part}")
        if Xp is not None and yp is not None and len(Xp) != len(yp):
            raise DataError(f"{path}: X{part} has {len(arrays[f'X{part}'])} rows but y{part} has "
                            f"{len(arrays[f'y{part}'])}: they must match")
        if f"X{part}" in arrays and arrays[f"X{part}"].shape[1] != X.shape[1]:
            raise DataError(f"{path}: X{part} has {arrays[f'X{part}'].shape[1]} columns but X has "
                            f"{X.shape[1]}")
    return Dataset(os.path.basename(path), X, y, arrays.get("X_val"), arrays.get("y_val"),
                   arrays.get("X_test"), arrays.get("y_test"))


def read_file(path: str, target: str | int | None = None, *, inputs_only: bool = False,
              feature_names: list[str] | None = None) -> Dataset:
    """A ``.csv`` or ``.npz`` file as a Dataset."""
    if not os.path.exists(path):
        raise DataError(f"no such file: {path}")
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder: give a .csv or .npz file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npz":
        if target is not None and not inputs_only:
            raise DataError("--target is for CSV files; an .npz file names its arrays X and y")
        return read_npz(path, inputs_only=inputs_only)
    if suffix in (".csv", ".tsv", ".txt"):
        return read_csv(path, target, inputs_only=inputs_only, feature_names=feature_names)
    raise DataError(f"{path}: unknown file type {suffix or '(none)'!r}: give a .csv or .npz file")


def looks_like_path(name: str) -> bool:
    return os.sep in name or "." in os.path.basename(name) or os.path.exists(name)


def load(name: str, target: str | int | None = None) -> Dataset:
    """A built-in data set by name (see ``backprop.datasets.BUILTIN``), or a .csv/.npz file."""
    if name.partition(":")[0].strip().lower() in BUILTIN and not os.path.exists(name):
        if target is not None:
            raise DataError("a target column is for CSV files; built-in data sets know their target")
        return load_builtin(name)
    if not looks_like_path(name):
        raise DataError(f"unknown data set {name!r}: use one of {', '.join(BUILTIN)}, "
                        "or a path to a .csv or .npz file")
    return read_file(name, target)
