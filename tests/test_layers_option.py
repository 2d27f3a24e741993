"""A training run with the network given as text (``--layers``), its rows reshaped to samples of
several axes (``--input-shape``), or dropout in the default MLP (``--dropout``): trained, saved,
resumed, evaluated and predicted like any run; bad settings refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

import backprop as bp
from backprop.cli import main
from backprop.errors import CheckpointError, ConfigError, DataError

LAYERS = "reshape((4, 16)), flatten, dense(24), relu, dropout(0.1), dense(10)"


def test_a_run_of_given_layers_saves_resumes_and_predicts(tmp_path):
    path = str(tmp_path / "m.safetensors")
    summary = bp.run("digits", layers=LAYERS, input_shape=[1, 8, 8], epochs=2, seed=1, save=path)
    assert summary["status"] == "completed"
    loaded = bp.checkpoint.load(path)
    assert [type(layer).name for layer in loaded.model.layers] == ["reshape", "flatten", "dense", "relu",
                                                                    "dropout", "dense"]
    assert loaded.model.input_shape == (1, 8, 8) and loaded.extra["transform"]["input_shape"] == [1, 8, 8]
    resumed = bp.run(resume=path, epochs=4)
    assert resumed["epochs"] == 4 and resumed["test_accuracy"] > 0.5
    # the saved transform reshapes rows for the model: (N, 64) columns -> (N, 1, 8, 8) samples
    job = bp.Run(resume=path, epochs=5)
    X = job.dataset.X_test
    seen = job.transform.inputs(X)
    assert seen.shape == (len(X), 1, 8, 8)
    np.testing.assert_array_equal(seen.reshape(len(X), 64), (X - job.transform.x_mean) / job.transform.x_std)


def test_dropout_goes_after_each_hidden_activation_of_the_default_mlp():
    job = bp.Run("xor", hidden=[4, 3], activation="relu", dropout=0.2, epochs=1)
    assert [type(layer).name for layer in job.model.layers] == ["dense", "relu", "dropout", "dense", "relu",
                                                                "dropout", "dense"]
    assert all(layer.rate == 0.2 for layer in job.model.layers if type(layer).name == "dropout")


@pytest.mark.parametrize("settings, error, message", [
    ({"layers": "flatten, dense(16), relu, dense(7)"}, ConfigError,
     r"the layers end in 7 outputs but the data needs 10: end --layers with dense\(10\)"),
    ({"layers": "dense(16), relu, dense(10)", "hidden": [5]}, ConfigError,
     r"--layers gives the whole network: drop --hidden"),
    ({"layers": "flatten, dense(10)", "input_shape": [1, 8, 9]}, DataError,
     r"an input shape of 1,8,9 holds 72 entries but each row has 64 inputs"),
    ({"layers": "conv9d(3), dense(10)"}, ConfigError, r"layer 1: unknown layer 'conv9d'"),
    ({"input_shape": [0, 64]}, ConfigError, r"input_shape must be one to three positive sizes"),
    ({"dropout": 1.0}, ConfigError, r"dropout must be a rate in \[0, 1\)"),
])
def test_bad_settings_are_refused_in_one_line(settings, error, message):
    with pytest.raises(error, match=message):
        bp.Run("digits", epochs=1, **settings)


def test_the_command_line_trains_it_and_the_banner_shows_each_layer(tmp_path, capsys):
    path = str(tmp_path / "c.safetensors")
    layers = "flatten, dense(32), relu, dense(10)"
    code = main(["train", "digits", "--input-shape", "1,8,8", "--layers", layers, "--epochs", "1",
                 "--save", path])
    out = capsys.readouterr().out
    assert code == 0
    assert "1×8×8 → flatten 64 → dense 32 (2,080) → relu → dense 10 (330), 2,410 parameters" in out
    with pytest.raises(SystemExit) as stop:
        main(["train", "digits", "--input-shape", "8,x", "--epochs", "1"])
    assert stop.value.code == 2 and "expected sizes like 1,64 or 1,8,8, got '8,x'" in capsys.readouterr().err


def test_a_forged_input_shape_in_a_checkpoint_is_refused(tmp_path):
    from safetensors.numpy import load_file, save_file

    path = str(tmp_path / "m.safetensors")
    bp.run("digits", layers="flatten, dense(10)", input_shape=[1, 8, 8], epochs=1, save=path)
    tensors, meta = load_file(path), bp.checkpoint.read_header(path)
    meta["extra"]["transform"]["input_shape"] = [1, 8, 9]
    meta["sha256"] = bp.checkpoint._digest(tensors, meta)
    save_file(tensors, str(tmp_path / "f.safetensors"), metadata={"backprop": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="the input shape"):
        bp.checkpoint.load(str(tmp_path / "f.safetensors"))


class Halving(bp.Layer):
    """y = x / 2 with a backward that forgets the 1/2: the gradient checker must catch it."""

    def forward(self, X, *, train=False, input_grad=True):
        return X * 0.5, lambda dY: dY if input_grad else None


def test_gradcheck_takes_any_network_as_text(capsys):
    layers = "flatten, dense(4), tanh, dropout(0.5), dense(3)"
    assert main(["gradcheck", "--layers", layers, "--input-shape", "2,3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("gradient check of 2×3 → flatten 6 → dense 4 (28) → tanh → dropout → dense 3 (15), "
                          "ce loss on cpu") and out.rstrip().endswith("ok (tolerance 1e-06)")
    with bp.layers.REGISTRY.restoring():
        bp.layers.register("halving", Halving)
        assert main(["gradcheck", "--layers", "dense(4), halving, dense(2)", "--inputs", "3"]) == 1
    assert "X " in capsys.readouterr().out


def test_an_npz_of_maps_needs_no_input_shape_and_digits_are_images(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2, 3, 4))
    y = (X[:, 0].sum(axis=(1, 2)) > 0).astype(int)
    path = str(tmp_path / "maps.npz")
    np.savez(path, X=X, y=y)
    job = bp.Run(path, layers="flatten, dense(8), tanh, dense(2)", epochs=1)
    assert job.model.input_shape == (2, 3, 4) and job.transform.input_shape == (2, 3, 4)
    rows = X[:3].reshape(3, 24)  # the rows the file's maps were read as (C order)
    np.testing.assert_array_equal(job.transform.inputs(rows), ((rows - job.transform.x_mean) /
                                                               job.transform.x_std).reshape(3, 2, 3, 4))
    assert bp.Run(path, hidden=[4], epochs=1).model.input_shape == (24,)  # the default MLP reads rows
    assert bp.Run("digits", layers="flatten, dense(10)", epochs=1).model.input_shape == (1, 8, 8)
    np.savez(path, X=X, y=y, X_val=X[:, :1], y_val=y)
    with pytest.raises(DataError, match=r"X_val has \(1, 3, 4\) as its sample shape but X has \(2, 3, 4\)"):
        bp.Run(path, layers="flatten, dense(2)", epochs=1)


def test_motifs_are_one_short_shape_somewhere_in_noise():
    """The 1-D signal set: without noise each row is zero but for 12 samples holding its class's
    motif (scaled by 2) at some place; the set is seeded and its samples are (1, 64) for --layers."""
    from backprop.edges import datasets

    X, y = datasets._motifs(np.random.default_rng(0), 300, noise=0.0)
    assert X.shape == (300, 64) and set(np.unique(y)) == {0, 1, 2}
    t = np.linspace(0.0, 1.0, 12)
    shapes = [np.sin(np.pi * t), np.where((t > 0.2) & (t < 0.8), 1.0, 0.0), -np.sin(2 * np.pi * t)]
    for row, label in zip(X, y):
        placed = [start for start in range(64 - 12 + 1)
                  if np.array_equal(row, np.pad(2.0 * shapes[label], (start, 64 - 12 - start)))]
        assert len(placed) >= 1  # the row is its motif at some place, zero elsewhere
    data = bp.datasets.load_builtin("motifs")
    assert data.input_shape == (1, 64) and len(data.X) == 2400 and len(data.X_test) == 600
    np.testing.assert_array_equal(data.X, bp.datasets.load_builtin("motifs").X)  # seeded
