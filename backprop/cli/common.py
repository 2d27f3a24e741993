"""What the commands share: the device options and the command line's own error type."""

from __future__ import annotations

from ..errors import ConfigError


class UsageError(ConfigError):
    """A command line that cannot work; the message says what to change."""


def device_spec(device: str | None, backend: str | None) -> str:
    """``--device`` and the optional ``--backend`` as one backends spec string."""
    device = (device or "cpu").strip().lower()
    if backend is None:
        return device
    backend = backend.strip().lower()
    where, _, index = device.partition(":")
    if backend == "numpy":
        if where != "cpu":
            raise UsageError(f"--backend numpy runs on the CPU only, not {device!r}: drop --device "
                             "or use --backend cupy")
        return "cpu"
    if backend == "cupy":
        if where == "cpu":
            raise UsageError("--backend cupy needs a GPU: use --device cuda (or cuda:N)")
        return device
    if backend == "torch":
        return "torch" if where == "cpu" else f"torch:cuda{':' + index if index else ''}"
    raise UsageError(f"unknown backend {backend!r}: use numpy, cupy or torch")
