"""Paths that only a non-default device takes: pickles of models fitted there, device
targets in the estimators, and array creation inside the backend's ``activate()``.

array-api-strict's second device (``strict``) stands in for a GPU: its arrays cannot be
loaded where array_api_strict is missing, and a creation call that ignores ``device=``
lands on another device, as CuPy's do on ``cuda:1``.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import backprop as bp
from backprop.estimators import BackpropClassifier, BackpropRegressor
from conftest import load, to_np

pytest.importorskip("array_api_strict")

RNG = np.random.default_rng(0)
X = RNG.normal(size=(24, 2))
Y = np.tanh(X[:, 0] - X[:, 1])

# Loads a pickle where array_api_strict cannot be imported (a CPU machine without the
# GPU's library) and prints its predictions on X.
_LOAD = textwrap.dedent("""
    import pickle, sys, warnings
    import numpy as np
    sys.modules["array_api_strict"] = None  # importing it now raises ImportError
    warnings.simplefilter("ignore", RuntimeWarning)  # "loaded on the CPU instead"
    model = pickle.loads(sys.stdin.buffer.read())
    np.save(sys.stdout.buffer, np.asarray(model.predict(np.load(sys.argv[1]))))
""")


def _predict_elsewhere(blob: bytes, tmp_path) -> np.ndarray:
    np.save(tmp_path / "X.npy", X)
    done = subprocess.run([sys.executable, "-c", _LOAD, str(tmp_path / "X.npy")], input=blob,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    (tmp_path / "out.npy").write_bytes(done.stdout)
    return np.load(tmp_path / "out.npy")


@pytest.mark.parametrize("optimizer", ["lm", "newton"])
def test_a_full_batch_model_fitted_on_a_device_loads_where_that_device_is_missing(optimizer, tmp_path):
    model = bp.mlp([2, 4, 1], activation="tanh", dtype="float64", seed=0, device=load("strict"))
    model.fit(X, Y, loss="mse", optimizer=optimizer, epochs=3, weight_decay=1e-3)
    blob = pickle.dumps(model)
    assert b"array_api_strict" not in blob  # no device array rode along
    np.testing.assert_array_equal(_predict_elsewhere(blob, tmp_path), np.asarray(model.predict(X)))
    moved = model.to("cpu")  # model.to() moves the same state: a further fit goes on
    moved.fit(X, Y, loss="mse", optimizer=optimizer, epochs=1, weight_decay=1e-3)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_an_lm_regressor_fitted_on_a_device_loads_where_that_device_is_missing(tmp_path):
    reg = BackpropRegressor((4,), solver="lm", max_iter=3, device="strict", random_state=0)
    reg.fit(X, Y)
    blob = pickle.dumps(reg)
    assert b"array_api_strict" not in blob
    np.testing.assert_array_equal(_predict_elsewhere(blob, tmp_path), np.asarray(reg.predict(X)))


# -- a device y beside a device X ------------------------------------------------------
def _strict(a):
    import array_api_strict as xps

    return xps.asarray(a, device=load("strict").device)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_a_device_column_y_trains_as_its_flat_twin(kind):
    cls = BackpropClassifier if kind == "classifier" else BackpropRegressor
    y = (X[:, 0] > 0).astype(np.float64) if kind == "classifier" else Y
    Xd = _strict(X)
    flat = cls((3,), max_iter=3, random_state=0).fit(Xd, _strict(y))
    column = cls((3,), max_iter=3, random_state=0).fit(Xd, _strict(y[:, None]))
    np.testing.assert_array_equal(to_np(column.predict(Xd)), to_np(flat.predict(Xd)))
    assert column.predict(Xd).shape == (X.shape[0],)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("where", ["device", "host"])
@pytest.mark.parametrize("shape", [(23,), (23, 1)])
def test_a_y_of_another_length_than_a_device_x_is_refused_in_one_line(kind, where, shape):
    cls = BackpropClassifier if kind == "classifier" else BackpropRegressor
    y = np.reshape(np.arange(23.0) % 2, shape)
    with pytest.raises(ValueError, match=r"^Found input variables with inconsistent numbers of "
                                         r"samples: \[24, 23\]$"):
        cls((3,), max_iter=1).fit(_strict(X), _strict(y) if where == "device" else y)


# -- device work inside the backend's activate() -------------------------------------------
class _Outside:
    """Every array-api-strict array made on the second device while no ``StrictBackend.activate()``
    is entered, by the innermost project function that made it.

    ``Array._new`` is the one constructor of every array-api-strict array (creation functions,
    arithmetic, indexing alike), so this sees all of them: on CuPy each such array would land on
    the current GPU, not the model's ``cuda:1``."""

    def __init__(self, monkeypatch):
        import contextlib
        import traceback

        import array_api_strict as xps
        from array_api_strict._array_object import Array

        from backends.strict_backend import StrictBackend

        self.depth, self.counting, self.sites = 0, False, []
        second, new = xps.Device("device1"), Array._new.__func__

        def counted(cls, x, /, device):
            if self.counting and self.depth == 0 and device == second:
                ours = [f for f in traceback.extract_stack()[:-1] if "/backprop/" in f.filename
                        or "/backends/" in f.filename]
                self.sites.append(f"{ours[-1].name}:{ours[-1].lineno}" if ours else "?")
            return new(cls, x, device)

        @contextlib.contextmanager
        def activate(backend):
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1

        monkeypatch.setattr(Array, "_new", classmethod(counted))
        monkeypatch.setattr(StrictBackend, "activate", activate)

    def __enter__(self):
        self.counting = True
        return self

    def __exit__(self, *exc):
        self.counting = False


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["adam", "lm"])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("where", ["device X", "device="])
def test_the_estimators_make_device_arrays_only_inside_activate(monkeypatch, solver, kind, where):
    cls = BackpropClassifier if kind == "classifier" else BackpropRegressor
    y = (X[:, 0] > 0).astype(np.int64) if kind == "classifier" else Y
    on_device = where == "device X"
    Xin, yin = (_strict(X), _strict(y)) if on_device else (X, y)  # made before counting starts
    outside = _Outside(monkeypatch)
    with outside:
        est = cls((3,), solver=solver, max_iter=2, early_stopping=solver == "adam", random_state=0,
                  device=None if on_device else "strict").fit(Xin, yin, sample_weight=np.ones(len(X)))
        if solver == "adam":  # partial_fit refuses early stopping, as scikit-learn
            est.set_params(early_stopping=False).partial_fit(Xin, yin)
        est.score(Xin, yin)
        if kind == "classifier":
            est.predict_log_proba(Xin)
        pickle.loads(pickle.dumps(est)).predict(Xin)  # back on the device
    assert outside.sites == []


def test_the_count_sees_an_array_made_outside_activate_and_none_inside(monkeypatch):
    backend = load("strict")
    outside = _Outside(monkeypatch)
    with outside:
        backend.asarray(np.ones(2))
        with backend.activate():
            backend.asarray(np.ones(2)) + 1.0
    assert len(outside.sites) == 1
