"""Training runs as ``backprop train`` and ``bp.run`` make them: resuming, settings, interruption,
progress."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from backprop import checkpoint
from backprop.errors import ConfigError, DataError
from backprop.runner import Run


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _csv(path, header: str, X: np.ndarray, labels) -> str:
    rows = [header] + [",".join([*(f"{v:.4f}" for v in x), str(t)]) for x, t in zip(X, labels)]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def xor_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("xor") / "xor.safetensors"
    Run("xor", save=str(path), epochs=3).fit()
    return path


# -- resuming on other data (issue 20, item 8) -------------------------------------------
def test_resuming_on_another_data_set_needs_an_explicit_save_and_leaves_the_file(xor_model, tmp_path):
    before = _digest(xor_model)
    with pytest.raises(ConfigError, match=r"cannot resume .*xor.safetensors on moons without --save: it was "
                                          r"trained on xor"):
        Run("moons", resume=str(xor_model), epochs=4)
    assert _digest(xor_model) == before
    # Same features, task and classes: fine-tuning elsewhere is allowed when the target is named.
    other = tmp_path / "moons.safetensors"
    job = Run("moons", resume=str(xor_model), save=str(other), epochs=4, batch_size=200)
    assert f"continuing {xor_model}, trained on xor, on moons, with the checkpoint's standardization" \
        in job.notes  # said, not silent
    summary = job.fit()
    assert summary["epochs"] == 4 and _digest(xor_model) == before
    assert checkpoint.load(str(other)).extra["train"]["data"] == "moons"  # its data from now on
    # The checkpoint's own data, or none named: resumed in place as before.
    same = Run("xor", resume=str(xor_model), epochs=4)
    assert same.save_path == str(xor_model) and not any("continuing" in note for note in same.notes)


def test_resuming_on_data_with_other_features_is_refused_naming_them(xor_model, tmp_path):
    with pytest.raises(DataError, match=r"on digits: the data has 64 features, the checkpoint 2: it lacks "
                                        r"x0, x1 and adds pixel_0_0, "):
        Run("digits", resume=str(xor_model), epochs=4, save=str(tmp_path / "d.safetensors"))
    rng = np.random.default_rng(0)
    X, labels = rng.normal(size=(30, 2)), rng.integers(0, 2, 30)
    saved = tmp_path / "ab.safetensors"
    Run(_csv(tmp_path / "ab.csv", "a,b,label", X, labels), save=str(saved), epochs=1).fit()
    cases = {"ba,label": ("b,a,label", X[:, ::-1], labels, "the data has the checkpoint's features in "
                                                             "another order"),
             "ac": ("a,c,label", X, labels, "the data lacks b and adds c"),
             "abc": ("a,b,c,label", np.column_stack([X, X[:, 0]]), labels,
                     "the data has 3 features, the checkpoint 2: it adds c"),
             "task": ("a,b,label", X, X[:, 0] * 1.5 + 0.25, "the checkpoint is a classification model and "
                                                            "these data are for regression"),
             "classes": ("a,b,label", X, labels + 1, r"labels \['2'\] were not seen in training")}
    for name, (header, values, targets, why) in cases.items():
        data = _csv(tmp_path / f"{name}.csv", header, values, targets)
        with pytest.raises(DataError, match=why):
            Run(data, resume=str(saved), save=str(tmp_path / "out.safetensors"), epochs=2)
    # A subset of the classes is fine (a batch that lacks one).
    data = _csv(tmp_path / "ones.csv", "a,b,label", X, np.ones(30, dtype=int))
    Run(data, resume=str(saved), save=str(tmp_path / "out.safetensors"), epochs=2)


# -- settings from Python (item 18) ---------------------------------------------------------
def test_one_hidden_width_may_be_given_as_an_int():
    assert Run("xor", hidden=3, epochs=1).model.n_params == (2 * 3 + 3) + (3 * 2 + 2)  # 2-3-2 softmax
    assert Run("xor", hidden=0, epochs=1).settings["hidden"] == []  # as --hidden 0: no hidden layer
    assert Run("xor", hidden=(3, 2), epochs=1).settings["hidden"] == [3, 2]


@pytest.mark.parametrize("setting, value", [
    ("standardize", "no"), ("standardize", 1), ("lr", "0.1"), ("momentum", "x"), ("early_stopping", "5"),
    ("hidden", "4"), ("hidden", [4, "a"]), ("hidden", 2.5), ("target", 3.5), ("features", 3),
    ("val_split", "0.1"), ("activation", 3), ("epochs", True), ("seed", 1.0)])
def test_a_setting_of_the_wrong_type_is_a_config_error_naming_it(setting, value):
    extra = {"optimizer": "sgd"} if setting == "momentum" else {}
    with pytest.raises(ConfigError, match=rf"^(each )?{setting.replace('_', ' ')}|^{setting}"):
        Run("moons", **{"epochs": 1, **extra, setting: value})


def test_every_setting_has_a_type_and_its_default_has_it():
    from backprop.runner import DEFAULTS, KINDS, checked_settings

    assert set(KINDS) == set(DEFAULTS)
    defaults = {k: v for k, v in DEFAULTS.items() if v is not None}
    assert checked_settings(defaults) == defaults
    # A checkpoint's settings are checked by the same rules; a name this version lacks passes.
    assert checked_settings({"an_old_setting": "x", "early_stopping": None}) == {"an_old_setting": "x",
                                                                        "early_stopping": None}


# -- interruption (item 18) -------------------------------------------------------------
def _stop_at_once_in_epoch(monkeypatch, epoch: int) -> None:
    """A second Ctrl-C during epoch ``epoch``: KeyboardInterrupt from inside a step."""
    from backprop import step

    apply = step.Step.apply

    def interrupted(self, grads):
        if self.model.epoch + 1 == epoch:
            raise KeyboardInterrupt
        return apply(self, grads)

    monkeypatch.setattr(step.Step, "apply", interrupted)


@pytest.mark.parametrize("before", ["nothing", "checkpoint", "resumed"])
def test_stopping_at_once_says_what_the_save_path_really_holds(before, monkeypatch, tmp_path, capsys):
    from backprop.cli import main

    path = tmp_path / "m.safetensors"
    if before != "nothing":
        Run("xor", save=str(path), epochs=2).fit()
    digest = _digest(path) if before != "nothing" else None
    _stop_at_once_in_epoch(monkeypatch, 4)
    argv = ["train", "--resume", str(path)] if before == "resumed" else ["train", "xor", "--save", str(path)]
    assert main([*argv, "--epochs", "300", "--quiet"]) == 130
    said = capsys.readouterr().err.strip().splitlines()[-1]
    expected = {"nothing": f"nothing saved yet ({path} not written)",
                "checkpoint": f"{path} was not written (it holds what it held before)",
                "resumed": f"{path} keeps its last save (epoch 2)"}[before]
    assert said == f"interrupted in epoch 4; {expected}"
    assert (_digest(path) if path.exists() else None) == digest  # what it says is what is there


# -- progress and counts (item 17) ---------------------------------------------------------
def _record(epoch: int) -> dict:
    return {"epoch": epoch, "train_loss": 0.5, "samples_per_s": 100.0}


def test_progress_to_a_file_shows_a_line_at_least_every_few_seconds(capsys):
    from backprop.cli.report import PRINT_EVERY_S, Progress

    now = [0.0]
    progress = Progress("lines", 0, 100_000, "cpu", "numpy", clock=lambda: now[0])  # a line per 5,000
    for epoch, seconds in ((1, 1.0), (2, PRINT_EVERY_S - 0.1), (3, PRINT_EVERY_S), (4, PRINT_EVERY_S + 1),
                           (5, 2 * PRINT_EVERY_S), (5000, 2 * PRINT_EVERY_S + 0.1)):
        now[0] = seconds
        progress.epoch(_record(epoch))
    printed = [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()]
    assert printed == ["epoch 3", "epoch 5", "epoch 5000"]  # by time, by time, by count


def test_counts_are_printed_with_the_right_number(tmp_path, capsys):
    from backprop.cli import main
    from backprop.cli.report import counted

    assert [counted(1, "feature"), counted(2, "feature"), counted(1, "class", "classes"),
            counted(12345, "parameter")] == ["1 feature", "2 features", "1 class", "12,345 parameters"]
    data = tmp_path / "line.csv"
    data.write_text("x,y\n" + "".join(f"{i},{2 * i + 0.5}\n" for i in range(8)))
    assert main(["train", str(data), "--epochs", "1", "--val-split", "0", "--hidden", "2"]) == 0
    banner = capsys.readouterr().out.splitlines()[0]
    assert "8 train, 1 feature, regression, 1 target · 1-2-1 relu, 7 parameters" in banner, banner
    assert banner.endswith("batch 32, 1 epoch"), banner


def test_a_levenberg_marquardt_classifier_reports_accuracy_every_epoch():
    # lm trains class indicators with a squared error; its records count accuracy all the same,
    # and the last epoch's count is the summary's (the same weights, the same rule).
    job = Run("moons", optimizer="lm", hidden=[4], epochs=3, early_stopping=0)
    summary = job.fit()
    last = job.model.history.records[-1]
    assert last["train_accuracy"] == pytest.approx(job.rows["train"]["accuracy"], abs=1e-12)
    assert last["val_accuracy"] == pytest.approx(job.rows["val"]["accuracy"], abs=1e-12)
    assert summary["epochs"] == 3
