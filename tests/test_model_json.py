"""The architecture as JSON and the weights apart (Keras's ``to_json``/``model_from_json``,
``save_weights``/``load_weights``): every registered layer type round-trips on every backend to
the same text, shapes and bit-equal outputs; each refusal is one line, and a refused load leaves
the model as it was; the weights file goes through the one write guard."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save as st_save

import backprop as bp
from backprop import layers, spec
from backprop.edges import checkpoint, weights
from tests.conftest import to_np


def _dense_net():
    block = bp.Residual([bp.Dense(8), bp.LeakyReLU(0.2), bp.Dense(8)])
    return [bp.Dense(3, 8), "relu", bp.Dropout(0.2), bp.Dense(8), "tanh", bp.BatchNorm(momentum=0.3),
            bp.Dense(8), "sigmoid", bp.LayerNorm(), block, "softplus", "identity", bp.Dense(4),
            "softmax"], (3,)


def _exp_net():
    return [bp.Dense(3, 2, bias="textbook"), "exp"], (3,)


def _conv1d_net():
    return [bp.Conv1D(4, 3, stride=1), "relu", bp.MaxPool1D(2), bp.Conv1D(4, 3, padding="same", dilation=2),
            bp.AvgPool1D(2), bp.BatchNorm(), bp.GlobalAvgPool1D(), bp.Dense(2)], (2, 16)


def _conv2d_net():
    return [bp.Reshape((1, 10, 10)), bp.Conv2D(3, 3), "tanh", bp.MaxPool2D(2), bp.AvgPool2D(2, stride=1),
            bp.BatchNorm(), bp.Flatten(), bp.Dense(5)], (100,)


def _global2d_net():
    return [bp.Conv2D(2, (3, 2), padding=1, in_channels=3), bp.GlobalAvgPool2D(), bp.Dense(1)], (3, 5, 6)


NETS = {"dense": _dense_net, "exp": _exp_net, "conv1d": _conv1d_net, "conv2d": _conv2d_net,
        "global2d": _global2d_net}


def _types(items) -> set[str]:
    found = set()
    for item in items:
        found.add(item if isinstance(item, str) else type(item).name)
        found |= _types(getattr(item, "block", []))
    return found


def test_the_round_trip_models_hold_every_registered_layer_type():
    # A new registered layer must join a model below, or this fails.
    assert set().union(*(_types(make()[0]) for make in NETS.values())) == set(layers.classes())


def _trained(name, device, dtype="float32", seed=1):
    """A model of net ``name`` whose weights and running statistics are not the fresh ones."""
    items, shape = NETS[name]()
    model = bp.Sequential(items, input_shape=shape, device=device, dtype=dtype, seed=seed)
    rng = np.random.default_rng(3)
    model.set_flat_parameters(rng.normal(scale=0.5, size=model.n_params))
    model.forward(model.backend.asarray(rng.normal(size=(6, *shape)), model.dtype), train=True)  # moves them
    return model


@pytest.mark.parametrize("name", NETS)
def test_to_json_from_json_and_the_weights_round_trip_bit_equal(name, backend, tmp_path):
    model = _trained(name, backend)
    text = model.to_json()
    again = bp.Sequential.from_json(text, device=backend, seed=7)
    assert again.to_json() == text
    assert again.input_shape == model.input_shape and again.layer_shapes() == model.layer_shapes()
    assert {k: tuple(v.shape) for k, v in again.parameters().items()} == \
        {k: tuple(v.shape) for k, v in model.parameters().items()}
    path = str(tmp_path / "w.safetensors")
    model.save_weights(path)
    assert again.load_weights(path) is again
    X = model.backend.asarray(np.random.default_rng(5).normal(size=(7, *model.input_shape)), model.dtype)
    assert np.array_equal(to_np(again(X)), to_np(model(X)))  # inference: the running statistics too


def test_from_json_takes_the_texts_dtype_or_the_one_given(tmp_path):
    model = _trained("dense", "cpu", dtype="float64")
    assert bp.Sequential.from_json(model.to_json()).to_json() == model.to_json()
    single = bp.Sequential.from_json(model.to_json(), dtype="float32")
    assert json.loads(single.to_json())["dtype"] == "float32"
    model.save_weights(str(tmp_path / "w.safetensors"))
    single.load_weights(str(tmp_path / "w.safetensors"))  # cast on loading
    assert np.allclose(to_np(single.flat_parameters()), to_np(model.flat_parameters()), rtol=1e-6)


def test_a_model_rebuilds_from_the_weights_file_alone(tmp_path):
    model = _trained("conv1d", "cpu")
    path = str(tmp_path / "w.safetensors")
    model.save_weights(path)
    again = bp.Sequential.from_json(bp.weights.architecture(path)).load_weights(path)
    assert again.to_json() == model.to_json()
    assert np.array_equal(to_np(again.flat_parameters()), to_np(model.flat_parameters()))


def test_the_document_names_its_format_and_holds_no_weights():
    model = _trained("dense", "cpu")
    doc = json.loads(model.to_json())
    assert json.loads(model.to_json(indent=2)) == doc and "\n  " in model.to_json(indent=2)
    assert (doc["format"], doc["version"], doc["input_shape"], doc["dtype"]) == \
        (spec.FORMAT, spec.VERSION, [3], "float32")
    assert doc["layers"][0] == layers.spec(bp.Dense(3, 8))
    assert "W" not in json.dumps(doc)


# -- the architecture's refusals, one line each ------------------------------------------
def _doc(**changes):
    doc = json.loads(bp.Sequential([bp.Dense(2, 3), "relu", bp.Dense(3, 1)]).to_json())
    doc.update(changes)
    return json.dumps(doc)


@pytest.mark.parametrize("text, message", [
    ('{"format": "backprop.architecture", ', r"not valid JSON \(line 1, column 37\)"),
    ({"format": "backprop.architecture"}, "is JSON text .* got dict"),
    (_doc(format="keras"), "not a backprop architecture .format 'keras'"),
    ("[1, 2]", "not a backprop architecture .format None"),
    (_doc(version=2), r"newer backprop \(0\.1\.0, format version 2; this one reads 1\): upgrade"),
    (_doc(version="1"), "version '1' is not a version number"),
    (_doc(version=0), "version 0 is not a version number"),
    (_doc(weights=[1.0]), "unknown entries 'weights'"),
    (_doc(layers=[]), "layers must be a non-empty list"),
    (_doc(layers=[{"type": "dense", "config": [2, 3]}]), "layers must be a non-empty list"),
    (_doc(layers=[{"type": "densee", "config": {}}]), r"layer 0 \(densee\): unknown layer type 'densee': "
                                                      "register it with backprop.layers.register"),
    (_doc(layers=[{"type": "dense", "config": {"in_features": 2, "out_features": 1, "units": 4}}]),
     r"layer 0 \(dense\): .*unexpected keyword argument 'units'"),
    (_doc(layers=[{"type": "dense", "config": {"in_features": 2, "out_features": -1}}]),
     r"layer 0 \(dense\): Dense out_features must be a positive integer, got -1"),
    (_doc(input_shape=[0]), "input_shape must be positive integers"),
    (_doc(input_shape=5.5), "the architecture's input_shape"),
    (_doc(input_shape=[4]), "a Dense layer expecting 2 inputs follows one giving 4"),
    (_doc(dtype="float16"), "unsupported dtype 'float16'"),
    ("[" * 100000, "not valid JSON"),
])
def test_from_json_refuses_in_one_line(text, message):
    with pytest.raises(bp.ConfigError, match=message) as caught:
        bp.Sequential.from_json(text)
    assert "\n" not in str(caught.value)


def test_to_json_refuses_an_unregistered_layer():
    class Mine(bp.Dense):
        pass

    model = bp.Sequential([Mine(2, 1)])
    with pytest.raises(bp.ConfigError, match="cannot save a Mine layer: register it first"):
        model.to_json()


# -- the weights' refusals, one line each, the model left as it was -------------------------
def _saved(tmp_path, items=None, **kwargs):
    model = bp.Sequential(items or [bp.Dense(2, 4), "tanh", bp.BatchNorm(), bp.Dense(4, 1)], seed=2, **kwargs)
    path = str(tmp_path / "w.safetensors")
    model.save_weights(path)
    return model, path


def _snapshot(model):
    return {**{k: to_np(v).copy() for k, v in model.parameters().items()},
            **{f"{i}.{k}": to_np(v).copy() for i, layer in enumerate(model.layers)
               for k, v in layer.buffers.items()}}


def _refused(model, path, message):
    """Loading ``path`` into ``model`` fails with ``message`` in one line, changing nothing."""
    before = _snapshot(model)
    with pytest.raises(bp.CheckpointError, match=message) as caught:
        model.load_weights(path)
    assert "\n" not in str(caught.value)
    after = _snapshot(model)
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)


def _forge(path, tensors, meta_changes=None, *, sign=True):
    """Rewrite the weights file ``path`` with ``tensors`` and header changes, re-signed."""
    meta = dict(weights._read(path, tensors=False)[0])
    meta.update(meta_changes or {})
    if sign:
        meta["sha256"] = checkpoint._digest(tensors, meta)
    with open(path, "wb") as handle:
        handle.write(st_save(tensors, metadata={"backprop": json.dumps(meta)}))


def _tensors(path):
    return dict(weights._read(path)[1])


def test_a_tensor_the_file_lacks_is_named_with_its_shape(tmp_path):
    _, path = _saved(tmp_path)
    bigger = bp.Sequential([bp.Dense(2, 4), "tanh", bp.BatchNorm(), bp.Dense(4, 1), bp.Dense(1, 1)])
    _refused(bigger, path, r"the model's tensor param\.4\.W \(1, 1\) is not in the file; the file was "
                           r"saved from 4 layers, this model has 5: build the model from the file's "
                           r"architecture \(backprop\.Sequential\.from_json\("
                           r"backprop\.weights\.architecture\(path\)\)\)")


def test_a_tensor_the_model_lacks_is_named_with_its_shape(tmp_path):
    _, path = _saved(tmp_path)
    smaller = bp.Sequential([bp.Dense(2, 4), "tanh", bp.BatchNorm()])
    _refused(smaller, path, r"the file's tensor param\.3\.W \(4, 1\) is not in the model; the file was "
                            r"saved from 4 layers, this model has 3")


def test_a_wrong_shape_names_the_tensor_both_shapes_and_the_layer_that_differs(tmp_path):
    _, path = _saved(tmp_path, [bp.Dense(2, 4), "tanh", bp.Dense(4, 1)])
    wider = bp.Sequential([bp.Dense(3, 4), "tanh", bp.Dense(4, 1)])
    _refused(wider, path, r"the tensor param\.0\.W has shape \(2, 4\) in the file but \(3, 4\) in the "
                          r"model; the file was saved from another architecture \(its layer 0 is "
                          r".*\"in_features\": 2")


def test_a_tensor_reshaped_under_the_same_architecture_was_edited(tmp_path):
    model, path = _saved(tmp_path)
    tensors = _tensors(path)
    tensors["param.0.W"] = np.zeros((3, 4), np.float32)
    _forge(path, tensors)
    _refused(model, path, r"param\.0\.W has shape \(3, 4\) in the file but \(2, 4\) in the model; the "
                          r"file names this model's architecture, so its tensors were edited: save the "
                          "weights again")


def test_another_architecture_with_the_same_tensors_is_refused(tmp_path):
    _, path = _saved(tmp_path, [bp.Dense(2, 4), "tanh", bp.Dense(4, 1)])
    other = bp.Sequential([bp.Dense(2, 4), "relu", bp.Dense(4, 1)])
    _refused(other, path, r"holds the weights of the layers dense, tanh, dense, not of this model's dense, "
                          r"relu, dense: build the model from the file's architecture")


def test_a_block_of_other_layers_is_another_architecture(tmp_path):
    _, path = _saved(tmp_path, [bp.Dense(2, 4), bp.Residual([bp.Dense(4), "tanh", bp.Dense(4)])])
    other = bp.Sequential([bp.Dense(2, 4), bp.Residual([bp.Dense(4), "relu", bp.Dense(4)])])
    _refused(other, path, r"layers dense, residual\[dense, tanh, dense\], not of this model's dense, "
                          r"residual\[dense, relu, dense\]")


def test_settings_that_hold_no_weights_may_differ(tmp_path):
    model, path = _saved(tmp_path, [bp.Dense(2, 4, init="he_uniform"), bp.Dropout(0.1), bp.Dense(4, 1)])
    other = bp.Sequential([bp.Dense(2, 4), bp.Dropout(0.5), bp.Dense(4, 1)]).load_weights(path)
    assert np.array_equal(to_np(other.flat_parameters()), to_np(model.flat_parameters()))


def test_header_garbage_is_refused(tmp_path):
    model, path = _saved(tmp_path)
    with open(path, "r+b") as handle:
        handle.seek(8)
        handle.write(b"\x00garbage{{{")
    _refused(model, path, r"is not a safetensors file, or it is truncated or corrupted \(.*\); nothing was "
                          "loaded: give a file model.save_weights wrote")


def test_a_truncated_file_is_refused(tmp_path):
    model, path = _saved(tmp_path)
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-10])
    _refused(model, path, "is not a safetensors file, or it is truncated or corrupted")


def test_a_flipped_bit_is_refused_by_the_checksum(tmp_path):
    model, path = _saved(tmp_path)
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0x10
    open(path, "wb").write(bytes(data))
    _refused(model, path, r"is corrupted \(its checksum does not match its contents\)")


@pytest.mark.parametrize("name", ["param.3.W", "buffer.2.running_var"])
def test_a_forged_nan_is_refused_even_when_re_signed(tmp_path, name):
    model, path = _saved(tmp_path)
    tensors = _tensors(path)
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] = np.nan
    _forge(path, tensors)
    _refused(model, path, rf"the tensor {name} holds NaN or infinity \(in float32\)")


def test_a_float64_value_past_float32s_range_is_refused(tmp_path):
    model, path = _saved(tmp_path)
    tensors = {k: v.astype("float64") for k, v in _tensors(path).items()}
    tensors["param.0.b"][1] = 1e300
    _forge(path, tensors)
    _refused(model, path, r"param\.0\.b holds NaN or infinity \(in float32\)")


def test_integer_tensors_are_refused(tmp_path):
    model, path = _saved(tmp_path)
    tensors = _tensors(path)
    tensors["param.0.b"] = np.zeros(4, dtype=np.int32)
    _forge(path, tensors)
    _refused(model, path, r"param\.0\.b holds int32 values, not floating point")


def test_an_unreadable_architecture_in_the_header_is_refused(tmp_path):
    model, path = _saved(tmp_path)
    _forge(path, _tensors(path), {"architecture": {"format": "backprop.architecture", "version": 1,
                                                   "layers": "dense"}})
    _refused(model, path, "holds weights but its architecture is unreadable .*non-empty list")


def test_a_newer_weights_file_asks_for_an_upgrade(tmp_path):
    model, path = _saved(tmp_path)
    _forge(path, _tensors(path), {"version": 2, "backprop_version": "9.0"})
    _refused(model, path, r"written by a newer backprop \(9\.0\): upgrade backprop")


def test_a_weights_file_without_a_version_is_not_weights(tmp_path):
    model, path = _saved(tmp_path)
    _forge(path, _tensors(path), {"version": 0})
    _refused(model, path, "is a safetensors file but not backprop weights")


def test_a_checkpoint_is_pointed_to_checkpoint_load(tmp_path):
    model = bp.Sequential([bp.Dense(2, 1)])
    path = str(tmp_path / "run.safetensors")
    checkpoint.save(model, path)
    _refused(model, path, r"is a checkpoint, not a weights file: load it whole with "
                          r"backprop\.checkpoint\.load\(path\)\.model")


def test_another_safetensors_file_is_not_weights(tmp_path):
    model = bp.Sequential([bp.Dense(2, 1)])
    path = str(tmp_path / "other.safetensors")
    open(path, "wb").write(st_save({"param.0.W": np.zeros((2, 1), np.float32)}))
    _refused(model, path, "is a safetensors file but not backprop weights")


def test_a_missing_file_is_named(tmp_path):
    _refused(bp.Sequential([bp.Dense(2, 1)]), str(tmp_path / "none.safetensors"), "no such weights file")


# -- writing: the one guard ---------------------------------------------------------------
def test_non_finite_weights_are_not_saved_and_the_file_stays(tmp_path):
    model, path = _saved(tmp_path)
    before = open(path, "rb").read()
    model.parameters()["3.b"][0] = float("nan")
    with pytest.raises(bp.CheckpointError, match=r"not saved: param\.3\.b hold NaN or infinity"):
        model.save_weights(path)
    assert open(path, "rb").read() == before


def test_weights_replace_their_own_file(tmp_path):
    model, path = _saved(tmp_path)
    model.parameters()["0.b"][...] = 1.5
    model.save_weights(path)
    assert np.all(_tensors(path)["param.0.b"] == 1.5)


@pytest.mark.parametrize("kind", ["checkpoint", "text"])
def test_weights_never_replace_a_checkpoint_or_a_users_file(tmp_path, kind):
    model = bp.Sequential([bp.Dense(2, 1)])
    path = str(tmp_path / "mine.safetensors")
    if kind == "checkpoint":
        checkpoint.save(model, path)
    else:
        open(path, "w").write("my notes\n")
    before = open(path, "rb").read()
    message = "is a checkpoint: it is left alone" if kind == "checkpoint" else \
        "exists and is not a weights file written by save_weights: it is left alone"
    with pytest.raises(bp.CheckpointError, match=message):
        model.save_weights(path)
    assert open(path, "rb").read() == before


def test_a_checkpoint_never_replaces_a_weights_file(tmp_path):
    model, path = _saved(tmp_path)
    before = open(path, "rb").read()
    with pytest.raises(bp.CheckpointError, match="exists and is not a backprop checkpoint"):
        checkpoint.save(model, path)
    assert open(path, "rb").read() == before


def test_the_weights_file_is_registered_by_its_host_side_owner(monkeypatch, tmp_path):
    # The math tier imports nothing host-side: the file format registers itself on `import backprop`.
    from backprop import model as model_module

    assert model_module._WEIGHTS_FILE == {"save": weights.save, "load": weights.load_into}
    monkeypatch.setattr(model_module, "_WEIGHTS_FILE", {})
    with pytest.raises(bp.ConfigError, match="needs backprop.edges.weights: import backprop"):
        bp.Sequential([bp.Dense(2, 1)]).save_weights(str(tmp_path / "w.safetensors"))
