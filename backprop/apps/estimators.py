"""scikit-learn estimators: :class:`BackpropClassifier` and :class:`BackpropRegressor`.

Thin classes over the library's ``fit``: the same hand-written network, optimizers
(second-order included) and devices as ``backprop train``. They follow scikit-learn's
conventions (``__init__`` stores parameters, ``fit`` returns ``self``, fitted
attributes end in ``_``, ``validate_data`` for input checks) and its parameter names
where ``MLPClassifier`` has a counterpart.

Everything follows X: NumPy input trains on the CPU (or on ``device=`` when given,
with NumPy outputs), and CuPy, torch or array-api-strict input trains on that array's
device and returns arrays of that library there; ``y`` and sample weights are moved
to X's device. A pickled estimator holds host copies of its arrays and loads on a
machine without a GPU.
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import is_numpy_array
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d, validate_data

from backends import backend_for, get_backend, to_numpy_any

from .. import activations, optimizers
from ..edges.heads import Head
from ..model import Sequential, mlp
from ..settings import SETTINGS
from ..targets import as_inputs
from ..training import EarlyStopping


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


SKLEARN_NAMES: dict[str, str] = {
    "hidden_layer_sizes": "hidden", "activation": "activation", "solver": "optimizer",
    "alpha": "weight_decay", "batch_size": "batch_size", "learning_rate_init": "lr", "max_iter": "epochs",
    "validation_fraction": "val_split", "n_iter_no_change": "early_stopping", "random_state": "seed",
    "dtype": "dtype",
}
"""scikit-learn's parameter names (``MLPClassifier``'s) and the library setting each one gives
(:data:`backprop.settings.SETTINGS`): the one place the two vocabularies meet. How a value
translates is the estimator's: ``alpha`` is a penalty per batch sample count (the decay divides
it by the batch), ``batch_size="auto"`` is min(200, N), ``max_iter`` counts this fit's epochs
(a run's ``epochs`` count the total), ``n_iter_no_change`` is the patience of early stopping
(with ``early_stopping=True``) or of scikit-learn's plateau rule (without), ``random_state``
draws the seed. ``tol``, ``early_stopping``, ``warm_start``, ``device`` and ``class_weight``
have no run setting."""


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
        "activation": [_Registered(lambda: activations.names(hidden=True, aliases=True))],
        "solver": [_Registered(SETTINGS["optimizer"].choices)],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "device": [None, str],
        "dtype": [None, StrOptions(set(SETTINGS["dtype"].choices()))],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=1e-4,
                 batch_size="auto", learning_rate_init=1e-3, max_iter=200, tol=1e-4, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, random_state=None, warm_start=False,
                 device=None, dtype=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.warm_start = warm_start
        self.device = device
        self.dtype = dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags

    def _settings(self) -> dict[str, Any]:
        """This estimator's parameters under the library's names (:data:`SKLEARN_NAMES`), as given."""
        return {name: getattr(self, param) for param, name in SKLEARN_NAMES.items()}

    # -- input -------------------------------------------------------------------------
    def _inputs(self, X: Any, y: Any = None, *, reset: bool, needs_y: bool = False) -> tuple[Any, Any]:
        """``X`` (and ``y``) checked the way scikit-learn checks them; device arrays stay
        on their device (checked there, with the same messages)."""
        if y is None and needs_y:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        if _is_device_array(X):
            backend = backend_for(X)
            if reset:
                self.n_features_in_ = int(X.shape[1]) if X.ndim == 2 else None
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
            width = X.shape[1] if X.ndim == 2 else -1
            if not reset and width != self.n_features_in_:
                raise ValueError(f"X has {width} features, but {type(self).__name__} is expecting "
                                 f"{self.n_features_in_} features as input.")
            X = as_inputs(backend, X.dtype if self._float(X.dtype) else "float64", X, width)
            return X, None if y is None else self._device_targets(backend, X, y)
        kwargs = dict(dtype=[np.float64, np.float32], reset=reset)
        if y is None:
            return validate_data(self, X, **kwargs), None
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=self._numeric_y, **kwargs)
        if not self._numeric_y:
            y = column_or_1d(y, warn=True)  # a column of labels is accepted, with a warning
        return X, y

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
    def _optimizer(self, batch: float) -> optimizers.Optimizer:
        # scikit-learn's penalty is alpha/2 |W|^2 over each batch's sample count (weighted:
        # its weight sum, so that a weight of 2 is a repeated sample here too).
        # Our squared error is the mean of (z - t)^2, scikit-learn's half of it: the same
        # balance between data and penalty takes twice the decay.
        s = self._settings()
        # all-zero weights (batch 0): fit says so
        decay = self._loss_scale * s["weight_decay"] / batch if batch > 0 else 0.0
        cls = optimizers.class_of(s["optimizer"])
        kwargs: dict[str, Any] = {"weight_decay": decay}
        if "tol" in optimizers.settings(s["optimizer"]):  # a tolerance of its own (lbfgs): scikit-learn's tol
            kwargs["tol"] = self.tol * self._loss_scale
        return optimizers.get(s["optimizer"], s["lr"] if cls.has_lr else None, **kwargs)

    def _batch(self, n: int) -> int:
        s = self._settings()
        if _full_batch(s["optimizer"]):
            return n
        return min(200, n) if s["batch_size"] == "auto" else min(s["batch_size"], n)

    def _build(self, X: Any, n_outputs: int, output: str | None, backend: Any, dtype: str) -> Sequential:
        s = self._settings()
        seed = int(check_random_state(s["seed"]).randint(np.iinfo(np.int32).max))
        hidden = [s["hidden"]] if isinstance(s["hidden"], numbers.Integral) else list(s["hidden"])
        # Glorot-uniform weights for every activation, as MLPClassifier starts (He before a
        # ReLU, our own default, overshoots on unscaled inputs that scikit-learn users pass).
        return mlp([X.shape[1], *hidden, n_outputs], activation=s["activation"], output=output,
                   init="glorot_uniform", device=backend, dtype=dtype, seed=seed)

    def _train(self, X: Any, T: Any, loss: str, sample_weight: Any, *, epochs: int, first: bool,
               incremental: bool = False) -> None:
        """``fit`` on the model: epochs, batches, the stopping rules, the fitted attributes."""
        model = self.model_
        settings, callbacks = self._fit_settings(X, loss, sample_weight, epochs=epochs,
                                                 new_optimizer=first or not incremental)
        before = model.epoch
        history = model.fit(X, T, callbacks=callbacks, **settings)
        self._record(history, X, T, loss, trained=model.epoch - before, first=first)
        stopped = (history.stopped_early or history.converged is not None
                   or any(getattr(c, "stopped", False) for c in callbacks))
        if epochs > 1 and not stopped:
            warnings.warn(f"{type(self).__name__}: the {self.solver} solver reached max_iter="
                          f"{self.max_iter} before the loss stopped improving; raise max_iter",
                          ConvergenceWarning, stacklevel=3)

    def _fit_settings(self, X: Any, loss: str, sample_weight: Any, *, epochs: int,
                      new_optimizer: bool) -> tuple[dict[str, Any], list]:
        """``model.fit``'s keywords for this call (``epochs``: this call's), and the plateau rule
        as a callback where scikit-learn stops on the training loss."""
        s, model = self._settings(), self.model_
        full, batch = _full_batch(s["optimizer"]), self._batch(X.shape[0])
        # class_targets: LM's squared error on class indicators reports accuracy too, as the others do
        settings: dict[str, Any] = dict(loss=loss, epochs=epochs, batch_size=batch,
                                        sample_weight=sample_weight,
                                        class_targets=isinstance(self, ClassifierMixin))
        # A new optimizer on every fit (warm_start keeps the weights, as scikit-learn); partial_fit
        # continues its optimizer.
        if new_optimizer or full:
            count = batch
            if full and sample_weight is not None:
                count = float(to_numpy_any(model.xp.sum(sample_weight)))
            settings["optimizer"] = self._optimizer(count)
        if self.early_stopping:
            watch = EarlyStopping(s["early_stopping"], min_delta=self.tol * self._loss_scale)
            settings.update(validation_split=s["val_split"], early_stopping=watch)
            return settings, []
        return settings, [] if full else [_Plateau(self.tol, s["early_stopping"], 1.0 / self._loss_scale)]

    def _record(self, history: Any, X: Any, T: Any, loss: str, *, trained: int, first: bool) -> None:
        """The fitted attributes scikit-learn's MLP has: n_iter_, the loss curve, the validation scores."""
        records = history.records
        self.n_iter_ = (getattr(self, "n_iter_", 0) if not first else 0) + trained
        self.loss_curve_ = [r["train_loss"] for r in records]
        # An L-BFGS fit can converge before its first iteration: then the loss where it stands.
        self.loss_ = self.loss_curve_[-1] if records else self.model_.evaluate(X, T, loss=loss)["loss"]
        if records and "val_loss" in records[-1]:
            key = "val_accuracy" if "val_accuracy" in records[-1] else "val_loss"
            sign = 1.0 if key == "val_accuracy" else -1.0
            self.validation_scores_ = [sign * r[key] for r in records if key in r]
            self.best_validation_score_ = max(self.validation_scores_)
            self.best_loss_ = None
        else:
            self.best_loss_ = min(self.loss_curve_, default=self.loss_)
            self.validation_scores_ = self.best_validation_score_ = None

    def _reuse(self, n_inputs: int, n_outputs: int) -> bool:
        model = getattr(self, "model_", None)
        return model is not None and model.n_inputs == n_inputs and model.n_outputs == n_outputs

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
        super().__setstate__(state) if hasattr(super(), "__setstate__") else self.__dict__.update(state)
        model = self.__dict__.get("model_")
        if model is not None and model.backend.name != "numpy":
            with model.backend.activate():
                for key in moved:
                    setattr(self, key, model.backend.asarray(getattr(self, key)))


class _Plateau:
    """scikit-learn's stopping rule without validation: the training loss has not
    improved by more than ``tol`` for ``patience`` epochs in a row."""

    def __init__(self, tol: float, patience: int, scale: float = 1.0) -> None:
        self.tol, self.patience, self.best, self.waited, self.stopped = tol, patience, np.inf, 0, False
        self.scale = scale  # our loss to scikit-learn's units, where tol is meant

    def __call__(self, record: dict, model: Any) -> bool:
        loss = record["train_loss"] * self.scale
        self.waited = self.waited + 1 if loss > self.best - self.tol else 0
        self.best = min(self.best, loss)
        self.stopped = self.waited >= self.patience
        return self.stopped


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

    Parameters (``MLPClassifier``'s names and defaults where it has them)
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
    activation : str, default "relu"
        Any hidden activation of :data:`backprop.activations.HIDDEN` (a registered one included).
    solver : str, default "adam"
        Any optimizer name of :func:`backprop.optimizers.names` (a registered one included).
        ``lbfgs``, ``newton`` and ``lm`` train on the full batch (``lm`` with squared error
        on the class indicators, as MATLAB's ``trainlm``).
    alpha : float, default 1e-4
        L2 penalty, as in scikit-learn: alpha/2 |W|^2 per batch sample count.
    batch_size : int or "auto" (min(200, n_samples))
    learning_rate_init : float, default 1e-3
    max_iter : int, default 200
        Epochs (iterations for the full-batch solvers).
    tol, n_iter_no_change : stop when the training loss (or with ``early_stopping`` the
        validation loss) has not improved by ``tol`` for ``n_iter_no_change`` epochs.
    early_stopping, validation_fraction : hold out a fraction for validation; the best
        weights are kept.
    random_state : int, RandomState or None
    warm_start : bool
    device : str or None
        None: the device of X (NumPy: the CPU). "cuda", "cuda:1", "cpu", "torch"...
    dtype : "float32", "float64" or None (X's floating dtype, float64 otherwise)

    Attributes
    ----------
    classes_, n_features_in_, feature_names_in_, model_ (a :class:`backprop.Sequential`),
    n_iter_, loss_, loss_curve_, best_loss_, validation_scores_ (validation accuracy per
    epoch with ``early_stopping``), best_validation_score_.
    """

    _numeric_y = False
    _loss_scale = 1.0  # cross-entropy: the same units as scikit-learn's log-loss

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=1e-4,
                 batch_size="auto", learning_rate_init=1e-3, max_iter=200, tol=1e-4, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, random_state=None, warm_start=False,
                 device=None, dtype=None, class_weight=None):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate_init=learning_rate_init, max_iter=max_iter, tol=tol,
                         early_stopping=early_stopping, validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, random_state=random_state, warm_start=warm_start,
                         device=device, dtype=dtype)
        self.class_weight = class_weight

    _parameter_constraints = {**_Backprop._parameter_constraints,
                              "class_weight": [None, dict, StrOptions({"balanced"})]}

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (N, F) and class labels ``y`` (N,); returns self."""
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
        check_classification_targets(y_host)
        known = self._known_classes(y, y_host, classes, backend, first)
        index = np.searchsorted(known, y_host)
        weights = self._weights(y_host, sample_weight)
        # Levenberg–Marquardt fits squared errors: sigmoid outputs against class indicators,
        # as MATLAB's trainlm; every other solver cross-entropy on the logits. Two classes: one
        # logistic output, as MLPClassifier. The head owns what each loss means for the outputs.
        loss = optimizers.class_of(self.solver).entry_defaults.get("loss") or ("bce" if len(known) == 2
                                                                                else "ce")
        head = Head.for_task("classification", len(known), loss)
        indicators = head.activation is not None  # an output link: squared errors on class indicators
        same_head = getattr(self, "_indicators_", None) == indicators
        if first or not self._reuse(X.shape[1], head.outputs) or not same_head:
            self.model_ = self._build(X, head.outputs, head.activation, backend, self._dtype(X))
            first = True
        self._indicators_ = indicators  # how the fitted outputs read, whatever solver is set later
        weights = None if weights is None else backend.asarray(weights)
        self._train(X, backend.asarray(head.targets(index)), head.loss, weights,
                    epochs=epochs, first=first, incremental=incremental)
        return self

    def _known_classes(self, y: Any, y_host: np.ndarray, classes: Any, backend: Any,
                       first: bool) -> np.ndarray:
        """``classes_`` (set on a first fit: the given classes, else y's), as a host array; refuses
        one class, and labels outside them."""
        if first:
            given = None if classes is None else np.asarray(to_numpy_any(classes))
            found = unique_labels(y_host) if given is None else unique_labels(given)
            self.classes_ = backend.xp.unique_values(y) if _is_device_array(y) and classes is None else found
        known = np.asarray(to_numpy_any(self.classes_))
        if len(known) < 2:
            raise ValueError(f"Classifier can't train when only one class is present: y holds only "
                             f"{known.tolist()}.")
        if not np.all(np.isin(np.unique(y_host), known)):
            raise ValueError(f"y holds labels not in classes_ {known.tolist()}")
        return known

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
        check_is_fitted(self)
        X, _ = self._inputs(X, reset=False)
        # sigmoid outputs (the class indicators) or probabilities
        P = self.model_.predict(X) if self._indicators_ else self.model_.predict_proba(X)
        if P.ndim == 1:  # one squared-error output: predict gives (N,)
            P = P[:, None]
        if P.shape[1] == 1:  # one logistic output: P(second class)
            xp = np if is_numpy_array(P) else self.model_.xp
            P = xp.concat([1.0 - P, P], axis=1) if xp is not np else np.concatenate([1.0 - P, P], axis=1)
        return P

    @_on_device()
    def predict_proba(self, X):
        """Class probabilities (N, n_classes), in X's namespace and on its device."""
        P = self._scores(X)
        if self._indicators_:
            xp = np if is_numpy_array(P) else self.model_.xp
            P = xp.clip(P, 1e-12, None) if xp is np else xp.maximum(P, 1e-12)
            return P / xp.sum(P, axis=1, keepdims=True)
        return P

    @_on_device()
    def predict(self, X):
        """Class labels (N,), in X's namespace and on its device (NumPy for NumPy X)."""
        P = self._scores(X)
        if is_numpy_array(P):
            return np.asarray(to_numpy_any(self.classes_))[np.argmax(P, axis=1)]
        if not _is_device_array(self.classes_) and np.asarray(self.classes_).dtype.kind in "USO":
            # labels as text cannot live on a device: NumPy labels, as scikit-learn does
            return np.asarray(self.classes_)[np.asarray(to_numpy_any(self.model_.xp.argmax(P, axis=1)))]
        xp = self.model_.xp
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

    Parameters as :class:`BackpropClassifier` (without ``class_weight``); squared error,
    a linear output. ``solver="lm"`` is Levenberg–Marquardt, MATLAB's ``trainlm``.
    """

    _numeric_y = True
    _loss_scale = 2.0  # mean (z - t)^2, where scikit-learn's squared loss is half that

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y of shape (N, K) trains K outputs
        return tags

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (N, F) and targets ``y`` (N,) or (N, K); returns self."""
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
        if first or not self._reuse(X.shape[1], self._outputs):
            self.model_ = self._build(X, self._outputs, None, backend, self._dtype(X))
            first = True
        weights = None if sample_weight is None else backend.asarray(_host_weights(sample_weight, X.shape[0]))
        self._train(X, backend.asarray(y, self._dtype(X)), "mse", weights, epochs=epochs, first=first,
                    incremental=incremental)
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
        return self.model_.predict(X)
