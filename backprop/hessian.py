"""The exact Hessian of the loss with respect to every parameter, by the R-operator.

Pearlmutter (1994): differentiating the forward and backward passes along a
direction v gives the Hessian-vector product Hv exactly, at the cost of one more
forward and backward pass. Here all P unit directions ride along at once, as a
leading axis of every array (Array API ``matmul`` broadcasts over it), so one
pass gives the whole (P, P) Hessian. Only for tiny networks: the directions make
every activation P times larger.

Forward, for a Dense layer Y = XW + b: R{Y} = R{X}W + X V_W + V_b; for an
activation Y = f(X): R{Y} = f'(X) R{X}. The loss: R{dZ} = ∇²L(Z) R{Z}
(:meth:`Loss.curvature`). Backward, Dense: R{dW} = R{X}ᵀdY + XᵀR{dY},
R{db} = Σ R{dY}, R{dX} = R{dY}Wᵀ + dY V_Wᵀ; activation: R{dX} = R{dY} f'(X) +
dY f''(X) R{X}.
"""

from __future__ import annotations

from typing import Any

from ._typing import Array
from .activations import Activation
from .errors import ConfigError
from .layers import Dense, require_second_order
from .namespace import device_of


def hessian(model: Any, loss: Any, X: Array, T: Array, S: Array | None = None) -> tuple[Array, Array, Array]:
    """``(loss, gradient (P,), Hessian (P, P))`` of ``loss`` at the model's parameters on
    device arrays ``X`` (N, F), ``T`` (N, K), sample weights ``S`` (N,) or None, in the
    model's dtype."""
    require_second_order(model.layers, "Newton's exact Hessian")
    xp = model.xp
    dt = X.dtype
    P = model.n_params
    eye = xp.eye(P, dtype=dt, device=device_of(X))
    offsets, start = {}, 0
    for layer in model.trunk(loss):
        if isinstance(layer, Dense):
            W = layer.params["W"]
            count = W.shape[0] * W.shape[1]
            VW = xp.reshape(eye[:, start:start + count], (P, W.shape[0], W.shape[1]))
            Vb = eye[:, start + count:start + count + W.shape[1]]
            offsets[id(layer)] = (VW, Vb)
            start += count + W.shape[1]
    tape = []  # (layer, X, R{X}, Y)
    H, R = X, None  # the inputs do not depend on the parameters: R{X} = 0
    for layer in model.trunk(loss):
        if isinstance(layer, Dense):
            W, b = layer.params["W"], layer.params["b"]
            VW, Vb = offsets[id(layer)]
            Y = H @ W + b
            RY = H @ VW + Vb[:, None, :]
            if R is not None:
                RY = RY + R @ W
        elif isinstance(layer, Activation):
            Y, _ = layer.forward(H)
            if R is None:
                RY = None
            else:
                d1, _ = layer.derivatives(xp, H, Y)
                RY = d1 * R
        else:
            raise ConfigError(f"the exact Hessian does not cover {type(layer).__name__} layers")
        tape.append((layer, H, R, Y))
        H, R = Y, RY
    Z, RZ = H, R
    value, dY = loss.forward(Z, T, S)
    RdY = loss.curvature(xp, Z, T, RZ, S)
    grads, rows = {}, {}
    for layer, Xin, Rin, Y in reversed(tape):
        if isinstance(layer, Dense):
            W = layer.params["W"]
            VW, _ = offsets[id(layer)]
            RdW = xp.matmul(xp.permute_dims(Xin, (1, 0)), RdY)
            if Rin is not None:
                RdW = RdW + xp.matmul(xp.permute_dims(Rin, (0, 2, 1)), dY)
            rows[id(layer)] = (xp.reshape(RdW, (P, -1)), xp.sum(RdY, axis=1))
            grads[id(layer)] = (xp.reshape(Xin.T @ dY, (-1,)), xp.sum(dY, axis=0))
            RdY, dY = RdY @ W.T + dY @ xp.permute_dims(VW, (0, 2, 1)), dY @ W.T
        else:
            d1, d2 = layer.derivatives(xp, Xin, Y)
            RdX = RdY * d1
            if Rin is not None:
                RdX = RdX + dY * d2 * Rin
            RdY, dY = RdX, dY * d1
    order = [id(layer) for layer, *_ in tape if isinstance(layer, Dense)]
    gradient = xp.concat([part for key in order for part in grads[key]])
    Hm = xp.concat([part for key in order for part in rows[key]], axis=1)  # row p: (H e_p)^T
    return value, gradient, (Hm + Hm.T) * 0.5  # symmetric up to rounding; make it exactly so

