"""Losses: ``forward(Z, T) -> (loss, dZ)``, and everything that depends on which loss it is.

``loss`` stays a 0-d array on the device: turning it into a Python float is a
device synchronisation, so the training loop does that only when it reports.

Cross-entropy losses take *logits* ``Z`` and are fused with their output link
(softmax or sigmoid): the fused gradient is simply ``(p - T) / N``, and the loss
goes through log-sum-exp / softplus, so neither overflows nor takes log(0) the way
``log(softmax(Z))`` does once a probability underflows.

A loss also owns the rules that differ between tasks, so that no other module
compares loss names: how targets are encoded (:meth:`Loss.targets`), how right
predictions are counted (:meth:`Loss.correct`), how outputs become probabilities
and predictions, and how batch losses add up to an epoch's (``reduction``).
"""

from __future__ import annotations

from typing import Any

from . import workspace
from ._typing import Array
from .activations import Activation, Exp, Sigmoid, Softmax, log_softmax, sigmoid, softmax
from .errors import DataError
from .namespace import device_of, namespace_of
from .registry import Registry


class Loss:
    """Base class: a squared-error-like loss on real-valued targets.

    Attributes
    ----------
    name : str
    link : type or None
        The output activation this loss is fused with: a model ending in that
        layer trains on the logits before it.
    task : str
        ``"regression"``, ``"binary"`` (independent yes/no labels per output) or
        ``"multiclass"`` (one class per sample).
    reduction : str
        ``"mean"`` (per sample) or ``"sum"``: how batch losses combine into an epoch's.
    squared_residuals : bool
        The loss is a scaled sum of squared output residuals (Levenberg–Marquardt's kind).
    centred_targets : bool
        Real targets may be shifted to mean 0 when a run standardizes them; False where the
        targets must keep their sign (counts for ``poisson``: only scaled).
    """

    name = "?"
    link: type[Activation] | None = None
    task = "regression"
    reduction = "mean"
    squared_residuals = False  # the loss is a scaled sum of (z - t)^2: what Levenberg–Marquardt needs
    centred_targets = True

    @property
    def classification(self) -> bool:
        """Targets are class labels (accuracy is reported)."""
        return self.task != "regression"

    def forward(self, Z: Array, T: Array, S: Array | None = None) -> tuple[Array, Array]:
        """Loss of outputs ``Z`` (N, K) against targets ``T`` (N, K); returns ``(loss, dL/dZ)``.

        ``S`` (N,): sample weights, scaled by the caller to mean 1 over the whole data, so
        that a batch's loss is the mean of S_n l_n and an epoch's the weighted mean.
        """
        raise NotImplementedError

    def __call__(self, Z: Array, T: Array, S: Array | None = None) -> Array:
        return self.forward(Z, T, S)[0]

    # -- targets ---------------------------------------------------------------
    def targets(self, xp: Any, dtype: Any, y: Array, n_outputs: int,
                what: str = "y") -> tuple[Array, Array | None]:
        """Device targets ``y`` (N,) or (N, K), already checked for rows and NaN, as the loss wants them.

        Returns
        -------
        T : array (N, n_outputs) in ``dtype``
            What :meth:`forward` compares the outputs with.
        labels : int64 array (N,) or None
            Class indices for counting right predictions (multiclass only).
        """
        T = xp.astype(y, dtype)
        if T.ndim == 1:
            T = xp.reshape(T, (T.shape[0], 1))
        if T.ndim != 2 or T.shape[1] != n_outputs:
            n = y.shape[0]
            raise DataError(f"{what} has shape {tuple(y.shape)} but the model has {n_outputs} outputs: "
                            f"give ({n},) or ({n}, {n_outputs})")
        return T, None

    # -- what outputs mean -----------------------------------------------------
    def correct(self, xp: Any, Z: Array, T: Array, labels: Array | None) -> Array | None:
        """Right predictions in a batch as a 0-d device array (None: not a classifier)."""
        return None

    def labels_per_sample(self, T: Array) -> int:
        """How many labels each sample has, for accuracy's denominator."""
        return 1

    def probabilities(self, xp: Any, Z: Array) -> Array:
        """What the model's outputs ``Z`` (N, K) mean: probabilities for classifiers."""
        return Z

    def predict(self, xp: Any, Z: Array) -> Array:
        """Predictions from outputs ``Z`` (N, K): the outputs themselves for regression."""
        return Z

    def curvature(self, xp: Any, Z: Array, T: Array, RZ: Array, S: Array | None = None) -> Array:
        """The loss's Hessian in ``Z`` applied to directions ``RZ`` (..., N, K): R{dL/dZ}."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class MeanSquaredError(Loss):
    """L = mean over samples and outputs of (z - t)^2, as PyTorch's MSELoss and Keras.

    The textbook's E = 1/2 * sum (z - t)^2 is :class:`SquaredError`; for N samples
    and K outputs, MSE = 2 E / (N K).
    """

    name = "mse"
    squared_residuals = True

    def forward(self, Z: Array, T: Array, S: Array | None = None) -> tuple[Array, Array]:
        xp, into, shape = namespace_of(Z), workspace.ops(Z), tuple(Z.shape)
        D = into.subtract(Z, T, out=workspace.take(self, "D", shape, Z))
        Dw = D if S is None else into.multiply(D, S[:, None], out=workspace.take(self, "Dw", shape, Z))
        scale = 2.0 / (Z.shape[0] * Z.shape[1])
        # sum * (1/count), not mean: NumPy's mean is a Python-level wrapper that costs
        # twice what sum does, a visible share of a small network's step.
        loss = xp.sum(into.multiply(D, Dw, out=workspace.take(self, "D2", shape, Z))) * (0.5 * scale)
        return loss, into.multiply(Dw, scale, out=workspace.take(self, "dZ", shape, Z))

    def curvature(self, xp: Any, Z: Array, T: Array, RZ: Array, S: Array | None = None) -> Array:
        return _weigh(RZ, S) * (2.0 / (Z.shape[0] * Z.shape[1]))


class SquaredError(Loss):
    """The textbook's E = 1/2 * sum over samples and outputs of (z - t)^2; dE/dz = z - t.

    Summed, not averaged: the gradient grows with the batch, so a learning rate
    tuned for full-batch training on N samples is N times too large for batches of 1.
    """

    name = "sse"
    reduction = "sum"
    squared_residuals = True

    def forward(self, Z: Array, T: Array, S: Array | None = None) -> tuple[Array, Array]:
        xp = namespace_of(Z)
        D = Z - T
        Dw = _weigh(D, S)
        return 0.5 * xp.sum(D * Dw), Dw

    def curvature(self, xp: Any, Z: Array, T: Array, RZ: Array, S: Array | None = None) -> Array:
        return _weigh(RZ, S)


class BinaryCrossEntropy(Loss):
    """Sigmoid + binary cross-entropy on logits, mean over samples and outputs.

    L = mean(softplus(z) - t z)  (= -t log p - (1 - t) log(1 - p), p = sigmoid(z))
    dL/dz = (sigmoid(z) - t) / (N K).  Targets in [0, 1]; several outputs are
    independent yes/no labels.
    """

    name = "bce"
    link = Sigmoid
    task = "binary"

    def forward(self, Z: Array, T: Array, S: Array | None = None) -> tuple[Array, Array]:
        xp = namespace_of(Z)
        # softplus(z) and sigmoid(z) both from E = exp(-|z|) (never overflows): one exp, not two.
        E = xp.exp(-xp.abs(Z))
        inv = 1.0 / (Z.shape[0] * Z.shape[1])
        loss = xp.sum(_weigh(xp.maximum(Z, 0.0) + xp.log1p(E) - T * Z, S)) * inv  # the mean, as in MSE
        P = xp.where(Z >= 0, 1.0, E) / (1.0 + E)
        return loss, _weigh(P - T, S) * inv

    def targets(self, xp: Any, dtype: Any, y: Array, n_outputs: int,
                what: str = "y") -> tuple[Array, Array | None]:
        T, _ = super().targets(xp, dtype, y, n_outputs, what)
        if not bool(xp.all((T >= 0) & (T <= 1))):
            raise DataError(f"{what} must hold labels or probabilities in [0, 1] for loss 'bce': for "
                            "real-valued targets pass loss='mse'")
        return T, None

    def curvature(self, xp: Any, Z: Array, T: Array, RZ: Array, S: Array | None = None) -> Array:
        P = sigmoid(xp, Z)
        return _weigh(RZ * (P * (1.0 - P)), S) / (Z.shape[0] * Z.shape[1])

    def correct(self, xp: Any, Z: Array, T: Array, labels: Array | None) -> Array:
        # sigmoid(z) > 1/2 exactly when z > 0: no exp needed to count.
        return xp.count_nonzero((Z > 0) == (T > 0.5))

    def labels_per_sample(self, T: Array) -> int:
        return T.shape[1]  # every output is a yes/no label of its own

    def probabilities(self, xp: Any, Z: Array) -> Array:
        return sigmoid(xp, Z)

    def predict(self, xp: Any, Z: Array) -> Array:
        return xp.astype(Z > 0, xp.int64)


class CrossEntropy(Loss):
    """Softmax + categorical cross-entropy on logits, mean over samples.

    L = -mean_n sum_k t_nk log softmax(z_n)_k; dL/dz = (softmax(z) - t) / N.
    Targets are class labels 0..K-1, one-hot rows, or any probability rows.
    """

    name = "ce"
    link = Softmax
    task = "multiclass"

    def forward(self, Z: Array, T: Array, S: Array | None = None) -> tuple[Array, Array]:
        xp, into, n, shape = namespace_of(Z), workspace.ops(Z), Z.shape[0], tuple(Z.shape)
        logp = log_softmax(xp, Z, owner=self)  # in the step's buffers, as the rest (see workspace)
        TlogP = into.multiply(T, logp, out=workspace.take(self, "TlogP", shape, Z))
        loss = -xp.sum(_weigh(TlogP, S, into=True)) / n
        dZ = into.exp(logp, out=workspace.take(self, "dZ", shape, Z))
        dZ -= T
        dZ = _weigh(dZ, S, into=True)
        dZ *= 1.0 / n
        return loss, dZ

    def targets(self, xp: Any, dtype: Any, y: Array, n_outputs: int,
                what: str = "y") -> tuple[Array, Array | None]:
        if n_outputs < 2:
            raise DataError("cross-entropy needs one output per class (at least 2); for two classes with "
                            "one output use loss='bce'")
        if y.ndim == 1:
            labels = y if xp.isdtype(y.dtype, "integral") else xp.astype(y, xp.int64)
            if xp.isdtype(y.dtype, "real floating") and not bool(xp.all(xp.astype(labels, y.dtype) == y)):
                raise DataError(f"{what} holds non-integer values: cross-entropy needs class labels 0..K-1")
            low, high = int(xp.min(labels)), int(xp.max(labels))
            if low < 0 or high >= n_outputs:
                raise DataError(f"{what} holds class labels {low}..{high} but the model has {n_outputs} "
                                f"outputs: labels must be 0..{n_outputs - 1}")
            labels = xp.astype(labels, xp.int64)
            classes = xp.arange(n_outputs, device=device_of(y))
            return xp.astype(labels[:, None] == classes, dtype), labels
        T, _ = super().targets(xp, dtype, y, n_outputs, what)
        if not bool(xp.all((T >= 0) & (T <= 1))):
            raise DataError(f"{what} must hold labels or probabilities in [0, 1] for loss 'ce'")
        if not bool(xp.all(xp.abs(xp.sum(T, axis=1) - 1.0) < 1e-3)):
            # The fused gradient (softmax - T) / N holds only for rows that sum to 1.
            raise DataError(f"the rows of {what} must sum to 1 for cross-entropy (one-hot or probabilities); "
                            "for several yes/no labels per sample use loss='bce'")
        return T, xp.argmax(T, axis=1)

    def curvature(self, xp: Any, Z: Array, T: Array, RZ: Array, S: Array | None = None) -> Array:
        P = softmax(xp, Z)  # the softmax Jacobian diag(p) - p p^T, per row, over N
        return _weigh(P * RZ - P * xp.sum(P * RZ, axis=-1, keepdims=True), S) / Z.shape[0]

    def correct(self, xp: Any, Z: Array, T: Array, labels: Array | None) -> Array:
        return xp.count_nonzero(xp.argmax(Z, axis=1) == labels)

    def probabilities(self, xp: Any, Z: Array) -> Array:
        return softmax(xp, Z)

    def predict(self, xp: Any, Z: Array) -> Array:
        return xp.argmax(Z, axis=1)


class PoissonDeviance(Loss):
    """Exp + half the Poisson deviance on the log-mean ``z``, for counts and rates: mean over
    samples, summed over outputs, as scikit-learn's ``MLPRegressor(loss="poisson")`` reports
    its ``loss_`` (``sklearn.neural_network._base.poisson_loss``), constant included.

    L = (1/N) sum_nk [exp(z) - t z + t log t - t]  (t log t = 0 at t = 0; mean 0 at a perfect fit)
    dL/dz = (exp(z) - t) / N;  d2L/dz2 = exp(z) / N.
    Without the constant t log t - t, per output this is PyTorch's ``PoissonNLLLoss(log_input=True)``
    and scikit-learn's ``HalfPoissonLoss``. Targets are counts or rates >= 0. Large |z| is
    exact: exp(z) is 0 well below the data's z and +inf only beyond log of the float maximum
    (709.78 in float64), where the loss is +inf, never NaN, and a fit rolls back.
    """

    name = "poisson"
    link = Exp
    centred_targets = False  # counts: scaled by a standardization, never shifted below zero

    def forward(self, Z: Array, T: Array, S: Array | None = None) -> tuple[Array, Array]:
        xp = namespace_of(Z)
        mean = xp.exp(Z)
        inv = 1.0 / Z.shape[0]
        # t (log t - z) - t + exp(z): scikit-learn's xlogy(t, t / mu) - t + mu, term by term
        positive = T > 0
        log_t = xp.log(xp.where(positive, T, 1.0))
        per_unit = xp.where(positive, T * (log_t - Z), 0.0) - T + mean
        return xp.sum(_weigh(per_unit, S)) * inv, _weigh(mean - T, S) * inv

    def targets(self, xp: Any, dtype: Any, y: Array, n_outputs: int,
                what: str = "y") -> tuple[Array, Array | None]:
        T, _ = super().targets(xp, dtype, y, n_outputs, what)
        if not bool(xp.all(T >= 0)):
            raise DataError(f"{what} holds negative values: the Poisson loss needs counts or rates >= 0 "
                            "(unstandardized targets), or use loss='mse'")
        return T, None

    def curvature(self, xp: Any, Z: Array, T: Array, RZ: Array, S: Array | None = None) -> Array:
        return _weigh(RZ * xp.exp(Z), S) / Z.shape[0]

    def predict(self, xp: Any, Z: Array) -> Array:
        return xp.exp(Z)  # the mean, from the log-mean the loss reads


def _weigh(A: Array, S: Array | None, *, into: bool = False) -> Array:
    """Rows of ``A`` (..., N, K) times the sample weights ``S`` (N,); ``A`` itself without.
    ``into``: multiply ``A`` in place (it is a buffer of the caller's)."""
    if S is None:
        return A
    if into:
        A *= S[:, None]
        return A
    return A * S[:, None]


REGISTRY = Registry("loss", Loss, "backprop.losses.register", reserved=("auto",))


def register(name: str, cls: type[Loss], *, aliases: tuple[str, ...] = ()) -> None:
    """Make ``cls`` (a subclass of :class:`Loss`) the loss called ``name`` everywhere: :func:`get`,
    ``fit(loss=name)``, ``backprop train --loss``, the gradient checker and checkpoints (saved
    by the class's ``name``). Its ``task``, ``link`` and ``squared_residuals`` say what it is
    for. ``aliases``: other names :func:`get` accepts. A class that does not set its own
    ``name`` gets ``name``."""
    REGISTRY.register(name, cls, aliases=aliases)


def names(**capabilities: Any) -> tuple[str, ...]:
    """The registered names, in registration order, of the losses with these capabilities
    (``names(task="multiclass")``; see :class:`Loss`)."""
    return REGISTRY.names(**capabilities)


def classes() -> dict[str, type[Loss]]:
    """Every registered class by its own ``name``: what a checkpoint saves and loads by."""
    return REGISTRY.classes()


def class_of(name: str) -> type[Loss]:
    """The class of the loss called ``name`` (or an alias, or a class's own saved name)."""
    return REGISTRY.class_of(name)


def __getattr__(attr: str) -> Any:
    if attr == "LOSSES":  # computed: every name and alias get() takes, with its class
        return REGISTRY.table()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


register("mse", MeanSquaredError, aliases=("mean_squared_error",))
register("sse", SquaredError, aliases=("squared_error",))
register("bce", BinaryCrossEntropy, aliases=("binary_cross_entropy",))
register("ce", CrossEntropy, aliases=("cross_entropy", "categorical_cross_entropy"))
register("poisson", PoissonDeviance, aliases=("poisson_deviance",))


def get(loss: str | Loss) -> Loss:
    """A loss from its name (see :func:`names`) or the loss itself."""
    if isinstance(loss, Loss):
        return loss
    return class_of(loss)()


def for_output(last_layer: Any) -> Loss:
    """The loss a model ending in ``last_layer`` is read with before any fit: the first
    registered loss fused with that layer (cross-entropy after a softmax, BCE after a sigmoid,
    Poisson after an exp), MSE otherwise."""
    for cls in classes().values():
        if cls.link is not None and isinstance(last_layer, cls.link):
            return cls()
    return MeanSquaredError()


def auto(xp: Any, y: Array, n_outputs: int, last_layer: Any) -> Loss:
    """``loss="auto"``: MSE for real-valued targets; for integer labels, BCE when they are
    yes/no (one output, a sigmoid output layer, or an (N, K) label matrix) and
    cross-entropy otherwise."""
    if not xp.isdtype(y.dtype, ("integral", "bool")):
        return MeanSquaredError()
    multilabel = y.ndim == 2 and y.shape[1] > 1
    if n_outputs == 1 or isinstance(last_layer, Sigmoid) or multilabel:
        return BinaryCrossEntropy()
    return CrossEntropy()
