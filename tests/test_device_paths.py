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
from backprop.estimators import BackpropRegressor
from conftest import load

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
