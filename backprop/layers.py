"""Layers: ``forward(X, *, train) -> (Y, backward)``, with ``backward(dY) -> dX``.

A layer keeps no forward values on itself: the ``backward`` closure holds exactly
what it needs (the Thinc pattern), so two forward passes never clobber each other.
``backward`` *assigns* the layer's parameter gradients (no accumulation, hence no
zero-grad step) through :meth:`Layer.set_grad`: into the views of the model's flat
gradient buffer that ``layer.grads`` holds, or as new arrays where there are none. It
never mutates ``X`` or ``dY``. ``train`` is the model's mode (training or inference),
which the model sets once for a whole pass.

A layer owns its shapes: :meth:`Layer.output_shape` maps a per-sample input shape (no
batch axis: ``(features,)``, ``(channels, length)``, ``(channels, height, width)``) to its
output's, and :attr:`Layer.input_shape` is the input a layer's settings fix (a
``Dense(in, out)``'s ``(in,)``), from which a model learns its input. It owns what second-order
methods need from it too: its rows of the per-sample Jacobian (:meth:`Layer.jacobian_rows`)
and its R-operator pass (:meth:`Layer.r_forward`, :meth:`Layer.r_backward`), or
``second_order = False``, and Levenberg–Marquardt and Newton refuse it.

A layer owns its ONNX form too: ``onnx(graph, x, input_shape) -> output name`` writes its
inference pass with the builder the exporter passes in (:class:`backprop.edges.onnx_export.Graph`:
``graph.node(op, inputs, **attributes)``, ``graph.constant(array)``), so no layer names the onnx
library; a layer without it is refused by name when a model is exported.

A layer owns its serialization: ``config()`` (its JSON-able constructor settings),
``param_shapes()`` and ``buffer_shapes()`` (its named parameters and non-trained state,
known from the settings alone, so a checkpoint's tensors are checked before anything is
allocated). The registry (:func:`register`, :func:`names`, :func:`classes`,
:func:`class_of`) maps the name a checkpoint saves to the class; the activations keep
their own registry, which :func:`classes` reads too (one list per kind).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from backends import to_numpy_any

from . import initializers, workspace
from ._typing import Array, Backward
from .errors import ConfigError
from .namespace import namespace_of
from .registry import Registry


class Layer:
    """Base class. Subclasses with parameters fill ``params`` in :meth:`build`.

    Class attributes: ``name``, what checkpoints save the layer under (set by :func:`register`);
    ``second_order``: the layer provides :meth:`jacobian_rows` (Levenberg–Marquardt's Jacobian)
    and :meth:`r_forward`/:meth:`r_backward` (Newton's exact Hessian); they refuse a model
    holding one that does not (read on the instance: a layer holding layers, as ``Residual``, makes it a
    property). ``draws``: the layer draws random numbers in training (dropout)
    from ``self.rng``, which the model sets to its fit state's device generator
    (``model.state.device_rng``, a :class:`backends.DeviceRNG`), so the draws are the same on
    every backend and resume exactly from a checkpoint.
    """

    name = "?"
    second_order = False
    draws = False  # draws random numbers in training: the model sets ``rng``, its fit state's DeviceRNG

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.buffers: dict[str, Array] = {}  # non-trained state (running means...), saved beside params
        self.backend: Any = None  # set by build()

    def _ns(self, X: Array) -> Any:
        # The namespace is not stored on the layer: a module cannot be pickled.
        return self.backend.xp if self.backend is not None else namespace_of(X)

    def build(self, backend: Any, dtype: Any, rng: Any, *, next_layer: Layer | None = None) -> None:
        """Create the parameters on ``backend`` in ``dtype``, drawing from ``rng``."""
        self.backend = backend

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        """Return the output and a closure mapping dL/dY to dL/dX.

        ``input_grad=False`` lets the first layer skip computing dX nobody uses
        (its ``backward`` then returns ``None``).
        """
        raise NotImplementedError

    def __call__(self, X: Array) -> Array:
        return self.forward(X, train=False)[0]

    def set_grad(self, name: str, value: Array) -> None:
        """Assign the gradient of parameter ``name``: written into ``grads[name]`` when the layer
        holds one (a view of its model's flat gradient buffer), bound as ``value`` otherwise."""
        held = self.grads.get(name)
        if held is None:
            self.grads[name] = value
        elif held is not value:  # (a layer that wrote into its view with out= is done)
            held[...] = value

    # -- shapes (per sample: no batch axis) --------------------------------------------
    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output's shape for an input of ``input_shape``; raises ConfigError for an input the
        layer cannot take. Default: the input's (elementwise layers), or what a layer written
        against widths says through :meth:`output_width`."""
        if type(self).output_width is not Layer.output_width:  # an older layer that speaks widths
            if len(input_shape) != 1:
                raise ConfigError(f"{type(self).__name__} takes (features,) inputs, got {tuple(input_shape)}")
            return (self.output_width(input_shape[0]),)
        return tuple(input_shape)

    def multiply_adds(self, input_shape: tuple[int, ...]) -> int:
        """The multiply-adds of the layer's forward matrix products for one sample of
        ``input_shape``: what a step costs, to the order the CPU thread rule reads. 0 for a layer
        with no product (elementwise work is a rounding error beside one)."""
        return 0

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The input shape the layer's settings fix (None: it takes any)."""
        if type(self).input_width.fget is not Layer.input_width.fget:  # an older layer that speaks widths
            width = self.input_width
            return None if width is None else (width,)
        return None

    def infer(self, input_shape: tuple[int, ...]) -> None:
        """Fix the settings that follow from the input shape, before :meth:`build` (``Dense(out)``
        learns its input width here). Default: none."""

    def output_width(self, input_width: int) -> int:
        """Compatibility: the number of output entries per sample for ``input_width`` input features."""
        return math.prod(self.output_shape((input_width,)))

    @property
    def input_width(self) -> int | None:
        """Compatibility: the number of input entries :attr:`input_shape` fixes (None: any)."""
        shape = self.input_shape
        return None if shape is None else math.prod(shape)

    # -- second order (see backprop.jacobian and backprop.hessian) ----------------------
    def jacobian_rows(self, X: Array, dY: Array) -> list[Array]:
        """This layer's rows of the per-sample Jacobian, one (N, size) array per parameter in
        :meth:`param_shapes` order: row n is d(the output unit whose delta is ``dY``)/d(parameter)
        for sample n, given the layer's input ``X`` (N, *in) and the delta ``dY`` (N, *out)
        arriving at its output. A layer without parameters has none."""
        if self.param_shapes():
            raise NotImplementedError(f"{type(self).__name__} gives no Jacobian rows: "
                                      "set second_order = False")
        return []

    def r_forward(self, X: Array, RX: Array | None, V: dict[str, Array], *,
                  train: bool = False) -> tuple[Array, Array | None, Any]:
        """The forward pass and its R-operator (Pearlmutter) along P directions at once.

        ``X`` (N, *in); ``RX`` (P, N, *in), the input's directional derivatives, or None where
        the input does not depend on the parameters; ``V``: each parameter's P directions by
        name, (P, *shape). Returns ``(Y (N, *out), RY (P, N, *out) or None, tape)``, ``tape``
        being what :meth:`r_backward` needs."""
        raise NotImplementedError(f"{type(self).__name__} has no R-operator: set second_order = False")

    def r_backward(self, tape: Any, dY: Array, RdY: Array) -> tuple[Array, Array, list[tuple[Array, Array]]]:
        """The backward pass and its R-operator: from ``dY`` (N, *out) and ``RdY`` (P, N, *out),
        ``(dX, RdX, pieces)`` with one ``(gradient (size,), Hessian rows (P, size))`` per parameter
        in :meth:`param_shapes` order."""
        raise NotImplementedError(f"{type(self).__name__} has no R-operator: set second_order = False")

    @property
    def stochastic(self) -> bool:
        """The layer's training output depends on random draws (dropout), so two passes over the
        same batch differ: methods that need one function per iteration (L-BFGS) refuse it."""
        return type(self).draws

    @property
    def r_operator(self) -> bool:
        """Whether :meth:`r_forward`/:meth:`r_backward` work here (the exact Hessian asks)."""
        return type(self).r_forward is not Layer.r_forward

    def config(self) -> dict:
        """The constructor arguments, for saving the architecture (JSON-able)."""
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        """The layer a checkpoint's saved ``config()`` describes."""
        return cls(**config)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each parameter's shape by name, in the order :meth:`build` creates them, from the
        settings alone (nothing allocated)."""
        return {}

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each buffer's shape by name, as :meth:`param_shapes`."""
        return {}

    def cast(self, backend: Any, dtype: Any) -> Layer:
        """A copy whose parameters live on ``backend`` in ``dtype`` (gradients dropped);
        ``backend=None`` gives a host copy (NumPy arrays, no backend) for pickling."""
        new = copy.copy(self)
        new.backend = backend
        for group in ("params", "buffers"):
            arrays = getattr(self, group, {})  # a layer pickled before buffers existed
            if backend is None:
                setattr(new, group, {k: to_numpy_any(v).copy() for k, v in arrays.items()})
            else:
                setattr(new, group, {k: backend.asarray(v, dtype, copy=True) for k, v in arrays.items()})
        new.grads = {}
        return new

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """Fully connected layer ``Y = X @ W + b``.

    Parameters
    ----------
    in_features, out_features : int
        Widths of the input and output. ``Dense(out)`` leaves the input width to the model,
        which infers it from the layer before (then ``config()`` holds both).
    init : str or callable
        Weight initializer (see :mod:`backprop.initializers`); ``"auto"`` picks He
        for a following ReLU-family activation and Glorot otherwise.
    bias : float or str
        Constant the biases start at (0 by default; a small positive value keeps
        ReLU units alive at the start), or ``"textbook"`` (alias ``"uniform"``) for
        U(-0.5, 0.5) like the weights (the classic XOR example treats biases as
        weights on a constant input).

    Shapes: ``X`` (N, in_features) -> ``Y`` (N, out_features); ``W`` (in, out),
    ``b`` (out,).
    """

    second_order = True

    def __init__(self, in_features: int | None = None, out_features: int | None = None, *,
                 init: str | Callable = "auto", bias: float | str = 0.0) -> None:
        super().__init__()
        if out_features is None:  # Dense(out): the input width comes from the model
            in_features, out_features = None, in_features
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if value is None and name == "in_features":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"Dense {name} must be a positive integer, got {value!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.init = init
        if isinstance(bias, str):
            if initializers.INITIALIZERS.get(bias) is not initializers.textbook_uniform:
                raise ConfigError(f"bias must be a number or 'textbook', got {bias!r}")
            self.bias: float | str = bias  # kept as given, so config() reports what was asked
        else:
            self.bias = float(bias)

    def config(self) -> dict:
        init = initializers.saved_name(self.init)
        return {"in_features": self.in_features, "out_features": self.out_features,
                "init": init, "bias": self.bias}

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return None if self.in_features is None else (self.in_features,)

    @classmethod
    def from_config(cls, config: dict) -> Dense:
        return cls(**{**config, "init": initializers.loadable(config.get("init"))})

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        if self.in_features is None:
            raise ConfigError(f"Dense({self.out_features}) does not know its input width before a model "
                              "builds it: give Dense(in_features, out_features)")
        return {"W": (self.in_features, self.out_features), "b": (self.out_features,)}

    def infer(self, input_shape: tuple[int, ...]) -> None:
        if self.in_features is None and len(input_shape) == 1:
            self.in_features = int(input_shape[0])

    def multiply_adds(self, input_shape: tuple[int, ...]) -> int:
        return int(input_shape[0]) * self.out_features

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 1:
            raise ConfigError(f"a Dense layer takes (features,) inputs, got {tuple(input_shape)}: flatten "
                              "the input before it")
        width = input_shape[0]
        if self.in_features is not None and width != self.in_features:
            raise ConfigError(
                f"a Dense layer expecting {self.in_features} inputs follows one giving "
                f"{width}: make each layer's in_features equal the previous out_features"
            )
        return (self.out_features,)

    def build(self, backend: Any, dtype: Any, rng: Any, *, next_layer: Layer | None = None) -> None:
        super().build(backend, dtype, rng)
        self.param_shapes()  # a Dense(out) built outside a model: say how to fix it
        init = self.init
        if init == "auto":
            init = "he_uniform" if getattr(next_layer, "rectifier", False) else "glorot_uniform"
        draw = initializers.get(init)
        shape = (self.in_features, self.out_features)
        W = draw(rng, shape, self.in_features, self.out_features)
        if isinstance(self.bias, str):
            b = initializers.textbook_uniform(rng, (self.out_features,), self.in_features, self.out_features)
        else:
            b = [self.bias] * self.out_features
        self.params = {"W": backend.asarray(W, dtype), "b": backend.asarray(b, dtype)}
        self.grads = {}

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        W, b = self.params["W"], self.params["b"]
        if X.dtype != W.dtype:  # NumPy would silently promote float32 weights to float64
            raise TypeError(f"Dense got {X.dtype} input but holds {W.dtype} weights: cast the input")
        into = workspace.ops(X)
        # Inside a training step the products go into the step's buffers and the gradients
        # straight into this layer's views of the model's gradient buffer: no allocation.
        Y = into.matmul(X, W, out=workspace.take(self, "Y", (X.shape[0], W.shape[1]), X))
        Y += b

        def backward(dY: Array) -> Array:
            self.set_grad("W", into.matmul(X.T, dY, out=self.grads.get("W")))
            self.set_grad("b", into.sum0(dY, out=self.grads.get("b")))
            if not input_grad:
                return None
            return into.matmul(dY, W.T, out=workspace.take(self, "dX", tuple(X.shape), dY))

        return Y, backward

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        """The forward pass in ONNX (see :mod:`backprop.edges.onnx_export`): one Gemm, W (in, out)
        taken as it is (no transpose): (N, in) -> (N, out)."""
        return graph.node("Gemm", [x, graph.constant(self.params["W"]), graph.constant(self.params["b"])])

    def jacobian_rows(self, X: Array, dY: Array) -> list[Array]:
        """dz/dW for sample n is the outer product of x_n (in,) and the delta dY_n (out,), flattened
        row-major as W: (N, in·out); dz/db is the delta itself: (N, out)."""
        xp = self._ns(X)
        rows = X[:, :, None] * dY[:, None, :]  # (N, in, out)
        return [xp.reshape(rows, (X.shape[0], -1)), dY]

    def r_forward(self, X: Array, RX: Array | None, V: dict[str, Array], *,
                  train: bool = False) -> tuple[Array, Array | None, Any]:
        """R{Y} = R{X} W + X V_W + V_b; with V_W (P, in, out), V_b (P, out)."""
        W, b = self.params["W"], self.params["b"]
        VW, Vb = V["W"], V["b"]
        Y = X @ W + b
        RY = X @ VW + Vb[:, None, :]
        if RX is not None:
            RY = RY + RX @ W
        return Y, RY, (X, RX, VW)

    def r_backward(self, tape: Any, dY: Array, RdY: Array) -> tuple[Array, Array, list[tuple[Array, Array]]]:
        """R{dW} = R{X}ᵀ dY + Xᵀ R{dY}, R{db} = Σ_n R{dY}, R{dX} = R{dY} Wᵀ + dY V_Wᵀ."""
        X, RX, VW = tape
        xp = self._ns(X)
        W = self.params["W"]
        P = RdY.shape[0]
        RdW = xp.matmul(xp.permute_dims(X, (1, 0)), RdY)
        if RX is not None:
            RdW = RdW + xp.matmul(xp.permute_dims(RX, (0, 2, 1)), dY)
        pieces = [(xp.reshape(X.T @ dY, (-1,)), xp.reshape(RdW, (P, -1))),
                  (xp.sum(dY, axis=0), xp.sum(RdY, axis=1))]
        return dY @ W.T, RdY @ W.T + dY @ xp.permute_dims(VW, (0, 2, 1)), pieces


def chain(layers: list[Layer], X: Array, *, train: bool = False,
          input_grad: bool = True) -> tuple[Array, Backward]:
    """Run ``layers`` in order; the returned closure replays their backwards in reverse."""
    callbacks = []
    for i, layer in enumerate(layers):
        X, backward = layer.forward(X, train=train, input_grad=input_grad or i > 0)
        callbacks.append(backward)

    def backward(dY: Array) -> Array:
        for callback in reversed(callbacks):
            dY = callback(dY)
        return dY

    return X, backward


# -- the registry --------------------------------------------------------------------
_FAMILIES: list[Callable[[], dict[str, type[Layer]]]] = []


def _included() -> list[str]:
    """The names the included registries (the activations') save their classes under."""
    return [name for family in _FAMILIES for name in family()]


REGISTRY = Registry("layer", Layer, "backprop.layers.register", also_taken=_included)


def register(name: str, cls: type[Layer], *, aliases: tuple[str, ...] = ()) -> None:
    """Make ``cls`` (a subclass of :class:`Layer`) the layer checkpoints save and load as ``name``
    (its ``config()``, parameters and buffers). A class that does not set its own ``name`` gets
    ``name``. Activations register in :mod:`backprop.activations` instead."""
    REGISTRY.register(name, cls, aliases=aliases)


def include(family: Callable[[], dict[str, type[Layer]]]) -> None:
    """Count another registry's classes (``family()``: class by saved name) as layers too:
    the activations' registry calls this, so its names are kept in one list."""
    _FAMILIES.append(family)


def names() -> tuple[str, ...]:
    """The names registered here (``"dense"``, yours), in registration order; the activations'
    are ``backprop.activations.names()``."""
    return REGISTRY.names()


def classes() -> dict[str, type[Layer]]:
    """Every layer class by the name a checkpoint saves it under, the activations' included."""
    found = REGISTRY.classes()
    for family in _FAMILIES:
        found.update(family())
    return found


def class_of(name: str) -> type[Layer]:
    """The class saved under ``name``, for loading and for its capabilities."""
    known = classes()
    if not isinstance(name, str) or name not in known:
        raise ConfigError(f"unknown layer type {name!r}: register it with backprop.layers.register "
                          f"(known: {', '.join(sorted(known))})")
    return known[name]


def spec(layer: Layer) -> dict:
    """How a checkpoint (and a layer holding layers) saves ``layer``: ``{"type": its registered
    name, "config": its config()}``; an unregistered class is refused (it would load as another)."""
    cls = type(layer)
    if classes().get(cls.name) is not cls:
        raise ConfigError(f"cannot save a {cls.__name__} layer: register it first "
                          f"(backprop.layers.register(name, {cls.__name__}))")
    return {"type": cls.name, "config": layer.config()}


def from_spec(saved: dict) -> Layer:
    """The (unbuilt) layer a :func:`spec` describes."""
    return class_of(saved["type"]).from_config(dict(saved.get("config", {})))


def require_deterministic(layers: list[Layer], method: str) -> None:
    """Refuse, in one line, a model holding a layer whose training passes draw (``stochastic``):
    ``method``'s line search compares losses of passes that would each draw other masks."""
    for i, layer in enumerate(layers):
        if layer.stochastic:
            raise ConfigError(f"{method} needs the same function at every evaluation, but the "
                              f"{type(layer).__name__} layer (layer {i}) draws anew each pass: train with a "
                              "first-order optimizer (adam, sgd...), or drop the layer")


def require_second_order(layers: list[Layer], method: str) -> None:
    """Refuse, in one line, a model holding a layer ``method`` does not cover (``second_order``
    False): its parameters would otherwise be silently left out."""
    for i, layer in enumerate(layers):
        if not layer.second_order:  # read on the instance: a Residual's depends on its inner layers
            raise ConfigError(f"{method} does not cover the {type(layer).__name__} layer (layer {i}): "
                              "train this model with a first-order optimizer (adam, sgd...)")


register("dense", Dense)
