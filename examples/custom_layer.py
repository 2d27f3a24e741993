"""A layer and an optimizer of your own, registered from outside the package, then trained,
saved, loaded, pickled and gradient-checked like the built-in ones.

    python examples/custom_layer.py [--out DIR] [--device cpu]

``Scale`` learns one factor per feature (``Y = X * s``); ``SignMomentum`` steps along the
sign of a running mean of the gradient. Neither needs a change to any file of backprop:
one ``register`` call each makes them known by name to ``bp.Sequential``, ``model.fit``,
checkpoints and pickling.
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile

import numpy as np

import backprop as bp
from backprop import checkpoint, layers, optimizers
from backprop.layers import Dense, Layer


class Scale(Layer):
    """``Y = X * s``: X, Y (N, features), the learned s (features,)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = int(features)

    def config(self) -> dict:  # what a checkpoint saves to build the layer again
        return {"features": self.features}

    def param_shapes(self) -> dict:  # checked against a file's tensors before anything is built
        return {"s": (self.features,)}

    def output_width(self, input_width: int) -> int:
        if input_width != self.features:
            raise bp.ConfigError(f"Scale({self.features}) cannot follow a layer of width {input_width}")
        return input_width

    def build(self, backend, dtype, rng, *, next_layer=None) -> None:
        super().build(backend, dtype, rng)
        self.params = {"s": backend.asarray(rng.uniform(0.5, 1.5, (self.features,)), dtype)}
        self.grads = {}

    def forward(self, X, *, train=False, input_grad=True):
        xp, s = self._ns(X), self.params["s"]

        def backward(dY):  # dL/ds = sum over samples of dY * X; dL/dX = dY * s
            self.grads["s"] = xp.sum(dY * X, axis=0)
            return dY * s if input_grad else None

        return X * s, backward


class SignMomentum(optimizers.Optimizer):
    """``m = beta m + (1 - beta) g``, ``p -= lr sign(m)``; its state is ``m`` per parameter."""

    default_lr = 0.01

    def __init__(self, lr: float | None = None, beta: float = 0.5, **kwargs) -> None:
        super().__init__(lr, **kwargs)
        self.beta = optimizers.fraction(beta, "beta")

    def config(self) -> dict:
        return {**super().config(), "beta": self.beta}

    def _init_state(self, xp, p):
        return {"m": xp.zeros_like(p)}

    def _update(self, xp, p, g, s):
        s["m"] *= self.beta
        s["m"] += (1.0 - self.beta) * g
        p -= self.lr * xp.sign(s["m"])


layers.register("scale", Scale)
optimizers.register("signmomentum", SignMomentum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="folder for the checkpoint (default: a temporary one)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = np.sin(2.0 * X[:, :1]) + 0.5 * X[:, 1:]  # (200, 1)

    model = bp.Sequential([Dense(2, 16), Scale(16), "tanh", Dense(16, 1)], device=args.device,
                          dtype="float64", seed=0)
    history = model.fit(X, y, loss="mse", optimizer="signmomentum", lr=0.01, epochs=60, batch_size=20)
    first, last = history.records[0]["train_loss"], history.records[-1]["train_loss"]
    print(f"trained: loss {first:.4f} -> {last:.4f} with {model.optimizer!r}")

    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(args.out or scratch, "custom.safetensors")
        checkpoint.save(model, path)
        loaded = checkpoint.load(path, device=args.device).model
        copy = pickle.loads(pickle.dumps(model))
        same = all(np.array_equal(np.asarray(m.flat_parameters()), np.asarray(model.flat_parameters()))
                   for m in (loaded, copy))
        print(f"saved {os.path.basename(path)}, loaded and pickled: same weights {same}")

    check = bp.gradcheck(bp.Sequential([Dense(2, 3), Scale(3), "tanh", Dense(3, 1)], dtype="float64",
                                       seed=1), X[:6], y[:6], loss="mse")
    print(f"gradient check: {'ok' if check.ok else 'FAILED'} (worst relative error {check.worst:.1e})")
    if not (last < first and same and check.ok):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
