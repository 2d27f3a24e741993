"""A plain hand-written training step in NumPy (or CuPy): the yardstick for our own.

``backprop bench --compare numpy-reference`` runs this beside the real ``fit``
loop. It does the same work per step (forward, fused softmax cross-entropy or
sigmoid BCE, backward, optimizer update, loss and hit counts kept on the device)
with no layers, no namespace wrapper and no checks: what a person would type
into one function. The gap between the two is what the Array API layer and the
model's structure cost.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from backends import Backend

ACTIVATIONS = ("relu", "tanh")
LOSSES = ("ce", "bce")
"""What the hand-typed step implements: `backprop bench` offers only these, so every contender runs."""


class HandwrittenTrainer:
    """An MLP trained by one hand-written function on the backend's raw library.

    Parameters
    ----------
    backend : Backend
        ``cpu`` (NumPy) or ``cuda:N`` (CuPy, used without array-api-compat).
    weights : list of (W, b) host arrays
        W (in, out) and b (out,) per layer, the starting point.
    activation : ``"relu"`` or ``"tanh"`` between layers.
    loss : ``"ce"`` (softmax cross-entropy, labels) or ``"bce"`` (sigmoid, one output).
    optimizer : dict
        ``name`` (sgd, momentum or adam) and its settings (lr, momentum, betas, eps).
    X : host array (N, in); labels : host int array (N,)
    """

    label = "numpy-reference"

    def __init__(self, backend: Backend, weights: list, activation: str, loss: str, optimizer: dict,
                 dtype: str, X: np.ndarray, labels: np.ndarray) -> None:
        if backend.name == "numpy":
            xp = np
        elif backend.name == "cupy":
            xp = backend._cupy
            self.label = "cupy-reference"
        else:
            raise ValueError(f"the hand-written reference runs on NumPy or CuPy, not {backend.name}")
        if activation not in ACTIVATIONS or loss not in LOSSES:
            raise ValueError(f"the hand-written reference has {'/'.join(ACTIVATIONS)} and "
                             f"{'/'.join(LOSSES)}, not {activation}/{loss}")
        self.xp, self.backend, self.activation, self.loss = xp, backend, activation, loss
        self.opt = dict(optimizer)
        with backend.activate():
            # Copies: trained in place, they must not share memory with the caller's arrays.
            self.W = [xp.array(np.asarray(w, dtype=dtype), copy=True) for w, _ in weights]
            self.b = [xp.array(np.asarray(b, dtype=dtype), copy=True) for _, b in weights]
            self.X = xp.asarray(np.asarray(X, dtype=dtype))
            self.labels = xp.asarray(labels)
            k = self.W[-1].shape[1]
            if loss == "ce":
                self.T = xp.asarray((np.arange(k) == np.asarray(labels)[:, None]).astype(dtype))
            else:
                self.T = xp.asarray(np.asarray(labels, dtype=dtype).reshape(-1, 1))
            stateful = optimizer["name"] in ("momentum", "adam")
            self.v = [xp.zeros_like(p) for p in self.W + self.b] if stateful else None
            self.m = [xp.zeros_like(p) for p in self.W + self.b] if optimizer["name"] == "adam" else None
        self.t = 0

    def _step(self, x: Any, t: Any, y: Any) -> tuple[Any, Any]:
        xp, W, b = self.xp, self.W, self.b
        acts = [x]
        h = x
        last = len(W) - 1
        for i in range(len(W)):
            z = h @ W[i] + b[i]
            if i < last:
                h = xp.maximum(z, 0) if self.activation == "relu" else xp.tanh(z)
                acts.append(h)
            else:
                h = z
        n = x.shape[0]
        if self.loss == "ce":
            shifted = h - xp.max(h, axis=1, keepdims=True)
            logp = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
            loss = -xp.sum(t * logp) / n
            d = (xp.exp(logp) - t) * (1.0 / n)
            hits = xp.count_nonzero(xp.argmax(h, axis=1) == y)
        else:
            e = xp.exp(-xp.abs(h))  # never overflows
            loss = xp.mean(xp.maximum(h, 0) + xp.log1p(e) - t * h)
            d = (xp.where(h >= 0, 1.0, e) / (1.0 + e) - t) * (1.0 / h.size)
            hits = xp.count_nonzero((h > 0) == (t > 0.5))
        grads_W, grads_b = [None] * len(W), [None] * len(W)
        for i in range(last, -1, -1):
            a = acts[i]
            grads_W[i] = a.T @ d
            grads_b[i] = xp.sum(d, axis=0)
            if i > 0:
                d = d @ W[i].T
                d = d * (a > 0) if self.activation == "relu" else d * (1.0 - a * a)
        self._update(W + b, grads_W + grads_b)
        return loss, hits

    def _update(self, params: list, grads: list) -> None:
        opt, xp = self.opt, self.xp
        lr = opt["lr"]
        self.t += 1
        if opt["name"] == "sgd":
            for p, g in zip(params, grads):
                p -= lr * g
        elif opt["name"] == "momentum":
            mu = opt["momentum"]
            for p, g, v in zip(params, grads, self.v):
                v *= mu
                v += g
                p -= lr * v
        else:  # adam, with PyTorch's bias-correction arrangement
            b1, b2, eps = opt["beta1"], opt["beta2"], opt["eps"]
            step = lr / (1.0 - b1**self.t)
            root = math.sqrt(1.0 - b2**self.t)
            for p, g, m, v in zip(params, grads, self.m, self.v):
                m *= b1
                m += (1.0 - b1) * g
                v *= b2
                v += (1.0 - b2) * (g * g)
                p -= step * m / (xp.sqrt(v) / root + eps)

    def run(self, spans: list[tuple[int, int]]) -> float:
        """Train one step per (start, stop) batch; the mean loss, read once at the end."""
        xp = self.xp
        with self.backend.activate():
            losses, hits = [], []
            for start, stop in spans:
                loss, hit = self._step(self.X[start:stop], self.T[start:stop], self.labels[start:stop])
                losses.append(loss)
                hits.append(hit)
            total = xp.sum(xp.stack(losses))
            xp.sum(xp.stack(hits))
            return float(total) / len(spans)
