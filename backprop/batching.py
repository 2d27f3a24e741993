"""Batches of a pass over device arrays, and an epoch's totals from per-batch values."""

from __future__ import annotations

from typing import Any

from ._typing import Array
from .losses import Loss


def spans(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each batch of ``batch_size`` rows out of ``n``; the last may be short."""
    # Stops clipped to n: the standard leaves out-of-bounds slices unspecified.
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def totals(xp: Any, values: list[Array], hits: list[Array | None], batches: list[tuple[int, int]],
           loss: Loss) -> tuple[Array, Array | None]:
    """An epoch's summed loss and correct count (0-d device arrays) from per-batch 0-d arrays.

    A ``"mean"`` loss is weighed by its batch's size, so the epoch's loss is the
    mean over samples even when the last batch is short. Stacking once per epoch
    instead of adding per step saves two tiny device operations (two kernel
    launches on a GPU) per step.
    """
    stacked = xp.stack(values)
    total = xp.sum(stacked)
    if loss.reduction == "mean":
        # All batches are full but possibly the last.
        full, last = batches[0][1] - batches[0][0], batches[-1][1] - batches[-1][0]
        total = total * full + stacked[-1] * (last - full)
    correct = None if hits[0] is None else xp.sum(xp.stack(hits))
    return total, correct


def means(total: Array, correct: Array | None, n: int, T: Array, loss: Loss) -> tuple[float, float | None]:
    """The pass's loss (mean per sample, or the sum for a ``"sum"`` loss) and accuracy
    (None: not a classifier) as Python floats, from :func:`totals` over ``n`` samples with
    targets ``T`` (N, K). Reading them is the pass's one device synchronisation."""
    value = float(total) / (n if loss.reduction == "mean" else 1)
    accuracy = None if correct is None else float(correct) / (n * loss.labels_per_sample(T))
    return value, accuracy
