"""One ``backend`` fixture over every backend usable here.

NumPy always; array-api-strict on a non-default device (catches a forgotten
``device=`` and anything outside the standard); PyTorch when installed; CuPy
when a GPU is present. Unusable ones are skipped with the reason.
"""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest

from backends import BackendUnavailable, dtype_name, get_backend

ALL_SPECS = ["cpu", "strict", "torch", "cuda"]
OTHER_SPECS = ["strict", "torch", "cuda"]  # compared against NumPy


def load(spec: str):
    try:
        return get_backend(spec)
    except BackendUnavailable as exc:
        pytest.skip(f"{spec}: {exc}")


@pytest.fixture(params=ALL_SPECS)
def backend(request):
    """Every usable backend, NumPy included."""
    return load(request.param)


@pytest.fixture(params=OTHER_SPECS)
def other_backend(request):
    """Every usable backend other than NumPy, to compare against NumPy."""
    return load(request.param)


@pytest.fixture
def numpy_backend():
    return get_backend("cpu")


def assert_belongs(x, backend, dtype=None, shape=None):
    """``x`` is an array of ``backend``'s namespace, on its device, in ``dtype``."""
    assert backend.is_native(x), f"{type(x).__name__} is not a {backend.name} array"
    assert array_api_compat.array_namespace(x) is backend.xp
    assert array_api_compat.device(x) == backend.device, f"{array_api_compat.device(x)} != {backend.device}"
    if dtype is not None:
        assert dtype_name(x.dtype) == dtype, f"dtype {x.dtype}, expected {dtype}"
    if shape is not None:
        assert tuple(x.shape) == tuple(shape)


def to_np(x):
    from backends import to_numpy_any

    return np.asarray(to_numpy_any(x))


def run_cli(argv, capsys):
    """(exit status, stdout, stderr) of ``backprop ARGV``, argparse's exits included."""
    from backprop.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def resume_matches_a_straight_run(common, epochs, tmp_path, capsys):
    """``backprop`` ARGV ``common`` trained ``epochs`` epochs straight, and half of them then
    resumed to ``epochs``: both checkpoints hold the same tensors, bit for bit (weights,
    optimizer state, dtypes)."""
    from safetensors.numpy import load_file

    assert run_cli([*common, "--epochs", epochs, "--save", tmp_path / "straight.st"], capsys)[0] == 0
    assert run_cli([*common, "--epochs", epochs // 2, "--save", tmp_path / "half.st"], capsys)[0] == 0
    code, _, err = run_cli(["train", "--resume", tmp_path / "half.st", "--epochs", epochs, "--quiet"], capsys)
    assert code == 0, err
    a, b = load_file(tmp_path / "straight.st"), load_file(tmp_path / "half.st")
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype
        assert np.array_equal(a[name], b[name]), name


def hessian_by_differences(model, X, y, loss: str = "mse", step: float = 1e-5) -> np.ndarray:
    """The (P, P) Hessian of ``loss`` at the model's parameters, column p the central difference of
    the gradient along parameter p (step ``step``); the parameters are put back afterwards."""
    theta = np.asarray(model.backend.to_numpy(model.flat_parameters())).copy()
    numeric = np.zeros((theta.size, theta.size))
    for p in range(theta.size):
        grads = []
        for sign in (1.0, -1.0):
            bumped = theta.copy()
            bumped[p] += sign * step
            model.set_flat_parameters(bumped)
            model.loss_and_gradients(X, y, loss=loss)
            grads.append(np.asarray(model.backend.to_numpy(model.flat_gradients())).copy())
        numeric[:, p] = (grads[0] - grads[1]) / (2 * step)
    model.set_flat_parameters(theta)
    return numeric


@pytest.fixture
def figures(monkeypatch):
    """Each figure the plots module is about to write (the files themselves are not needed)."""
    from backprop import plots

    seen = []

    def keep(plt, fig, path):
        seen.append(fig)
        return path

    monkeypatch.setattr(plots, "_write", keep)
    return seen
