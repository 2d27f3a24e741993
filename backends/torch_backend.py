"""PyTorch through array-api-compat: a second real implementation and a test oracle.

Never a dependency: used when installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .base import Backend, BackendUnavailable, MemoryPeak, UnknownDevice


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, device: str = "cpu", tf32: bool = False) -> None:
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailable(
                "PyTorch is not installed: 'pip install torch' (optional; the NumPy and "
                "CuPy backends do not need it)"
            ) from exc
        import array_api_compat.torch as xp_torch

        self._torch = torch
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise UnknownDevice(
                f"unknown torch device {device!r}: use 'torch', 'torch:cpu' or 'torch:cuda[:N]'"
            ) from exc
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise BackendUnavailable(
                    "torch:cuda asked for, but this PyTorch build sees no CUDA GPU: "
                    "install a CUDA build of PyTorch and check nvidia-smi"
                )
            index = 0 if dev.index is None else dev.index
            if index >= torch.cuda.device_count():
                raise BackendUnavailable(
                    f"torch:cuda:{index} asked for, but only {torch.cuda.device_count()} "
                    "GPU(s) are visible: pick a smaller index"
                )
            dev = torch.device("cuda", index)
        elif dev.type != "cpu":
            raise UnknownDevice(f"unsupported torch device {device!r}: use 'torch:cpu' or 'torch:cuda'")
        label = "torch:cpu" if dev.type == "cpu" else f"torch:cuda:{dev.index}"
        super().__init__(xp_torch, dev, label, tf32=tf32)

    @property
    def is_gpu(self) -> bool:
        return self.device.type == "cuda"

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self._torch.Tensor)

    def _from_host(self, host: np.ndarray) -> Any:
        return self._torch.from_numpy(host).to(self.device)

    def _to_own_device(self, x: Any) -> Any:
        return x if x.device == self.device else x.to(self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().to("cpu").numpy()

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        # torch's TF32 switch is process-wide: set this backend's choice (off unless
        # asked for: float32 must mean float32) while it is active, then restore.
        if not self.is_gpu:
            yield
            return
        matmul = self._torch.backends.cuda.matmul
        previous = matmul.allow_tf32
        matmul.allow_tf32 = self.tf32
        try:
            with self._torch.cuda.device(self.device):
                yield
        finally:
            matmul.allow_tf32 = previous

    def synchronize(self) -> None:
        if self.is_gpu:
            self._torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def track_memory(self) -> Iterator[MemoryPeak]:
        if not self.is_gpu:  # torch's CPU allocator reports to no tracer
            yield MemoryPeak("not measurable: torch reports no peak for CPU tensors")
            return
        # Reserved memory, as the caching allocator holds it: the measure CuPy's pool gives.
        peak = MemoryPeak("torch.cuda.max_memory_reserved during the block")
        cuda = self._torch.cuda
        cuda.synchronize(self.device)
        cuda.empty_cache()
        cuda.reset_peak_memory_stats(self.device)
        base, used = cuda.memory_reserved(self.device), cuda.memory_allocated(self.device)
        try:
            yield peak
        finally:
            cuda.synchronize(self.device)
            peak.bytes = cuda.max_memory_reserved(self.device) - base
            peak.held = cuda.memory_allocated(self.device) - used

    def describe(self) -> dict:
        info = {"backend": self.name, "device": self.label, "version": self._torch.__version__}
        if self.is_gpu:
            props = self._torch.cuda.get_device_properties(self.device)
            info["device_name"] = props.name
            info["memory_gib"] = round(props.total_memory / 2**30, 1)
        else:
            info["device_name"] = f"CPU ({self._torch.get_num_threads()} threads)"
        return info
