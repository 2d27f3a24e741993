"""Activation layers, each stable for |x| up to 1e4 (no overflow, no NaN), but ``exp``, exact up to
the dtype's largest exponent (709.78 in float64) and +inf, never NaN, beyond.

Every activation is a parameter-free :class:`~backprop.layers.Layer`; its
``backward`` multiplies the incoming gradient by the derivative, using the saved
output where that is cheaper than the input (sigmoid, tanh, softmax).
"""

from __future__ import annotations

from typing import Any

from . import layers, workspace
from ._typing import Array, Backward
from .layers import Layer
from .registry import Registry


def sigmoid(xp: Any, X: Array) -> Array:
    """1 / (1 + exp(-x)) without overflow: exp is only ever taken of -|x|."""
    E = xp.exp(-xp.abs(X))
    return xp.where(X >= 0, 1.0 / (1.0 + E), E / (1.0 + E))


def softplus(xp: Any, X: Array) -> Array:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), exact and overflow-free."""
    return xp.maximum(X, 0.0) + xp.log1p(xp.exp(-xp.abs(X)))


def softmax(xp: Any, X: Array) -> Array:
    """Softmax of each row of X (N, K); subtracting the row maximum keeps exp below 1."""
    E = xp.exp(X - xp.max(X, axis=1, keepdims=True))
    return E / xp.sum(E, axis=1, keepdims=True)


def log_softmax(xp: Any, X: Array, owner: Any = None) -> Array:
    """Row-wise log-softmax of X (N, K) through log-sum-exp: exact even where softmax underflows
    to 0. With ``owner``, inside a training step, in that owner's buffers of the step's
    workspace (the result too: the owner's until the next step)."""
    into, shape = workspace.ops(X), tuple(X.shape)
    row = into.row_max(X, out=workspace.take(owner, "row", (shape[0], 1), X) if owner else None)
    shifted = into.subtract(X, row, out=workspace.take(owner, "shifted", shape, X) if owner else None)
    E = into.exp(shifted, out=workspace.take(owner, "E", shape, X) if owner else None)
    lse = into.log(into.row_sum(E, out=row), out=row)
    shifted -= lse
    return shifted


class Activation(Layer):
    """Base of the elementwise activations.

    Capabilities (class attributes), read instead of lists of names: ``rectifier`` asks the
    layer before it for He initialization; ``hidden``: offered between hidden layers (the CLI's
    ``--activation``, the estimators, the playground); ``output``: an output activation, not
    a linear one (``mlp(output=...)`` adds a layer for it).
    """

    name = "?"
    rectifier = False
    hidden = True
    output = True
    second_order = True  # no parameters (no Jacobian rows); the R-operator reads derivatives()

    def __init__(self) -> None:
        super().__init__()

    def derivatives(self, xp: Any, X: Array, Y: Array) -> tuple[Array, Array]:
        """f'(X) and f''(X), from the input ``X`` and output ``Y`` (same shape): what the
        exact Hessian (damped Newton) needs."""
        raise NotImplementedError(f"{self.name} has no second derivative here")

    @property
    def r_operator(self) -> bool:
        """The R-operator pass below needs :meth:`derivatives`: whether this class has them."""
        return type(self).derivatives is not Activation.derivatives

    def r_forward(self, X: Array, RX: Array | None, V: dict[str, Array], *,
                  train: bool = False) -> tuple[Array, Array | None, Any]:
        """R{Y} = f'(X) R{X}; X, Y (N, *shape), R{X}, R{Y} (P, N, *shape) or None."""
        Y, _ = self.forward(X, train=train)
        RY = None if RX is None else self.derivatives(self._ns(X), X, Y)[0] * RX
        return Y, RY, (X, RX, Y)

    def r_backward(self, tape: Any, dY: Array, RdY: Array) -> tuple[Array, Array, list[tuple[Array, Array]]]:
        """R{dX} = R{dY} f'(X) + dY f''(X) R{X}; no parameters, so no pieces."""
        X, RX, Y = tape
        d1, d2 = self.derivatives(self._ns(X), X, Y)
        RdX = RdY * d1
        if RX is not None:
            RdX = RdX + dY * d2 * RX
        return dY * d1, RdX, []


class Identity(Activation):
    """y = x (a linear output for regression)."""

    name = "identity"
    output = False  # a linear output: no layer needed

    def derivatives(self, xp: Any, X: Array, Y: Array) -> tuple[Array, Array]:
        return xp.ones_like(X), xp.zeros_like(X)

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        return X, lambda dY: dY

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        return x


class Sigmoid(Activation):
    """y = 1 / (1 + exp(-x)); dy/dx = y (1 - y)."""

    name = "sigmoid"

    def derivatives(self, xp: Any, X: Array, Y: Array) -> tuple[Array, Array]:
        d1 = Y * (1.0 - Y)
        return d1, d1 * (1.0 - 2.0 * Y)

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        Y = sigmoid(self._ns(X), X)
        return Y, lambda dY: dY * (Y * (1.0 - Y))

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        return graph.node("Sigmoid", [x])


class Tanh(Activation):
    """y = tanh(x); dy/dx = 1 - y^2."""

    name = "tanh"

    def derivatives(self, xp: Any, X: Array, Y: Array) -> tuple[Array, Array]:
        d1 = 1.0 - Y * Y
        return d1, -2.0 * Y * d1

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        into, shape = workspace.ops(X), tuple(X.shape)
        Y = into.tanh(X, out=workspace.take(self, "Y", shape, X))

        def backward(dY: Array) -> Array:  # dY * (1 - Y * Y), in the step's buffer
            dX = into.multiply(Y, Y, out=workspace.take(self, "dX", shape, dY))
            return into.multiply(dY, into.subtract(1.0, dX, out=dX), out=dX)

        return Y, backward

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        return graph.node("Tanh", [x])


class ReLU(Activation):
    """y = max(x, 0); the derivative at 0 is taken as 0."""

    name = "relu"
    rectifier = True

    def derivatives(self, xp: Any, X: Array, Y: Array) -> tuple[Array, Array]:
        return xp.astype(Y > 0, X.dtype), xp.zeros_like(X)

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        into, shape = workspace.ops(X), tuple(X.shape)
        Y = into.maximum(X, 0.0, out=workspace.take(self, "Y", shape, X))

        def backward(dY: Array) -> Array:
            # dY times a 0/1 mask of Y's dtype: on NumPy several times faster than where(X > 0, dY,
            # 0), and than a boolean mask cast in the product. The mask is read from Y (Y > 0
            # exactly where X > 0), so X can be freed after the forward pass: one activation-sized
            # array less held per ReLU layer.
            dX = into.positive(Y, out=workspace.take(self, "dX", shape, dY))  # the mask, then dX itself
            return into.multiply(dY, dX, out=dX)

        return Y, backward

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        return graph.node("Relu", [x])


class LeakyReLU(Activation):
    """y = x for x > 0, alpha * x otherwise."""

    name = "leaky_relu"
    rectifier = True

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def config(self) -> dict:
        return {"alpha": self.alpha}

    def derivatives(self, xp: Any, X: Array, Y: Array) -> tuple[Array, Array]:
        return xp.astype(X > 0, X.dtype) * (1.0 - self.alpha) + self.alpha, xp.zeros_like(X)

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        xp, alpha = self._ns(X), self.alpha
        Y = xp.where(X > 0, X, alpha * X)

        def backward(dY: Array) -> Array:
            slope = xp.astype(X > 0, dY.dtype) * (1.0 - alpha) + alpha  # 1 or alpha
            return dY * slope

        return Y, backward

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        return graph.node("LeakyRelu", [x], alpha=self.alpha)


class Softplus(Activation):
    """y = log(1 + exp(x)), a smooth ReLU; dy/dx = sigmoid(x)."""

    name = "softplus"
    rectifier = True

    def derivatives(self, xp: Any, X: Array, Y: Array) -> tuple[Array, Array]:
        s = sigmoid(xp, X)
        return s, s * (1.0 - s)

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        xp = self._ns(X)
        return softplus(xp, X), lambda dY: dY * sigmoid(xp, X)

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        """:func:`softplus`'s form, max(x, 0) + log(1 + exp(-|x|)): ONNX has no log1p, and ONNX
        Runtime has no float64 Softplus."""
        tail = graph.node("Exp", [graph.node("Neg", [graph.node("Abs", [x])])])
        one = graph.constant(1.0)
        return graph.node("Add", [graph.node("Max", [x, graph.constant(0.0)]),
                                  graph.node("Log", [graph.node("Add", [one, tail])])])


class Softmax(Activation):
    """Softmax over each row (axis 1, the classes) of an (N, K) array, for a classifier's output.

    With cross-entropy the model skips this layer's backward and uses the fused
    gradient (probabilities - targets) instead; this backward serves other losses.
    Shapes: (N, K) -> (N, K).
    """

    name = "softmax"
    hidden = False

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        xp = self._ns(X)
        Y = softmax(xp, X)
        # Jacobian-vector product: dX_i = y_i (dY_i - sum_j dY_j y_j).
        return Y, lambda dY: Y * (dY - xp.sum(dY * Y, axis=1, keepdims=True))

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        return graph.node("Softmax", [x], axis=1)


class Exp(Activation):
    """y = exp(x), the output of a count or rate model (the mean of a Poisson); dy/dx = y.

    With the Poisson deviance the model skips this layer and the loss reads the log-mean
    ``x`` (see :class:`~backprop.losses.PoissonDeviance`); this backward serves other losses.
    Exact, no clipping, as scikit-learn's ``"exp"`` output: finite for x up to log of the
    dtype's largest value (709.78 in float64, 88.72 in float32), +inf above it (never NaN:
    a fit sees a non-finite loss and rolls back), and 0 below about -745 (float64).
    Shapes: (N, K) -> (N, K).
    """

    name = "exp"
    hidden = False  # unbounded growth: an output, not offered between hidden layers

    def derivatives(self, xp: Any, X: Array, Y: Array) -> tuple[Array, Array]:
        return Y, Y  # every derivative of exp is exp

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        Y = self._ns(X).exp(X)
        return Y, lambda dY: dY * Y

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        return graph.node("Exp", [x])


REGISTRY = Registry("activation", Activation, "backprop.activations.register", also_taken=layers.names)


def register(name: str, cls: type[Activation], *, aliases: tuple[str, ...] = ()) -> None:
    """Make ``cls`` (a subclass of :class:`Activation`) the activation called ``name`` everywhere:
    :func:`get`, ``Sequential``/``mlp``/``fit``, ``backprop train --activation`` (when
    ``cls.hidden``), the estimators, the playground and checkpoints (saved by the class's
    ``name`` and its ``config()``). ``aliases``: other names :func:`get` accepts. A class that
    does not set its own ``name`` gets ``name``."""
    REGISTRY.register(name, cls, aliases=aliases)


def names(*, aliases: bool = False, **capabilities: Any) -> tuple[str, ...]:
    """The registered names, in registration order, of the activations with these capabilities
    (``names(hidden=True)``: those offered between hidden layers); ``aliases=True``: their
    aliases too, after them."""
    return REGISTRY.names(aliases=aliases, **capabilities)


def classes() -> dict[str, type[Activation]]:
    """Every registered class by its own ``name``: what a checkpoint saves and loads by."""
    return REGISTRY.classes()


def class_of(name: str) -> type[Activation]:
    """The class of the activation called ``name`` (or an alias), for its capabilities."""
    return REGISTRY.class_of(name)


def __getattr__(attr: str) -> Any:
    # computed, so that an activation registered later is in them too
    if attr == "HIDDEN":  # the activations offered between hidden layers (softmax belongs to an output)
        return names(hidden=True)
    if attr == "ACTIVATIONS":  # every name and alias get() takes, with its class
        return REGISTRY.table()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


layers.include(classes)  # the layer registry reads this one: checkpoints find activations by name
register("relu", ReLU)
register("sigmoid", Sigmoid)
register("tanh", Tanh)
register("leaky_relu", LeakyReLU, aliases=("leakyrelu",))
register("softplus", Softplus)
register("identity", Identity, aliases=("linear",))
register("softmax", Softmax)
register("exp", Exp)


def get(name: str | Activation) -> Activation:
    """An activation layer from its name (``"relu"``, ``"tanh"``...) or the layer itself."""
    if isinstance(name, Activation):
        return name
    return class_of(name)()
