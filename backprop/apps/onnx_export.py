"""A trained model as an ONNX graph: ``backprop export`` and ``bp.export_onnx``.

The graph takes what ``backprop predict`` takes, the raw columns (N, F) as float64 (the
features, the standardization and the reshape to the samples' shape inside it), runs the
network in the model's dtype, and returns what ``predict`` returns, as float64:
``probabilities`` (N, K) and ``label`` (N,) (the class names as text) for a classifier,
``prediction`` (N, T) in the target's units for a regressor. The batch axis is free.

Each layer writes its own inference pass (``layer.onnx(graph, x, input_shape)``) with the
:class:`Graph` builder below, in ONNX's operator vocabulary, so the math tier never names
the onnx library; the data transform (:mod:`backprop.edges.preprocessing`) and the features
(:mod:`backprop.edges.features`) write theirs the same way. A layer without an ONNX form, or
one that inherits another class's form but computes its own forward, is refused by name.

Host-side and in ``apps``: it reads runs and checkpoints through :mod:`backprop.apps.runner`.
The onnx package is an optional extra (``[onnx]``), imported only when a model is exported.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from backends import dtype_name, to_numpy_any
from backends.extras import install_hint

from .. import losses
from .._version import __version__
from ..edges import checkpoint
from ..errors import ConfigError
from ..layers import Layer
from ..model import Sequential
from . import runner

OPSET = 17
IR_VERSION = 8
"""What the file pins: opset 17 and IR version 8 load in every ONNX Runtime since 1.13 (a
newer IR is refused by older runtimes)."""

LACKS_FLOAT64 = frozenset({"Conv", "AveragePool", "GlobalAveragePool", "Softplus"})
"""Operators ONNX Runtime's CPU provider runs in float32 only (measured with 1.32): in a float64
graph the layers that would use them take another form (:meth:`Graph.supports`)."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ConfigError(f"exporting to ONNX needs the onnx package: {install_hint('onnx')}") from None
    return onnx


class Graph:
    """The builder a layer writes its ONNX form with: nodes in order, constants as initializers.

    ``dtype``: the network's float dtype (``"float32"`` or ``"float64"``), the default of
    :meth:`constant`.
    """

    def __init__(self, onnx: Any, dtype: str) -> None:
        self._onnx, self.dtype = onnx, dtype
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def node(self, op_type: str, inputs: list[str], *, output: str | None = None, **attributes: Any) -> str:
        """Append one node of ONNX's default domain; its one output's name (``output``, or a new one)."""
        out = output or self._name(op_type.lower())
        self.nodes.append(self._onnx.helper.make_node(op_type, list(inputs), [out], name=out, **attributes))
        return out

    def constant(self, value: Any, dtype: str | None = None) -> str:
        """A constant tensor (a number, a list, or a host or device array) in ``dtype`` (default:
        the network's); its name."""
        host = value if isinstance(value, (int, float, list, tuple)) else to_numpy_any(value)
        name = self._name("const")
        array = np.asarray(host, dtype=dtype or self.dtype)
        self.initializers.append(self._onnx.numpy_helper.from_array(array, name))
        return name

    def supports(self, op_type: str) -> bool:
        """Whether ONNX Runtime runs ``op_type`` in this graph's dtype (see :data:`LACKS_FLOAT64`)."""
        return not (self.dtype == "float64" and op_type in LACKS_FLOAT64)

    def pad(self, x: str, pads: list[tuple[int, int]], value: float = 0.0) -> str:
        """``x`` (N, C, *spatial) with ``(before, after)`` entries of ``value`` on each spatial axis."""
        if not any(lo or hi for lo, hi in pads):
            return x
        widths = [0, 0, *(lo for lo, _ in pads), 0, 0, *(hi for _, hi in pads)]
        return self.node("Pad", [x, self.constant(widths, "int64"), self.constant(value)])

    def strided(self, x: str, starts: list[int], steps: tuple[int, ...], counts: tuple[int, ...]) -> str:
        """``x`` (N, C, *spatial) sliced on each spatial axis from ``starts[i]`` by ``steps[i]``,
        ``counts[i]`` entries: (N, C, *counts)."""
        ends = [s + st * (n - 1) + 1 for s, st, n in zip(starts, steps, counts)]
        axes = list(range(2, 2 + len(starts)))
        bounds = [self.constant(list(v), "int64") for v in (starts, ends, axes, steps)]
        return self.node("Slice", [x, *bounds])

    def layer(self, layer: Layer, x: str, input_shape: tuple[int, ...]) -> str:
        """``layer``'s ONNX form on ``x`` (N, *input_shape), or a one-line refusal naming it."""
        cls = type(layer)
        form = next((k for k in cls.__mro__ if "onnx" in vars(k)), None)
        forward = next(k for k in cls.__mro__ if "forward" in vars(k))
        if form is None or not issubclass(form, forward):  # none, or written for another forward
            raise ConfigError(f"cannot export to ONNX: the {cls.__name__} layer has no ONNX form (give its "
                              "class an onnx(graph, x, input_shape) method; see backprop.apps.onnx_export)")
        return layer.onnx(self, x, tuple(input_shape))


def type_name(elem_type: int) -> str:
    """An ONNX element type's name as NumPy spells it (``float64``), ``string`` for text."""
    onnx = _onnx()
    if elem_type == onnx.TensorProto.STRING:
        return "string"
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name


def _parts(source: Any) -> tuple[Sequential, Any, Any]:
    """``(model, transform, head)`` of a checkpoint path, a :class:`Run` or a model built in Python."""
    if isinstance(source, (str, os.PathLike)):
        model, transform, head, _ = runner.restore(os.fspath(source))
        return model, transform, head
    if isinstance(source, runner.Run):
        return source.model, source.transform, source.head
    if isinstance(source, Sequential):
        return (source, *runner.bare_parts(source))
    raise ConfigError(f"export_onnx takes a model, a Run or a checkpoint path, got {type(source).__name__}")


def build(model: Sequential, transform: Any, head: Any) -> Any:
    """The ONNX ``ModelProto`` of ``model`` with its data ``transform`` and ``head``: raw columns in
    (``input``, (N, F) float64), ``predict``'s outputs out (see the module's notes)."""
    onnx = _onnx()
    graph, double = Graph(onnx, dtype_name(model.dtype)), onnx.TensorProto.DOUBLE
    # The raw columns predict reads (use._check_width's rule): the features' sources, or the inputs.
    width = transform.n_columns if transform.features is not None else model.n_inputs
    x = graph.node("Cast", [transform.onnx_inputs(graph, "input")], to=onnx.helper.np_dtype_to_tensor_dtype(
        np.dtype(graph.dtype)))
    if len(model.input_shape) > 1:  # rows to samples of the model's shape (--input-shape), C order
        x = graph.node("Reshape", [x, graph.constant([0, *model.input_shape], "int64")])
    # What predict reads: the layers the head's loss reads, then the loss's link (softmax for
    # ce, sigmoid for bce, exp for poisson), which is its probabilities' and its predictions' map.
    loss = losses.get(head.loss)
    shape = tuple(model.input_shape)
    for layer in model.trunk(loss) + ([loss.link()] if loss.link is not None else []):
        x = graph.layer(layer, x, shape)
        shape = layer.output_shape(shape)
    z = graph.node("Cast", [x], to=double)
    if transform.task == "classification":
        if shape == (1,):  # one yes/no output: both classes' columns, as Head.class_scores
            z = graph.node("Concat", [graph.node("Sub", [graph.constant(1.0, "float64"), z]), z], axis=1)
        graph.node("Identity", [z], output="probabilities")
        index = graph.node("ArgMax", [z], axis=1, keepdims=0)  # the first of ties, as NumPy's
        graph.node("Gather", [graph.constant(np.array(transform.classes, dtype=object), object), index],
                   axis=0, output="label")
        outputs = [("probabilities", double, ["N", max(2, shape[0])]),
                   ("label", onnx.TensorProto.STRING, ["N"])]
    else:
        graph.node("Identity", [transform.onnx_outputs(graph, z)], output="prediction")
        outputs = [("prediction", double, ["N", shape[0]])]
    helper = onnx.helper
    body = helper.make_graph(graph.nodes, "backprop",
                             [helper.make_tensor_value_info("input", double, ["N", width])],
                             [helper.make_tensor_value_info(*out) for out in outputs], graph.initializers)
    proto = helper.make_model(body, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="backprop", producer_version=__version__)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(source: Any, path: str, *, force: bool = False) -> Any:
    """Write ``source`` (a :class:`Sequential`, a :class:`Run`, or a checkpoint's path) to ``path``
    as ONNX; returns the ``ModelProto``. ``path`` is checked before any work by the rule every
    file the tool writes follows (:func:`backprop.edges.checkpoint.check_writable`): an existing
    file only when it is an ONNX model backprop wrote, or with ``force`` (never a checkpoint)."""
    path = os.fspath(path)
    inputs = (os.fspath(source),) if isinstance(source, (str, os.PathLike)) else ()
    checkpoint.check_writable(path, "onnx", inputs=inputs, force=force)
    proto = build(*_parts(source))
    checkpoint.write_atomic(path, proto.SerializeToString())
    return proto
