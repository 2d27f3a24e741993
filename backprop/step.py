"""The training step: gradients of a batch, then the seam, then the update.

This is the one place where parameters change during training::

    value, Z, grads = step.gradients(X, T)   # forward, loss, backward (the chain rule)
    grads = hook(grads, step) for each hook  # the seam
    step.update(grads)                       # the optimizer, in place

The seam is where other work plugs in without touching the rest: gradient
clipping, or recording for tests. Data-parallel training
(:mod:`backprop.distributed`) calls :meth:`Step.gradients` on its rank's part of
the batch, sums one flat gradient buffer across ranks, and hands the sum to
:meth:`Step.apply` (the hooks, then the update), so hooks see the global gradient.
A second-order method replaces :meth:`Step.update` (or the whole epoch) and reads
the model through its flat parameter views.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import batching
from ._typing import Array
from .errors import ConfigError
from .layers import chain
from .losses import Loss
from .workspace import Workspace

GradientHook = Callable[[list, "Step"], "list | None"]
"""``hook(grads, step) -> grads or None``: gradients in ``model.parameter_list()`` order;
return new arrays to replace them, or None after changing them in place."""


class Step:
    """One training step of ``model`` with ``loss`` and ``optimizer``.

    Parameters
    ----------
    model : Sequential
    loss : Loss
    optimizer : Optimizer
        Updates ``model.parameter_list()`` in place; bound to ``model`` (one optimizer
        serves one model).
    hooks : sequence of GradientHook
        Run in order between the backward pass and the update.
    """

    def __init__(self, model: Any, loss: Loss, optimizer: Any, hooks: Sequence[GradientHook] = ()) -> None:
        self.model, self.loss, self.optimizer = model, loss, optimizer.bind(model.uid)
        self.hooks = list(hooks)
        self.params = model.parameter_list()
        # Looked up once: the step runs inside the caller's backend.activate(), and a
        # small network's step is bound by Python overhead, not arithmetic.
        self.layers = model.trunk(loss)
        self.workspace = Workspace(model.xp)  # the passes' arrays, reused step after step

    def gradients(self, X: Array, T: Array, S: Array | None = None) -> tuple[Array, Array, list[Array]]:
        """Forward, loss and backward on one device batch ``X`` (B, F), ``T`` (B, K), with
        sample weights ``S`` (B,) or None (see :meth:`Loss.forward`).

        Returns ``(loss, Z, grads)``: the batch loss (0-d), the logits the loss read
        (B, K) and the gradients in parameter order. Nothing changes the parameters. ``Z`` and
        the gradients are buffers the next step of this shape overwrites (see
        :mod:`backprop.workspace`): read them before, or copy.
        Call it inside ``model.backend.activate()`` (``fit`` does).
        """
        # Training mode, whatever the model's: this is the step that trains (chain directly, as
        # model.forward(train=True) would: no per-step lookups).
        with self.workspace.using(X.shape):
            Z, backward = chain(self.layers, X, train=True, input_grad=False)
            value, dZ = self.loss.forward(Z, T, S)
            backward(dZ)
        return value, Z, self.model.gradient_list()

    def update(self, grads: list[Array]) -> None:
        """Change the parameters from ``grads`` (the optimizer's rule, in place)."""
        # The flat buffers when grads are the model's own views: one update over all of them.
        self.optimizer.step(self.params, grads, self.model.flat_pair(grads))

    def hooked(self, grads: list[Array]) -> list[Array]:
        """``grads`` through the gradient hooks in order: the one seam, for every way of
        training (a step's update, a full-batch method's objective)."""
        for hook in self.hooks:
            replaced = hook(grads, self)
            if replaced is not None:
                grads = list(replaced)
                if len(grads) != len(self.params):
                    raise ConfigError(f"the gradient hook {getattr(hook, '__name__', hook)!r} returned "
                                      f"{len(grads)} gradients for {len(self.params)} parameters")
        return grads

    def apply(self, grads: list[Array]) -> None:
        """The gradient hooks in order (the seam), then :meth:`update`."""
        self.update(self.hooked(grads))

    def __call__(self, X: Array, T: Array, S: Array | None = None) -> tuple[Array, Array]:
        """One step on a device batch; returns ``(loss, Z)`` with ``loss`` still on the device."""
        value, Z, grads = self.gradients(X, T, S)
        self.apply(grads)
        return value, Z


def train_epoch(step: Step, X: Array, T: Array, labels: Array | None,
                batches: list[tuple[int, int]],
                S: Array | None = None) -> tuple[Array, Array | None]:
    """One pass of training steps over the ``batches`` (row spans) of device arrays.

    ``X`` (N, F), ``T`` (N, K), ``labels`` (N,) or None, sample weights ``S`` (N,) or
    None. Returns the summed loss and the number of right predictions as 0-d device
    arrays: nothing here waits
    for the device. This is the loop ``fit`` runs each epoch and the one
    ``backprop bench`` times.
    """
    xp, loss = step.model.xp, step.loss
    values, hits = [], []
    for start, stop in batches:
        T_b = T[start:stop, ...]
        value, Z = step(X[start:stop, ...], T_b, None if S is None else S[start:stop])
        values.append(value)
        hits.append(loss.correct(xp, Z, T_b, None if labels is None else labels[start:stop]))
    return batching.totals(xp, values, hits, batches, loss)
