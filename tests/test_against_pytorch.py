"""PyTorch's autograd and optimizers as an independent oracle (skipped without torch).

The same network, weights and full batch in float64: our hand-written backward
and optimizer updates against torch.autograd and torch.optim, step by step.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

torch = pytest.importorskip("torch", reason="PyTorch is optional; install it to compare against it")

ACTIVATIONS = {
    "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid,
    "softplus": torch.nn.Softplus, "leaky_relu": lambda: torch.nn.LeakyReLU(0.01),
}
LOSSES = {
    "mse": torch.nn.MSELoss(),
    "bce": torch.nn.BCEWithLogitsLoss(),
    "ce": torch.nn.CrossEntropyLoss(),
    "sse": lambda z, t: 0.5 * torch.sum((z - t) ** 2),
}


def torch_twin(model):
    """A torch.nn.Sequential holding a copy of ``model``'s weights."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, bp.Dense):
            linear = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.asarray(layer.params["W"]).T.copy()))
                linear.bias.copy_(torch.from_numpy(np.asarray(layer.params["b"]).copy()))
            layers.append(linear)
        else:
            layers.append(ACTIVATIONS[layer.name]())
    return torch.nn.Sequential(*layers)


def data(loss, n=16, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if loss == "ce":
        return X, rng.integers(0, k, n), None
    y = rng.integers(0, 2, (n, k)).astype(float) if loss == "bce" else rng.normal(size=(n, k))
    return X, y, y


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_gradients_match_autograd(activation, loss):
    X, y, _ = data(loss)
    model = bp.mlp([5, 7, 6, 3], activation=activation, dtype="float64", seed=1, bias=0.05)
    value, grads = model.loss_and_gradients(X, y, loss=loss)
    twin = torch_twin(model)
    target = torch.from_numpy(y) if loss != "ce" else torch.from_numpy(y).long()
    reference = LOSSES[loss](twin(torch.from_numpy(X)), target)
    reference.backward()
    assert value == pytest.approx(reference.item(), rel=1e-12)
    linears = [m for m in twin if isinstance(m, torch.nn.Linear)]
    for i, linear in zip((0, 2, 4), linears):
        np.testing.assert_allclose(grads[f"{i}.W"], linear.weight.grad.numpy().T, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(grads[f"{i}.b"], linear.bias.grad.numpy(), rtol=1e-10, atol=1e-14)


OPTIMIZERS = [
    ("gd", {"lr": 0.1}, lambda p, wd: torch.optim.SGD(p, lr=0.1)),
    ("momentum", {"lr": 0.05, "weight_decay": 0.01},
     lambda p, wd: torch.optim.SGD(p(0.01), lr=0.05, momentum=0.9)),
    ("nesterov", {"lr": 0.05}, lambda p, wd: torch.optim.SGD(p(0.0), lr=0.05, momentum=0.9, nesterov=True)),
    ("rmsprop", {"lr": 0.01}, lambda p, wd: torch.optim.RMSprop(p(0.0), lr=0.01, alpha=0.9, eps=1e-8)),
    ("adam", {"lr": 0.01, "weight_decay": 0.01}, lambda p, wd: torch.optim.Adam(p(0.01), lr=0.01, eps=1e-8)),
    ("adamw", {"lr": 0.01}, lambda p, wd: torch.optim.AdamW(p(0.01), lr=0.01, eps=1e-8)),
]


@pytest.mark.parametrize("name,ours,theirs", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_steps_match_torch_optim(name, ours, theirs):
    X, y, _ = data("ce", n=24)
    model = bp.mlp([5, 8, 3], activation="tanh", dtype="float64", seed=2)
    twin = torch_twin(model)
    linears = [m for m in twin if isinstance(m, torch.nn.Linear)]

    def groups(weight_decay=0.0):  # weight decay on weight matrices only, as ours
        return [{"params": [m.weight for m in linears], "weight_decay": weight_decay},
                {"params": [m.bias for m in linears], "weight_decay": 0.0}]

    optimizer = theirs(groups if name != "gd" else twin.parameters(), None)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y).long()
    for _ in range(5):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(twin(Xt), yt).backward()
        optimizer.step()
    model.fit(X, y, loss="ce", optimizer=name, epochs=5, batch_size="full", **ours)
    params = model.parameters()
    for i, linear in zip((0, 2), linears):
        np.testing.assert_allclose(params[f"{i}.W"], linear.weight.detach().numpy().T, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(params[f"{i}.b"], linear.bias.detach().numpy(), rtol=1e-10, atol=1e-13)
