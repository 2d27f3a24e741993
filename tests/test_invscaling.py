"""The invscaling schedule: scikit-learn's SGD rates epoch by epoch, sized by the fit, saved and pickled."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import backprop as bp
from backprop import checkpoint, schedules
from backprop.errors import CheckpointError, ConfigError


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, X @ np.array([0.5, -1.0, 2.0]) + rng.normal(0.0, 0.1, n)


def sklearn_rates(lr, power_t, n_samples, epochs):
    """The rate of each epoch under scikit-learn's own SGDOptimizer, as MLP's fit steps it:
    t_ += n_samples after each epoch, then iteration_ends(t_)."""
    sgd = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    opt = sgd.SGDOptimizer([np.zeros(1)], learning_rate_init=lr, lr_schedule="invscaling", power_t=power_t)
    rates, t = [], 0
    for _ in range(epochs):
        rates.append(opt.learning_rate)
        t += n_samples
        opt.iteration_ends(t)
    return rates


def fitted_rates(model, X, y, schedule, epochs, **fit):
    """Each epoch's rate of a fit with SGD at 0.05 under ``schedule`` (None: the model's optimizer,
    continued)."""
    if schedule is not None:
        fit.update(optimizer="sgd", lr=0.05, schedule=schedule)
    history = model.fit(X, y, loss="mse", epochs=epochs, batch_size=16, **fit)
    return [record["lr"] for record in history.records[len(history.records) - epochs:]]  # this fit's


def test_it_is_registered_and_refuses_bad_settings():
    assert "invscaling" in schedules.names() and type(schedules.get("invscaling")) is schedules.InverseScaling
    for bad in ({"power_t": -0.5}, {"power_t": float("nan")}, {"power_t": "0.5"}, {"power_t": True},
                {"samples_per_epoch": 0}, {"samples_per_epoch": 2.5}, {"samples_per_epoch": True}):
        with pytest.raises(ConfigError, match="InverseScaling needs"):
            schedules.InverseScaling(**bad)
    numpy_numbers = schedules.InverseScaling(np.float32(0.25), np.int64(7))  # as a NumPy script gives them
    assert numpy_numbers.config() == {"power_t": 0.25, "samples_per_epoch": 7}
    assert type(numpy_numbers.config()["samples_per_epoch"]) is int
    with pytest.raises(ConfigError, match="does not know the epoch's size yet"):
        schedules.InverseScaling()(0.1, 0)


@pytest.mark.parametrize("power_t", [0.5, 0.25, 1.0])
def test_the_rates_are_scikit_learns_bit_for_bit(power_t):
    X, y = data(90)
    model = bp.mlp([3, 4, 1], activation="tanh", seed=0)
    rates = fitted_rates(model, X, y, schedules.InverseScaling(power_t=power_t), 6)
    assert rates == sklearn_rates(0.05, power_t, 90, 6)  # exact: the same float operations
    assert model.optimizer.schedule.samples_per_epoch == 90  # the fit's training samples


def test_a_validation_split_counts_only_the_training_part():
    X, y = data(100)
    rates = fitted_rates(bp.mlp([3, 1], seed=0), X, y, "invscaling", 4, validation_split=0.2)
    assert rates == sklearn_rates(0.05, 0.5, 80, 4)


def test_continued_fits_keep_counting_at_the_first_fits_size():
    X, y = data(90)
    whole = fitted_rates(bp.mlp([3, 1], seed=0), X, y, "invscaling", 5)
    model = bp.mlp([3, 1], seed=0)
    split = fitted_rates(model, X, y, "invscaling", 2) + fitted_rates(model, X[:30], y[:30], None, 3)
    assert split == whole and model.optimizer.schedule.samples_per_epoch == 90
    assert fitted_rates(model, X, y, None, 0) == []  # a fit of 0 epochs changes nothing


def test_a_given_size_is_kept_and_a_zero_epoch_fit_sizes_nothing():
    X, y = data(90)
    assert fitted_rates(bp.mlp([3, 1], seed=0), X, y, schedules.InverseScaling(samples_per_epoch=7), 3) == \
        sklearn_rates(0.05, 0.5, 7, 3)
    model = bp.mlp([3, 1], seed=0)
    schedule = schedules.InverseScaling()
    fitted_rates(model, X[:10], y[:10], schedule, 0)
    assert schedule.samples_per_epoch is None


def test_a_checkpoint_and_a_pickle_keep_it(tmp_path):
    X, y = data(90)
    model = bp.mlp([3, 4, 1], activation="tanh", dtype="float64", seed=0)
    fitted_rates(model, X, y, schedules.InverseScaling(power_t=0.3), 2)
    path = tmp_path / "inv.safetensors"
    checkpoint.save(model, str(path))
    for back in (checkpoint.load(str(path)).model, pickle.loads(pickle.dumps(model))):
        schedule = back.optimizer.schedule
        assert type(schedule) is schedules.InverseScaling
        assert schedule.config() == {"power_t": 0.3, "samples_per_epoch": 90}
        assert fitted_rates(back, X, y, None, 2) == sklearn_rates(0.05, 0.3, 90, 4)[2:]


def test_a_forged_checkpoint_setting_is_a_checkpoint_error(tmp_path):
    X, y = data(40)
    model = bp.mlp([3, 1], dtype="float64", seed=0)
    fitted_rates(model, X, y, "invscaling", 1)
    path = tmp_path / "inv.safetensors"
    checkpoint.save(model, str(path))
    meta = checkpoint.read_header(str(path))
    meta["optimizer"]["schedule"]["config"]["samples_per_epoch"] = -3
    from safetensors.numpy import load_file
    from test_hostile_checkpoints import _write_signed
    forged = tmp_path / "forged.safetensors"
    _write_signed(forged, meta, dict(load_file(str(path))))
    with pytest.raises(CheckpointError, match="samples_per_epoch"):
        checkpoint.load(str(forged))


def test_the_command_line_schedules_and_resumes_it(tmp_path, capsys):
    import json

    from conftest import run_cli

    path = tmp_path / "inv.st"
    rates = []
    for argv in (["train", "sine", "--optimizer", "sgd", "--lr", "0.1", "--schedule", "invscaling",
                  "--epochs", "3", "--early-stopping", "0", "--save", path, "--json"],
                 ["train", "--resume", path, "--epochs", "5", "--json"]):
        code, out, err = run_cli(argv, capsys)
        assert code == 0, err
        rates += [r["lr"] for r in map(json.loads, out.splitlines()) if r["type"] == "epoch"]
    assert rates == sklearn_rates(0.1, 0.5, 360, 5)  # sine: 400 training samples, 40 of them held out
