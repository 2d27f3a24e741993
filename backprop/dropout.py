"""Dropout: inverted dropout, active in training only, its masks drawn on the device.

In training each entry is kept with probability ``1 - rate`` and scaled by
``1 / (1 - rate)``, so that the expected output equals the input and inference needs no
rescaling (Srivastava et al. 2014, in the "inverted" form PyTorch and Keras use). The
mask comes from ``self.rng``: the model links it to its fit state's device generator
(:class:`backends.DeviceRNG`, stream ``DROPOUT``), so the masks are drawn on the device
with no host copy, are the same bits on every backend, and a run resumed from a
checkpoint draws the masks an uninterrupted one would. In inference (``train=False``)
the layer is the identity.
"""

from __future__ import annotations

import numbers
from typing import Any

from ._typing import Array, Backward
from .errors import ConfigError
from .layers import Layer, register


class Dropout(Layer):
    """Zero each entry with probability ``rate`` in training, scale the rest by 1/(1 - rate).

    Shapes: ``X`` (N, *shape) -> ``Y`` of the same shape; any per-sample shape (features, or
    feature maps: each entry has its own mask bit). Levenberg–Marquardt and Newton refuse it:
    their steps assume one deterministic function per iteration.
    """

    draws = True

    def __init__(self, rate: float = 0.5) -> None:
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
            raise ConfigError(f"Dropout rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.rng = None  # set by the model: its fit state's device generator

    def config(self) -> dict:
        return {"rate": self.rate}

    def forward(self, X: Array, *, train: bool = False, input_grad: bool = True) -> tuple[Array, Backward]:
        if not train or self.rate == 0.0:
            return X, lambda dY: dY if input_grad else None
        if self.rng is None:
            raise ConfigError("this Dropout layer draws its masks from a model's generator: put it in a "
                              "Sequential (or give it one: layer.rng = backend.device_rng(seed, stream))")
        xp = self._ns(X)
        keep = self.rng.bernoulli(1.0 - self.rate, tuple(X.shape))
        scale = xp.astype(keep, X.dtype) * (1.0 / (1.0 - self.rate))  # (N, *shape): 0 or 1/(1-rate)
        Y = X * scale

        def backward(dY: Array) -> Array:
            return dY * scale if input_grad else None

        return Y, backward


    def onnx(self, graph: Any, x: str, input_shape: tuple[int, ...]) -> str:
        """The inference pass: the identity."""
        return x

register("dropout", Dropout)
