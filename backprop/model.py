"""The Sequential model: a chain of layers on one backend, its parameters, and inference.

The model knows its architecture, the forward pass, its parameters and their
gradients. What a fit carries from epoch to epoch (optimizer, epoch count,
history, shuffle RNG, early-stopping progress) lives in one
:class:`~backprop.training.FitState` that the model holds as ``model.state`` and
checkpoints save; the training step and loop are :mod:`backprop.step` and
:mod:`backprop.training`.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import uuid
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from backends import FLOAT_DTYPES, Backend, BackendError, Stream, dtype_name, get_backend

from . import activations, flat, losses
from ._typing import Array, Backward
from .dropout import Dropout
from .errors import ConfigError, DataError
from .evaluation import evaluate_arrays
from .layers import Dense, Layer, chain
from .targets import as_inputs, as_targets, positive_int
from .training import FitState, History, fit


class Sequential:
    """Layers applied in order, with parameters on one device.

    Parameters
    ----------
    layers : sequence of Layer or str
        Layers applied in order (``Dense`` layers, activations, registered layers of your
        own); a string such as ``"relu"`` stands for that activation layer.
    input_shape : int or tuple of int, optional
        The shape of one sample, without the batch axis: ``(features,)``,
        ``(channels, length)``, ``(channels, height, width)``. Default: the input a layer
        declares (the first ``Dense(in, out)``'s ``(in,)``).
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

    The model's mode (``training``: False, inference, until :meth:`train` or :meth:`mode`
    says otherwise) is what a pass that does not choose runs in.

    Examples
    --------
    >>> model = Sequential([Dense(2, 4), "tanh", Dense(4, 1), "sigmoid"], seed=0)
    >>> model.fit(X, y, loss="mse", optimizer="gd", lr=0.5, epochs=100)  # doctest: +SKIP
    """

    def __init__(self, layers: Sequence[Layer | str], *, input_shape: int | Sequence[int] | None = None,
                 device: str | Backend = "cpu", dtype: str = "float32", seed: int = 0,
                 tf32: bool = False) -> None:
        self.backend = get_backend(device, tf32=tf32)
        self.dtype = _float_dtype(self.backend, dtype)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)  # a plain int: checkpoints write it as JSON
        self.layers = [activations.get(layer) if isinstance(layer, str) else layer for layer in layers]
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise ConfigError(f"{layer!r} is not a layer: use Dense(...) or an activation name")
            if layer.params:
                raise ConfigError(
                    f"{layer!r} already holds the weights of another model: create new layers "
                    "(or copy a model with model.to())"
                )
        self.input_shape = _input_shape(self.layers, input_shape)
        shape = self.input_shape
        for layer in self.layers:
            layer.infer(shape)
            shape = tuple(layer.output_shape(shape))
        self.output_shape = shape
        # Compatibility: the entries per sample (a 1-D shape's features).
        self.n_inputs, self.n_outputs = math.prod(self.input_shape), math.prod(self.output_shape)
        self.training = False
        rng = self.backend.rng(seed, stream=Stream.WEIGHTS)
        with self.backend.activate():
            for i, layer in enumerate(self.layers):
                following = self.layers[i + 1] if i + 1 < len(self.layers) else None
                layer.build(self.backend, self.dtype, rng, next_layer=following)
        self._pack()
        self.uid = uuid.uuid4().hex  # who an optimizer belongs to (see Optimizer.bind)
        self.state = FitState.new(seed, self.backend)

    # -- what a fit carries, and the layers that draw from it --------------------------
    @property
    def state(self) -> FitState:
        """What a fit carries to the next (:class:`~backprop.training.FitState`)."""
        return self._state

    @state.setter
    def state(self, state: FitState) -> None:
        # Layers that draw in training (dropout) draw from the state's device generator, so its
        # draws move, pickle, save and resume with the state: relinked whenever the state changes.
        self._state = state
        for layer in self.layers:
            if type(layer).draws:
                layer.rng = state.device_rng

    # -- the mode: training or inference, for a whole pass -------------------------
    def train(self, mode: bool = True) -> Sequential:
        """Put the model in training mode (``mode=False``: inference); returns the model."""
        self.training = bool(mode)
        return self

    def eval(self) -> Sequential:
        """Put the model in inference mode; returns the model."""
        return self.train(False)

    @contextlib.contextmanager
    def mode(self, *, train: bool) -> Iterator[Sequential]:
        """``with model.mode(train=True):`` the passes inside run in that mode; the mode before
        comes back afterwards, also after an exception."""
        before = self.training
        self.training = bool(train)
        try:
            yield self
        finally:
            self.training = before

    def layer_shapes(self) -> list[tuple[int, ...]]:
        """Each layer's output shape per sample (no batch axis), in layer order."""
        shapes, shape = [], self.input_shape
        for layer in self.layers:
            shape = tuple(layer.output_shape(shape))
            shapes.append(shape)
        return shapes

    def multiply_adds(self) -> int:
        """The forward matrix products' multiply-adds for one sample (each layer's own count)."""
        total, shape = 0, self.input_shape
        for layer in self.layers:
            total += layer.multiply_adds(shape)
            shape = tuple(layer.output_shape(shape))
        return total

    @property
    def xp(self) -> Any:
        """The Array API namespace of the model's arrays."""
        return self.backend.xp

    # -- what a fit carried (read-only views of self.state) ---------------------
    @property
    def loss(self) -> losses.Loss | None:
        """The loss of the last fit (None before any)."""
        return self.state.loss

    @property
    def optimizer(self) -> Any:
        """The optimizer of the last fit and its state (None before any)."""
        return self.state.optimizer

    @property
    def epoch(self) -> int:
        """Epochs trained so far, across fits."""
        return self.state.epoch

    @property
    def history(self) -> History | None:
        """Per-epoch records of every fit so far (None before any)."""
        return self.state.history

    # -- description -------------------------------------------------------------
    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return (f"Sequential([{inner}], device={self.backend.label!r}, "
                f"dtype={dtype_name(self.dtype)!r})")

    @property
    def n_params(self) -> int:
        """Number of trainable scalars."""
        return sum(flat.sizes([tuple(p.shape) for p in self.parameter_list()]))

    def size_note(self, n_samples: int | None = None) -> str:
        """One line on the memory training this model takes, for an out-of-memory message: its
        parameters (count, bytes, the largest array) and, given ``n_samples``, the dense
        (N, n_outputs) targets and outputs a pass holds, which dominate with many classes."""
        item = 8 if dtype_name(self.dtype) == "float64" else 4
        largest, array = max((int(flat.sizes([tuple(p.shape)])[0]), name)
                             for name, p in self.parameters().items())
        note = (f"the model has {self.n_params:,} parameters ({_bytes(self.n_params * item)} in "
                f"{dtype_name(self.dtype)}; the largest, {array}, holds {largest:,})")
        if n_samples:
            note += (f"; its targets and outputs for {n_samples:,} samples of {self.n_outputs:,} outputs "
                     f"take {_bytes(2 * n_samples * self.n_outputs * item)}")
        return note

    # -- parameters and gradients -----------------------------------------------
    def parameters(self) -> dict[str, Array]:
        """The parameter arrays by name (``"0.W"``, ``"0.b"``, ...), in layer order.

        The arrays are the model's own: writing into them changes the model.
        """
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    def parameter_list(self) -> list[Array]:
        """The parameter arrays in the order of :meth:`parameters` (the model's own)."""
        return [v for layer in self.layers for v in layer.params.values()]

    def gradients(self) -> dict[str, Array]:
        """The gradients from the last backward pass, named as in :meth:`parameters`: the views of
        the flat gradient buffer (see :meth:`flat_gradients`), which the next backward pass
        overwrites."""
        self._gather_gradients()
        return {f"{i}.{k}": layer.grads[k] for i, layer in enumerate(self.layers)
                for k in layer.params if k in layer.grads}

    def gradient_list(self) -> list[Array]:
        """The last backward pass's gradients, in the order of :meth:`parameter_list`."""
        self._gather_gradients()
        try:
            return [layer.grads[k] for layer in self.layers for k in layer.params]
        except KeyError:
            raise ConfigError("no gradients yet: run a backward pass first (loss_and_gradients, "
                              "or forward(..., train=True) and its backward)") from None

    def _gather_gradients(self) -> None:
        """Bring a gradient that a layer *bound* as a new array (``self.grads[k] = g``, as layers
        written before the flat buffer do) into its view of the buffer. An identity check per
        parameter: nothing is copied for layers that write into their views."""
        for (layer, k), view in zip(self._grad_slots, self._grad_views):
            held = layer.grads.get(k)
            if held is not view and held is not None:
                view[...] = held
                layer.grads[k] = view

    def set_parameters(self, values: dict[str, Any]) -> None:
        """Overwrite parameters in place from arrays (host or device) named as in :meth:`parameters`.

        Each value must have its parameter's shape (``"0.W"``: (in, out), ``"0.b"``: (out,))
        and finite entries. Every value is checked before any is written, so a refused
        call leaves the model as it was.
        """
        own = self.parameters()
        unknown = [name for name in values if name not in own]
        if unknown:
            raise ConfigError(f"the model has no parameter named {', '.join(map(repr, unknown))}: its "
                              f"parameters are {', '.join(own)}")
        xp = self.xp
        with self.backend.activate():
            new = {}
            for name, value in values.items():
                new[name] = self.backend.asarray(value, self.dtype)
                if tuple(new[name].shape) != tuple(own[name].shape):
                    raise DataError(f"parameter {name} has shape {tuple(own[name].shape)}, got "
                                    f"{tuple(new[name].shape)}: give an array of that shape")
                if not bool(xp.all(xp.isfinite(new[name]))):
                    raise DataError(f"parameter {name} holds NaN or infinity: give finite values")
            for name, value in new.items():
                own[name][...] = value

    # -- flat views ----------------------------------------------------------------
    def _pack(self) -> None:
        """Lay the parameters out in one buffer, and their gradients in another, the layers
        holding views of both (see :mod:`backprop.flat`)."""
        params = [(layer, k) for layer in self.layers for k in layer.params]
        with self.backend.activate():
            packed = flat.pack(self.xp, [layer.params[k] for layer, k in params])
            self._flat = self._grad_flat = None
            self._grad_slots, self._grad_views = [], []
            if packed is None:
                return  # slices are not views here: layers keep their own arrays (see flat)
            self._flat, views = packed
            for (layer, k), view in zip(params, views):
                layer.params[k] = view
            grads = flat.pack(self.xp, [self.xp.zeros_like(view) for view in views])
            if grads is not None:
                self._grad_flat, self._grad_views = grads
                self._grad_slots = params
                for (layer, k), view in zip(params, self._grad_views):
                    layer.grads[k] = view

    def flat_parameters(self) -> Array:
        """Every parameter as one vector (P,) on the model's device, in :meth:`parameters` order.

        Where the backend's slices are views (NumPy, CuPy, torch, array-api-strict)
        this is the model's own buffer: the layers' arrays are pieces of it, so
        training changes it and writing into it changes the model. Otherwise it is
        a copy. Use :meth:`set_flat_parameters` to write either way.
        """
        if self._flat is not None:
            return self._flat
        return flat.flatten(self.xp, self.parameter_list())

    def set_flat_parameters(self, theta: Any) -> None:
        """Overwrite every parameter from one vector (P,) (host or device)."""
        with self.backend.activate():
            theta = self.backend.asarray(theta, self.dtype)
            if tuple(theta.shape) != (self.n_params,):
                raise DataError(f"expected a vector of {self.n_params} parameters, got shape "
                                f"{tuple(theta.shape)}")
            if self._flat is not None:
                self._flat[...] = theta
                return
            params = self.parameter_list()
            for p, piece in zip(params, flat.unflatten(self.xp, theta, [tuple(p.shape) for p in params])):
                p[...] = piece

    def flat_gradients(self) -> Array:
        """The last backward pass's gradients as one vector (P,), in :meth:`parameters` order.

        Where the backend's slices are views this is the model's own gradient buffer, not a
        copy: the layers' ``grads`` are pieces of it, each backward pass writes into it, and
        writing into it changes what the update reads. Otherwise it is a new vector.
        """
        if self._grad_flat is not None:
            self._gather_gradients()
            return self._grad_flat
        return flat.flatten(self.xp, self.gradient_list())

    def flat_pair(self, grads: list[Array]) -> tuple[Array, Array] | None:
        """``(parameters, gradients)``, the model's two (P,) buffers, when ``grads`` are the views of
        the gradient buffer in parameter order (what a step's backward pass leaves); else None."""
        views = self._grad_views
        if self._grad_flat is None or len(grads) != len(views):
            return None
        if any(g is not view for g, view in zip(grads, views)):
            return None
        return self._flat, self._grad_flat

    # -- forward and backward ----------------------------------------------------
    def trunk(self, loss: losses.Loss | None = None) -> list[Layer]:
        """The layers whose output ``loss`` reads: all of them, less a final layer the loss is
        fused with (a Softmax before cross-entropy, a Sigmoid before BCE), whose job the
        loss does on the logits, exactly where a separate softmax would underflow to 0."""
        if loss is not None and loss.link is not None and isinstance(self.layers[-1], loss.link):
            return self.layers[:-1]
        return self.layers

    def forward(self, X: Array, *, train: bool | None = None, input_grad: bool = True,
                loss: losses.Loss | None = None) -> tuple[Array, Backward]:
        """The whole chain as one layer: device array (N, *input_shape) -> (N, *output_shape).

        ``train``: the mode of this pass (None: the model's, :attr:`training`). With ``loss``,
        the output is what that loss reads (see :meth:`trunk`).
        """
        with self.backend.activate():
            return chain(self.trunk(loss), X, train=self.training if train is None else train,
                         input_grad=input_grad)

    def __call__(self, X: Array) -> Array:
        """The network's output (N, n_outputs) for a device array ``X`` (N, *input_shape), in the
        model's mode."""
        return self.forward(X)[0]

    def output_loss(self) -> losses.Loss:
        """The loss that says what the outputs mean: the last fit's, or one read off the
        output layer before any fit (softmax: cross-entropy, sigmoid: BCE, else MSE)."""
        return self.loss if self.loss is not None else losses.for_output(self.layers[-1])

    def loss_and_gradients(self, X: Any, y: Any,
                           loss: str | losses.Loss | None = None) -> tuple[float, dict[str, Array]]:
        """The loss on one batch and the gradients of every parameter (no update).

        Parameters
        ----------
        X : array (N, *input_shape)
        y : array (N,) or (N, n_outputs); class labels for ``"ce"``
        loss : loss name or object (default: the one the model was fit with)
        """
        loss = self._resolve_loss(loss)
        with self.backend.activate():
            Xd = as_inputs(self.backend, self.dtype, X, self.input_shape)
            T, _ = as_targets(self.backend, self.dtype, y, loss, self.n_outputs, Xd.shape[0])
            Z, backward = self.forward(Xd, train=True, input_grad=False, loss=loss)  # the training objective
            value, dZ = loss.forward(Z, T)
            backward(dZ)
            # Copies: the views of the gradient buffer change with the next backward pass.
            return float(value), {k: self.xp.asarray(g, copy=True) for k, g in self.gradients().items()}

    def _resolve_loss(self, loss: str | losses.Loss | None) -> losses.Loss:
        if loss is not None:
            return losses.get(loss)
        if self.loss is None:
            raise ConfigError("no loss known yet: pass loss= (e.g. 'ce', 'bce', 'mse') or call fit first")
        return self.loss

    # -- training ----------------------------------------------------------------
    # The function itself: ``help(model.fit)`` shows its real keywords and shapes, one owner of both.
    fit = fit

    # -- inference ---------------------------------------------------------------
    def _outputs(self, X: Any, batch_size: int | None, fn, loss: Any = None) -> Array:
        """``fn`` of the logits the output loss (or ``loss``) reads, batch by batch; keeps the
        caller's array type."""
        xp = self.xp
        loss = self.output_loss() if loss is None else self._resolve_loss(loss)
        native = self.backend.is_native(X)
        with self.backend.activate():
            Xd = as_inputs(self.backend, self.dtype, X, self.input_shape)
            n = Xd.shape[0]
            step = n if batch_size is None else positive_int(batch_size)
            # Inference mode, whatever the model's: predictions never train.
            parts = [fn(loss, self.forward(Xd[i:min(i + step, n), ...], train=False, loss=loss)[0])
                     for i in range(0, n, step)]
            out = parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
            # NumPy in, NumPy out, whatever the device: device arrays in, device arrays out.
            return out if native else self.backend.to_numpy(out)

    def task(self) -> str:
        """``"multiclass"``, ``"binary"`` or ``"regression"``, from the loss (or the output layer)."""
        return self.output_loss().task

    def predict_proba(self, X: Any, *, batch_size: int | None = 8192, loss: Any = None) -> Array:
        """Class probabilities (N, K) of a classifier (softmax rows, or sigmoid per output).

        ``loss``: the loss that says what the outputs mean, where the model has not been
        fit yet (default: the last fit's, see :meth:`output_loss`).
        """
        meaning = self.output_loss() if loss is None else self._resolve_loss(loss)
        if not meaning.classification:
            raise ConfigError("predict_proba needs a classifier (a model fit with loss 'ce' or 'bce')")
        return self._outputs(X, batch_size, lambda loss, Z: loss.probabilities(self.xp, Z), meaning)

    def predict(self, X: Any, *, batch_size: int | None = 8192, loss: Any = None) -> Array:
        """Predictions for ``X`` (N, n_inputs).

        Multiclass: class indices (N,). Binary: 0/1 labels (N, K), or (N,) for one
        output. Regression: the outputs (N, K), or (N,) for one output. NumPy in
        gives NumPy out on any device; device arrays in give device arrays out. ``loss``:
        as for :meth:`predict_proba`.
        """
        def finish(loss: losses.Loss, Z: Array) -> Array:
            Y = loss.predict(self.xp, Z)
            return Y[:, 0] if Y.ndim == 2 and self.n_outputs == 1 else Y

        return self._outputs(X, batch_size, finish, loss)

    def evaluate(self, X: Any, y: Any, *, loss: str | losses.Loss | None = None,
                 batch_size: int = 8192) -> dict[str, float]:
        """Loss (and accuracy for classifiers, MAE and R^2 for regressors) on ``X``, ``y``."""
        loss = self._resolve_loss(loss)
        batch_size = positive_int(batch_size)
        with self.backend.activate():
            Xd = as_inputs(self.backend, self.dtype, X, self.input_shape)
            T, labels = as_targets(self.backend, self.dtype, y, loss, self.n_outputs, Xd.shape[0])
            return evaluate_arrays(self, Xd, T, labels, loss, batch_size, regression_metrics=True)

    # -- the architecture and the weights apart (a checkpoint saves everything) -----------
    def to_json(self, *, indent: int | None = None) -> str:
        """The architecture alone as JSON text (as Keras's ``to_json``): the input shape per
        sample, the dtype and the layers with their settings, each in the form checkpoints save
        layers in; no weights, no fit state. :meth:`from_json` builds a new model from it;
        :meth:`save_weights` keeps the weights apart. To keep everything (weights, optimizer,
        history, a run's data transform), save a checkpoint instead
        (:func:`backprop.checkpoint.save`, ``backprop train --save``)."""
        from . import spec  # spec builds models: imported when used

        return json.dumps(spec.architecture(self), indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes, *, device: str | Backend = "cpu", seed: int = 0,
                  dtype: str | None = None, tf32: bool = False) -> Sequential:
        """A new, unfitted model of the architecture :meth:`to_json` wrote, with fresh weights
        drawn from ``seed`` (as Keras's ``model_from_json``); ``dtype``: the text's unless given.
        Fill the weights with :meth:`load_weights`. Raises ConfigError in one line for text that
        is not such an architecture (another format, a newer version, an unknown layer)."""
        from . import spec

        return spec.from_architecture(spec.loads(text), device=device, seed=seed, dtype=dtype, tf32=tf32)

    def save_weights(self, path: str) -> None:
        """Write the parameters and buffers (BatchNorm's running statistics) to the safetensors
        file ``path``, with the architecture (:meth:`to_json`) in its header, as Keras's
        ``save_weights``. An existing file is replaced only when it is a weights file written here;
        a checkpoint or another file is left alone (:func:`backprop.checkpoint.check_writable`).
        No fit state: a checkpoint (:func:`backprop.checkpoint.save`) saves everything."""
        _weights_file("save")(self, path)

    def load_weights(self, path: str) -> Sequential:
        """Overwrite the parameters and buffers from a file :meth:`save_weights` wrote, for a
        model of the same architecture; returns the model. Every tensor is checked (names,
        shapes, finite values, the layers' types) before any is written, so a refused file
        (CheckpointError, one line naming the tensor) leaves the model as it was."""
        _weights_file("load")(self, path)
        return self

    # -- moving and copying --------------------------------------------------------
    def to(self, device: str | Backend | None = None, dtype: str | None = None) -> Sequential:
        """A copy on another device and/or in another dtype, with the training state
        (optimizer moments, epoch, history, shuffle RNG) moved along, so that a later
        ``fit`` continues exactly. The copy keeps the TF32 choice."""
        backend = self.backend if device is None else get_backend(device, tf32=self.backend.tf32)
        dt = _float_dtype(backend, self.dtype if dtype is None else dtype)
        new = Sequential.__new__(Sequential)
        new.__dict__.update(self.__dict__)
        new.backend, new.dtype, new.uid = backend, dt, uuid.uuid4().hex
        with backend.activate():
            new.layers = [layer.cast(backend, dt) for layer in self.layers]
        new._pack()
        new.state = self.state.moved(backend, dt, owner=new.uid)
        return new

    def __getstate__(self) -> dict:
        # The backend holds modules that cannot be pickled, and device arrays may not
        # load elsewhere: keep the device string and host copies of every array.
        state = dict(self.__dict__)
        state["backend"] = (self.backend.spec, self.backend.tf32)
        state["dtype"] = dtype_name(self.dtype)
        state["layers"] = [layer.cast(None, None) for layer in self.layers]
        state["_state"] = self.state.moved(None, None, owner=None)
        for key in ("_flat", "_grad_flat", "_grad_slots", "_grad_views"):
            state.pop(key, None)  # rebuilt by _pack on loading
        return state

    def __setstate__(self, state: dict) -> None:
        spec, tf32 = state["backend"]
        try:
            backend = get_backend(spec, tf32=tf32)
        except BackendError as exc:
            warnings.warn(f"this model was saved on {spec}, which is not usable here ({exc}); it is "
                          "loaded on the CPU instead", RuntimeWarning, stacklevel=2)
            backend = get_backend("cpu")
        # A model pickled before shapes and the mode: its widths are 1-D shapes, and it infers.
        state.setdefault("input_shape", (state["n_inputs"],))
        state.setdefault("output_shape", (state["n_outputs"],))
        state.setdefault("training", False)
        fit_state = state.pop("_state", None) or state.pop("state")  # "state": pickled before its setter
        self.__dict__.update(state)
        self.backend, self.dtype, self.uid = backend, _float_dtype(backend, state["dtype"]), uuid.uuid4().hex
        with backend.activate():
            self.layers = [layer.cast(backend, self.dtype) for layer in state["layers"]]
        self._pack()
        self.state = fit_state.moved(backend, self.dtype, owner=self.uid)


_WEIGHTS_FILE: dict[str, Any] = {}
"""The weights file's host-side owner (``backprop.edges.weights``, NumPy and safetensors) registers
its ``save(model, path)`` and ``load(model, path)`` here, so this tier imports nothing host-side."""


def register_weights_file(*, save: Any, load: Any) -> None:
    """Register the functions :meth:`Sequential.save_weights` and :meth:`Sequential.load_weights` call."""
    _WEIGHTS_FILE.update(save=save, load=load)


def _weights_file(action: str) -> Any:
    if action not in _WEIGHTS_FILE:
        raise ConfigError("saving and loading weights needs backprop.edges.weights: import backprop")
    return _WEIGHTS_FILE[action]


def _input_shape(layers: list[Layer], given: int | Sequence[int] | None) -> tuple[int, ...]:
    """The model's input shape per sample: ``given`` (an int is one axis), or the first one a
    layer declares (the layers before it keep the shape, or their own checks say so)."""
    if given is None:
        given = next((layer.input_shape for layer in layers if layer.input_shape is not None), None)
        if given is None:
            raise ConfigError("the model's input shape is unknown: pass input_shape=(features,) to "
                              "Sequential, or start with a layer that declares it, such as Dense(in, out)")
    shape = (given,) if isinstance(given, numbers.Integral) else tuple(given)
    if not shape or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in shape):
        raise ConfigError(f"input_shape must be positive integers, such as (features,) or (channels, "
                          f"length), got {given!r}")
    return tuple(int(d) for d in shape)


def _bytes(n: float) -> str:
    """``n`` bytes as a short size: 52 B, 6.8 MB, 80.0 GB."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:,.1f} GB"


def _float_dtype(backend: Backend, dtype: Any) -> Any:
    """``backend``'s dtype for ``"float32"``/``"float64"`` (or a dtype object); nothing else trains."""
    if dtype_name(dtype) not in FLOAT_DTYPES:
        raise ConfigError(f"unsupported dtype {dtype!r}: use {' or '.join(map(repr, FLOAT_DTYPES))}")
    return backend.dtype(dtype_name(dtype))


def _output_layer(output: str | Layer) -> bool:
    """Whether ``mlp``'s ``output`` adds a layer: not for a linear one (identity, linear)."""
    kind = activations.class_of(output) if isinstance(output, str) else output
    return bool(getattr(kind, "output", True))


def mlp(sizes: Sequence[int], *, activation: str = "relu", output: str | None = None,
        init: str = "auto", bias: float = 0.0, dropout: float | None = None,
        **model_kwargs: Any) -> Sequential:
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
    dropout : float or None
        A :class:`~backprop.dropout.Dropout` of this rate after each hidden activation (None or 0:
        none).
    init : str
        Weight initializer for every Dense layer (``"auto"``: He before ReLU-family
        activations, Glorot otherwise).
    **model_kwargs
        ``device``, ``dtype``, ``seed``, ``tf32`` for :class:`Sequential`.
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ConfigError(f"mlp needs at least an input and an output size, got {sizes}")
    layers: list[Layer | str] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(a, b, init=init, bias=bias))
        if i < len(sizes) - 2:
            layers.append(activation)
            if dropout:
                layers.append(Dropout(dropout))
    if output is not None and _output_layer(output):
        layers.append(output)
    return Sequential(layers, **model_kwargs)
