"""ONNX export, checked by ONNX Runtime: the exported graph on the raw rows gives what ``predict``
gives (probabilities within 1e-5 relative in float32, 1e-9 in float64; the same labels), for
every kind of run (text classes, scaled targets, features, a conv net on --input-shape) and
every registered layer; the file passes ``onnx.checker``; what cannot be exported is refused in
one line, and the writer's guard keeps files that are not ours."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import backprop as bp  # noqa: E402
from backprop import layers  # noqa: E402
from backprop.apps import onnx_export, runner  # noqa: E402
from tests.conftest import run_cli  # noqa: E402

RTOL = {"float32": 1e-5, "float64": 1e-9}


def _session(path):
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _rows(seed, n=120):
    """(N, 3) columns of very different scales and offsets: a missing standardization shows."""
    return np.random.default_rng(seed).normal(size=(n, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]


def _expected(checkpoint_path, X):
    """What ``backprop predict`` computes for raw rows X, at full precision: (scores, labels) of a
    classifier, (values, None) of a regressor (the very functions predict calls)."""
    model, transform, head, _ = runner.restore(str(checkpoint_path))
    if transform.task == "classification":
        scores = head.class_scores(model, transform.inputs(X))
        return scores, np.asarray(transform.classes)[np.argmax(scores, axis=1)]
    return transform.outputs(np.asarray(model.predict(transform.inputs(X)))), None


def _predict_cli(checkpoint_path, inputs_csv, capsys):
    code, out, err = run_cli(["predict", checkpoint_path, inputs_csv], capsys)
    assert code == 0, err
    return [row[0] for row in list(csv.reader(io.StringIO(out)))[1:]]


def _train_and_export(tmp_path, capsys, data, argv, X):
    """Train on ``data`` with ``argv``, export through the command line, and return the ONNX
    outputs for the raw rows X with what predict gives."""
    ck, out = tmp_path / "model.safetensors", tmp_path / "model.onnx"
    code, _, err = run_cli(["train", data, "--epochs", "3", "--quiet", "--save", ck, *argv], capsys)
    assert code == 0, err
    code, _, err = run_cli(["export", ck, out], capsys)
    assert code == 0, err
    assert f"wrote {out}: ONNX opset 17, IR version 8" in err
    return _session(out).run(None, {"input": X}), _expected(ck, X), ck


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_classifier_with_text_labels_matches_predict(tmp_path, capsys, dtype):
    X = _rows(1)
    species = np.where(X[:, 0] + X[:, 1] / 10 > 0.5, "setosa",
                       np.where(X[:, 2] > -50, "versicolor", "virginica"))
    _write_csv(tmp_path / "flowers.csv", ["a", "b", "c", "species"],
               [[*map(repr, row.tolist()), s] for row, s in zip(X, species)])
    _write_csv(tmp_path / "in.csv", ["a", "b", "c"], [list(map(repr, row.tolist())) for row in X])
    (probs, labels), (expected, names), ck = _train_and_export(
        tmp_path, capsys, tmp_path / "flowers.csv",
        ["--target", "species", "--hidden", "8,5", "--activation", "tanh", "--dtype", dtype], X)
    np.testing.assert_allclose(probs, expected, rtol=RTOL[dtype], atol=0)
    assert labels.tolist() == names.tolist() == _predict_cli(ck, tmp_path / "in.csv", capsys)
    assert set(labels.tolist()) > {"setosa"}  # more than one class predicted: the mapping is tested


@pytest.mark.parametrize("dtype, scaled", [("float32", True), ("float64", True), ("float64", False)])
def test_regressor_gives_the_targets_units(tmp_path, capsys, dtype, scaled):
    X = _rows(2)
    price = X[:, 0] * 3 + X[:, 1] * 0.5 + np.sin(X[:, 2]) * 10 + 1000.0
    _write_csv(tmp_path / "prices.csv", ["a", "b", "c", "price"],
               [[*map(repr, row.tolist()), repr(float(p))] for row, p in zip(X, price)])
    (values,), (expected, _), _ = _train_and_export(
        tmp_path, capsys, tmp_path / "prices.csv",
        ["--hidden", "6", "--activation", "softplus", "--dtype", dtype]
        + ([] if scaled else ["--no-standardize"]), X)
    assert values.shape == (len(X), 1) and values.dtype == np.float64
    np.testing.assert_allclose(values, expected, rtol=RTOL[dtype], atol=0)
    if scaled:
        assert abs(np.mean(values) - 1000.0) < 100.0  # the target's units, not standardized ones


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_feature_crosses_are_inside_the_graph(tmp_path, capsys, dtype):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(150, 2)) * [2.0, 0.5] + [1.0, -3.0]
    y = (X[:, 0] * X[:, 1] + np.sin(X[:, 0]) > -3).astype(int)
    _write_csv(tmp_path / "plane.csv", ["x", "y", "label"],
               [[*map(repr, row.tolist()), v] for row, v in zip(X, y)])
    (probs, labels), (expected, names), _ = _train_and_export(
        tmp_path, capsys, tmp_path / "plane.csv",
        ["--features", "x1,x2,x1^2,x2^2,x1*x2,sin(x1),sin(x2)", "--hidden", "5", "--dtype", dtype], X)
    np.testing.assert_allclose(probs, expected, rtol=RTOL[dtype], atol=0)
    assert labels.tolist() == names.tolist()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_net_on_input_shape(tmp_path, capsys, dtype):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(90, 2 * 5 * 6)) * 3.0 + 1.0
    y = np.where(X[:, :30].sum(axis=1) > X[:, 30:].sum(axis=1), "left", "right")
    _write_csv(tmp_path / "maps.csv", [f"p{i}" for i in range(60)] + ["side"],
               [[*map(repr, row.tolist()), v] for row, v in zip(X, y)])
    layers_text = ("conv2d(3, (3, 2), padding=1, stride=(2, 1)), relu, maxpool2d(2, padding=1), "
                   "conv2d(4, 2, padding='same', dilation=(1, 2)), tanh, avgpool2d(2, stride=1, padding=1), "
                   "flatten, dense(2)")
    (probs, labels), (expected, names), _ = _train_and_export(
        tmp_path, capsys, tmp_path / "maps.csv",
        ["--input-shape", "2,5,6", "--layers", layers_text, "--dtype", dtype], X)
    np.testing.assert_allclose(probs, expected, rtol=RTOL[dtype], atol=0)
    assert labels.tolist() == names.tolist()


def _randomized(model, seed):
    """Every parameter and buffer set to draws away from their initial values (a BatchNorm's
    running statistics, a LayerNorm's gamma...), so each one's place in the graph is checked."""
    rng = np.random.default_rng(seed)
    model.set_parameters({k: rng.normal(size=tuple(v.shape)) * 0.5 + 0.1
                          for k, v in model.parameters().items()})
    for layer in model.layers:
        for key, value in list(layer.buffers.items()):
            shape = tuple(value.shape)
            draw = rng.uniform(0.5, 2.0, size=shape) if key.endswith("var") else rng.normal(size=shape)
            layer.buffers[key] = model.backend.asarray(draw, model.dtype)
    return model


# Every registered layer in at least one model: (layers, input shape). Checked against the registry
# below, so a layer registered later without a case here fails.
MODELS = [
    (lambda: [bp.Conv1D(3, 3, padding=2, stride=2, dilation=2), "relu", bp.MaxPool1D(3, stride=2, padding=1),
              bp.Conv1D(2, 2, padding="same"), bp.LeakyReLU(0.2), bp.AvgPool1D(2, padding=1),
              bp.BatchNorm(eps=1e-3), bp.GlobalAvgPool1D(), bp.Dense(3), "softmax"], (2, 11)),
    (lambda: [bp.Conv2D(2, 3, padding=1), bp.BatchNorm(), "softplus", bp.AvgPool2D(3, stride=2, padding=1),
              bp.MaxPool2D(2, stride=1), bp.LayerNorm(eps=1e-2), bp.GlobalAvgPool2D(), bp.Dense(4), "sigmoid",
              bp.Dense(3), "softmax"],
     (1, 7, 6)),
    (lambda: [bp.Reshape((3, 4)), bp.Flatten(), bp.Dense(5), bp.BatchNorm(), "tanh", bp.Dropout(0.3),
              bp.Residual([bp.Dense(5), "relu", bp.LayerNorm(), bp.Dense(5)]), "identity", bp.Dense(2),
              "exp"], (12,)),
    (lambda: [bp.Dense(6), "relu", bp.Dense(1), "sigmoid"], (4,)),
    (lambda: [bp.Dense(6), "tanh", bp.Dense(2)], (4,)),
]


def _outputs_expected(model, X):
    """What predict gives for a model built in Python (the transform and head restore gives it)."""
    transform, head = runner.bare_parts(model)
    if transform.task == "classification":
        scores = head.class_scores(model, transform.inputs(X))
        return [scores, np.asarray(transform.classes)[np.argmax(scores, axis=1)]]
    return [transform.outputs(np.asarray(model.predict(X)))]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(MODELS)))
def test_every_layer_matches_the_runtime(tmp_path, dtype, case):
    build, shape = MODELS[case]
    model = _randomized(bp.Sequential(build(), input_shape=shape, dtype=dtype, seed=case), case)
    X = np.random.default_rng(case).normal(size=(9, int(np.prod(shape)))) * 2.0
    bp.export_onnx(model, tmp_path / "m.onnx")
    got = _session(tmp_path / "m.onnx").run(None, {"input": X})
    expected = _outputs_expected(model, X.reshape(len(X), *shape))
    np.testing.assert_allclose(got[0], expected[0], rtol=RTOL[dtype], atol=0)
    if len(got) > 1:
        assert got[1].tolist() == expected[1].tolist()


@pytest.mark.parametrize("case", range(len(MODELS)))
def test_the_reference_evaluator_agrees(tmp_path, case):
    """onnx's own reference evaluator (the operators as the standard defines them) on the same
    float32 graphs: their ONNX ops (Conv, AveragePool, MaxPool...), not only ONNX Runtime's."""
    from onnx.reference import ReferenceEvaluator

    build, shape = MODELS[case]
    model = _randomized(bp.Sequential(build(), input_shape=shape, dtype="float32", seed=case), case)
    X = np.random.default_rng(case).normal(size=(5, int(np.prod(shape)))) * 2.0
    got = ReferenceEvaluator(bp.export_onnx(model, tmp_path / "m.onnx")).run(None, {"input": X})
    expected = _outputs_expected(model, X.reshape(len(X), *shape))
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=0)


def test_every_registered_layer_has_a_case():
    covered = set()
    for build, shape in MODELS:
        for layer in bp.Sequential(build(), input_shape=shape).layers:
            covered.add(type(layer))
            covered.update(type(inner) for inner in getattr(layer, "block", []))
    missing = sorted(name for name, cls in layers.classes().items() if cls not in covered)
    assert not missing, f"registered layers with no ONNX case: {missing}"


def test_batch_is_free_and_versions_pinned(tmp_path):
    model = bp.Sequential([bp.Dense(3, 4), "relu", bp.Dense(4, 3), "softmax"])
    proto = bp.export_onnx(model, tmp_path / "m.onnx")
    assert proto.ir_version == 8 and [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    session = _session(tmp_path / "m.onnx")
    for n in (1, 7):
        probs, labels = session.run(None, {"input": np.ones((n, 3))})
        assert probs.shape == (n, 3) and labels.shape == (n,)


class Doubled(bp.Layer):
    """A registered layer with no ONNX form."""

    def forward(self, X, *, train=False, input_grad=True):
        return 2.0 * X, lambda dY: 2.0 * dY


class OwnDense(bp.Dense):
    """A Dense with its own forward: Dense's ONNX form is not its."""

    def forward(self, X, *, train=False, input_grad=True):
        Y, backward = super().forward(X, train=train, input_grad=input_grad)
        return 3.0 * Y, backward


@pytest.mark.parametrize("layer, where", [(Doubled, "top"), (OwnDense, "top"), (Doubled, "residual")])
def test_a_layer_without_an_onnx_form_is_refused_in_one_line(tmp_path, capsys, layer, where):
    with layers.REGISTRY.restoring():
        layers.register(layer.__name__.lower(), layer)
        inner = layer(4) if layer is OwnDense else layer()
        stack = [inner] if where == "top" else [bp.Residual([inner])]
        model = bp.Sequential([bp.Dense(3, 4), *stack, bp.Dense(4, 2)])
        bp.checkpoint.save(model, str(tmp_path / "m.safetensors"))
        code, out, err = run_cli(["export", tmp_path / "m.safetensors", tmp_path / "m.onnx"], capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"backprop: error: cannot export to ONNX: the {layer.__name__} layer has no ONNX form (give its "
        "class an onnx(graph, x, input_shape) method; see backprop.apps.onnx_export)"]
    assert not (tmp_path / "m.onnx").exists()


def test_the_writer_keeps_files_that_are_not_ours(tmp_path, capsys):
    model = bp.Sequential([bp.Dense(2, 3), "softmax"])
    bp.checkpoint.save(model, str(tmp_path / "m.safetensors"))
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    code, _, err = run_cli(["export", tmp_path / "m.safetensors", notes], capsys)
    assert code == 2 and "is not an ONNX model written by backprop: it is left alone" in err
    assert notes.read_text() == "mine\n"
    code, _, err = run_cli(["export", tmp_path / "m.safetensors", tmp_path / "m.safetensors"], capsys)
    assert code == 2 and "is a checkpoint: it is left alone" in err
    out = tmp_path / "m.onnx"
    for _ in range(2):  # our own file is replaced
        code, _, err = run_cli(["export", tmp_path / "m.safetensors", out], capsys)
        assert code == 0, err
    foreign = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []), producer_name="other")
    out.write_bytes(foreign.SerializeToString())
    code, _, err = run_cli(["export", tmp_path / "m.safetensors", out], capsys)
    assert code == 2 and "not an ONNX model written by backprop" in err
    code, _, err = run_cli(["export", tmp_path / "m.safetensors", notes, "--force"], capsys)
    assert code == 0 and onnx.load(str(notes)).producer_name == "backprop"


def test_a_run_exports_as_its_checkpoint(tmp_path):
    run = bp.Run("xor", epochs=2, seed=3)
    run.fit()
    bp.export_onnx(run, tmp_path / "run.onnx")
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    probs, labels = _session(tmp_path / "run.onnx").run(None, {"input": X})
    scores = run.head.class_scores(run.model, run.transform.inputs(X))
    np.testing.assert_allclose(probs, scores, rtol=1e-5, atol=0)
    assert labels.tolist() == np.asarray(run.transform.classes)[np.argmax(scores, axis=1)].tolist()
    with pytest.raises(bp.ConfigError, match="export_onnx takes a model, a Run or a checkpoint path"):
        bp.export_onnx(42, tmp_path / "x.onnx")


@pytest.mark.parametrize("op", sorted(onnx_export.LACKS_FLOAT64))
def test_the_runtime_lacks_what_the_exporter_says(op):
    """Each operator the float64 graphs avoid runs in float32 and is missing in float64 (so the
    other forms are needed; when a later ONNX Runtime has it, this says the table is stale)."""
    helper = onnx.helper
    shape, inputs = [1, 2, 5], {"Conv": [np.ones((2, 2, 3))]}.get(op, [])
    attributes = {"AveragePool": {"kernel_shape": [2]}, "Conv": {"kernel_shape": [3]}}.get(op, {})
    found = []
    for dtype, elem in ((np.float32, onnx.TensorProto.FLOAT), (np.float64, onnx.TensorProto.DOUBLE)):
        weights = [onnx.numpy_helper.from_array(w.astype(dtype), f"w{i}") for i, w in enumerate(inputs)]
        node = helper.make_node(op, ["x", *(w.name for w in weights)], ["y"], **attributes)
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", elem, shape)],
                                  [helper.make_tensor_value_info("y", elem, None)], weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", onnx_export.OPSET)],
                                  ir_version=onnx_export.IR_VERSION)
        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            found.append(True)
        except Exception as exc:  # noqa: BLE001 - the runtime's NOT_IMPLEMENTED
            assert "NOT_IMPLEMENTED" in str(exc)
            found.append(False)
    assert found == [True, False]
