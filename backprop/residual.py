"""Residual blocks: ``Y = X + block(X)`` (He et al. 2016), the block a list of layers.

The block's layers stay layers of their own: their parameters, gradients and buffers
are theirs, and the Residual shows them under prefixed names (``"0.W"``, ``"2.b"``: the
inner layer's index, then its own name) through write-through mappings
(:class:`_Prefixed`). So when the model packs every parameter into one flat buffer and
*assigns* its views to ``residual.params[k]`` (and ``grads[k]``), the assignment lands in
the inner layer's own dict, and the inner layers compute with the model's views.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

from . import activations
from ._typing import Array, Backward
from .errors import ConfigError
from .layers import Layer, chain, from_spec, register, spec


class _Prefixed(MutableMapping):
    """The ``group`` dicts (``"params"``, ``"grads"``, ``"buffers"``) of ``layers`` as one mapping,
    keys ``"{index}.{name}"``: reading and writing go to the inner layer's own dict."""

    def __init__(self, layers: list[Layer], group: str) -> None:
        self._layers, self._group = layers, group

    def _split(self, key: str) -> tuple[dict, str]:
        index, _, name = str(key).partition(".")
        if not index.isdigit() or int(index) >= len(self._layers) or not name:
            raise KeyError(key)
        return getattr(self._layers[int(index)], self._group), name

    def __getitem__(self, key: str) -> Array:
        own, name = self._split(key)
        return own[name]

    def __setitem__(self, key: str, value: Array) -> None:
        own, name = self._split(key)
        own[name] = value

    def __delitem__(self, key: str) -> None:
        own, name = self._split(key)
        del own[name]

    def __iter__(self) -> Iterator[str]:
        for i, layer in enumerate(self._layers):
            for name in list(getattr(layer, self._group)):
                yield f"{i}.{name}"

    def __len__(self) -> int:
        return sum(len(getattr(layer, self._group)) for layer in self._layers)


def _group(group: str) -> property:
    """The property ``params``/``grads``/``buffers`` of a Residual: a write-through mapping over
    its inner layers; assigning a dict gives each inner layer its own entries (a new dict each)."""

    def get(self: Residual) -> _Prefixed:
        return _Prefixed(self.block, group)

    def put(self: Residual, values: dict) -> None:
        split: list[dict] = [{} for _ in self.block]
        for key, value in dict(values).items():
            index, _, name = str(key).partition(".")
            if not index.isdigit() or int(index) >= len(self.block) or not name:
                raise ConfigError(f"a Residual of {len(self.block)} layers has no {group} entry {key!r}")
            split[int(index)][name] = value
        for layer, own in zip(self.block, split):
            setattr(layer, group, own)

    return property(get, put)


class Residual(Layer):
    """``Y = X + block(X)``: ``block`` a list of layers (``Dense`` and other layer objects, or
    activation names such as ``"relu"``, as :class:`~backprop.model.Sequential` takes them) whose
    output shape equals its input's.

    Parameters, gradients and buffers are the inner layers', named ``"{index}.{name}"``. The
    mode of a pass reaches the inner layers; so does the model's device generator: a Residual
    counts as a layer that draws (``draws``), and passes ``rng`` on to its inner layers that
    draw (Dropout). ``second_order`` when every inner layer is (read on the instance): the block
    gives its inner layers' Jacobian rows and R-operator, so Levenberg–Marquardt and Newton
    take a block of Dense layers and activations, and refuse one holding Dropout or BatchNorm.

    Shapes: ``X`` (N, *shape) -> ``Y`` (N, *shape).
    """

    draws = True  # it may hold a layer that draws: the model's generator is passed down (see rng)

    params = _group("params")
    grads = _group("grads")
    buffers = _group("buffers")

    def __init__(self, layers: Sequence[Layer | str]) -> None:
        if isinstance(layers, (str, Layer)) or not isinstance(layers, Sequence) or not layers:
            raise ConfigError(f"Residual takes a non-empty list of layers, got {layers!r}")
        block = [activations.get(layer) if isinstance(layer, str) else layer for layer in layers]
        for layer in block:
            if not isinstance(layer, Layer):
                raise ConfigError(f"{layer!r} in a Residual is not a layer: use Dense(...) or an "
                                  "activation name")
        # Not Layer.__init__: its empty params/grads/buffers would go through the mappings and
        # empty the inner layers' own.
        self.block = block
        self.backend: Any = None  # set by build()
        self._rng = None

    # -- the generator of the inner layers that draw -------------------------------
    @property
    def rng(self) -> Any:
        return self._rng

    @rng.setter
    def rng(self, rng: Any) -> None:
        self._rng = rng
        for layer in self.block:
            if type(layer).draws:
                layer.rng = rng

    # -- settings and shapes -------------------------------------------------------
    def config(self) -> dict:
        return {"layers": [spec(layer) for layer in self.block]}

    @classmethod
    def from_config(cls, config: dict) -> Residual:
        saved = config.get("layers")
        if not isinstance(saved, list) or not all(isinstance(s, dict) and isinstance(s.get("type"), str)
                                                  for s in saved):
            raise ConfigError(f"a Residual's layers are saved as a list of {{type, config}}, got {saved!r}")
        return cls([from_spec(s) for s in saved])

    def infer(self, input_shape: tuple[int, ...]) -> None:
        shape = tuple(input_shape)
        for layer in self.block:
            layer.infer(shape)
            shape = tuple(layer.output_shape(shape))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        for layer in self.block:
            shape = tuple(layer.output_shape(shape))
        if shape != tuple(input_shape):
            raise ConfigError(f"a Residual block must keep its input's shape {tuple(input_shape)}, but it "
                              f"gives {shape}: make its last layer output {tuple(input_shape)}")
        return shape

    def multiply_adds(self, input_shape: tuple[int, ...]) -> int:
        total, shape = 0, tuple(input_shape)
        for layer in self.block:
            total += layer.multiply_adds(shape)
            shape = tuple(layer.output_shape(shape))
        return total

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {f"{i}.{k}": s for i, layer in enumerate(self.block) for k, s in layer.param_shapes().items()}

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        return {f"{i}.{k}": s for i, layer in enumerate(self.block) for k, s in layer.buffer_shapes().items()}

    # -- building, copying ------------------------------------------------------------
    def build(self, backend: Any, dtype: Any, rng: Any, *, next_layer: Layer | None = None) -> None:
        super().build(backend, dtype, rng)
        for i, layer in enumerate(self.block):
            # The last inner layer feeds the sum, not the layer after the Residual.
            following = self.block[i + 1] if i + 1 < len(self.block) else None
            layer.build(backend, dtype, rng, next_layer=following)

    def cast(self, backend: Any, dtype: Any) -> Residual:
        new = copy.copy(self)
        new.block = [layer.cast(backend, dtype) for layer in self.block]
        new.backend = backend
        return new

    def __copy__(self) -> Residual:
        # The inner layers are copied too: building or casting the copy leaves this one as it is.
        new = Residual.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.block = [copy.copy(layer) for layer in self.block]
        return new

    # -- the passes ------------------------------------------------------------------
    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        inner, inner_backward = chain(self.block, X, train=train, input_grad=input_grad)
        Y = X + inner

        def backward(dY: Array) -> Array:
            dX = inner_backward(dY)  # writes the inner layers' gradients
            return dY + dX if input_grad else None

        return Y, backward

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        """x + the block's ONNX forms in order (each inner layer through ``graph.layer``, which
        refuses one without an ONNX form by name)."""
        y, shape = x, tuple(input_shape)
        for layer in self.block:
            y = graph.layer(layer, y, shape)
            shape = layer.output_shape(shape)
        return graph.node("Add", [x, y])

    @property
    def stochastic(self) -> bool:
        """The block draws when an inner layer does (a Dropout inside)."""
        return any(layer.stochastic for layer in self.block)

    # -- second order: the inner layers' pieces, the skip adding the identity -----------
    @property
    def second_order(self) -> bool:  # type: ignore[override]
        """Levenberg–Marquardt and Newton cover the block when they cover every inner layer."""
        return all(layer.second_order for layer in self.block)

    def jacobian_rows(self, X: Array, dY: Array) -> list[Array]:
        """The inner layers' rows, in parameter order: each layer's input from a forward pass through
        the block, and the delta at its output from the block's backward closures (``dY`` (N, *shape)
        arrives at the block's output: the skip adds nothing to the parameters' rows)."""
        inputs, closures, H = [], [], X
        for layer in self.block:
            inputs.append(H)
            H, backward = layer.forward(H, train=True)  # the Jacobian's mode (deterministic layers)
            closures.append(backward)
        rows: list[list[Array]] = []
        for layer, H, backward in zip(reversed(self.block), reversed(inputs), reversed(closures)):
            rows.append(layer.jacobian_rows(H, dY))
            dY = backward(dY)
        return [r for own in reversed(rows) for r in own]

    def r_forward(self, X: Array, RX: Array | None, V: dict[str, Array], *,
                  train: bool = False) -> tuple[Array, Array | None, Any]:
        """Y = X + block(X), R{Y} = R{X} + R{block(X)}: X (N, *shape), R{X} (P, N, *shape) or None;
        ``V`` by prefixed name, handed to each inner layer under its own names."""
        tapes, H, RH = [], X, RX
        for i, layer in enumerate(self.block):
            own = {name: V[f"{i}.{name}"] for name in layer.param_shapes()}
            H, RH, tape = layer.r_forward(H, RH, own, train=train)
            tapes.append(tape)
        RY = RH if RX is None else (RX if RH is None else RX + RH)
        return X + H, RY, tapes

    def r_backward(self, tape: Any, dY: Array, RdY: Array) -> tuple[Array, Array, list[tuple[Array, Array]]]:
        """dX = dY + d(block), R{dX} = R{dY} + R{d(block)}; the inner layers' pieces in parameter order."""
        pieces: list[list[tuple[Array, Array]]] = []
        dH, RdH = dY, RdY
        for layer, own in zip(reversed(self.block), reversed(tape)):
            dH, RdH, piece = layer.r_backward(own, dH, RdH)
            pieces.append(piece)
        return dY + dH, RdY + RdH, [p for piece in reversed(pieces) for p in piece]

    def __repr__(self) -> str:
        return f"Residual([{', '.join(repr(layer) for layer in self.block)}])"


register("residual", Residual)
