"""An architecture as one line of text: ``"conv1d(16, 5, stride=2), relu, flatten, dense(10)"``.

The command line's ``--layers`` and the banner speak this: a comma-separated list of
registry names (layers and activations, as :func:`backprop.layers.classes` and
:func:`backprop.activations.names` know them), each with optional arguments in Python
literal syntax, positional or by keyword. A list argument may itself hold layers
(``residual([dense(8), relu, dense(8)])``). The text is read with :mod:`ast` and only
names, calls, and literals (numbers, strings, booleans, None, tuples, lists, a minus
sign) are accepted: nothing is evaluated.

An architecture as a JSON document (:meth:`Sequential.to_json` / :meth:`Sequential.from_json`,
as Keras's ``to_json``/``model_from_json``): :func:`architecture` and :func:`from_architecture`,
``{"format": FORMAT, "version": VERSION, "input_shape", "dtype", "layers"}``, each layer in the
one saved form checkpoints use (:func:`backprop.layers.spec`). No weights: those go apart
(``save_weights``), and a checkpoint saves everything.
"""

from __future__ import annotations

import ast
import json
import math
from typing import Any

from backends import dtype_name

from . import activations, layers
from ._version import __version__
from .errors import ConfigError
from .model import Sequential


def parse(text: str) -> list[layers.Layer]:
    """The layers ``text`` describes, in order (new, unbuilt). Raises ConfigError in one line
    naming the item that is wrong and what would be right."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("give the layers as a comma-separated list, such as \"dense(16), relu, dense(1)\"")
    try:
        tree = ast.parse(f"[{text}]", mode="eval").body
    except SyntaxError as exc:
        raise ConfigError(f"cannot read the layers {text!r} (column {exc.offset}): write them as "
                          "name or name(arguments), separated by commas") from None
    return [_layer(node, i + 1) for i, node in enumerate(tree.elts)]


def network(text: str, *, output: str | None, outputs: int, option: str = "--layers",
            **model_kwargs: Any) -> Sequential:
    """The :class:`~backprop.model.Sequential` ``text`` describes, for a task's head: ending in its
    output activation ``output`` (appended where the text leaves it out; None: a linear output),
    its width checked against the ``outputs`` the data needs. ``option``: how the user gave the
    text, for the one-line refusal; ``model_kwargs``: ``input_shape``, ``device``, ``dtype``, ``seed``.
    The one rule the command line's ``--layers`` and the estimators' ``layers=`` share."""
    parsed = parse(text)
    if output is not None and not isinstance(parsed[-1], activations.class_of(output)):
        parsed.append(activations.get(output))
    model = Sequential(parsed, **model_kwargs)
    if model.n_outputs != outputs:
        raise ConfigError(f"the layers end in {model.n_outputs} outputs but the data needs "
                          f"{outputs}: end {option} with dense({outputs})")
    return model


def _layer(node: ast.expr, at: int) -> layers.Layer:
    """The layer one item of the list describes (``at``: its 1-based place, for messages)."""
    if isinstance(node, ast.Name):
        return _make(node.id, [], {}, at)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        args = [_value(a, at) for a in node.args]
        if any(k.arg is None for k in node.keywords):
            raise ConfigError(f"layer {at} ({node.func.id}): **arguments are not accepted")
        kwargs = {k.arg: _value(k.value, at) for k in node.keywords}
        return _make(node.func.id, args, kwargs, at)
    raise ConfigError(f"layer {at} ({ast.unparse(node)!r}) is not a name or a name(arguments)")


def _value(node: ast.expr, at: int) -> Any:
    """An argument: a literal, or a list or tuple of literals and layers (a block)."""
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_value(n, at) if _literal(n) else _layer(n, at) for n in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if _literal(node):
        return ast.literal_eval(node)
    if isinstance(node, (ast.Name, ast.Call)):
        return _layer(node, at)
    raise ConfigError(f"layer {at}: the argument {ast.unparse(node)!r} is not a literal (a number, a "
                      "string, True/False/None, a tuple or a list)")


def _literal(node: ast.expr) -> bool:
    """Whether ``node`` is a literal :func:`ast.literal_eval` reads (no name, no call)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_literal(n) for n in node.elts)
    return False


def _make(name: str, args: list, kwargs: dict, at: int) -> layers.Layer:
    """``name``'s class called with the arguments; its own refusal becomes one line naming it."""
    cls = _class(name, at)
    try:
        return cls(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"layer {at} ({name}): {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"layer {at} ({name}): {exc}") from None


def _class(name: str, at: int) -> type[layers.Layer]:
    """The registered class a name stands for: a layer's, or an activation's (aliases too)."""
    for registry in (layers.REGISTRY, activations.REGISTRY):
        try:
            return registry.class_of(name)
        except ConfigError:
            continue
    known = ", ".join([*layers.names(), *activations.names(aliases=True)])
    raise ConfigError(f"layer {at}: unknown layer {name!r}: use one of {known}")


def describe(model_layers: list[layers.Layer]) -> str:
    """The text :func:`parse` reads back to these layers (their settings as keywords)."""
    return ", ".join(_item(layer) for layer in model_layers)


def _item(layer: layers.Layer) -> str:
    return _call(type(layer).name, layer.config())


def _call(name: str, config: dict) -> str:
    """``name(key=value, ...)``, or the bare name without settings."""
    if not config:
        return name
    return f"{name}(" + ", ".join(f"{k}={_text(v)}" for k, v in config.items()) + ")"


def _text(value: Any) -> str:
    """A setting as parse reads it: layers inside a block as items, the rest as literals."""
    if isinstance(value, layers.Layer):
        return _item(value)
    if isinstance(value, dict) and set(value) == {"type", "config"}:  # a saved layer (a block's)
        return _call(value["type"], value["config"])
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_text(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def outline(model: Any) -> str:
    """The model in one short line for a banner: the input shape, then each layer's name with
    its output shape where it changes and its parameter count where it has any:
    ``1×8×8 → flatten 64 → dense 32 (2,080) → relu → dense 10 (330) → softmax``."""
    def shape_text(shape: tuple[int, ...]) -> str:
        return "×".join(map(str, shape))

    parts, shape = [shape_text(model.input_shape)], tuple(model.input_shape)
    for layer, out in zip(model.layers, model.layer_shapes()):
        text = type(layer).name + ("" if tuple(out) == shape else f" {shape_text(out)}")
        count = sum(math.prod(s) for s in layer.param_shapes().values())
        parts.append(text + (f" ({count:,})" if count else ""))
        shape = tuple(out)
    return " → ".join(parts)


# -- the architecture as a JSON document -----------------------------------------------
FORMAT = "backprop.architecture"
VERSION = 1
_KEYS = {"format", "version", "backprop_version", "input_shape", "dtype", "layers"}


def architecture(model: Sequential) -> dict:
    """The JSON-able document of ``model``'s architecture: its input shape per sample, dtype and
    layers (each ``{type, config}``, :func:`backprop.layers.spec`); no weights."""
    return {"format": FORMAT, "version": VERSION, "backprop_version": __version__,
            "input_shape": list(model.input_shape), "dtype": dtype_name(model.dtype),
            "layers": [layers.spec(layer) for layer in model.layers]}


def loads(text: Any) -> dict:
    """The architecture document JSON ``text`` holds, its format and version checked (its layers
    are checked by :func:`from_architecture`). Raises ConfigError in one line."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise ConfigError(f"an architecture is JSON text (what model.to_json() returns), got "
                          f"{type(text).__name__}")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested deep
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ConfigError(f"the architecture is not valid JSON{where}: give the text model.to_json() "
                          "returned") from None
    _check_header(doc)
    return doc


def _check_header(doc: Any) -> None:
    """A parsed document's format, version and entries (what any version must keep)."""
    kind = doc.get("format") if isinstance(doc, dict) else None
    if kind != FORMAT:
        raise ConfigError(f"not a backprop architecture (format {kind!r}, expected {FORMAT!r}): give the "
                          "text model.to_json() returned")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"the architecture's version {version!r} is not a version number: give the "
                          "text model.to_json() returned")
    if version > VERSION:
        raise ConfigError(f"the architecture was written by a newer backprop ({doc.get('backprop_version')}, "
                          f"format version {version}; this one reads {VERSION}): upgrade backprop")
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise ConfigError(f"the architecture has unknown entries {', '.join(map(repr, unknown))}: remove "
                          f"them (an architecture holds {', '.join(sorted(_KEYS))})")


def saved_layers(doc: dict) -> list[dict]:
    """The document's layers, checked to be a non-empty list of ``{type, config}`` (their types
    and settings are the registry's and the classes' to check)."""
    saved = doc.get("layers")
    if not isinstance(saved, list) or not saved or not all(
            isinstance(s, dict) and set(s) <= {"type", "config"} and isinstance(s.get("type"), str)
            and isinstance(s.get("config", {}), dict) for s in saved):
        raise ConfigError("the architecture's layers must be a non-empty list of {\"type\": name, "
                          "\"config\": {settings}}: give the text model.to_json() returned")
    return saved


def from_architecture(doc: dict, **model_kwargs: Any) -> Sequential:
    """A new, unfitted :class:`Sequential` of the architecture ``doc`` (as :func:`loads` returns),
    with fresh weights; ``model_kwargs``: ``device``, ``seed``, ``tf32``, ``dtype`` (default: the
    document's). Each layer's own checks refuse a bad setting, in one line naming the layer."""
    saved = saved_layers(doc)
    built = []
    for i, item in enumerate(saved):
        try:
            built.append(layers.from_spec(item))
        except (ConfigError, TypeError, ValueError) as exc:  # TypeError: a setting the class lacks
            raise ConfigError(f"layer {i} ({item['type']}): {exc}") from None
    if model_kwargs.get("dtype") is None:  # the document's, where it names one; else the model's default
        model_kwargs.pop("dtype", None)
        model_kwargs.update({"dtype": doc["dtype"]} if "dtype" in doc else {})
    try:
        return Sequential(built, input_shape=doc.get("input_shape"), **model_kwargs)
    except TypeError as exc:  # an input shape that is no list
        raise ConfigError(f"the architecture's input_shape: {exc}") from None
