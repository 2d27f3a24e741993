"""How a training run talks: a banner, per-epoch progress, a summary, or JSON lines.

Human output goes to stdout with the progress bar (tqdm) on stderr, and only on a
terminal; piped to a file, a few plain progress lines replace the bar. ``--json``
prints one JSON object per line on stdout and nothing else there.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from typing import Any

from ..training import EPOCH_KEYS


def json_value(value: Any) -> Any:
    # JSON has no NaN or infinity; null is what every parser understands.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


PRINT_EVERY_S = 5.0
"""Piped to a file, a progress line comes at least this often (besides every ~1/20 of the run)."""


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 feature"``, ``"2 features"``, ``"1,024 classes"``: a count with its noun's right number."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def emit_json(obj: dict) -> None:
    print(json.dumps({k: json_value(v) for k, v in obj.items()}), flush=True)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.4g}"
    return str(value)


class Progress:
    """Per-epoch reporting in one of four modes: bar, lines, json, quiet.

    ``lines`` prints every ~1/20 of the run and, so that a long run written to a file shows
    life, whenever :data:`PRINT_EVERY_S` seconds of ``clock`` have passed since the last line.
    """

    def __init__(self, mode: str, first_epoch: int, last_epoch: int, device: str, backend: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.mode, self.device, self.backend = mode, device, backend
        self.total = last_epoch - first_epoch
        self.every = max(1, math.ceil(self.total / 20))  # at most ~20 lines when not on a terminal
        self.clock = clock
        self.last_line = clock()
        self.bar = None
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=last_epoch, initial=first_epoch, unit="epoch", file=sys.stderr,
                            dynamic_ncols=True, leave=False)

    def epoch(self, record: dict) -> None:
        if self.mode == "json":
            emit_json({"type": "epoch", **{k: record[k] for k in EPOCH_KEYS if k in record},
                       "device": self.device, "backend": self.backend})
        elif self.mode == "bar":
            shown = {"loss": _fmt(record["train_loss"])}
            for key, short in (("train_accuracy", "acc"), ("val_loss", "val_loss"),
                               ("val_accuracy", "val_acc")):
                if key in record:
                    shown[short] = _fmt(record[key])
            shown.update(_optimizer_state(record))
            shown["samples/s"] = f"{record['samples_per_s']:,.0f}"
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)
        elif self.mode == "lines" and (record["epoch"] % self.every == 0
                                       or self.clock() - self.last_line >= PRINT_EVERY_S):
            self.last_line = self.clock()
            parts = [f"epoch {record['epoch']}", f"loss {_fmt(record['train_loss'])}"]
            parts += [f"{k.replace('train_', '')} {_fmt(record[k])}" for k in
                      ("train_accuracy", "val_loss", "val_accuracy") if k in record]
            parts += [f"{key} {value}" for key, value in _optimizer_state(record).items()]
            parts.append(f"{record['samples_per_s']:,.0f} samples/s")
            print("  ".join(parts), flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def table(rows: dict[str, dict[str, float]]) -> str:
    """Metrics of the parts (train, val, test) as an aligned text table."""
    columns = list(dict.fromkeys(k for metrics in rows.values() for k in metrics))
    lines = [f"{'':<6}" + "".join(f"{c:>11}" for c in columns)]
    for part, metrics in rows.items():
        lines.append(f"{part:<6}" + "".join(f"{_fmt(metrics.get(c)):>11}" for c in columns))
    return "\n".join(lines)


def _optimizer_state(record: dict) -> dict[str, str]:
    """What a full-batch optimizer adds to an epoch's line, formatted: μ (lm, br, newton), γ (br)."""
    formats = {"mu": ".2g", "gamma": ".3g"}
    return {key: format(record[key], spec) for key, spec in formats.items() if key in record}
