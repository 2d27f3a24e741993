"""Reading user data from CSV and NPZ files into host arrays.

CSV: a first pass in fixed-size binary chunks counts the lines and refuses an over-long
one, so that nothing unbounded is ever held; the memory the numbers will take is then
checked against what is free before any is taken. NumPy's C reader (``np.loadtxt``)
reads the common case, numbers and a target of numbers or class names, straight into
one float64 array; anything else (missing values, blank or ragged rows, escapes) goes
through the standard library's ``csv`` module a block of rows at a time into a
preallocated array, which also names the first bad cell. Measured on a 200 MB file of
2,000,000 rows x 11 columns (the numbers take 176 MB): 0.24 GB peak and 2.0 s, 0.30 GB
and 3.6 s with class names, 0.33 GB and 17 s through the ``csv`` module; reading whole
rows into Python lists, as before, took 3.5 GB and 30-48 s.

NPZ goes through ``np.load(..., allow_pickle=False)``, so a file can never run code.
Every problem becomes a ``DataError``: one line naming the file, the line or column,
and the fix.
"""

from __future__ import annotations

import csv
import itertools
import os
import stat
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import DataError
from .datasets import BUILTIN, Dataset, load_builtin

# Spellings of "no value" seen in the wild; all refused with one message.
MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "-", "#n/a"}
MAX_LINE = 1 << 20  # bytes in one line (about 50,000 numbers): wider data belongs in an .npz file
_CHUNK = 1 << 20  # bytes scanned at a time
_ROWS = 1 << 16  # rows parsed at a time by the csv-module reader


def _number_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _is_missing(text: str, number: float | None) -> bool:
    """Whether a cell (its text, and its value where it is a number) holds no value: one of
    the ``MISSING`` spellings, or NaN however it is spelled (+nan, -NaN)."""
    return text.lower() in MISSING or (number is not None and number != number)


def _regular_file(path: str) -> int:
    """The file's size; a device, pipe or socket is refused, since it may never end."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path} is not a regular file (a device, pipe or socket may never end): "
                        "save the data to a file first")
    return info.st_size


def _too_long(path: str, line: int) -> DataError:
    return DataError(f"{path} line {line} is longer than {MAX_LINE:,} bytes: is it a CSV file? "
                     "(data this wide belongs in an .npz file)")


def _count_lines(path: str) -> int:
    """Lines in the file (at least its rows), read ``_CHUNK`` bytes at a time: a line longer
    than ``MAX_LINE`` is refused before more than ``MAX_LINE + _CHUNK`` bytes of it are read."""
    lines, tail = 0, 0  # tail: bytes of the line not yet ended
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            b = np.frombuffer(chunk, np.uint8)
            lf = b == 10
            ends = np.flatnonzero(lf | ((b == 13) & ~np.append(lf[1:], False)))  # \n, \r\n or \r
            if len(ends):
                lengths = np.diff(ends, prepend=-1 - tail) - 1
                if lengths.max() > MAX_LINE:
                    raise _too_long(path, lines + int(np.argmax(lengths > MAX_LINE)) + 1)
                lines, tail = lines + len(ends), len(b) - 1 - int(ends[-1])
            else:
                tail += len(b)
            if tail > MAX_LINE:
                raise _too_long(path, lines + 1)
    return lines + (tail > 0)


def _free_memory() -> int | None:
    """Bytes of memory available to a new allocation: Linux's MemAvailable, or less where a
    container's limit (cgroup v2) leaves less; None where unknown."""
    free = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
        with open("/sys/fs/cgroup/memory.max") as limit, open("/sys/fs/cgroup/memory.current") as used:
            left = int(limit.read()) - int(used.read())  # "max" (no limit) raises ValueError
        free = left if free is None else min(free, left)
    except (OSError, ValueError, IndexError):
        pass
    return free


def _check_memory(path: str, rows: int, width: int) -> None:
    """Refuses, before taking any, memory for the numbers that is not free."""
    need, free = rows * width * 8, _free_memory()
    if free is not None and need > free:
        raise DataError(f"{path} has up to {rows:,} rows of {width} columns, which take {_size(need)} "
                        f"as float64 numbers, but {_size(free)} of memory is free: read fewer rows or "
                        "columns, or use a machine with more memory")


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _open(path: str):
    return open(path, newline="", encoding="utf-8-sig")


def _lines(handle, path: str) -> Iterator[str]:
    """The handle's lines, none held beyond ``MAX_LINE`` characters (the file may have grown)."""
    for number in itertools.count(1):
        line = handle.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE:
            raise _too_long(path, number)
        yield line


def _rows(handle, dialect: Any, path: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped fields) of each row that has any content."""
    reader = csv.reader(_lines(handle, path), dialect)
    for row in reader:
        if any(field.strip() for field in row):
            yield reader.line_num, [field.strip() for field in row]


def _dialect(path: str) -> Any:
    with _open(path) as handle:
        sample = handle.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        return csv.excel


def _has_header(rows: list[list[str]]) -> bool:
    """A first row with a text field above a numeric one is a header."""
    if len(rows) < 2:
        return any(_number_or_none(f) is None for f in rows[0])
    return any(_number_or_none(top) is None and _number_or_none(below) is not None
               for top, below in zip(rows[0], rows[1]))


def _column_names(path: str, dialect: Any) -> tuple[list[str], int]:
    """The column names and the header's line number (0: no header; then ``column_<i>``)."""
    with _open(path) as handle:
        first = list(itertools.islice(_rows(handle, dialect, path), 2))
    if not first:
        raise DataError(f"{path} is empty: it needs rows of features and a target column")
    line, names = first[0]
    while names and not names[-1]:  # a trailing delimiter starts no column
        names = names[:-1]
    if not _has_header([row for _, row in first]):
        return [f"column_{i}" for i in range(len(names))], 0
    if len(first) < 2:
        raise DataError(f"{path} has a header but no data rows")
    names = [name or f"column_{i}" for i, name in enumerate(names)]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise DataError(f"{path} line {line}: the header names {name!r} twice (columns "
                            f"{names.index(name) + 1} and {i + 1}): give each column its own name")
    return names, line


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


def _named_columns(header: list[str] | None, feature_names: list[str] | None,
                   path: str) -> list[int] | None:
    """The model's feature columns found by name in ``header``, in training order; None
    when the header shares no name with them (the columns are then taken in order)."""
    if header is None or not feature_names or not set(feature_names) & set(header):
        return None
    absent = [name for name in feature_names if name not in header]
    if absent:
        raise DataError(f"{path} has no column {', '.join(map(repr, absent))} of the model's features "
                        f"({', '.join(feature_names)}): name the columns as in training")
    return [header.index(name) for name in feature_names]


def _input_columns(header: list[str] | None, width: int, target: str | int | None,
                   feature_names: list[str] | None, path: str) -> list[int]:
    """Which columns of a prediction file are the model's features, in training order."""
    named = _named_columns(header, feature_names, path)
    if named is not None:
        return named  # by name, in any order
    n = len(feature_names) if feature_names else width
    if width == n:
        return list(range(width))
    if width == n + 1:  # the training file's layout, target column included
        names = header or [f"column_{i}" for i in range(width)]
        t = _target_index(target, names, path)
        return [c for c in range(width) if c != t]
    raise DataError(f"{path} has {width} columns but the model takes {n} features: give those "
                    "columns (with the training file's header names, or in the same order)")


def _training_columns(header: list[str] | None, names: list[str], target: str | int | None,
                      target_name: str | None, feature_names: list[str] | None,
                      path: str) -> tuple[list[int], int]:
    """(feature columns, target column): by the model's names where the header has them."""
    if len(names) < 2:
        raise DataError(f"{path} has one column: it needs feature columns and a target column")
    if header is not None and target_name in header:
        t = header.index(target_name)
    else:
        t = _target_index(target, names, path)
    named = _named_columns(header, feature_names, path)
    if named is None:
        return [c for c in range(len(names)) if c != t], t
    if t in named:
        raise DataError(f"{path}: the target {names[t]!r} is one of the model's features: "
                        "give the target column the model was trained on")
    return named, t


def _take_columns(A: np.ndarray, columns: list[int]) -> np.ndarray:
    """``A[:, columns]`` (N, len(columns)) written into A's own memory a block of rows at a
    time, so that picking the features never holds a second copy of the file's numbers."""
    n, width = A.shape
    if columns == list(range(width)):
        return A
    if not A.flags.c_contiguous:
        return A[:, columns]
    k, flat = len(columns), A.reshape(-1)
    for start in range(0, n, _ROWS):
        block = A[start:start + _ROWS][:, columns]  # a copy, taken before its rows are overwritten
        flat[start * k:start * k + block.size] = block.ravel()
    return flat[:n * k].reshape(n, k)


def _loadtxt(path: str, dialect: Any, skip: int, t: int | None) -> tuple[np.ndarray, dict[str, int]] | None:
    """NumPy's C reader over the whole file: (A (N, width) float64, class names of column
    ``t`` as codes, empty when the target is numbers); None when it cannot read the file."""
    labels: dict[str, int] = {}  # class names as codes, in a second try when the target is text

    def code(text: str) -> float:
        return labels.setdefault(text.strip(), len(labels))

    for converters in ([None] if t is None else [None, {t: code}]):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data": the other reader says so
                A = np.loadtxt(path, dtype=np.float64, delimiter=dialect.delimiter, comments=None,
                               quotechar=dialect.quotechar, skiprows=skip, ndmin=2, encoding="utf-8-sig",
                               converters=converters)
            return A, labels
        except ValueError:
            continue
    return None


def _decoded_target(codes: np.ndarray, labels: dict[str, int]) -> np.ndarray | None:
    """The target (N,) from its class codes: numbers where every name is one, else the
    names; None when a name is a missing value or not finite (the csv-module reader says which)."""
    names = np.array(list(labels), dtype=str)
    if any(name.lower() in MISSING or not np.isfinite(_number_or_none(name) or 0.0) for name in names):
        return None
    y = names[codes.astype(np.intp)]
    try:
        return y.astype(np.float64)
    except ValueError:
        return y  # class names


def _read_numbers(path: str, dialect: Any, skip: int, width: int, columns: list[int],
                  t: int | None) -> tuple[np.ndarray, np.ndarray | None] | None:
    """NumPy's C reader, for finite numbers and a target of numbers or class names: (X (N, F),
    y (N,) or None); None when any cell needs the csv-module reader (missing values, blank or
    ragged rows, escapes), which also says what is wrong."""
    if dialect.escapechar is not None or dialect.quoting == csv.QUOTE_NONE:
        return None
    read = _loadtxt(path, dialect, skip, t)
    if read is None:
        return None
    A, labels = read
    if A.shape[1] != width or len(A) == 0 or not np.isfinite(A).all():
        return None
    y = None if t is None else A[:, t].copy()
    if labels:
        y = _decoded_target(y, labels)
        if y is None:
            return None
    return _take_columns(A, columns), y


def _cell_error(path: str, line: int, name: str, text: str) -> DataError:
    """Why a feature cell is not a finite number, as one line."""
    number = _number_or_none(text)
    where = f"{path} line {line}: column {name!r}"
    if _is_missing(text, number):
        return DataError(f"{where} has a missing value ({text!r}): drop or fill in those rows first")
    if number is not None and text.lower().lstrip("+-") in ("inf", "infinity"):
        return DataError(f"{where} holds infinity ({text!r}): drop or fix those rows")
    if number is not None:
        return DataError(f"{where} holds {text}, beyond the largest float (1.8e308): rescale the column")
    return TextFeature(where, text, name)


class TextFeature(DataError):
    """A feature column holding text; ``column`` names it (it may be a target left unnamed)."""

    ENCODE = "encode it as numbers (e.g. one column per category) or drop the column"

    def __init__(self, where: str, text: str, column: str) -> None:
        self.problem = f"{where} holds text ({text!r}), but features must be numbers"
        self.column = column
        super().__init__(f"{self.problem}: {self.ENCODE}")

    def maybe_target(self) -> DataError:
        """The same refusal when the target was taken as the last column by default."""
        return DataError(f"{self.problem}: if {self.column!r} is the target, name it with --target "
                         f"{self.column!r} (target= in Python); otherwise {self.ENCODE}")


def _fit_width(block: list[tuple[int, list[str]]], width: int, header: bool, path: str) -> list[list[str]]:
    """The rows of a block, each ``width`` fields (empty ones past the end dropped)."""
    cells = []
    for line, row in block:
        if len(row) > width and not any(row[width:]):
            row = row[:width]  # trailing delimiters
        elif len(row) != width:
            raise DataError(f"{path} line {line} has {len(row)} fields but the "
                            f"{'header' if header else 'first line'} has {width}: fix the ragged rows")
        cells.append(row)
    return cells


def _floats(cells: list[list[str]], lines: list[int], columns: list[int], names: list[str],
            path: str) -> np.ndarray:
    """The ``columns`` of a block of rows as float64 (rows, F), or the first bad cell's error."""
    try:
        values = np.array([[float(row[c]) for c in columns] for row in cells], dtype=np.float64)
        if np.isfinite(values).all():
            return values.reshape(len(cells), len(columns))
    except ValueError:
        pass
    for line, row in zip(lines, cells):
        for c in columns:
            number = _number_or_none(row[c])
            if number is None or not np.isfinite(number):
                raise _cell_error(path, line, names[c], row[c])
    raise AssertionError("a block failed to convert but no cell is bad")


def _target_cells(cells: list[list[str]], lines: list[int], t: int, name: str, path: str) -> np.ndarray:
    """The target column of a block as text; a missing or infinite value is refused."""
    raw = [row[t] for row in cells]
    for line, text in zip(lines, raw):
        number = _number_or_none(text)
        if _is_missing(text, number):
            raise DataError(f"{path} line {line}: the target {name!r} is missing ({text!r}): drop those rows")
        if number is not None and not np.isfinite(number):
            raise DataError(f"{path} line {line}: the target {name!r} holds {text!r}, not a finite "
                            "number: drop or fix those rows")
    return np.array(raw, dtype=str)


def _read_cells(path: str, dialect: Any, header_line: int, names: list[str], columns: list[int],
                t: int | None, rows: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The csv-module reader, ``_ROWS`` rows at a time into a preallocated (rows, F) array:
    (X (N, F), y (N,) numbers or class names, or None)."""
    X = np.empty((rows, len(columns)))
    targets: list[np.ndarray] = []
    n = 0
    with _open(path) as handle:
        stream = _rows(handle, dialect, path)
        if header_line:
            next(stream)
        while block := list(itertools.islice(stream, _ROWS)):
            if n + len(block) > rows:
                raise DataError(f"{path} grew while it was read: read it again once it is written")
            lines, cells = [line for line, _ in block], _fit_width(block, len(names), bool(header_line), path)
            X[n:n + len(block)] = _floats(cells, lines, columns, names, path)
            if t is not None:
                targets.append(_target_cells(cells, lines, t, names[t], path))
            n += len(block)
    if t is None:
        return X[:n], None
    y = np.concatenate(targets)
    try:
        return X[:n], y.astype(np.float64)
    except ValueError:
        return X[:n], y  # class names


def _csv_arrays(path: str, target: str | int | None, inputs_only: bool, feature_names: list[str] | None,
                target_name: str | None) -> tuple[np.ndarray, np.ndarray | None, list[str], list[int],
                                                   int | None]:
    """(X (N, F), y (N,) or None, the file's column names, the feature columns, the target
    column or None): the columns picked, the memory checked, then the fastest reader that can."""
    rows = _count_lines(path)
    dialect = _dialect(path)
    names, header_line = _column_names(path, dialect)
    header = names if header_line else None
    if inputs_only:
        columns, t = _input_columns(header, len(names), target, feature_names, path), None
    else:
        columns, t = _training_columns(header, names, target, target_name, feature_names, path)
    _check_memory(path, rows, len(names))
    read = _read_numbers(path, dialect, header_line, len(names), columns, t)
    X, y = read or _read_cells(path, dialect, header_line, names, columns, t, rows)
    return X, y, names, columns, t


def read_csv(path: str, target: str | int | None = None, *, inputs_only: bool = False,
             feature_names: list[str] | None = None, target_name: str | None = None) -> Dataset:
    """A CSV file as a Dataset.

    Parameters
    ----------
    target : column name or index (negative counts from the end); default the last
    inputs_only : bool
        The file holds inputs for prediction (``y`` is zeros): the columns named as
        ``feature_names`` when the header has them, else every column, or every
        column but ``target`` when there is one column too many.
    feature_names, target_name : the columns a model was trained on
        Where the header has them, the features are those columns in this order and
        the target is ``target_name``, wherever they stand in the file.
    """
    _regular_file(path)
    try:
        X, y, names, columns, t = _csv_arrays(path, target, inputs_only, feature_names, target_name)
    except TextFeature as exc:
        if inputs_only or target is not None or target_name is not None:
            raise
        raise exc.maybe_target() from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text CSV file (it is not UTF-8): export it as CSV") from None
    except csv.Error as exc:
        raise DataError(f"{path} is not valid CSV ({exc})") from None
    return Dataset(os.path.basename(path), X, y if y is not None else np.zeros(len(X)),
                   feature_names=[names[c] for c in columns],
                   target_name=None if t is None else names[t])


NPZ_KEYS = ("X", "y", "X_val", "y_val", "X_test", "y_test")


def _npz_inputs(path: str, key: str, value: np.ndarray) -> np.ndarray:
    """An NPZ input array as float64: (N, F) (a 1-D one is one column), or samples of several axes
    (N, C, L) / (N, C, H, W) as they are (flattened later, their shape kept); or a DataError line."""
    if value.ndim == 1:
        value = value[:, None]
    if not 2 <= value.ndim <= 4 or not np.issubdtype(value.dtype, np.number) or value.dtype.kind == "c":
        raise DataError(f"{path}: {key} must be a 2-D array of real numbers (or (N, C, L), (N, C, H, W) "
                        f"for maps), got {value.dtype} of shape {value.shape}")
    value = value.astype(np.float64)
    if not np.isfinite(value).all():
        raise DataError(f"{path}: {key} contains NaN or infinity: drop or impute those values")
    return value


def _npz_targets(path: str, key: str, value: np.ndarray) -> np.ndarray:
    """An NPZ target array (N,) or (N, T) of labels or numbers as it is, or a DataError line."""
    if value.ndim not in (1, 2) or value.dtype.kind not in "biufUS":
        raise DataError(f"{path}: {key} must be a 1-D array of labels or numbers (2-D for several "
                        f"targets), got {value.dtype} of shape {value.shape}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise DataError(f"{path}: {key} contains NaN or infinity: drop those samples")
    return value


def _npz_arrays(path: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """The archive's arrays named in ``NPZ_KEYS`` and the names of all it holds; never
    unpickles (a pickled array could run code)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files if k in NPZ_KEYS}, list(archive.files)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{path} holds Python objects (pickled arrays), which are never loaded "
                            "because they can run code: save plain numeric arrays") from None
        raise DataError(f"{path} is not a readable .npz file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc})") from None


def _check_npz_keys(path: str, found: dict[str, np.ndarray], names: list[str], inputs_only: bool) -> None:
    """Refuses an archive without ``X`` (and ``y`` for training), or with half a pair."""
    needed = ("X",) if inputs_only else ("X", "y")
    absent = [k for k in needed if k not in found]
    if absent:
        raise DataError(f"{path} has arrays {', '.join(names) or 'none'} but needs "
                        f"{' and '.join(needed)} (np.savez(path, X=X, y=y))")
    for part in ("val", "test"):
        if (f"X_{part}" in found) != (f"y_{part}" in found):
            raise DataError(f"{path} has only one of X_{part} and y_{part}: give both or neither")


def _check_npz_shapes(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Refuses a part whose inputs (N, F) and targets (N,) differ in rows, or whose F is not X's."""
    X = arrays["X"]
    for part in ("", "_val", "_test"):
        Xp, yp = arrays.get(f"X{part}"), arrays.get(f"y{part}")
        if Xp is not None and yp is not None and len(Xp) != len(yp):
            raise DataError(f"{path}: X{part} has {len(Xp)} rows but y{part} has {len(yp)}: they must match")
        if Xp is not None and Xp.shape[1:] != X.shape[1:]:
            what = "columns" if X.ndim == 2 else "as its sample shape"
            raise DataError(f"{path}: X{part} has {_sample(Xp)} {what} but X has {_sample(X)}")


def _sample(X: np.ndarray) -> str:
    """A sample's size as a message says it: columns (5), or a shape (1, 8, 8)."""
    return str(X.shape[1]) if X.ndim == 2 else str(tuple(X.shape[1:]))


def read_npz(path: str, *, inputs_only: bool = False) -> Dataset:
    """An NPZ file with arrays ``X``, ``y`` and optionally ``X_val``, ``y_val``,
    ``X_test``, ``y_test`` (for prediction only ``X`` is needed)."""
    found, names = _npz_arrays(path)
    _check_npz_keys(path, found, names, inputs_only)
    arrays = {key: _npz_inputs(path, key, value) if key.startswith("X") else _npz_targets(path, key, value)
              for key, value in found.items()}
    _check_npz_shapes(path, arrays)
    shape = tuple(arrays["X"].shape[1:]) if arrays["X"].ndim > 2 else None
    flat = {k: v.reshape(len(v), -1) if k.startswith("X") else v for k, v in arrays.items()}  # rows, C order
    X = flat["X"]
    return Dataset(os.path.basename(path), X, flat.get("y", np.zeros(len(X))), flat.get("X_val"),
                   flat.get("y_val"), flat.get("X_test"), flat.get("y_test"), input_shape=shape)


def read_file(path: str, target: str | int | None = None, *, inputs_only: bool = False,
              feature_names: list[str] | None = None, target_name: str | None = None) -> Dataset:
    """A ``.csv`` or ``.npz`` file as a Dataset (``read_csv`` says what the names do)."""
    if not os.path.exists(path):
        raise DataError(f"no such file: {path}")
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder: give a .csv or .npz file")
    _regular_file(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npz":
        if target is not None and not inputs_only:
            raise DataError("--target is for CSV files; an .npz file names its arrays X and y")
        return read_npz(path, inputs_only=inputs_only)
    if suffix in (".csv", ".tsv", ".txt"):
        return read_csv(path, target, inputs_only=inputs_only, feature_names=feature_names,
                        target_name=target_name)
    raise DataError(f"{path}: unknown file type {suffix or '(none)'!r}: give a .csv or .npz file")


def looks_like_path(name: str) -> bool:
    return os.sep in name or "." in os.path.basename(name) or os.path.exists(name)


def load(name: str, target: str | int | None = None, *, feature_names: list[str] | None = None,
         target_name: str | None = None) -> Dataset:
    """A built-in data set by name (see ``backprop.datasets.BUILTIN``), or a .csv/.npz file
    (whose columns a model's ``feature_names`` and ``target_name`` pick by name)."""
    if name.partition(":")[0].strip().lower() in BUILTIN and not os.path.exists(name):
        if target is not None:
            raise DataError("a target column is for CSV files; built-in data sets know their target")
        return load_builtin(name)
    if not looks_like_path(name):
        raise DataError(f"unknown data set {name!r}: use one of {', '.join(BUILTIN)}, "
                        "or a path to a .csv or .npz file")
    return read_file(name, target, feature_names=feature_names, target_name=target_name)
