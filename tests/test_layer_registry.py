"""The layer registry: a layer of a user's own, registered from outside the package, trains,
saves, loads, pickles and gradchecks with no package file changed; checkpoints save any
registered layer from its ``config()`` and named parameters, and still write, byte for byte,
what the commit before the registry wrote."""

from __future__ import annotations

import io
import json
import pathlib
import pickle
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import backprop as bp
from backprop import activations, checkpoint, layers
from backprop.activations import ReLU
from backprop.errors import CheckpointError, ConfigError
from backprop.layers import Dense, Layer

ROOT = pathlib.Path(__file__).resolve().parents[1]
BEFORE = "25fc73230f07deded3126211fa885c96439cb386"  # the last commit whose checkpoint.py knew Dense by name


class Scale(Layer):
    """A user's layer: ``Y = X * s``, one learned factor per feature. Shapes: X, Y (N, features),
    s (features,)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = int(features)

    def config(self) -> dict:
        return {"features": self.features}

    def param_shapes(self) -> dict:
        return {"s": (self.features,)}

    def output_width(self, input_width: int) -> int:
        if input_width != self.features:
            raise ConfigError(f"Scale({self.features}) follows a layer of {input_width}")
        return input_width

    def build(self, backend, dtype, rng, *, next_layer=None) -> None:
        super().build(backend, dtype, rng)
        self.params = {"s": backend.asarray(rng.uniform(0.5, 1.5, (self.features,)), dtype)}
        self.grads = {}

    def forward(self, X, *, train=False, input_grad=True):
        xp = self._ns(X)
        s = self.params["s"]

        def backward(dY):
            self.grads["s"] = xp.sum(dY * X, axis=0)
            return dY * s if input_grad else None

        return X * s, backward


@pytest.fixture
def scale():
    """Scale registered as "scale", for one test."""
    with layers.REGISTRY.restoring():
        layers.register("scale", Scale)
        yield Scale


def _data(n: int = 40):
    X = np.random.default_rng(1).normal(size=(n, 2))
    return X, np.sin(2.0 * X[:, :1]) + 0.5 * X[:, 1:]


def _model() -> bp.Sequential:
    return bp.Sequential([Dense(2, 4), Scale(4), "tanh", Dense(4, 1)], dtype="float64", seed=2)


def test_a_registered_layer_trains_saves_loads_and_pickles(scale, tmp_path):
    X, y = _data()
    model = _model()
    model.fit(X, y, loss="mse", optimizer="adam", lr=0.05, epochs=4, batch_size=8)
    assert "1.s" in model.parameters() and model.n_params == 2 * 4 + 4 + 4 + 4 + 1
    assert model.history.records[-1]["train_loss"] < model.history.records[0]["train_loss"]
    checkpoint.save(model, str(tmp_path / "s.st"))
    header = checkpoint.read_header(str(tmp_path / "s.st"))
    assert header["layers"][1] == {"type": "scale", "config": {"features": 4}}
    back = checkpoint.load(str(tmp_path / "s.st")).model
    copy = pickle.loads(pickle.dumps(model))
    assert type(back.layers[1]) is Scale and type(copy.layers[1]) is Scale
    for other in (back, copy):
        np.testing.assert_array_equal(other.flat_parameters(), model.flat_parameters())
    for other in (back, copy, model):  # the whole fit state came along: the next epoch agrees bit for bit
        other.fit(X, y, epochs=1, batch_size=8)
    for other in (back, copy):
        np.testing.assert_array_equal(other.flat_parameters(), model.flat_parameters())


def test_a_registered_layer_gradchecks(scale):
    X, y = _data(6)
    result = bp.gradcheck(_model(), X, y, loss="mse")
    assert result.ok and "1.s" in result.errors


def test_a_forged_size_of_a_registered_layer_is_refused(scale, tmp_path):
    """The shapes a layer's settings give are checked against the file's tensors, for any layer."""

    from safetensors.numpy import load_file, save_file

    model = _model()
    checkpoint.save(model, str(tmp_path / "s.st"))
    meta = checkpoint.read_header(str(tmp_path / "s.st"))
    meta["layers"][1]["config"]["features"] = 100_000
    tensors = load_file(str(tmp_path / "s.st"))
    meta["sha256"] = checkpoint._digest(tensors, meta)
    save_file(tensors, str(tmp_path / "f.st"), metadata={"backprop": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=r"layer 1 \(scale\) needs s \(100000,\) but its param tensors "
                                              r"are s \(4,\)"):
        checkpoint.load(str(tmp_path / "f.st"))


def test_an_unregistered_layer_is_not_saved_as_its_parent(tmp_path):
    """A Dense subclass would otherwise be saved as "dense" and come back as a plain Dense."""
    class Wide(Dense):
        pass

    model = bp.Sequential([Wide(2, 3), "relu", Dense(3, 1)])
    with pytest.raises(CheckpointError, match=r"cannot save a Wide layer: register it first"):
        checkpoint.save(model, str(tmp_path / "w.st"))
    assert not (tmp_path / "w.st").exists()


def test_the_registry_knows_every_layer_family_and_every_activation():
    assert set(layers.names()) == {"dense", "conv1d", "conv2d", "dropout", "batchnorm", "layernorm",
                                   "maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d", "globalavgpool1d",
                                   "globalavgpool2d", "flatten", "reshape", "residual"}
    known = layers.classes()
    assert known["dense"] is Dense and known["relu"] is ReLU and known["dropout"] is bp.Dropout
    assert set(activations.classes()) <= set(known)  # read from the activations' own registry
    assert layers.class_of("leaky_relu") is activations.LeakyReLU
    with pytest.raises(ConfigError, match="unknown layer type 'conv'"):
        layers.class_of("conv")


def test_names_are_taken_once_across_layers_and_activations(scale):
    for name in ("relu", "dense", "scale"):
        with pytest.raises(ConfigError, match="is taken"):
            layers.register(name, type("Other", (Layer,), {}))
    with pytest.raises(ConfigError, match="is taken"):
        activations.register("scale", type("Act", (activations.Activation,), {}))
    with pytest.raises(ConfigError, match="must be a subclass of backprop.layers.Layer"):
        layers.register("thing", object)


@pytest.mark.parametrize("optimizer", ["lm", "newton"])
def test_second_order_methods_refuse_a_layer_they_do_not_cover(optimizer, scale):
    """Scale's parameters would be missing from the Jacobian and the Hessian: one line, naming it."""
    X, y = _data(8)
    model = _model()
    with pytest.raises(ConfigError) as info:
        model.fit(X, y, loss="mse", optimizer=optimizer, epochs=1)
    message = str(info.value)
    assert "Scale layer (layer 1)" in message and "\n" not in message
    assert "first-order optimizer" in message


# -- the files written now are those the previous commit wrote --------------------------
SCRIPT = """
import sys
import numpy as np
import backprop as bp
from backprop import checkpoint
X = np.random.default_rng(0).normal(size=(30, 3))
y = (X[:, :1] > 0).astype(float)
model = bp.Sequential([bp.Dense(3, 4, init="he_normal", bias=0.1), "leaky_relu",
                       bp.Dense(4, 2, bias="textbook"), "tanh", bp.Dense(2, 1)], dtype="float64", seed=5)
# momentum: the same arithmetic then and now (Adam's last operation took PyTorch's order in issue 25)
model.fit(X, y, loss="bce", optimizer="momentum", lr=0.01, epochs=3, batch_size=10, early_stopping=True,
          validation_split=0.2)
checkpoint.save(model, sys.argv[1], extra={"note": "x"})
back = checkpoint.load(sys.argv[2]).model if len(sys.argv) > 2 else model
np.testing.assert_array_equal(back.flat_parameters(), model.flat_parameters())
print(bp.__file__)
"""


def _previous(tmp_path: pathlib.Path) -> pathlib.Path:
    """The package as the commit before the registry had it, unpacked without touching the checkout."""
    try:
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE, "backprop", "backends"],
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"commit {BEFORE[:7]} is not in this clone")
    tarfile.open(fileobj=io.BytesIO(tar)).extractall(tmp_path / "prev", filter="data")
    return tmp_path / "prev"


def _run(code_root: pathlib.Path, *args: pathlib.Path) -> str:
    done = subprocess.run([sys.executable, "-c", SCRIPT, *map(str, args)], cwd=code_root,
                          env={"PYTHONPATH": str(code_root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(code_root / "backprop" / "__init__.py")  # that code, not the installed
    return done.stdout


def test_checkpoints_are_written_byte_for_byte_as_before_and_read_both_ways(tmp_path):
    prev = _previous(tmp_path)
    old, new = tmp_path / "old.st", tmp_path / "new.st"
    _run(prev, old)
    _run(ROOT, new, old)  # the current code writes its own file and loads the old one to the same weights
    _run(prev, tmp_path / "again.st", new)  # the previous code loads the new file
    headers = [_timeless(checkpoint.read_header(str(path))) for path in (new, old)]
    # The one key added since: the device generator's state, a new one's (dropout drew nothing).
    assert headers[0].pop("device_rng") == {"seed": 5, "stream": 10, "counter": 0}
    assert headers[0] == headers[1] and list(headers[0]) == list(headers[1])  # the keys in order too
    kinds = ["dense", "leaky_relu", "dense", "tanh", "dense"]
    assert [spec["type"] for spec in headers[0]["layers"]] == kinds
    tensors = [load_file(str(path)) for path in (new, old)]
    assert list(tensors[0]) == list(tensors[1])
    for name in tensors[0]:
        assert tensors[0][name].tobytes() == tensors[1][name].tobytes(), name


def _timeless(meta: dict) -> dict:
    """The header without what a clock decides (each epoch's seconds and speed) and the digest
    that covers them."""
    meta = dict(meta, sha256=None)
    clock = ("seconds", "samples_per_s")
    meta["history"] = dict(meta["history"], records=[
        {k: v for k, v in r.items() if k not in clock} for r in meta["history"]["records"]])
    return meta


class Tracked(Scale):
    """Scale that also keeps a running mean of its inputs (a buffer: saved, never trained)."""

    def buffer_shapes(self) -> dict:
        return {"mean": (self.features,)}

    def build(self, backend, dtype, rng, *, next_layer=None) -> None:
        super().build(backend, dtype, rng)
        self.buffers = {"mean": backend.asarray([0.0] * self.features, dtype)}

    def forward(self, X, *, train=False, input_grad=True):
        if train:
            self.buffers["mean"] = 0.5 * self.buffers["mean"] + 0.5 * self._ns(X).mean(X, axis=0)
        return super().forward(X, train=train, input_grad=input_grad)


def test_buffers_are_saved_loaded_and_pickled_beside_the_parameters(tmp_path):
    with layers.REGISTRY.restoring():
        layers.register("tracked", Tracked)
        X, y = _data()
        model = bp.Sequential([Dense(2, 3), Tracked(3), Dense(3, 1)], dtype="float64", seed=0)
        model.fit(X, y, loss="mse", epochs=2, batch_size=10)
        mean = np.asarray(model.layers[1].buffers["mean"])
        assert np.abs(mean).sum() > 0 and "1.mean" not in model.parameters()
        checkpoint.save(model, str(tmp_path / "t.st"))
        assert load_file(str(tmp_path / "t.st"))["buffer.1.mean"].tobytes() == mean.tobytes()
        for other in (checkpoint.load(str(tmp_path / "t.st")).model, pickle.loads(pickle.dumps(model))):
            np.testing.assert_array_equal(np.asarray(other.layers[1].buffers["mean"]), mean)
        single = model.to(dtype="float32").layers[1].buffers["mean"]  # cast with the parameters
        assert single.dtype == np.float32 and single.tobytes() == mean.astype(np.float32).tobytes()
        tensors = load_file(str(tmp_path / "t.st"))
        meta = checkpoint.read_header(str(tmp_path / "t.st"))
        del tensors["buffer.1.mean"]
        meta["sha256"] = checkpoint._digest(tensors, meta)
        save_file(tensors, str(tmp_path / "f.st"), metadata={"backprop": json.dumps(meta)})
        with pytest.raises(CheckpointError, match=r"needs mean \(3,\) but its buffer tensors are mean None"):
            checkpoint.load(str(tmp_path / "f.st"))


def test_a_dense_with_an_initializer_of_its_own_loads(tmp_path):
    """Its initializer is a function, saved by name only: loading draws with a known one, then the
    saved weights replace the draw."""
    model = bp.Sequential([Dense(2, 3, init=lambda rng, shape, fan_in, fan_out: rng.uniform(-1, 1, shape)),
                           "tanh", Dense(3, 1)], seed=0)
    checkpoint.save(model, str(tmp_path / "i.st"))
    assert checkpoint.read_header(str(tmp_path / "i.st"))["layers"][0]["config"]["init"] == "<lambda>"
    back = checkpoint.load(str(tmp_path / "i.st")).model
    assert back.layers[0].init == "glorot_uniform"
    np.testing.assert_array_equal(back.flat_parameters(), model.flat_parameters())
