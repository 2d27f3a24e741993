"""BLAS threads chosen by the size of a training step: the rule, fit applying it, the overrides."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import backprop as bp
import backprop.training as training
from backends import machine
from backprop.cli import main
from backprop.errors import ConfigError


def blas_threads() -> int:
    return next(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")


def test_rule_decisions_exact():
    assert machine.step_threads(9_999_999, cores=2) == 1
    assert machine.step_threads(10_000_000, cores=2) == 2
    assert machine.step_threads(10_000_000, cores=8) == 8
    digits = 32 * bp.mlp([64, 128, 128, 10]).n_params  # 835,904 multiply-adds
    medium = 1024 * bp.mlp([784, 512, 512, 10]).n_params  # 685,778,944
    assert (digits, medium) == (835_904, 685_778_944)
    assert machine.step_threads(digits, cores=2) == 1
    assert machine.step_threads(medium, cores=2) == 2
    assert machine.step_threads(medium, cores=1) == 1


class Seen:
    """A callback that records the BLAS threads in use during each epoch."""

    def __init__(self):
        self.threads = []

    def __call__(self, record, model):
        self.threads.append(blas_threads())


def small_fit(seen, **kw):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 4)), rng.integers(0, 2, 64)
    bp.mlp([4, 8, 2], output="softmax").fit(X, y, epochs=2, batch_size=16, callbacks=[seen], **kw)


@pytest.fixture
def two_threads():
    if machine.usable_cores() < 2:
        pytest.skip("needs two cores to tell one thread from all")
    with threadpool_limits(limits=2):
        yield


def test_fit_gives_a_small_network_one_thread_and_restores(two_threads):
    seen = Seen()
    small_fit(seen)
    assert seen.threads == [1, 1]
    assert blas_threads() == 2  # the caller's count, restored


def test_fit_gives_a_large_step_all_cores(two_threads):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(128, 64)), rng.integers(0, 10, 128)
    model = bp.mlp([64, 256, 256, 10], output="softmax")  # 128 x 84,234 = 1.08e7 multiply-adds
    seen = Seen()
    with threadpool_limits(limits=1):
        model.fit(X, y, epochs=1, batch_size=128, callbacks=[seen])
        assert blas_threads() == 1
    assert seen.threads == [machine.usable_cores()]


def test_fit_threads_override(two_threads):
    seen = Seen()
    small_fit(seen, threads=2)
    assert seen.threads == [2, 2]
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        small_fit(Seen(), threads=0)


@pytest.fixture
def rule_calls(monkeypatch):
    """``(multiply_adds, threads)`` of each fit's call to the thread rule."""
    calls = []
    real = training.training_threads

    def recording(backend, multiply_adds, threads=None):
        calls.append((multiply_adds, threads))
        return real(backend, multiply_adds, threads)

    monkeypatch.setattr(training, "training_threads", recording)
    return calls


def test_cli_threads_option(rule_calls, tmp_path):
    main(["train", "xor", "--epochs", "1", "--threads", "3", "--quiet"])
    main(["train", "xor", "--epochs", "1", "--quiet"])
    assert [threads for _, threads in rule_calls] == [3, None]


def test_run_threads_setting(rule_calls):
    bp.run("xor", epochs=1, threads=2)
    assert [threads for _, threads in rule_calls] == [2]
    with pytest.raises(ConfigError, match="threads must be an integer"):
        bp.Run("xor", epochs=1, threads="two")


def test_torch_pool_set_and_restored(monkeypatch):
    pool = {"n": 4, "log": []}
    fake = types.SimpleNamespace(get_num_threads=lambda: pool["n"],
                                 set_num_threads=lambda n: (pool.__setitem__("n", n), pool["log"].append(n)))
    monkeypatch.setitem(sys.modules, "torch", fake)
    backend = types.SimpleNamespace(name="torch", is_gpu=False)
    with machine.training_threads(backend, 1000):
        assert pool["n"] == 1
    assert pool["n"] == 4 and pool["log"] == [1, 4]


def test_gpu_backend_untouched(two_threads):
    backend = types.SimpleNamespace(name="cupy", is_gpu=True)
    with machine.training_threads(backend, 1000, threads=1):
        assert blas_threads() == 2


def test_pools_scanned_once_not_per_fit(monkeypatch):
    """Scanning the loaded libraries costs about a millisecond: a fit reuses the last scan, and a fit
    that imported a module rescans as it ends, not the next fit."""
    import threadpoolctl

    def quiet(record, model):  # (threadpool_info, as Seen calls it, builds a controller of its own)
        pass

    def importing(record, model):  # as L-BFGS's first epoch imports SciPy
        monkeypatch.setitem(sys.modules, "module_imported_during_a_fit", types.ModuleType("new"))

    small_fit(quiet)
    small_fit(importing)  # the fit that imports rescans as it ends
    built = []

    class Counting(threadpoolctl.ThreadpoolController):
        def __init__(self):
            built.append(1)
            super().__init__()

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", Counting)
    small_fit(quiet)
    small_fit(quiet)
    assert built == []


def test_the_optimizer_says_what_its_step_costs(rule_calls):
    """LM's iteration is JᵀJ, (N·K)·P² multiply-adds, not the batch × parameters of a first-order
    step: a 2,000-parameter regression on a few thousand rows gets every core."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    model = bp.mlp([3, 4, 2])  # 26 parameters
    model.fit(X, y, loss="mse", optimizer="lm", epochs=1)
    model.fit(X, y, loss="mse", optimizer="newton", epochs=1)
    model.fit(X, y, loss="mse", optimizer="adam", epochs=1, batch_size=10)
    assert [work for work, _ in rule_calls] == [50 * 2 * 26 * 26, 50 * 26 * 26, 10 * (3 * 4 + 4 * 2)]
    assert machine.step_threads(3000 * 1 * 2161 * 2161, cores=2) == 2  # the LM case of issue 25


def test_a_convolution_counts_its_products_at_every_position():
    """LeNet-5 has 61,706 parameters but reuses each kernel at every position: its forward pass is
    416,520 multiply-adds a sample (worked out by hand below), so batch 128 gets every core."""
    lenet = bp.Sequential(bp.spec.parse(
        "conv2d(6, 5, padding=2), relu, maxpool2d(2), conv2d(16, 5), relu, maxpool2d(2), flatten, "
        "dense(120), relu, dense(84), relu, dense(10)"), input_shape=(1, 28, 28))
    by_hand = (6 * 1 * 25 * 28 * 28  # conv 6@5x5 at 28x28 positions
               + 16 * 6 * 25 * 10 * 10  # conv 16@5x5 at 10x10 positions
               + 400 * 120 + 120 * 84 + 84 * 10)
    assert lenet.multiply_adds() == by_hand == 416_520
    assert lenet.multiply_adds() > 6 * lenet.n_params
    assert machine.step_threads(128 * lenet.multiply_adds(), cores=2) == 2
    block = bp.Sequential(bp.spec.parse("dense(8), residual([dense(8), relu, dense(8)]), dense(2)"),
                          input_shape=(4,))
    assert block.multiply_adds() == 4 * 8 + 8 * 8 + 8 * 8 + 8 * 2
