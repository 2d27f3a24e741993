"""The Jacobian of a network's outputs with respect to every parameter, by backpropagation.

Levenberg–Marquardt needs, for every sample n and output k, the gradient of the
output z_nk with respect to all P parameters: the (N·K, P) Jacobian J of the
residuals e = z - t. Hagan & Menhaj (1994) compute it with one backward pass per
output unit over the whole batch: the pass for output k starts from the unit
vector e_k in every row (instead of the loss gradient), and each layer turns its
input and the delta arriving at its output into its rows of J
(:meth:`Layer.jacobian_rows`; a Dense layer's are the outer products of x_n and the
delta). No per-sample Python loop: each pass handles all N samples at once.

The layers' backward closures are replayed once per output (they are pure in
their input; they also assign ``layer.grads``, which the caller ignores).
"""

from __future__ import annotations

import math
from typing import Any

from ._typing import Array
from .layers import require_second_order
from .namespace import device_of


def jacobian_bytes(n_samples: int, n_outputs: int, n_params: int, itemsize: int = 8) -> int:
    """Bytes of the (N·K, P) Jacobian in a dtype of ``itemsize`` bytes."""
    return n_samples * n_outputs * n_params * itemsize


def jacobian(model: Any, X: Array, out: Array | None = None) -> tuple[Array, Array]:
    """The outputs ``Z`` (N, K) of ``model`` on device inputs ``X`` (N, F), and the Jacobian
    ``J`` (N·K, P) of ``Z`` (flattened row-major: row n·K + k) with respect to the flat
    parameters (:meth:`Sequential.flat_parameters` order), in the model's dtype.

    ``out``: a (N, K, P) array of the model's dtype to write J into (its reshape is
    returned), so that repeated calls on the same data reuse one buffer; None: a new one.
    Each layer's rows go straight into their columns: no per-layer concatenation.

    The whole network is differentiated, output layer included: squared-error losses
    read its outputs as they are.
    """
    require_second_order(model.layers, "Levenberg–Marquardt's Jacobian")
    xp = model.xp
    # Training mode: J differentiates the outputs the training objective reads.
    with model.backend.activate(), model.mode(train=True):
        inputs, closures = [], []
        H = X
        for i, layer in enumerate(model.layers):
            inputs.append(H)  # the layer's input, for its rows
            H, backward = layer.forward(H, train=model.training, input_grad=i > 0)
            closures.append(backward)
        Z = H
        n, k = Z.shape
        spans, P = _column_spans(model.layers), model.n_params
        J = out if out is not None else xp.empty((n, k, P), dtype=Z.dtype, device=device_of(Z))
        if tuple(J.shape) != (n, k, P) or J.dtype != Z.dtype:
            raise ValueError(f"the Jacobian buffer is {tuple(J.shape)} {J.dtype}, not ({n}, {k}, {P}) "
                             f"{Z.dtype}")
        for out_unit in range(k):
            seed = xp.astype(xp.arange(k, device=device_of(Z)) == out_unit, Z.dtype)
            dY = xp.broadcast_to(seed[None, :], (n, k))
            for index in range(len(closures) - 1, -1, -1):
                for rows, (start, stop) in zip(model.layers[index].jacobian_rows(inputs[index], dY),
                                               spans[index], strict=True):
                    J[:, out_unit, start:stop] = rows
                dY = closures[index](dY)
        return Z, xp.reshape(J, (n * k, P))


def _column_spans(layers: Any) -> list[list[tuple[int, int]]]:
    """Per layer, the ``(start, stop)`` columns of J of each of its parameters, in the
    order of its ``params`` (the flat parameters' order)."""
    spans, start = [], 0
    for layer in layers:
        own = []
        for array in layer.params.values():
            own.append((start, start + math.prod(array.shape)))
            start = own[-1][1]
        spans.append(own)
    return spans
