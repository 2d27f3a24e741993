"""Normalization layers: ``BatchNorm`` (over the batch) and ``LayerNorm`` (over each sample).

Both compute ``x̂ = (x - mean) / sqrt(var + eps)`` with the biased variance and return
``gamma * x̂ + beta``; they differ in which entries share a mean and a variance. Their
backward pass goes through the statistics (the mean and the variance depend on every entry
they are taken over): :func:`_through_statistics` (BatchNorm takes its two sums from its
parameters' gradients instead of summing again).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from ._typing import Array, Backward
from .errors import ConfigError, DataError
from .layers import Layer, register


def _through_statistics(xp: Any, dxhat: Array, xhat: Array, inv: Array, axes: tuple[int, ...],
                        count: int) -> Array:
    """dL/dX of ``x̂ = (x - mean) · inv`` with the mean and the biased variance taken over ``axes``
    (``count`` entries each), from dL/dx̂ ``dxhat``: ``inv · (dx̂ - mean(dx̂) - x̂ · mean(dx̂ · x̂))``.
    ``dxhat``, ``xhat``: (N, *shape); ``inv``: broadcastable to them (keepdims over ``axes``)."""
    mean_d = xp.sum(dxhat, axis=axes, keepdims=True) / count
    mean_dx = xp.sum(dxhat * xhat, axis=axes, keepdims=True) / count
    return inv * (dxhat - mean_d - xhat * mean_dx)


def _check_eps(owner: str, eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0.0 < eps < math.inf:
        raise ConfigError(f"{owner} eps must be a positive number, got {eps!r}")
    return float(eps)


class BatchNorm(Layer):
    """Batch normalization (Ioffe & Szegedy 2015), as PyTorch's ``BatchNorm1d``/``BatchNorm2d``.

    Per feature of (F,) samples, per channel of (C, L) and (C, H, W) maps: the statistics are
    taken over the batch axis and the spatial axes. ``gamma`` (ones) and ``beta`` (zeros) are
    learnt per feature/channel, shape (C,).

    Training (``train=True``): normalizes by the batch's mean and biased variance, and updates
    the buffers ``running_mean`` (zeros) and ``running_var`` (ones), (C,) each, by PyTorch's rule
    ``running = (1 - momentum) · running + momentum · batch`` with the batch's *unbiased*
    variance. Its backward pass goes through the batch statistics. Inference: normalizes by
    the running statistics, an affine map (its backward is ``dY · gamma / sqrt(running_var + eps)``).

    Training draws on the batch, so the function differs from batch to batch:
    ``second_order`` is False (Levenberg–Marquardt and Newton refuse it). Data-parallel
    training: each rank's statistics are those of its own part of the batch, and each rank
    updates its own running statistics (as PyTorch's BatchNorm without SyncBatchNorm); a
    checkpoint saves rank 0's.

    Shapes: ``X`` (N, C), (N, C, L) or (N, C, H, W) -> ``Y`` of the same shape.
    """

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5, *, num_features: int | None = None) -> None:
        super().__init__()
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"BatchNorm momentum must be a number in [0, 1], got {momentum!r}")
        if num_features is not None and (isinstance(num_features, bool) or not isinstance(num_features, int)
                                         or num_features < 1):
            raise ConfigError(f"BatchNorm num_features must be a positive integer, got {num_features!r}")
        self.momentum = float(momentum)
        self.eps = _check_eps("BatchNorm", eps)
        self.num_features = num_features  # the channels: learnt from the input shape by infer()

    def config(self) -> dict:
        return {"momentum": self.momentum, "eps": self.eps, "num_features": self.num_features}

    def infer(self, input_shape: tuple[int, ...]) -> None:
        if self.num_features is None and 1 <= len(input_shape) <= 3:
            self.num_features = int(input_shape[0])

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if not 1 <= len(shape) <= 3:
            raise ConfigError(f"BatchNorm takes (features,), (channels, length) or (channels, height, width) "
                              f"samples, got {shape}")
        if self.num_features is not None and shape[0] != self.num_features:
            raise ConfigError(f"a BatchNorm of {self.num_features} channels got samples of shape {shape}: "
                              "leave num_features out to take the input's")
        return shape

    def _features(self) -> int:
        if self.num_features is None:
            raise ConfigError("BatchNorm does not know its channels before a model builds it: give "
                              "BatchNorm(num_features=C) or put it in a Sequential")
        return self.num_features

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"gamma": (self._features(),), "beta": (self._features(),)}

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"running_mean": (self._features(),), "running_var": (self._features(),)}

    def build(self, backend: Any, dtype: Any, rng: Any, *, next_layer: Layer | None = None) -> None:
        super().build(backend, dtype, rng)
        xp, c = backend.xp, (self._features(),)
        self.params = {"gamma": xp.ones(c, dtype=dtype, device=backend.device),
                       "beta": xp.zeros(c, dtype=dtype, device=backend.device)}
        self.buffers = {"running_mean": xp.zeros(c, dtype=dtype, device=backend.device),
                        "running_var": xp.ones(c, dtype=dtype, device=backend.device)}
        self.grads = {}

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        xp = self._ns(X)
        axes = (0, *range(2, X.ndim))  # the batch and the spatial axes: one statistic per channel
        per_channel = (X.shape[1],) + (1,) * (X.ndim - 2)  # (C,) broadcast over (N, C, *space)
        gamma = xp.reshape(self.params["gamma"], per_channel)
        beta = xp.reshape(self.params["beta"], per_channel)
        if not train:
            inv = xp.reshape(1.0 / xp.sqrt(self.buffers["running_var"] + self.eps), per_channel)
            mean = xp.reshape(self.buffers["running_mean"], per_channel)
            scale = gamma * inv  # an affine map: Y = X · scale + shift
            xhat = X - mean
            xhat *= inv  # in place on the fresh difference: one (N, C, *space) array fewer
        else:
            xhat, inv = self._batch_statistics(xp, X, axes)
        Y = xhat * gamma
        Y += beta
        count = math.prod(X.shape[a] for a in axes)

        def backward(dY: Array) -> Array:
            dgamma, dbeta = xp.sum(dY * xhat, axis=axes), xp.sum(dY, axis=axes)
            self.set_grad("gamma", dgamma)
            self.set_grad("beta", dbeta)
            if not input_grad:
                return None
            if not train:
                return dY * scale
            # Through the statistics (see _through_statistics), their two sums per channel being the
            # parameters' gradients already taken: Σ dx̂ = γ · dβ and Σ dx̂ · x̂ = γ · dγ.
            dX = dY * gamma
            dX -= (gamma / count) * xp.reshape(dbeta, per_channel)
            dX -= xhat * ((gamma / count) * xp.reshape(dgamma, per_channel))
            dX *= inv
            return dX

        return Y, backward

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        """The inference pass: BatchNormalization over the running statistics, with this eps."""
        held = [self.params["gamma"], self.params["beta"], self.buffers["running_mean"],
                self.buffers["running_var"]]
        return graph.node("BatchNormalization", [x, *map(graph.constant, held)], epsilon=self.eps)

    def _batch_statistics(self, xp: Any, X: Array, axes: tuple[int, ...]) -> tuple[Array, Array]:
        """``(x̂, inv)`` from the batch's mean and biased variance (keepdims over ``axes``), the
        running statistics moved towards the batch's (its variance unbiased, as PyTorch)."""
        count = math.prod(X.shape[a] for a in axes)
        if count < 2:
            raise DataError("BatchNorm needs more than one value per channel in training (a batch of one "
                            "sample of (features,)): use batches of at least 2 samples")
        mean = xp.mean(X, axis=axes, keepdims=True)
        xhat = X - mean
        var = xp.sum(xhat * xhat, axis=axes, keepdims=True) / count  # biased: normalizes
        inv = 1.0 / xp.sqrt(var + self.eps)
        m, c = self.momentum, (X.shape[1],)
        # New arrays bound (not written in place): a pass never changes an array someone holds.
        self.buffers["running_mean"] = (1.0 - m) * self.buffers["running_mean"] + m * xp.reshape(mean, c)
        unbiased = xp.reshape(var, c) * (count / (count - 1))
        self.buffers["running_var"] = (1.0 - m) * self.buffers["running_var"] + m * unbiased
        xhat *= inv  # in place on the fresh difference
        return xhat, inv


class LayerNorm(Layer):
    """Layer normalization (Ba et al. 2016) over every entry of a sample, as
    ``torch.nn.LayerNorm(normalized_shape=sample shape)`` with its elementwise affine:
    ``gamma`` (ones) and ``beta`` (zeros) of the sample's shape. The same in training and
    inference (no running statistics), so Levenberg–Marquardt and Newton cover it (its Jacobian
    rows and R-operator).

    ``normalized_shape``: the sample shape, learnt from the input by ``infer`` (then
    ``config()`` holds it).

    Shapes: ``X`` (N, *shape) -> ``Y`` (N, *shape); ``gamma``, ``beta``: ``shape``.
    """

    def __init__(self, eps: float = 1e-5, *, normalized_shape: Any = None) -> None:
        super().__init__()
        self.eps = _check_eps("LayerNorm", eps)
        if normalized_shape is not None:
            dims = list(normalized_shape) if isinstance(normalized_shape, (list, tuple)) else None
            if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
                raise ConfigError(f"LayerNorm normalized_shape must be positive sizes, "
                                  f"got {normalized_shape!r}")
            normalized_shape = tuple(dims)
        self.normalized_shape = normalized_shape

    def config(self) -> dict:
        shape = None if self.normalized_shape is None else list(self.normalized_shape)
        return {"eps": self.eps, "normalized_shape": shape}

    def infer(self, input_shape: tuple[int, ...]) -> None:
        if self.normalized_shape is None:
            self.normalized_shape = tuple(int(d) for d in input_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if self.normalized_shape is not None and shape != self.normalized_shape:
            raise ConfigError(f"a LayerNorm over samples of shape {self.normalized_shape} got samples of "
                              f"shape {shape}: leave normalized_shape out to take the input's")
        return shape

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        if self.normalized_shape is None:
            raise ConfigError("LayerNorm does not know its sample shape before a model builds it: give "
                              "LayerNorm(normalized_shape=...) or put it in a Sequential")
        return {"gamma": self.normalized_shape, "beta": self.normalized_shape}

    def build(self, backend: Any, dtype: Any, rng: Any, *, next_layer: Layer | None = None) -> None:
        super().build(backend, dtype, rng)
        shape = self.param_shapes()["gamma"]
        self.params = {"gamma": backend.xp.ones(shape, dtype=dtype, device=backend.device),
                       "beta": backend.xp.zeros(shape, dtype=dtype, device=backend.device)}
        self.grads = {}

    def _normalized(self, xp: Any, X: Array) -> tuple[Array, Array, tuple[int, ...], int]:
        """``(x̂ (N, *shape), inv (N, 1, ...), the sample axes, entries per sample)`` of ``X``."""
        axes = tuple(range(1, X.ndim))  # every entry of a sample
        count = math.prod(X.shape[1:])
        xhat = X - xp.mean(X, axis=axes, keepdims=True)
        var = xp.sum(xhat * xhat, axis=axes, keepdims=True) / count  # biased, as PyTorch
        inv = 1.0 / xp.sqrt(var + self.eps)
        xhat *= inv  # in place on the fresh difference
        return xhat, inv, axes, count

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        xp = self._ns(X)
        xhat, inv, axes, count = self._normalized(xp, X)
        gamma = self.params["gamma"]
        Y = xhat * gamma + self.params["beta"]

        def backward(dY: Array) -> Array:
            self.set_grad("gamma", xp.sum(dY * xhat, axis=0))
            self.set_grad("beta", xp.sum(dY, axis=0))
            return _through_statistics(xp, dY * gamma, xhat, inv, axes, count) if input_grad else None

        return Y, backward

    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        """LayerNormalization over every axis after the batch's (axis 1), gamma and beta of the
        sample's shape, with this eps."""
        gamma, beta = (graph.constant(self.params[k]) for k in ("gamma", "beta"))
        return graph.node("LayerNormalization", [x, gamma, beta], axis=1, epsilon=self.eps)

    # -- second order: deterministic, so Levenberg–Marquardt and Newton cover it ------------
    second_order = True

    def jacobian_rows(self, X: Array, dY: Array) -> list[Array]:
        """dz/dgamma for sample n is dY_n · x̂_n, dz/dbeta is dY_n: (N, size) each."""
        xp = self._ns(X)
        xhat = self._normalized(xp, X)[0]
        n = X.shape[0]
        return [xp.reshape(dY * xhat, (n, -1)), xp.reshape(dY, (n, -1))]

    def r_forward(self, X: Array, RX: Array | None, V: dict[str, Array], *,
                  train: bool = False) -> tuple[Array, Array | None, Any]:
        """R{Y} = R{x̂} · gamma + x̂ · V_gamma + V_beta, with R{x̂} = J R{X}, J the normalization's
        Jacobian per sample (symmetric: the backward formula). X (N, *shape); R{X} (P, N, *shape)
        or None; V_gamma, V_beta (P, *shape)."""
        xp = self._ns(X)
        xhat, inv, axes, count = self._normalized(xp, X)
        gamma = self.params["gamma"]
        VG, VB = xp.expand_dims(V["gamma"], axis=1), xp.expand_dims(V["beta"], axis=1)  # (P, 1, *shape)
        RY = xhat * VG + VB
        Rxhat = None
        if RX is not None:
            Rxhat = _through_statistics(xp, RX, xhat, inv, tuple(a + 1 for a in axes), count)
            RY = RY + Rxhat * gamma
        return xhat * gamma + self.params["beta"], RY, (xhat, inv, axes, count, RX, Rxhat, VG)

    def r_backward(self, tape: Any, dY: Array, RdY: Array) -> tuple[Array, Array, list[tuple[Array, Array]]]:
        """dX = J (dY · gamma); R{dX} = J R{dY · gamma} + R{J} (dY · gamma), where R{J} v =
        (R{inv} / inv) J v - inv (R{x̂} mean(x̂ v) + x̂ mean(R{x̂} v)) and R{inv} = -inv² mean(x̂ R{X})."""
        xhat, inv, axes, count, RX, Rxhat, VG = tape
        xp = self._ns(dY)
        gamma = self.params["gamma"]
        wide = tuple(a + 1 for a in axes)  # the sample axes of (P, N, *shape) arrays
        dxhat = dY * gamma
        dX = _through_statistics(xp, dxhat, xhat, inv, axes, count)
        RdX = _through_statistics(xp, RdY * gamma + dY * VG, xhat, inv, wide, count)
        Rgamma = RdY * xhat
        if RX is not None:
            Rinv_over_inv = -inv * xp.mean(xhat * RX, axis=wide, keepdims=True)
            mean_xv = xp.mean(xhat * dxhat, axis=axes, keepdims=True)
            mean_rv = xp.mean(Rxhat * dxhat, axis=wide, keepdims=True)
            RdX = RdX + Rinv_over_inv * dX - inv * (Rxhat * mean_xv + xhat * mean_rv)
            Rgamma = Rgamma + dY * Rxhat
        P = RdY.shape[0]
        pieces = [(xp.reshape(xp.sum(dY * xhat, axis=0), (-1,)), xp.reshape(xp.sum(Rgamma, axis=1), (P, -1))),
                  (xp.reshape(xp.sum(dY, axis=0), (-1,)), xp.reshape(xp.sum(RdY, axis=1), (P, -1)))]
        return dX, RdX, pieces


register("batchnorm", BatchNorm)
register("layernorm", LayerNorm)
