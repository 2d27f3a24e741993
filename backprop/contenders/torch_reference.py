"""The same network trained by PyTorch eager, for ``backprop bench --compare torch``.

A training loop as a PyTorch user writes it: ``nn.Sequential`` of ``nn.Linear`` (and
``nn.Conv1d``/``Conv2d``, ``nn.MaxPool1d``/``2d``, ``nn.Flatten`` for the convolutional sizes),
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


def _module(torch: Any, kind: str, config: dict, params: dict[str, np.ndarray], dtype: str) -> Any:
    """The torch.nn module of one of our layers (registry name, settings, host parameters), holding
    the same weights; BackendUnavailable for a layer this contender has no counterpart set up for."""
    nn = torch.nn
    simple = {"relu": nn.ReLU, "tanh": nn.Tanh, "flatten": nn.Flatten}
    pools = {"maxpool1d": nn.MaxPool1d, "maxpool2d": nn.MaxPool2d}
    convs = {"conv1d": nn.Conv1d, "conv2d": nn.Conv2d}
    if kind in simple:
        return simple[kind]()
    if kind in pools:
        return pools[kind](config["pool_size"], stride=config["stride"], padding=config["padding"])
    if kind == "dense":
        W = params["W"].T  # ours is (in, out), torch's (out, in)
        module = nn.Linear(W.shape[1], W.shape[0], dtype=getattr(torch, dtype))
    elif kind in convs:
        W = params["W"]  # (out, in, *kernel) on both sides
        module = convs[kind](W.shape[1], W.shape[0], config["kernel_size"], stride=config["stride"],
                             padding=config["padding"], dilation=config["dilation"],
                             dtype=getattr(torch, dtype))
    else:
        raise BackendUnavailable(f"no PyTorch counterpart set up for layer {kind!r}")
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(np.ascontiguousarray(np.asarray(W, dtype))))
        module.bias.copy_(torch.from_numpy(np.asarray(params["b"], dtype)))
    return module


class TorchTrainer:
    """Our network trained by PyTorch eager on ``device`` (``"cpu"`` or ``"cuda:N"``).

    ``network``: our layers as (registry name, settings, parameters as host arrays), the
    starting point (dense, conv1d, conv2d, maxpool1d, maxpool2d, flatten, relu, tanh); the
    other parameters are those of :class:`backprop.contenders.handwritten.HandwrittenTrainer`.
    ``tf32`` lets float32 matrix products use TF32 tensor cores on a GPU.
    """

    label = "torch"

    def __init__(self, device: str, network: list, loss: str, optimizer: dict,
                 dtype: str, X: np.ndarray, labels: np.ndarray, tf32: bool = False) -> None:
        spec = "torch:cpu" if device == "cpu" else f"torch:{device}"
        self.backend = get_backend(spec, tf32=tf32)  # raises BackendUnavailable without torch
        import torch

        self.torch = torch
        dev = self.backend.device
        with self.backend.activate():
            self.model = torch.nn.Sequential(*[_module(torch, *layer, dtype) for layer in network]).to(dev)
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

    def outputs(self, start: int, stop: int) -> np.ndarray:
        """The network's outputs (logits) for the samples start:stop, on the host."""
        with self.backend.activate(), self.torch.no_grad():
            return self.model(self.X[start:stop]).cpu().numpy()

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
