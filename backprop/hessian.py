"""The exact Hessian of the loss with respect to every parameter, by the R-operator.

Pearlmutter (1994): differentiating the forward and backward passes along a
direction v gives the Hessian-vector product Hv exactly, at the cost of one more
forward and backward pass. Here all P unit directions ride along at once, as a
leading axis of every array (Array API ``matmul`` broadcasts over it), so one
pass gives the whole (P, P) Hessian. Only for tiny networks: the directions make
every activation P times larger.

Each layer differentiates its own passes (:meth:`Layer.r_forward`,
:meth:`Layer.r_backward`; for a Dense layer Y = XW + b: R{Y} = R{X}W + X V_W + V_b,
for an activation Y = f(X): R{Y} = f'(X) R{X}); the loss gives R{dZ} = ∇²L(Z) R{Z}
(:meth:`Loss.curvature`). This module only loops over the layers.
"""

from __future__ import annotations

from typing import Any

from . import flat
from ._typing import Array
from .layers import require_second_order
from .namespace import device_of


def hessian(model: Any, loss: Any, X: Array, T: Array, S: Array | None = None) -> tuple[Array, Array, Array]:
    """``(loss, gradient (P,), Hessian (P, P))`` of ``loss`` at the model's parameters on
    device arrays ``X`` (N, F), ``T`` (N, K), sample weights ``S`` (N,) or None, in the
    model's dtype."""
    require_second_order(model.layers, "Newton's exact Hessian")
    xp = model.xp
    P = model.n_params
    eye = xp.eye(P, dtype=X.dtype, device=device_of(X))
    trunk = model.trunk(loss)
    tapes = []
    H, R = X, None  # the inputs do not depend on the parameters: R{X} = 0
    start = 0
    # Training mode, as the step that minimizes this loss runs.
    with model.mode(train=True):
        for layer in trunk:
            V = {}  # each parameter's P unit directions, (P, *shape): its columns of the identity
            for name, shape in layer.param_shapes().items():
                size = flat.sizes([shape])[0]
                V[name] = xp.reshape(eye[:, start:start + size], (P, *shape))
                start += size
            H, R, tape = layer.r_forward(H, R, V, train=model.training)
            tapes.append(tape)
    Z, RZ = H, R
    value, dY = loss.forward(Z, T, S)
    RdY = loss.curvature(xp, Z, T, RZ, S)
    pieces = []
    for layer, tape in zip(reversed(trunk), reversed(tapes)):
        dY, RdY, own = layer.r_backward(tape, dY, RdY)
        pieces.append(own)
    ordered = [piece for own in reversed(pieces) for piece in own]  # parameter order
    gradient = xp.concat([g for g, _ in ordered])
    Hm = xp.concat([rows for _, rows in ordered], axis=1)  # row p: (H e_p)^T
    return value, gradient, (Hm + Hm.T) * 0.5  # symmetric up to rounding; make it exactly so
