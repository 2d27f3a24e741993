"""Losses: ``forward(Z, T) -> (loss, dZ)``.

``loss`` stays a 0-d array on the device: turning it into a Python float is a
device synchronisation, so the training loop does that only when it reports.

Cross-entropy losses take *logits* ``Z`` and are fused with their output link
(softmax or sigmoid): the fused gradient is simply ``(p - T) / N``, and the loss
goes through log-sum-exp / softplus, so neither overflows nor takes log(0) the way
``log(softmax(Z))`` does once a probability underflows.
"""

from __future__ import annotations

from typing import Any

from .activations import Activation, Sigmoid, Softmax, log_softmax, sigmoid, softmax
from .namespace import namespace_of

Array = Any


class Loss:
    """Base class.

    Attributes
    ----------
    name : str
    link : type or None
        The output activation this loss is fused with: a model ending in that
        layer trains on the logits before it.
    classification : bool
        Targets are class labels (accuracy is reported).
    reduction : str
        ``"mean"`` (per sample) or ``"sum"``: how batch losses combine into an epoch's.
    """

    name = "?"
    link: type[Activation] | None = None
    classification = False
    reduction = "mean"

    def forward(self, Z: Array, T: Array) -> tuple[Array, Array]:
        """Loss of outputs ``Z`` (N, K) against targets ``T`` (N, K); returns ``(loss, dL/dZ)``."""
        raise NotImplementedError

    def __call__(self, Z: Array, T: Array) -> Array:
        return self.forward(Z, T)[0]

    def probabilities(self, xp: Any, Z: Array) -> Array:
        """What the model's output means, from the (pre-link) outputs ``Z``."""
        return Z

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MeanSquaredError(Loss):
    """L = mean over samples and outputs of (z - t)^2, as PyTorch's MSELoss and Keras.

    The textbook's E = 1/2 * sum (z - t)^2 is :class:`SquaredError`; for N samples
    and K outputs, MSE = 2 E / (N K).
    """

    name = "mse"

    def forward(self, Z: Array, T: Array) -> tuple[Array, Array]:
        xp = namespace_of(Z)
        D = Z - T
        scale = 2.0 / (Z.shape[0] * Z.shape[1])
        # sum * (1/count), not mean: NumPy's mean is a Python-level wrapper that costs
        # twice what sum does, a visible share of a small network's step.
        return xp.sum(D * D) * (0.5 * scale), D * scale


class SquaredError(Loss):
    """The textbook's E = 1/2 * sum over samples and outputs of (z - t)^2; dE/dz = z - t.

    Summed, not averaged: the gradient grows with the batch, so a learning rate
    tuned for full-batch training on N samples is N times too large for batches of 1.
    """

    name = "sse"
    reduction = "sum"

    def forward(self, Z: Array, T: Array) -> tuple[Array, Array]:
        xp = namespace_of(Z)
        D = Z - T
        return 0.5 * xp.sum(D * D), D


class BinaryCrossEntropy(Loss):
    """Sigmoid + binary cross-entropy on logits, mean over samples and outputs.

    L = mean(softplus(z) - t z)  (= -t log p - (1 - t) log(1 - p), p = sigmoid(z))
    dL/dz = (sigmoid(z) - t) / (N K).  Targets in [0, 1]; several outputs are
    independent yes/no labels.
    """

    name = "bce"
    link = Sigmoid
    classification = True

    def forward(self, Z: Array, T: Array) -> tuple[Array, Array]:
        xp = namespace_of(Z)
        # softplus(z) and sigmoid(z) both from E = exp(-|z|) (never overflows): one exp, not two.
        E = xp.exp(-xp.abs(Z))
        inv = 1.0 / (Z.shape[0] * Z.shape[1])
        loss = xp.sum(xp.maximum(Z, 0.0) + xp.log1p(E) - T * Z) * inv  # the mean, as in MSE
        P = xp.where(Z >= 0, 1.0, E) / (1.0 + E)
        return loss, (P - T) * inv

    def probabilities(self, xp: Any, Z: Array) -> Array:
        return sigmoid(xp, Z)


class CrossEntropy(Loss):
    """Softmax + categorical cross-entropy on logits, mean over samples.

    L = -mean_n sum_k t_nk log softmax(z_n)_k; dL/dz = (softmax(z) - t) / N.
    Targets are one-hot rows (or any probability rows).
    """

    name = "ce"
    link = Softmax
    classification = True

    def forward(self, Z: Array, T: Array) -> tuple[Array, Array]:
        xp = namespace_of(Z)
        logp = log_softmax(xp, Z)
        n = Z.shape[0]
        loss = -xp.sum(T * logp) / n
        return loss, (xp.exp(logp) - T) * (1.0 / n)

    def probabilities(self, xp: Any, Z: Array) -> Array:
        return softmax(xp, Z)


LOSSES: dict[str, type[Loss]] = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "sse": SquaredError,
    "squared_error": SquaredError,
    "bce": BinaryCrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy,
    "ce": CrossEntropy,
    "cross_entropy": CrossEntropy,
    "categorical_cross_entropy": CrossEntropy,
}


def get(loss: str | Loss) -> Loss:
    """A loss from its name (``"mse"``, ``"sse"``, ``"bce"``, ``"ce"``) or the loss itself."""
    if isinstance(loss, Loss):
        return loss
    try:
        return LOSSES[str(loss).lower().replace("-", "_")]()
    except KeyError:
        raise ValueError(f"unknown loss {loss!r}: use one of mse, sse, bce, ce") from None
