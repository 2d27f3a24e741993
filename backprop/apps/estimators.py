"""scikit-learn estimators: :class:`BackpropClassifier` and :class:`BackpropRegressor`.

Thin classes over the library's ``fit``: the same hand-written network, optimizers
(second-order included) and devices as ``backprop train``. They follow scikit-learn's
conventions (``__init__`` stores parameters, ``fit`` returns ``self``, fitted
attributes end in ``_``, ``validate_data`` for input checks) and are drop-ins for
``MLPClassifier`` and ``MLPRegressor``: every parameter with its meaning and default
(translated once, :data:`SKLEARN_NAMES`), their fitted attributes, their initial
weights, early-stopping split, stopping rule and refusals. With full batches in order,
sgd (its schedules included) and L-BFGS reach scikit-learn's weights to rounding
(``tests/test_sklearn_parity.py``), and scikit-learn's own ``test_mlp.py`` passes but
for the tests of its private internals (``tests/test_sklearn_mlp_suite.py``). Beyond the MLP,
``dropout=`` adds dropout after its hidden layers, and ``layers=`` takes any architecture as
text (convolution, pooling, normalization...), the same the run's ``--layers`` reads
(:func:`backprop.spec.network`), with ``input_shape=`` for samples of several axes.

Everything follows X: NumPy input trains on the CPU (or on ``device=`` when given,
with NumPy outputs), and CuPy, torch or array-api-strict input trains on that array's
device and returns arrays of that library there; ``y`` and sample weights are moved
to X's device. A pickled estimator holds host copies of its arrays and loads on a
machine without a GPU.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import numbers
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import array_namespace, is_numpy_array
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d, validate_data

from backends import backend_for, get_backend, to_numpy_any

from .. import activations, losses, optimizers, schedules, spec
from ..callbacks import Callback, TrainingDiverged
from ..edges.heads import Head
from ..errors import ConfigError, DataError
from ..layers import Dense
from ..model import Sequential, mlp
from ..settings import SETTINGS
from ..targets import as_inputs


class _Registered(StrOptions):
    """A parameter among a registry's names as they are when ``fit`` runs (one registered after
    this module was imported included): ``names`` reads them."""

    def __init__(self, names: Callable[[], tuple[str, ...]]) -> None:
        super().__init__(set(names()))
        self.names = names

    def is_satisfied_by(self, val: Any) -> bool:
        return isinstance(val, str) and val in self.names()

    def __str__(self) -> str:
        return f"a str among {{{', '.join(map(repr, self.names()))}}}"


def __getattr__(attr: str) -> Any:
    if attr == "SOLVERS":  # the optimizer registry's names (see backprop.optimizers.names)
        return optimizers.NAMES
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def _full_batch(solver: str) -> bool:
    return optimizers.class_of(solver).full_batch


def _sgd_family(solver: str) -> bool:
    """A solver that steps in proportion to the gradient (``sgd``, ``momentum``, ``nesterov``,
    ``gd``): what scikit-learn's ``sgd`` is, so its ``learning_rate`` schedules apply."""
    return issubclass(optimizers.class_of(solver), (optimizers.SGD, optimizers.GradientDescent))


SKLEARN_NAMES: dict[str, str] = {
    "hidden_layer_sizes": "hidden", "activation": "activation", "solver": "optimizer",
    "alpha": "weight_decay", "batch_size": "batch_size", "learning_rate_init": "lr", "max_iter": "epochs",
    "learning_rate": "schedule", "momentum": "momentum", "loss": "loss",
    "validation_fraction": "val_split", "n_iter_no_change": "early_stopping", "random_state": "seed",
    "dtype": "dtype",
    "nesterovs_momentum": "optimizer.nesterov", "beta_1": "optimizer.beta1", "beta_2": "optimizer.beta2",
    "epsilon": "optimizer.eps", "max_fun": "optimizer.max_fun", "power_t": "schedule.power_t",
}
"""scikit-learn's parameter names (``MLPClassifier``'s and ``MLPRegressor``'s) and what each one gives
in the library: a run setting (:data:`backprop.settings.SETTINGS`), or ``"optimizer.<keyword>"`` /
``"schedule.<keyword>"``, a keyword of the solver's constructor (passed where it takes it, see
:func:`backprop.optimizers.settings`) or of the schedule's: the one place the two vocabularies meet.
Values that are spelled differently are translated by :data:`SKLEARN_VALUES`. How a value
translates is the estimator's: ``alpha`` is a penalty per batch sample count (the decay divides
it by the batch), ``batch_size="auto"`` is min(200, N), ``max_iter`` counts this fit's epochs
(a run's ``epochs`` count the total), ``n_iter_no_change`` is the patience of scikit-learn's
stopping rule (on the validation score with ``early_stopping=True``, on the training loss
without), ``random_state`` draws the seed, ``momentum`` and ``nesterovs_momentum`` are sgd's
(a solver whose name implies a momentum, ``momentum`` or ``nesterov``, keeps its own), and
``learning_rate`` (with ``power_t``) schedules the SGD family only, as in scikit-learn.
``tol`` (the stopping rule's, and L-BFGS's gradient tolerance), ``shuffle``, ``verbose``,
``early_stopping``, ``warm_start``, ``device`` and ``class_weight`` have no run setting."""

SKLEARN_VALUES: dict[str, dict[Any, str]] = {
    "activation": {"logistic": "sigmoid"},
    "loss": {"squared_error": "mse", "poisson": "poisson"},
    # adaptive: a constant rate that the stopping rule divides by 5 (see _Stopping)
    "learning_rate": {"constant": "constant", "invscaling": "invscaling", "adaptive": "constant"},
}
"""scikit-learn's values that the library spells otherwise, per parameter of :data:`SKLEARN_NAMES`."""

SKLEARN_LOSS_UNITS = {"mse": 2.0, "poisson": 1.0}
"""How many of the library's loss units make one of scikit-learn's, per regression loss: our
``mse`` is the mean of (z - t)^2, scikit-learn's squared loss half of it; ``poisson`` reports
scikit-learn's ``poisson_loss`` itself. ``tol`` and ``loss_curve_`` are in scikit-learn's units."""


def _translated(param: str, value: Any) -> Any:
    """``value`` of scikit-learn's ``param`` as the library spells it."""
    table = SKLEARN_VALUES.get(param, {})
    return table.get(value, value) if isinstance(value, str) else value


def _sklearn_activation(name: str) -> str:
    """A library activation's name as scikit-learn's ``out_activation_`` says it."""
    back = {ours: theirs for theirs, ours in SKLEARN_VALUES["activation"].items()}
    return back.get(name, name)


def _is_device_array(x: Any) -> bool:
    """An array of another Array API library (CuPy, torch, array-api-strict), not NumPy."""
    from array_api_compat import is_array_api_obj

    return is_array_api_obj(x) and not is_numpy_array(x)


def _on_device(fitting: bool = False) -> Any:
    """Run an estimator method inside ``activate()`` of the backend its arrays land on.

    CuPy's creation functions ignore ``device=`` (array-api-compat passes it over) and make
    arrays on the current GPU: on ``cuda:1`` every target, weight or probability an
    estimator made outside ``activate()`` would land on ``cuda:0``. The backend: ``device=``
    when fitting, else X's device, else the fitted model's (NumPy X: nothing to activate)."""
    def wrap(method: Any) -> Any:
        @functools.wraps(method)
        def run(self: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
            model = getattr(self, "model_", None)
            backend = (get_backend(self.device) if fitting and self.device is not None
                       else backend_for(X) if _is_device_array(X)
                       else model.backend if model is not None and not fitting else None)
            with contextlib.nullcontext() if backend is None else backend.activate():
                return method(self, X, *args, **kwargs)
        return run
    return wrap


class _Backprop(BaseEstimator):
    """What both estimators share; see :class:`BackpropClassifier` for the parameters."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [_Registered(lambda: (*activations.names(hidden=True, aliases=True),
                                            *SKLEARN_VALUES["activation"]))],
        "solver": [_Registered(SETTINGS["optimizer"].choices)],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions(set(SKLEARN_VALUES["learning_rate"]))],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"),
                             Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "device": [None, str],
        "dtype": [None, StrOptions(set(SETTINGS["dtype"].choices()))],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "layers": [None, str],
        "input_shape": [None, "array-like"],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=1e-4,
                 batch_size="auto", learning_rate="constant", learning_rate_init=1e-3, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 device=None, dtype=None, dropout=0.0, layers=None, input_shape=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.device = device
        self.dtype = dtype
        self.dropout = dropout
        self.layers = layers
        self.input_shape = input_shape

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        tags.input_tags.sparse = True  # densified on the host (see _dense)
        return tags

    def _validate_params(self) -> None:
        """scikit-learn's checks of each parameter, then what they cannot mean together."""
        super()._validate_params()
        self._check_architecture()

    def _check_architecture(self) -> None:
        """One-line refusals (ValueError, as scikit-learn's): ``layers`` gives the whole network,
        so the MLP's own parameters changed from their defaults are refused beside it (as the
        run's ``--layers`` refuses ``--hidden``); ``input_shape`` is each sample's shape for it."""
        if self.layers is None:
            if self.input_shape is not None:
                raise ConfigError("input_shape gives each sample's shape for layers=: give layers too, "
                                  "or drop input_shape")
            return
        defaults = inspect.signature(_Backprop.__init__).parameters
        hidden = "hidden_layer_sizes"
        changed = [hidden] if _sizes(self.hidden_layer_sizes) != _sizes(defaults[hidden].default) else []
        changed += [name for name in ("activation", "dropout")
                    if getattr(self, name) != defaults[name].default]
        if changed:
            raise ConfigError(f"layers gives the whole network: drop {', '.join(changed)}")
        spec.parse(self.layers)  # unreadable text refused before any data is read
        if self.input_shape is not None and not all(
                isinstance(d, numbers.Integral) and d > 0 for d in np.ravel(np.asarray(self.input_shape))):
            raise ConfigError(f"input_shape must be positive integers, such as (1, 16) or (1, 8, 8), got "
                              f"{self.input_shape!r}")

    def _settings(self) -> dict[str, Any]:
        """This estimator's parameters as the library's run settings (:data:`SKLEARN_NAMES`), their
        values spelled as the library does (:data:`SKLEARN_VALUES`)."""
        return {name: _translated(param, getattr(self, param)) for param, name in SKLEARN_NAMES.items()
                if "." not in name and hasattr(self, param)}

    def _keywords(self, owner: str) -> dict[str, Any]:
        """The ``"optimizer.<keyword>"`` or ``"schedule.<keyword>"`` parameters of :data:`SKLEARN_NAMES`."""
        prefix = owner + "."
        return {name[len(prefix):]: getattr(self, param) for param, name in SKLEARN_NAMES.items()
                if name.startswith(prefix)}

    # -- fitted attributes read off the model -------------------------------------------
    def _dense_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        model = self.__dict__.get("model_")
        if model is None:
            raise AttributeError(f"This {type(self).__name__} instance is not fitted yet: call fit first")
        others = sorted({type(layer).name for layer in model.layers
                         if layer.params and not isinstance(layer, Dense)})
        if others:  # a chain of (in, out) matrices would leave these out: not the network
            raise AttributeError(f"coefs_ and intercepts_ are an MLP's Dense weights, and this network has "
                                 f"{', '.join(others)} layers: read model_.layers[i].params instead")
        return [(np.array(to_numpy_any(layer.params["W"]), copy=True),
                 np.array(to_numpy_any(layer.params["b"]), copy=True))
                for layer in model.layers if "W" in layer.params]

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices per layer, (in, out) each, as scikit-learn lays them out: host NumPy
        copies of the model's current weights, made when read (so always in sync; writing
        into them changes nothing: train through ``fit``, or set ``model_``'s parameters)."""
        return [W for W, _ in self._dense_weights()]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors per layer, (out,) each: host NumPy copies, as :attr:`coefs_`."""
        return [b for _, b in self._dense_weights()]

    # -- input -------------------------------------------------------------------------
    def _inputs(self, X: Any, y: Any = None, *, reset: bool, needs_y: bool = False) -> tuple[Any, Any]:
        """``X`` (and ``y``) checked the way scikit-learn checks them; device arrays stay
        on their device (checked there, with the same messages); sparse X is densified; with
        ``layers``, X may have several axes per sample, and ``input_shape`` gives them to rows."""
        if y is None and needs_y:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        if _is_device_array(X):
            return self._device_inputs(X, y, reset=reset)
        # samples of several axes (N, C, L), (N, C, H, W) are for layers=
        kwargs = dict(dtype=[np.float64, np.float32], reset=reset, accept_sparse=["csr", "csc"],
                      allow_nd=self.layers is not None)
        if y is None:
            return self._shaped(_dense(validate_data(self, X, **kwargs))), None
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=self._numeric_y, **kwargs)
        if not self._numeric_y and not _multilabel(y):
            y = column_or_1d(y, warn=True)  # a column of labels is accepted, with a warning
        return self._shaped(_dense(X)), y

    def _shaped(self, X: Any) -> Any:
        """Checked ``X`` as samples of ``input_shape``: (N, F) reshaped to (N, *input_shape), X of
        that shape already as it is; without ``input_shape``, X as given."""
        if self.input_shape is None:
            return X
        shape = tuple(int(d) for d in self.input_shape)
        if tuple(X.shape[1:]) == shape:
            return X
        if X.ndim == 2 and X.shape[1] == math.prod(shape):
            return array_namespace(X).reshape(X, (X.shape[0], *shape))
        raise DataError(f"X has samples of shape {tuple(X.shape[1:])} but input_shape={shape}: give X of "
                        f"shape (N, {math.prod(shape)}) or (N, {', '.join(map(str, shape))})")

    def _device_inputs(self, X: Any, y: Any, *, reset: bool) -> tuple[Any, Any]:
        """A device ``X`` (N, F), or (N, *shape) with ``layers``, checked on its device with
        scikit-learn's messages, and ``y``."""
        backend = backend_for(X)
        nd = X.ndim > 2 and self.layers is not None  # samples of several axes, for layers=
        if reset:
            self.n_features_in_ = int(X.shape[1]) if X.ndim == 2 or nd else None
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        width = X.shape[1] if X.ndim == 2 or nd else -1
        if not reset and width != self.n_features_in_:
            raise ValueError(f"X has {width} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")
        X = as_inputs(backend, X.dtype if self._float(X.dtype) else "float64", X,
                      tuple(X.shape[1:]) if nd else width)
        return self._shaped(X), None if y is None else self._device_targets(backend, X, y)

    def _device_targets(self, backend: Any, X: Any, y: Any) -> Any:
        """``y`` beside a device ``X`` (N, F), whatever it came as (NumPy, a list, any device's
        array): (N,) or (N, K) on X's device, a column (N, 1) as (N,), as the host path
        leaves a classifier's; labels as text stay on the host (as ``classes_`` then do)."""
        text = not self._numeric_y and np.asarray(to_numpy_any(y)).dtype.kind in "USO"
        y = np.asarray(y) if text else backend.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]  # standard indexing: NumPy, CuPy, torch and array-api-strict alike
        check_consistent_length(X, y)  # scikit-learn's own one-line refusal
        return y

    @staticmethod
    def _float(dtype: Any) -> bool:
        name = str(dtype)
        return "float32" in name or "float64" in name

    def _backend(self, X: Any):
        if self.device is not None:
            return get_backend(self.device)
        return backend_for(X)

    def _dtype(self, X: Any) -> str:
        if self.dtype is not None:
            return self.dtype
        return "float32" if "float32" in str(X.dtype) else "float64"

    # -- training ------------------------------------------------------------------------
    def _optimizer(self, batch: float, samples: int) -> optimizers.Optimizer:
        """The solver for a fit of ``samples`` training samples per epoch, ``batch`` of them per step."""
        # scikit-learn's penalty is alpha/2 |W|^2 over each batch's sample count (weighted:
        # its weight sum, so that a weight of 2 is a repeated sample here too).
        # Our squared error is the mean of (z - t)^2, scikit-learn's half of it: the same
        # balance between data and penalty takes twice the decay.
        s = self._settings()
        # all-zero weights (batch 0): fit says so
        decay = self._loss_scale * s["weight_decay"] / batch if batch > 0 else 0.0
        cls = optimizers.class_of(s["optimizer"])
        # br chooses its own decay: scikit-learn's alpha has no meaning there
        kwargs: dict[str, Any] = {"weight_decay": decay if cls.takes_weight_decay else 0.0,
                                  **self._solver_keywords(s)}
        schedule = self._schedule(s, samples)
        if schedule is not None:
            kwargs["schedule"] = schedule
        lr = s["lr"] / self._rate_units(s["optimizer"])
        return optimizers.get(s["optimizer"], lr if cls.has_lr else None, **kwargs)

    def _rate_units(self, solver: str) -> float:
        """scikit-learn's rate per our rate: a solver whose step is in proportion to the gradient
        (the SGD family) takes scikit-learn's rate over our loss units to make the same step;
        Adam's and RMSprop's steps do not change with the loss's scale."""
        return self._loss_scale if _sgd_family(solver) else 1.0

    def _solver_keywords(self, s: dict[str, Any]) -> dict[str, Any]:
        """scikit-learn's solver parameters that the solver's constructor takes. A name that
        implies a momentum (``momentum``, ``nesterov``) keeps its own; scikit-learn's Nesterov
        without momentum is plain sgd."""
        name = s["optimizer"]
        given = {**self._keywords("optimizer"), "momentum": s["momentum"]}
        given["nesterov"] = bool(given.get("nesterov")) and s["momentum"] > 0
        takes = optimizers.settings(name)
        if "tol" in takes:  # a tolerance of its own (lbfgs): scikit-learn's tol, in our loss units
            given["tol"] = self.tol * self._loss_scale
        implied = optimizers.REGISTRY.entry(name)[1]
        if "momentum" in implied:
            given.pop("nesterov")
        return {k: v for k, v in given.items() if k in takes and k not in implied}

    def _schedule(self, s: dict[str, Any], samples: int) -> Any:
        """``learning_rate``'s schedule (None: constant): scikit-learn schedules sgd only, here the
        SGD family; ``invscaling`` counts the samples seen, ``samples`` per epoch."""
        if s["schedule"] == "constant" or not _sgd_family(s["optimizer"]):
            return None
        return schedules.class_of(s["schedule"])(**self._keywords("schedule"), samples_per_epoch=samples)

    def _batch(self, n: int) -> int:
        s = self._settings()
        if _full_batch(s["optimizer"]):
            return n
        if s["batch_size"] != "auto" and s["batch_size"] > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be "
                          "clipped", stacklevel=4)
        return min(200, n) if s["batch_size"] == "auto" else min(s["batch_size"], n)

    def _build(self, X: Any, n_outputs: int, output: str | None, backend: Any, dtype: str) -> Sequential:
        """A new network for samples ``X`` (N, *shape): ``layers``' (its own initial weights, seeded), or
        the MLP of ``hidden_layer_sizes`` with scikit-learn's initial weights."""
        s = self._settings()
        seed = int(check_random_state(s["seed"]).randint(np.iinfo(np.int32).max))
        # The seed: shuffles, dropout masks and the device generator.
        kwargs = dict(device=backend, dtype=dtype, seed=seed)
        if self.layers is not None:
            model = spec.network(self.layers, output=output, outputs=n_outputs, option="layers",
                                 input_shape=tuple(X.shape[1:]), **kwargs)
            self.n_layers_ = 1 + sum(1 for layer in model.layers if layer.params)
        else:
            hidden = [s["hidden"]] if isinstance(s["hidden"], numbers.Integral) else list(s["hidden"])
            model = mlp([X.shape[1], *hidden, n_outputs], activation=s["activation"], output=output,
                        init="glorot_uniform", dropout=self.dropout, **kwargs)
            model.set_flat_parameters(self._initial_weights(model))  # scikit-learn's own draws
            self.n_layers_ = len(hidden) + 2
        self.n_outputs_ = n_outputs
        self.t_ = 0
        self._stopping = _Stopping()  # scikit-learn's rule: its state lasts while the weights do
        return model

    def _initial_weights(self, model: Sequential) -> np.ndarray:
        """scikit-learn's initial weights (``_init_coef``), flat (P,): per layer W (in, out), then
        b (out,), uniform in +-sqrt(f / (in + out)) with f = 2 for logistic hidden units, else 6
        (Glorot), drawn from ``random_state``: for an int, the very weights ``MLPClassifier``
        starts from (He before a ReLU, our own default, would overshoot on the unscaled inputs
        scikit-learn users pass)."""
        rng = check_random_state(self.random_state)
        factor = 2.0 if self._settings()["activation"] == "sigmoid" else 6.0
        pieces = []
        for layer in model.layers:
            if "W" in layer.params:
                fan_in, fan_out = layer.params["W"].shape
                bound = math.sqrt(factor / (fan_in + fan_out))
                pieces += [rng.uniform(-bound, bound, (fan_in, fan_out)).ravel(),
                           rng.uniform(-bound, bound, fan_out)]
        return np.concatenate(pieces)

    def _train(self, X: Any, T: Any, y_host: Any, loss: str, sample_weight: Any, *, epochs: int, first: bool,
               incremental: bool = False) -> None:
        """``fit`` on the model: epochs, batches, the stopping rules, the fitted attributes.
        ``X`` (N, F) and ``T`` (the loss's targets) on the device; ``y_host``: a function giving
        the targets as scikit-learn scores them, (N,) or (N, K) on the host."""
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True: set early_stopping=False, "
                             "or train with fit")
        model = self.model_
        # scikit-learn's rule keeps its state while the weights last (an older pickle has none yet)
        stopping = self._stopping = self.__dict__.get("_stopping") or _Stopping()
        full = _full_batch(self.solver)
        score = None
        if self.early_stopping:
            (X, T, sample_weight), score = self._holdout(X, T, y_host(), sample_weight)
        adaptive = self.learning_rate == "adaptive" and _sgd_family(self.solver)
        stopping.configure(tol=self.tol, patience=self.n_iter_no_change, adaptive=adaptive,
                           scale=1.0 / self._loss_scale, score=score, rate=self._rate_units(self.solver),
                           verbose=bool(self.verbose))
        settings = self._fit_settings(X, loss, sample_weight, epochs=epochs,
                                      new_optimizer=first or not incremental)
        callbacks: list[Callback] = [_Verbose(1.0 / self._loss_scale)] if self.verbose else []
        if score is not None or not full:  # L-BFGS, LM and Newton stop by their own tolerances
            callbacks.append(stopping)
        before = model.epoch
        try:
            history = model.fit(X, T, callbacks=callbacks, **settings)
        except TrainingDiverged as error:
            history = self._diverged(error, stopping)
        finally:
            stopping.score = None  # it holds the validation part: not kept past the fit
        trained = model.epoch - before
        self.t_ = getattr(self, "t_", 0) + (0 if full else trained * int(X.shape[0]))
        self._record(history, X, T, loss, trained=trained)
        self._warn_unless_stopped(history, stopping, incremental)

    def _diverged(self, error: TrainingDiverged, stopping: _Stopping) -> Any:
        """Early stopping keeps its best weights and the fit ends there, a NaN score for the epoch
        that diverged (as scikit-learn); otherwise scikit-learn's ValueError, with our reason."""
        if stopping.score is not None and stopping.best_params is not None:
            stopping.scores.append(float("nan"))
            stopping.stopped = True
            self.model_.set_flat_parameters(stopping.best_params)
            return self.model_.state.history
        raise TrainingDiverged("Solver produced non-finite parameter weights. The input data may contain "
                               f"large values and need to be preprocessed. ({error})") from None

    def _warn_unless_stopped(self, history: Any, stopping: _Stopping, incremental: bool) -> None:
        """scikit-learn's ConvergenceWarning: a fit (not partial_fit) that ran all of max_iter, or an
        L-BFGS that ran out of its max_fun evaluations."""
        reason = history.converged
        ran_out = reason is not None and ("max_fun" in reason or "evaluations" in reason.lower())
        stopped = history.stopped_early or stopping.stopped or (reason is not None and not ran_out)
        if incremental or stopped:
            return
        if ran_out:
            warnings.warn(f"{type(self).__name__}: {reason}; raise max_fun", ConvergenceWarning, stacklevel=4)
            return
        warnings.warn(f"{type(self).__name__}: the {self.solver} solver reached max_iter="
                      f"{self.max_iter} before the loss stopped improving; raise max_iter",
                      ConvergenceWarning, stacklevel=4)

    def _holdout(self, X: Any, T: Any, y: np.ndarray, sample_weight: Any) -> tuple[tuple, Any]:
        """scikit-learn's early-stopping split: ``train_test_split`` (stratified as
        :meth:`_stratify` says) from the estimator's random state, which for an int
        ``random_state`` holds out the samples scikit-learn holds out. Returns the
        training part ``(X, T, sample_weight)`` and the validation score, a function."""
        rng = check_random_state(self.random_state)
        if isinstance(self.random_state, numbers.Integral):
            # scikit-learn draws its initial weights from the same generator first
            rng.random_sample(sum(math.prod(p.shape) for p in self.model_.parameter_list()))
        train, val = train_test_split(np.arange(X.shape[0]), random_state=rng,
                                      test_size=self.validation_fraction, stratify=self._stratify(y))
        if len(val) < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size "
                             "of your dataset.")
        backend = self.model_.backend
        weights = None if sample_weight is None else np.asarray(to_numpy_any(sample_weight))
        X_val, y_val, w_val = _rows(X, val, backend), y[val], None if weights is None else weights[val]
        training = (_rows(X, train, backend), _rows(T, train, backend), _rows(sample_weight, train, backend))
        return training, functools.partial(self._validation_score, X_val, y_val, w_val)

    def _stratify(self, y: np.ndarray) -> Any:
        return None

    def _validation_score(self, X: Any, y: np.ndarray, sample_weight: Any) -> float:
        """scikit-learn's ``score`` (accuracy, R^2) of the model on the validation part; NaN where
        the predictions are not finite."""
        predicted = np.asarray(to_numpy_any(self._predict_inputs(X)))
        if predicted.dtype.kind == "f" and not np.all(np.isfinite(predicted)):
            return float("nan")
        return float(self._metric(y, predicted, sample_weight))

    def _fit_settings(self, X: Any, loss: str, sample_weight: Any, *, epochs: int,
                      new_optimizer: bool) -> dict[str, Any]:
        """``model.fit``'s keywords for this call (``epochs``: this call's)."""
        s, model = self._settings(), self.model_
        full, batch = _full_batch(s["optimizer"]), self._batch(X.shape[0])
        # class_targets: LM's squared error on class indicators reports accuracy too, as the others do
        settings: dict[str, Any] = dict(loss=loss, epochs=epochs, batch_size=batch,
                                        sample_weight=sample_weight, shuffle=self.shuffle,
                                        class_targets=isinstance(self, ClassifierMixin))
        # A new optimizer on every fit (warm_start keeps the weights, as scikit-learn); partial_fit
        # continues its optimizer.
        if new_optimizer or full:
            count = batch
            if full and sample_weight is not None:
                count = float(to_numpy_any(model.xp.sum(sample_weight)))
            settings["optimizer"] = self._optimizer(count, int(X.shape[0]))
        return settings

    def _record(self, history: Any, X: Any, T: Any, loss: str, *, trained: int) -> None:
        """The fitted attributes scikit-learn's MLP has: n_iter_ (this fit's, as scikit-learn),
        the loss curve (every epoch these weights have trained, in scikit-learn's units), the
        validation scores."""
        records, scale = history.records, 1.0 / self._loss_scale
        self.n_iter_ = trained
        self.loss_curve_ = [r["train_loss"] * scale for r in records]
        # An L-BFGS fit can converge before its first iteration: then the loss where it stands.
        self.loss_ = (self.loss_curve_[-1] if records
                      else self.model_.evaluate(X, T, loss=loss)["loss"] * scale)
        if self.early_stopping:
            self.validation_scores_ = list(self._stopping.scores)
            self.best_validation_score_ = self._stopping.best
            self.best_loss_ = None
        else:
            self.best_loss_ = min(self.loss_curve_, default=self.loss_)
            self.validation_scores_ = self.best_validation_score_ = None

    def _reuse(self, X: Any, n_outputs: int) -> bool:
        """Whether the fitted network takes samples of X's shape (N, *shape) to ``n_outputs``."""
        model = getattr(self, "model_", None)
        return (model is not None and tuple(model.input_shape) == tuple(X.shape[1:])
                and model.n_outputs == n_outputs)

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy (classifier) or R^2 (regressor) as scikit-learn's ``score``, for any X.

        Predictions stay on X's device; the (N,) labels or values then come to the host for
        scikit-learn's metric, so CuPy or array-api-strict input scores without
        ``array_api_dispatch`` (scikit-learn's own ``score`` would call ``np.asarray`` on them).
        The estimators name it in their bodies: their scikit-learn mixin comes first.
        """
        predicted = self.predict(X)
        host = [None if a is None else np.asarray(to_numpy_any(a)) for a in (y, predicted, sample_weight)]
        return float(self._metric(*host))

    # -- pickling: host copies ------------------------------------------------------------
    def __getstate__(self) -> dict:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else dict(self.__dict__)
        state = dict(state)
        moved = [k for k, v in state.items() if _is_device_array(v)]
        for key in moved:
            state[key] = np.asarray(to_numpy_any(state[key]))
        state["_device_arrays"] = moved
        return state

    def __setstate__(self, state: dict) -> None:
        moved = state.pop("_device_arrays", [])
        for name, default in _ADDED_PARAMETERS.items():  # a pickle from before these parameters
            state.setdefault(name, default)
        super().__setstate__(state) if hasattr(super(), "__setstate__") else self.__dict__.update(state)
        model = self.__dict__.get("model_")
        if model is not None and model.backend.name != "numpy":
            with model.backend.activate():
                for key in moved:
                    setattr(self, key, model.backend.asarray(getattr(self, key)))


_ADDED_PARAMETERS = {"dropout": 0.0, "layers": None, "input_shape": None}
"""Parameters newer than the first pickled estimators, at the defaults those pickles trained with."""


class _Stopping(Callback):
    """scikit-learn's stopping rule (``_update_no_improvement_count``), its adaptive rate and
    early stopping's best weights, in one place.

    Each epoch gives a score, higher is better: the validation score (accuracy or R^2) with
    early stopping, else minus the training loss in scikit-learn's units. A score below the
    best by less than ``tol`` counts one more epoch without improvement; more than
    ``patience`` such epochs in a row stop the fit, or, with the adaptive rate, divide the
    rate by 5 (and stop once it is at most 1e-6). With early stopping the best weights are
    kept (host copies, flat) and restored when the fit ends. The state lasts across
    warm-started fits and ``partial_fit`` calls, as scikit-learn's does.
    """

    def __init__(self) -> None:
        self.count, self.best, self.scores = 0, -math.inf, []
        self.best_params: np.ndarray | None = None
        self.stopped, self.tol, self.patience, self.adaptive, self.scale = False, 0.0, math.inf, False, 1.0
        self.rate, self.verbose = 1.0, False
        self.score: Callable[[], float] | None = None

    def configure(self, *, tol: float, patience: float, adaptive: bool, scale: float,
                  score: Callable[[], float] | None, rate: float = 1.0, verbose: bool = False) -> None:
        """This fit's rule; ``scale``: our loss to scikit-learn's units; ``score``: the validation
        score, or None to watch the training loss; ``rate``: our rate to scikit-learn's."""
        self.tol, self.patience, self.adaptive, self.scale, self.score = tol, patience, adaptive, scale, score
        self.rate, self.verbose = rate, verbose

    def on_begin(self, fit: Any) -> None:
        self.stopped = False

    def on_epoch_end(self, record: dict[str, Any], fit: Any) -> bool:
        value = self.score() if self.score is not None else -record["train_loss"] * self.scale
        if self.score is not None:
            self.scores.append(value)
            if self.verbose:
                print(f"Validation score: {value:f}")
        # NaN is no improvement and no count, as in scikit-learn
        self.count = self.count + 1 if value < self.best + self.tol else 0
        if value > self.best:
            self.best = value
            if self.score is not None:
                self.best_params = np.array(to_numpy_any(fit.model.flat_parameters()), copy=True)
        if self.count > self.patience:
            self._plateau(fit)
        return self.stopped

    def _plateau(self, fit: Any) -> None:
        """No improvement for too long: a fifth of the rate (adaptive, above scikit-learn's floor
        of 1e-6), or stop; scikit-learn's verbose lines say which."""
        what = "Validation score" if self.score is not None else "Training loss"
        said = f"{what} did not improve more than tol={self.tol:f} for {self.patience} consecutive epochs."
        if self.adaptive and fit.optimizer.base_lr * self.rate > 1e-6:
            fit.optimizer.update_settings(lr=fit.optimizer.base_lr / 5.0)
            self.count = 0
            said += f" Setting learning rate to {fit.optimizer.base_lr * self.rate:f}"
        else:
            self.stopped = True
            said += " Learning rate too small. Stopping." if self.adaptive else " Stopping."
        if self.verbose:
            print(said)

    def on_end(self, fit: Any) -> None:
        if self.score is not None and self.best_params is not None:
            fit.model.set_flat_parameters(self.best_params)


class _Verbose(Callback):
    """scikit-learn's per-iteration line, ``Iteration 1, loss = 0.69314718``, to stdout."""

    def __init__(self, scale: float) -> None:
        self.scale, self.iteration = scale, 0

    def on_epoch_end(self, record: dict[str, Any], fit: Any) -> None:
        self.iteration += 1
        print(f"Iteration {self.iteration}, loss = {record['train_loss'] * self.scale:.8f}")


def _sizes(value: Any) -> list[int]:
    """``hidden_layer_sizes`` (an int or a sequence) as a list, to compare with its default."""
    return [int(value)] if isinstance(value, numbers.Integral) else [int(v) for v in value]


def _multilabel(y: Any) -> bool:
    """``y`` is a multilabel indicator matrix (N, K), K > 1."""
    return getattr(y, "ndim", 1) == 2 and y.shape[1] > 1 and type_of_target(y) == "multilabel-indicator"


def _available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on this system
        return None


def _dense(X: Any) -> Any:
    """Sparse ``X`` (CSR, CSC) as a dense host array, once per call: the network's first layer
    is dense. Refused where the dense copy would take more than half the free memory."""
    if not sparse.issparse(X):
        return X
    need, free = X.shape[0] * X.shape[1] * X.dtype.itemsize, _available_memory()
    if free is not None and need > free // 2:
        raise DataError(f"sparse X of shape {X.shape} takes {need / 2**30:.1f} GiB dense, more than half "
                        f"the free memory ({free / 2**30:.1f} GiB): reduce the features (e.g. "
                        "TruncatedSVD) or train on fewer samples at a time with partial_fit")
    return X.toarray()


def _rows(A: Any, index: np.ndarray, backend: Any) -> Any:
    """Rows ``index`` of ``A`` (None stays None), in A's namespace and on its device."""
    if A is None or is_numpy_array(A):
        return None if A is None else A[index]
    return backend.xp.take(A, backend.asarray(index), axis=0)


def _host_weights(sample_weight: Any, n: int) -> np.ndarray:
    """Sample weights (N,) float64 on the host; a number, as in scikit-learn, is every sample's weight."""
    weights = np.asarray(to_numpy_any(sample_weight), dtype=np.float64)
    return np.full(n, float(weights)) if weights.ndim == 0 else weights


def _stochastic(estimator: Any) -> bool:
    if _full_batch(estimator.solver):
        raise AttributeError(f"partial_fit is only available for stochastic solvers, not "
                             f"{estimator.solver!r}")
    return True


class BackpropClassifier(ClassifierMixin, _Backprop):
    """A multi-layer perceptron classifier trained by hand-written backpropagation.

    A drop-in for scikit-learn's ``MLPClassifier``: its parameters, with its meanings and
    defaults, and its fitted attributes. What backprop adds, and what differs:

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
    activation : str, default "relu"
        ``"logistic"`` (scikit-learn's name, our ``"sigmoid"``, which is accepted too),
        ``"identity"``, ``"tanh"``, ``"relu"`` or any hidden activation of
        :data:`backprop.activations.HIDDEN` (a registered one included).
    solver : str, default "adam"
        ``"adam"``, ``"sgd"`` (scikit-learn's: momentum, Nesterov's by default), ``"lbfgs"``,
        or any optimizer of :func:`backprop.optimizers.names` (a registered one included):
        ``newton`` and ``lm`` train on the full batch too (``lm`` with squared error on the
        class indicators, as MATLAB's ``trainlm``).
    alpha : float, default 1e-4
        L2 penalty, as in scikit-learn: alpha/2 |W|^2 per batch sample count. ``loss_`` and
        ``loss_curve_`` leave it out (scikit-learn's include it).
    batch_size : int or "auto" (min(200, n_samples))
    learning_rate : "constant", "invscaling" or "adaptive", default "constant"
        For the SGD family only, as in scikit-learn: invscaling is learning_rate_init /
        (t + 1)^power_t with t the samples seen, adaptive divides the rate by 5 whenever the
        stopping rule would stop, until it is at most 1e-6. Our velocity keeps the rate out
        (PyTorch's form), so a new rate acts at once where scikit-learn's velocity fades.
    learning_rate_init : float, default 1e-3
    power_t : float, default 0.5
    max_iter : int, default 200
        Epochs (iterations for the full-batch solvers).
    shuffle : bool, default True
        Shuffle the samples every epoch (from ``random_state``).
    random_state : int, RandomState or None
        Seeds the weights, the shuffles and the early-stopping split. The weights and
        shuffles are backprop's own draws; the split is scikit-learn's (the same samples
        held out, for an int).
    tol, n_iter_no_change : default 1e-4, 10
        scikit-learn's rule: stop when the training loss (with ``early_stopping``, the
        validation accuracy) has not improved by ``tol`` for more than ``n_iter_no_change``
        epochs in a row (``np.inf``: never). L-BFGS takes ``tol`` as its gradient tolerance.
    verbose : bool, default False
        Print scikit-learn's lines: ``Iteration i, loss = ...`` after every epoch, the
        validation score, why the rate drops or the fit stops (L-BFGS prints the same
        iteration lines, not SciPy's report).
    warm_start : bool, default False
        Continue from the fitted weights (the classes must be the same), with a new optimizer.
    momentum, nesterovs_momentum : default 0.9, True
        sgd's momentum, as in scikit-learn.
    early_stopping, validation_fraction : default False, 0.1
        Hold out a fraction (scikit-learn's split: stratified where the network has one
        output, two classes), stop on its accuracy, keep the best weights. Refused by
        ``partial_fit``. Here it applies to the full-batch solvers too (scikit-learn's
        lbfgs ignores it).
    beta_1, beta_2, epsilon : default 0.9, 0.999, 1e-8
        Adam's (``epsilon`` is also RMSprop's).
    max_fun : int, default 15000
        L-BFGS's limit on loss evaluations; running out warns (``ConvergenceWarning``).
    device : str or None
        None: the device of X (NumPy: the CPU). "cuda", "cuda:1", "cpu", "torch"...
    dtype : "float32", "float64" or None (X's floating dtype, float64 otherwise)
    dropout : float in [0, 1), default 0.0
        A :class:`backprop.Dropout` of this rate after each hidden layer of the MLP (as
        ``backprop.mlp(dropout=)`` and the run's ``--dropout``): active in ``fit`` only, its
        masks drawn from ``random_state``'s seed; 0 leaves the MLP as it was.
    layers : str or None, default None
        The whole network as text (:func:`backprop.spec.parse`), such as ``"conv1d(16, 5,
        padding=2), relu, globalavgpool1d, dense(3)"``; the output activation the loss needs
        is appended where the text leaves it out, and its output width must match the classes
        (targets). ``hidden_layer_sizes``, ``activation`` and ``dropout`` changed from their
        defaults beside it are refused. The network's own initial weights (seeded by
        ``random_state``), not scikit-learn's draws.
    input_shape : tuple of int or None, default None
        Each sample's shape for ``layers``, such as ``(1, 16)`` or ``(1, 8, 8)``: X (N, F) is
        reshaped to (N, *input_shape). X of several axes, (N, C, L) or (N, C, H, W), needs no
        ``input_shape`` (``n_features_in_`` is then C, scikit-learn's count of an array's columns).
    class_weight : dict, "balanced" or None
        Weights per class, multiplied into the sample weights.

    ``X`` may be sparse (CSR, CSC): it is densified on the host, once per call (the first
    layer is dense). ``y`` may be labels (N,) or a multilabel indicator matrix (N, K): one
    sigmoid output per label, trained with binary cross-entropy. A diverging fit raises
    ``ValueError`` (:class:`backprop.callbacks.TrainingDiverged`) and keeps the last finite
    weights; with early stopping it ends at the best weights instead, as scikit-learn.

    Attributes
    ----------
    classes_, n_features_in_, feature_names_in_, model_ (a :class:`backprop.Sequential`),
    coefs_, intercepts_ (host NumPy copies of the current weights, read when asked; an MLP's
    only: a network with other parameter layers, such as conv, refuses them in one line),
    n_layers_ (1 + the layers with parameters), n_outputs_, out_activation_, n_iter_ (this fit's epochs; 1 per
    ``partial_fit``), t_ (training samples seen), loss_, loss_curve_, best_loss_,
    validation_scores_, best_validation_score_.
    """

    _numeric_y = False

    @property
    def _loss_scale(self) -> float:
        """Our loss units per scikit-learn's: cross-entropy is its log-loss; for multilabel
        targets our BCE is the mean over the K labels, scikit-learn's their sum."""
        return 1.0 / self.n_outputs_ if self.__dict__.get("_multilabel_") else 1.0

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=1e-4,
                 batch_size="auto", learning_rate="constant", learning_rate_init=1e-3, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 device=None, dtype=None, dropout=0.0, layers=None, input_shape=None, class_weight=None):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
                         max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol,
                         verbose=verbose, warm_start=warm_start, momentum=momentum,
                         nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
                         device=device, dtype=dtype, dropout=dropout, layers=layers, input_shape=input_shape)
        self.class_weight = class_weight

    _parameter_constraints = {**_Backprop._parameter_constraints,
                              "class_weight": [None, dict, StrOptions({"balanced"})]}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (N, F), or (N, *shape) with ``layers``, and class labels ``y`` (N,) or
        indicators (N, K); returns self."""
        self._validate_params()
        return self._fit(X, y, sample_weight, classes=None, epochs=self.max_iter,
                         keep=self.warm_start, incremental=False)

    @available_if(_stochastic)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over ``X``, ``y`` (stochastic solvers); ``classes`` on the first call."""
        first = not hasattr(self, "model_")
        if first:
            self._validate_params()
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
        elif classes is not None:
            given = unique_labels(np.asarray(to_numpy_any(classes)))
            known = np.asarray(to_numpy_any(self.classes_))
            if not np.array_equal(given, known):  # scikit-learn's rule: the outputs are those classes'
                raise ValueError(f"classes={given.tolist()} is not the same as on the first call to "
                                 f"partial_fit, {known.tolist()}: pass those, or call fit to start afresh")
        return self._fit(X, y, sample_weight, classes=classes, epochs=1, keep=True, incremental=True)

    @_on_device(fitting=True)
    def _fit(self, X, y, sample_weight, *, classes, epochs: int, keep: bool, incremental: bool):
        first = not (keep and hasattr(self, "model_"))
        X, y = self._inputs(X, y, reset=first, needs_y=True)
        backend = self._backend(X)
        y_host = np.asarray(to_numpy_any(y)) if _is_device_array(y) else np.asarray(y)
        multilabel = _multilabel(y_host)
        if not multilabel:
            check_classification_targets(y_host)
        if not first and not incremental:
            self._same_classes(y_host, multilabel)
        known = self._known_classes(y, y_host, classes, backend, first, multilabel)
        weights = self._weights(y_host, sample_weight)
        head = self._head(len(known), multilabel)
        targets = y_host.astype(np.float64) if multilabel else head.targets(np.searchsorted(known, y_host))
        indicators = head.activation is not None  # an output link: squared errors on class indicators
        same_head = getattr(self, "_indicators_", None) == indicators
        if first or not self._reuse(X, head.outputs) or not same_head:
            self.model_ = self._build(X, head.outputs, head.activation, backend, self._dtype(X))
            first = True
        self._indicators_ = indicators  # how the fitted outputs read, whatever solver is set later
        self._multilabel_ = multilabel
        link = losses.get(head.loss).link
        self.out_activation_ = _sklearn_activation(link.name if link is not None else head.activation)
        weights = None if weights is None else backend.asarray(weights)
        self._train(X, backend.asarray(targets), lambda: y_host, head.loss, weights,
                    epochs=epochs, first=first, incremental=incremental)
        return self

    def _head(self, n_classes: int, multilabel: bool) -> Head:
        """The outputs and loss: one logistic output for two classes (or one), as MLPClassifier;
        a softmax over more; one logistic output per label. Levenberg–Marquardt fits squared
        errors on class indicators through sigmoid outputs (MATLAB's trainlm); every other
        solver cross-entropy on the logits. The head owns what each loss means for the outputs."""
        loss = optimizers.class_of(self.solver).entry_defaults.get("loss")
        if multilabel:
            chosen = loss or "bce"
            return Head(chosen, n_classes, None if losses.get(chosen).classification else "sigmoid", "real")
        return Head.for_task("classification", max(n_classes, 2), loss or ("bce" if n_classes <= 2 else "ce"))

    def _same_classes(self, y_host: np.ndarray, multilabel: bool) -> None:
        """scikit-learn's warm-start rule: the classes of the fit before."""
        known = np.asarray(to_numpy_any(self.classes_))
        given = np.arange(y_host.shape[1]) if multilabel else unique_labels(y_host)
        if set(given.tolist()) != set(known.tolist()):
            raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                             f"call to fit. Previously got {known}, `y` has {given}")

    def _known_classes(self, y: Any, y_host: np.ndarray, classes: Any, backend: Any,
                       first: bool, multilabel: bool) -> np.ndarray:
        """``classes_`` (set on a first fit: the given classes, else y's; the label indices of a
        multilabel ``y``), as a host array; refuses labels outside them."""
        if first:
            given = None if classes is None else np.asarray(to_numpy_any(classes))
            if multilabel:
                self.classes_ = np.arange(y_host.shape[1])
            else:
                found = unique_labels(y_host) if given is None else unique_labels(given)
                self.classes_ = (backend.xp.unique_values(y) if _is_device_array(y) and classes is None
                                 else found)
        known = np.asarray(to_numpy_any(self.classes_))
        if multilabel:
            if y_host.shape[1] != len(known):
                raise ValueError(f"y has {y_host.shape[1]} labels per sample but the classifier was fitted "
                                 f"with {len(known)}: pass as many, or call fit to start afresh")
        elif not np.all(np.isin(np.unique(y_host), known)):
            raise ValueError(f"y holds labels not in classes_ {known.tolist()}")
        return known

    def _stratify(self, y: np.ndarray) -> Any:
        """What scikit-learn stratifies the early-stopping split by: the binarized labels of a
        network with one output (two classes, or one), a column of booleans; nothing for more
        outputs (more classes, multilabel targets), as scikit-learn's ``n_outputs_ == 1`` rule."""
        known = np.asarray(to_numpy_any(self.classes_))
        if self._multilabel_ or len(known) > 2:
            return None
        return (np.searchsorted(known, y) == 1)[:, None]

    def _weights(self, y_host: np.ndarray, sample_weight: Any) -> np.ndarray | None:
        """Each sample's weight (N,) on the host: its class's (``class_weight``) times its own."""
        weights = None
        if self.class_weight is not None:
            weights = compute_sample_weight(self.class_weight, y_host)
        if sample_weight is not None:
            host_w = _host_weights(sample_weight, len(y_host))
            weights = host_w if weights is None else weights * host_w
        return weights

    def _scores(self, X):
        """Per-class scores of checked inputs: (N, n_classes), or (N, K) per label."""
        # sigmoid outputs (the class indicators) or probabilities
        P = self.model_.predict(X) if self._indicators_ else self.model_.predict_proba(X)
        if P.ndim == 1:  # one squared-error output: predict gives (N,)
            P = P[:, None]
        if P.shape[1] == 1 and not self.__dict__.get("_multilabel_"):  # one logistic output: P(second class)
            xp = np if is_numpy_array(P) else self.model_.xp
            P = xp.concat([1.0 - P, P], axis=1) if xp is not np else np.concatenate([1.0 - P, P], axis=1)
        return P

    @_on_device()
    def predict_proba(self, X):
        """Class probabilities (N, n_classes), or per label (N, K) for multilabel targets (not
        summing to 1), in X's namespace and on its device."""
        check_is_fitted(self)
        X, _ = self._inputs(X, reset=False)
        P = self._scores(X)
        if self._indicators_ and not self.__dict__.get("_multilabel_"):
            xp = np if is_numpy_array(P) else self.model_.xp
            P = xp.clip(P, 1e-12, None) if xp is np else xp.maximum(P, 1e-12)
            return P / xp.sum(P, axis=1, keepdims=True)
        return P

    @_on_device()
    def predict(self, X):
        """Class labels (N,), or 0/1 indicators (N, K) for multilabel targets, in X's namespace
        and on its device (NumPy for NumPy X)."""
        check_is_fitted(self)
        X, _ = self._inputs(X, reset=False)
        return self._predict_inputs(X)

    def _predict_inputs(self, X):
        """``predict`` of checked inputs."""
        P = self._scores(X)
        xp = np if is_numpy_array(P) else self.model_.xp
        if self.__dict__.get("_multilabel_"):
            return xp.astype(P > 0.5, xp.int64) if xp is not np else (P > 0.5).astype(np.int64)
        P = P[:, :int(self.classes_.shape[0])]  # one class: it is every prediction
        if is_numpy_array(P):
            return np.asarray(to_numpy_any(self.classes_))[np.argmax(P, axis=1)]
        if not _is_device_array(self.classes_) and np.asarray(self.classes_).dtype.kind in "USO":
            # labels as text cannot live on a device: NumPy labels, as scikit-learn does
            return np.asarray(self.classes_)[np.asarray(to_numpy_any(xp.argmax(P, axis=1)))]
        classes = self.classes_
        if not _is_device_array(classes):
            classes = self.model_.backend.asarray(classes)
        return xp.take(classes, xp.argmax(P, axis=1), axis=0)

    score = _Backprop.score

    @staticmethod
    def _metric(y, predicted, sample_weight):
        return accuracy_score(y, predicted, sample_weight=sample_weight)

    @_on_device()
    def predict_log_proba(self, X):
        P = self.predict_proba(X)
        xp = np if is_numpy_array(P) else self.model_.xp
        with warnings.catch_warnings():  # a probability of 0 has log -inf, as scikit-learn's MLP gives
            warnings.simplefilter("ignore", RuntimeWarning)
            return xp.log(P)


class BackpropRegressor(RegressorMixin, _Backprop):
    """A multi-layer perceptron regressor trained by hand-written backpropagation.

    A drop-in for scikit-learn's ``MLPRegressor``: parameters and fitted attributes as
    :class:`BackpropClassifier` (without ``class_weight``; early stopping watches R^2 on a
    split that is not stratified), and ``loss``: ``"squared_error"`` (a linear output) or
    ``"poisson"`` (the half Poisson deviance on an exponential output, for counts and
    rates). ``loss`` is keyword-only here (scikit-learn's first positional parameter), so
    ``BackpropRegressor((10,), "tanh")`` keeps meaning hidden sizes and activation.
    ``loss_curve_``, ``loss_`` and ``tol`` are in scikit-learn's units (half the squared
    error). ``solver="lm"`` is Levenberg–Marquardt, MATLAB's ``trainlm``.
    """

    _numeric_y = True

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, loss="squared_error", solver="adam",
                 alpha=1e-4, batch_size="auto", learning_rate="constant", learning_rate_init=1e-3,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 device=None, dtype=None, dropout=0.0, layers=None, input_shape=None):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
                         max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol,
                         verbose=verbose, warm_start=warm_start, momentum=momentum,
                         nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
                         device=device, dtype=dtype, dropout=dropout, layers=layers, input_shape=input_shape)
        self.loss = loss

    _parameter_constraints = {**_Backprop._parameter_constraints,
                              "loss": [StrOptions(set(SKLEARN_VALUES["loss"]))]}

    @property
    def _loss_scale(self) -> float:
        return SKLEARN_LOSS_UNITS[_translated("loss", self.loss)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y of shape (N, K) trains K outputs
        return tags

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (N, F), or (N, *shape) with ``layers``, and targets ``y`` (N,) or (N, K);
        returns self."""
        self._validate_params()
        return self._fit(X, y, sample_weight, epochs=self.max_iter, keep=self.warm_start, incremental=False)

    @available_if(_stochastic)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``X``, ``y`` (stochastic solvers)."""
        if not hasattr(self, "model_"):
            self._validate_params()
        return self._fit(X, y, sample_weight, epochs=1, keep=True, incremental=True)

    @_on_device(fitting=True)
    def _fit(self, X, y, sample_weight, *, epochs: int, keep: bool, incremental: bool):
        first = not (keep and hasattr(self, "model_"))
        X, y = self._inputs(X, y, reset=first, needs_y=True)
        backend = self._backend(X)
        self._outputs = 1 if y.ndim == 1 else int(y.shape[1])
        loss = _translated("loss", self.loss)
        link = losses.get(loss).link  # poisson reads log-means: an exp output
        if first or not self._reuse(X, self._outputs):
            output = None if link is None else link.name
            self.model_ = self._build(X, self._outputs, output, backend, self._dtype(X))
            self.out_activation_ = "identity" if link is None else _sklearn_activation(link.name)
            first = True
        weights = None if sample_weight is None else backend.asarray(_host_weights(sample_weight, X.shape[0]))
        self._train(X, backend.asarray(y, self._dtype(X)), lambda: np.asarray(to_numpy_any(y)), loss, weights,
                    epochs=epochs, first=first, incremental=incremental)
        return self

    score = _Backprop.score

    @staticmethod
    def _metric(y, predicted, sample_weight):
        return r2_score(y, predicted, sample_weight=sample_weight)

    @_on_device()
    def predict(self, X):
        """Predictions (N,) or (N, K), in X's namespace and on its device."""
        check_is_fitted(self)
        X, _ = self._inputs(X, reset=False)
        return self._predict_inputs(X)

    def _predict_inputs(self, X):
        """``predict`` of checked inputs."""
        return self.model_.predict(X)
