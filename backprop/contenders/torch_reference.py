"""The same network trained by PyTorch eager, for ``backprop bench --compare torch``.

A training loop as a PyTorch user writes it: ``nn.Sequential`` of ``nn.Linear``,
``CrossEntropyLoss`` (or ``BCEWithLogitsLoss``), a ``torch.optim`` optimizer with
its defaults (the multi-tensor ``foreach`` update on CUDA, a per-tensor loop on the
CPU), and, like our ``fit``, the
loss and the number of right predictions kept on the device and read once per
block of steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backends import BackendUnavailable, get_backend


def torch_threads(threads: int | None = None) -> int | None:
    """Set PyTorch's CPU thread count (None: leave it); returns the count in use."""
    try:
        import torch
    except ImportError:
        return None
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


class TorchTrainer:
    """An MLP trained by PyTorch eager on ``device`` (``"cpu"`` or ``"cuda:N"``).

    Parameters are those of :class:`backprop.contenders.handwritten.HandwrittenTrainer`;
    ``tf32`` lets float32 matrix products use TF32 tensor cores on a GPU.
    """

    label = "torch"

    def __init__(self, device: str, weights: list, activation: str, loss: str, optimizer: dict,
                 dtype: str, X: np.ndarray, labels: np.ndarray, tf32: bool = False) -> None:
        spec = "torch:cpu" if device == "cpu" else f"torch:{device}"
        self.backend = get_backend(spec, tf32=tf32)  # raises BackendUnavailable without torch
        import torch

        self.torch = torch
        dev = self.backend.device
        tdtype = getattr(torch, dtype)
        layers: list[Any] = []
        with self.backend.activate():
            for i, (w, b) in enumerate(weights):
                linear = torch.nn.Linear(w.shape[0], w.shape[1], device=dev, dtype=tdtype)
                with torch.no_grad():
                    linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(np.asarray(w, dtype).T)))
                    linear.bias.copy_(torch.from_numpy(np.asarray(b, dtype)))
                layers.append(linear)
                if i < len(weights) - 1:
                    layers.append(torch.nn.ReLU() if activation == "relu" else torch.nn.Tanh())
            self.model = torch.nn.Sequential(*layers)
            self.X = torch.from_numpy(np.asarray(X, dtype)).to(dev)
            if loss == "ce":
                self.y = torch.from_numpy(np.asarray(labels, np.int64)).to(dev)
                self.lossf = torch.nn.CrossEntropyLoss()
            else:
                self.y = torch.from_numpy(np.asarray(labels, dtype).reshape(-1, 1)).to(dev)
                self.lossf = torch.nn.BCEWithLogitsLoss()
        self.loss = loss
        params = self.model.parameters()
        name, lr = optimizer["name"], optimizer["lr"]
        if name == "sgd":
            self.opt = torch.optim.SGD(params, lr=lr)
        elif name == "momentum":
            self.opt = torch.optim.SGD(params, lr=lr, momentum=optimizer["momentum"])
        elif name == "adam":
            self.opt = torch.optim.Adam(params, lr=lr, betas=(optimizer["beta1"], optimizer["beta2"]),
                                        eps=optimizer["eps"])
        else:
            raise BackendUnavailable(f"no PyTorch counterpart set up for optimizer {name!r}")

    def run(self, spans: list[tuple[int, int]]) -> float:
        """Train one step per (start, stop) batch; the mean loss, read once at the end."""
        torch, model, opt = self.torch, self.model, self.opt
        with self.backend.activate():
            losses, hits = [], []
            for start, stop in spans:
                x, y = self.X[start:stop], self.y[start:stop]
                opt.zero_grad()
                out = model(x)
                loss = self.lossf(out, y)
                loss.backward()
                opt.step()
                losses.append(loss.detach())
                if self.loss == "ce":
                    hits.append((out.argmax(dim=1) == y).sum())
                else:
                    hits.append(((out > 0) == (y > 0.5)).sum())
            total = torch.stack(losses).sum()
            torch.stack(hits).sum()
            return float(total) / len(spans)
