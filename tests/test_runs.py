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
    summary = Run("moons", resume=str(xor_model), save=str(other), epochs=4, batch_size=200).fit()
    assert summary["epochs"] == 4 and _digest(xor_model) == before
    assert checkpoint.load(str(other)).extra["train"]["data"] == "moons"  # its data from now on
    # The checkpoint's own data, or none named: resumed in place as before.
    assert Run("xor", resume=str(xor_model), epochs=4).save_path == str(xor_model)


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
