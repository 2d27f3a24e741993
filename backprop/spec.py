"""An architecture as one line of text: ``"conv1d(16, 5, stride=2), relu, flatten, dense(10)"``.

The command line's ``--layers`` and the banner speak this: a comma-separated list of
registry names (layers and activations, as :func:`backprop.layers.classes` and
:func:`backprop.activations.names` know them), each with optional arguments in Python
literal syntax, positional or by keyword. A list argument may itself hold layers
(``residual([dense(8), relu, dense(8)])``). The text is read with :mod:`ast` and only
names, calls, and literals (numbers, strings, booleans, None, tuples, lists, a minus
sign) are accepted: nothing is evaluated.
"""

from __future__ import annotations

import ast
import math
from typing import Any

from . import activations, layers
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
