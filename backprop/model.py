"""The Sequential model: a chain of layers on one backend, with fit/evaluate/predict."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from backends import Backend, dtype_name, get_backend

from . import activations, losses
from .layers import Array, Backward, Dense, Layer, chain
from .targets import as_inputs, as_targets, positive_int


class Sequential:
    """Layers applied in order, with parameters on one device.

    Parameters
    ----------
    layers : sequence of Layer or str
        ``Dense`` layers and activations; a string such as ``"relu"`` stands for
        that activation layer.
    device : str or Backend
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"torch"``, ``"strict"``... (see
        :func:`backends.get_backend`).
    dtype : str
        ``"float32"`` (default) or ``"float64"``.
    seed : int
        Seeds the initial weights, the shuffles and the validation split; the same
        seed gives the same weights and batches on every backend.
    tf32 : bool
        Let float32 matrix products use TF32 tensor cores (GPU only).

    Examples
    --------
    >>> model = Sequential([Dense(2, 4), "tanh", Dense(4, 1), "sigmoid"], seed=0)
    >>> model.fit(X, y, loss="mse", optimizer="gd", lr=0.5, epochs=100)  # doctest: +SKIP
    """

    def __init__(self, layers: Sequence[Layer | str], *, device: str | Backend = "cpu",
                 dtype: str = "float32", seed: int = 0, tf32: bool = False) -> None:
        self.backend = get_backend(device, tf32=tf32)
        self.xp = self.backend.xp
        if dtype_name(dtype) not in ("float32", "float64"):
            raise ValueError(f"unsupported dtype {dtype!r}: use 'float32' or 'float64'")
        self.dtype = self.backend.dtype(dtype)
        self.seed = seed
        self.layers = [activations.get(layer) if isinstance(layer, str) else layer for layer in layers]
        if not any(isinstance(layer, Dense) for layer in self.layers):
            raise ValueError("a model needs at least one Dense layer")
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"{layer!r} is not a layer: use Dense(...) or an activation name")
            if layer.params:
                raise ValueError(
                    f"{layer!r} already holds the weights of another model: create new layers "
                    "(or copy a model with model.to())"
                )
        first = next(layer for layer in self.layers if isinstance(layer, Dense))
        self.n_inputs = first.in_features
        width = self.n_inputs
        for layer in self.layers:
            width = layer.output_width(width)
        self.n_outputs = width
        rng = self.backend.rng(seed, stream=0)
        with self.backend.activate():
            for i, layer in enumerate(self.layers):
                following = self.layers[i + 1] if i + 1 < len(self.layers) else None
                layer.build(self.backend, self.dtype, rng, next_layer=following)
        self.loss: losses.Loss | None = None
        self.optimizer = None
        self.epoch = 0  # epochs trained so far
        self.history = None
        self.shuffle_rng = self.backend.rng(seed, stream=1)

    # -- description -------------------------------------------------------------
    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return (f"Sequential([{inner}], device={self.backend.label!r}, "
                f"dtype={dtype_name(self.dtype)!r})")

    @property
    def n_params(self) -> int:
        """Number of trainable scalars."""
        total = 0
        for p in self.parameters().values():
            count = 1
            for d in p.shape:
                count *= d
            total += count
        return total

    # -- parameters and gradients -----------------------------------------------
    def parameters(self) -> dict[str, Array]:
        """The parameter arrays by name (``"0.W"``, ``"0.b"``, ...), in layer order.

        The arrays are the model's own: writing into them changes the model.
        """
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    def gradients(self) -> dict[str, Array]:
        """The gradients from the last backward pass, named as in :meth:`parameters`."""
        return {f"{i}.{k}": layer.grads[k] for i, layer in enumerate(self.layers)
                for k in layer.params if k in layer.grads}

    def _param_list(self) -> list[Array]:
        return [v for layer in self.layers for v in layer.params.values()]

    def _grad_list(self) -> list[Array]:
        return [layer.grads[k] for layer in self.layers for k in layer.params]

    def set_parameters(self, values: dict[str, Any]) -> None:
        """Overwrite parameters in place from arrays (host or device) named as in :meth:`parameters`."""
        own = self.parameters()
        unknown = set(values) - set(own)
        if unknown:
            raise KeyError(f"no parameters named {sorted(unknown)}: the model has {list(own)}")
        with self.backend.activate():
            for name, value in values.items():
                new = self.backend.asarray(value, self.dtype)
                if tuple(new.shape) != tuple(own[name].shape):
                    raise ValueError(
                        f"parameter {name} has shape {tuple(own[name].shape)}, got {tuple(new.shape)}"
                    )
                own[name][...] = new

    # -- forward and backward ----------------------------------------------------
    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        """The whole chain as one layer: device array (N, n_inputs) -> (N, n_outputs)."""
        with self.backend.activate():
            return chain(self.layers, X, train=train, input_grad=input_grad)

    def __call__(self, X: Array) -> Array:
        """The network's output (N, n_outputs) for a device array ``X`` (N, n_inputs)."""
        return self.forward(X)[0]

    def _body(self, loss: losses.Loss) -> list[Layer]:
        """The layers that produce what ``loss`` consumes.

        A final Softmax before cross-entropy (or Sigmoid before BCE) is left out:
        the loss applies it fused with the log, which is exact where a separate
        softmax would underflow to 0 and its log to -inf.
        """
        if loss.link is not None and isinstance(self.layers[-1], loss.link):
            return self.layers[:-1]
        return self.layers

    def _train_step(self, X: Array, T: Array, body: list[Layer], loss: losses.Loss) -> tuple[Array, Array]:
        """Forward, loss, backward and update on one device batch; returns (loss, outputs)."""
        Z, backward = chain(body, X, train=True, input_grad=False)
        value, dZ = loss.forward(Z, T)
        backward(dZ)
        self.optimizer.step(self._param_list(), self._grad_list())
        return value, Z

    def loss_and_gradients(self, X: Any, y: Any,
                           loss: str | losses.Loss | None = None) -> tuple[float, dict[str, Array]]:
        """The loss on one batch and the gradients of every parameter (no update).

        Parameters
        ----------
        X : array (N, n_inputs)
        y : array (N,) or (N, n_outputs); class labels for ``"ce"``
        loss : loss name or object (default: the one the model was fit with)
        """
        loss = self._resolve_loss(loss)
        with self.backend.activate():
            Xd = as_inputs(self.backend, self.dtype, X, self.n_inputs)
            T, _ = as_targets(self.backend, self.dtype, y, loss, self.n_outputs, Xd.shape[0])
            Z, backward = chain(self._body(loss), Xd, train=True, input_grad=False)
            value, dZ = loss.forward(Z, T)
            backward(dZ)
            return float(value), self.gradients()

    def _resolve_loss(self, loss: str | losses.Loss | None) -> losses.Loss:
        if loss is not None:
            return losses.get(loss)
        if self.loss is None:
            raise ValueError("no loss known yet: pass loss= (e.g. 'ce', 'bce', 'mse') or call fit first")
        return self.loss

    # -- training ----------------------------------------------------------------
    def fit(self, X: Any, y: Any, **kwargs: Any):
        """Train on ``X`` (N, n_inputs) and ``y``; see :func:`backprop.training.fit`."""
        from .training import fit

        return fit(self, X, y, **kwargs)

    # -- inference ---------------------------------------------------------------
    def _outputs(self, X: Any, batch_size: int | None, fn) -> Array:
        """Apply ``fn`` to the network output batch by batch; keep the caller's array type."""
        xp = self.xp
        native = self.backend.is_native(X)
        with self.backend.activate():
            Xd = as_inputs(self.backend, self.dtype, X, self.n_inputs)
            n = Xd.shape[0]
            step = n if batch_size is None else positive_int(batch_size)
            parts = [fn(self(Xd[i:min(i + step, n), ...])) for i in range(0, n, step)]
            out = parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
            # NumPy in, NumPy out, whatever the device: device arrays in, device arrays out.
            return out if native else self.backend.to_numpy(out)

    def task(self) -> str:
        """``"multiclass"``, ``"binary"`` or ``"regression"``, from the loss (or the output layer)."""
        if self.loss is not None:
            return {"ce": "multiclass", "bce": "binary"}.get(self.loss.name, "regression")
        last = self.layers[-1]
        if isinstance(last, activations.Softmax):
            return "multiclass"
        return "binary" if isinstance(last, activations.Sigmoid) else "regression"

    def _link(self):
        """The map from the network's output to class probabilities."""
        task, xp, last = self.task(), self.xp, self.layers[-1]
        link = {"multiclass": activations.Softmax, "binary": activations.Sigmoid}.get(task)
        if link is None:
            raise ValueError("predict_proba needs a classifier (a model fit with loss 'ce' or 'bce')")
        if isinstance(last, link):
            return lambda Y: Y
        fn = activations.softmax if task == "multiclass" else activations.sigmoid
        return lambda Z: fn(xp, Z)

    def predict_proba(self, X: Any, *, batch_size: int | None = 8192) -> Array:
        """Class probabilities (N, K) of a classifier (softmax rows, or sigmoid per output)."""
        return self._outputs(X, batch_size, self._link())

    def predict(self, X: Any, *, batch_size: int | None = 8192) -> Array:
        """Predictions for ``X`` (N, n_inputs).

        Multiclass: class indices (N,). Binary: 0/1 labels (N, K), or (N,) for one
        output. Regression: the outputs (N, K), or (N,) for one output. NumPy in
        gives NumPy out on any device; device arrays in give device arrays out.
        """
        xp, task = self.xp, self.task()
        if task == "multiclass":
            return self._outputs(X, batch_size, lambda Y: xp.argmax(Y, axis=1))
        link = self._link() if task == "binary" else None

        def finish(Y: Array) -> Array:
            if link is not None:
                Y = xp.astype(link(Y) > 0.5, xp.int64)
            return Y[:, 0] if self.n_outputs == 1 else Y

        return self._outputs(X, batch_size, finish)

    def evaluate(self, X: Any, y: Any, *, loss: str | losses.Loss | None = None,
                 batch_size: int = 8192) -> dict[str, float]:
        """Loss (and accuracy for classifiers, MAE and R^2 for regressors) on ``X``, ``y``."""
        from .training import evaluate_arrays

        loss = self._resolve_loss(loss)
        batch_size = positive_int(batch_size)
        with self.backend.activate():
            Xd = as_inputs(self.backend, self.dtype, X, self.n_inputs)
            T, labels = as_targets(self.backend, self.dtype, y, loss, self.n_outputs, Xd.shape[0])
            return evaluate_arrays(self, Xd, T, labels, loss, batch_size, regression_metrics=True)

    # -- moving ------------------------------------------------------------------
    def to(self, device: str | Backend | None = None, dtype: str | None = None) -> Sequential:
        """A copy on another device and/or in another dtype (optimizer state not copied;
        a later ``fit`` starts a new optimizer). The copy keeps the TF32 choice."""
        backend = self.backend if device is None else get_backend(device, tf32=self.backend.tf32)
        dt = backend.dtype(dtype_name(self.dtype) if dtype is None else dtype)
        new = Sequential.__new__(Sequential)
        new.__dict__.update(self.__dict__)
        new.backend, new.xp, new.dtype = backend, backend.xp, dt
        new.history = copy.deepcopy(self.history)
        with backend.activate():
            new.layers = [layer.cast(backend, dt) for layer in self.layers]
        new.optimizer = None
        new.shuffle_rng = backend.rng(self.seed, stream=1)
        new.shuffle_rng.set_state(self.shuffle_rng.get_state())
        return new


def mlp(sizes: Sequence[int], *, activation: str = "relu", output: str | None = None,
        init: str = "auto", bias: float = 0.0, **model_kwargs: Any) -> Sequential:
    """A multi-layer perceptron: ``Dense`` layers of ``sizes`` with ``activation`` between them.

    Parameters
    ----------
    sizes : sequence of int
        Input width, hidden widths..., output width; e.g. ``[64, 128, 10]``.
    activation : str
        Hidden activation: relu, leaky_relu, tanh, sigmoid, softplus, identity.
    output : str or None
        Output activation: ``"softmax"`` (classes), ``"sigmoid"`` (yes/no labels)
        or None (a linear output, for regression or logits).
    init : str
        Weight initializer for every Dense layer (``"auto"``: He before ReLU-family
        activations, Glorot otherwise).
    **model_kwargs
        ``device``, ``dtype``, ``seed``, ``tf32`` for :class:`Sequential`.
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"mlp needs at least an input and an output size, got {sizes}")
    layers: list[Layer | str] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(a, b, init=init, bias=bias))
        if i < len(sizes) - 2:
            layers.append(activation)
    if output not in (None, "identity", "linear"):
        layers.append(output)
    return Sequential(layers, **model_kwargs)
