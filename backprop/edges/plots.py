"""Pictures of a training run: loss and accuracy curves, decision boundaries, fitted curves.

Matplotlib is an optional extra (the ``plot`` extra: ``pip install -e '.[plot]'``) drawn with the
non-interactive Agg backend, so plots work on servers with no display.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import numpy as np

from backends.extras import install_hint

from ..errors import ConfigError


def require_matplotlib() -> None:
    """Raise ConfigError with the install hint when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(f"--plot needs matplotlib: {install_hint('plot')}") from None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never opens a window
    import matplotlib.pyplot as plt

    return plt


def _write(plt, fig, path: str) -> str:
    """Draw ``fig`` into memory, then replace ``path`` atomically, marked as ours (the mark
    lets a later run replace it: ``checkpoint.check_writable`` refuses files not ours)."""
    from .checkpoint import PICTURE_SOFTWARE, write_atomic

    fig.tight_layout()
    kind = os.path.splitext(path)[1].lower().lstrip(".") or "png"
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=kind, dpi=110,
                    metadata={"Software" if kind == "png" else "Creator": PICTURE_SOFTWARE})
    finally:
        plt.close(fig)  # pyplot keeps every open figure alive otherwise
    write_atomic(path, buffer.getvalue())
    return path


def curves(records: list[dict], path: str, name: str = "") -> str:
    """Train/validation loss (and accuracy when recorded) per epoch, as a PNG titled
    after the data set ``name`` and the panels it has."""
    plt = _pyplot()
    has_acc = any("train_accuracy" in r for r in records)
    title = f"{name + ': ' if name else ''}loss{' and accuracy' if has_acc else ''} per epoch"
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4), squeeze=False)
    panels = [("loss", axes[0][0])] + ([("accuracy", axes[0][1])] if has_acc else [])
    for metric, ax in panels:
        _curve_panel(ax, records, metric)
    fig.suptitle(title)
    return _write(plt, fig, path)


def _curve_panel(ax, records: list[dict], metric: str) -> None:
    """One panel: ``metric`` per epoch for training and validation, where recorded (a gap
    where an epoch lacks it); the loss on a log scale while every training loss is above 0."""
    epochs = [r["epoch"] for r in records]
    for part, style in (("train", "-"), ("val", "--")):
        values = [r.get(f"{part}_{metric}") for r in records]
        if any(v is not None for v in values):
            ax.plot(epochs, [np.nan if v is None else v for v in values], style,
                    label="training" if part == "train" else "validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    if metric == "loss" and all(r.get("train_loss", 0) > 0 for r in records):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()


def decision_boundary(predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, labels: np.ndarray,
                      classes: list[str], path: str, title: str = "", resolution: int = 300,
                      axis_names: tuple[str, str] = ("x1", "x2")) -> str:
    """Predicted class regions over a 2-D input plane with the data on top.

    ``predict`` maps raw inputs (M, 2) to class scores (M, K); ``labels`` (N,)
    are class indices; ``axis_names`` label the two input columns.
    """
    plt = _pyplot()
    low, high = X.min(axis=0), X.max(axis=0)
    pad = 0.1 * np.where(high > low, high - low, 1.0)
    g0, g1 = (np.linspace(low[i] - pad[i], high[i] + pad[i], resolution) for i in range(2))
    G0, G1 = np.meshgrid(g0, g1)
    scores = predict(np.column_stack([G0.ravel(), G1.ravel()]))
    k = len(classes)
    cmap = plt.get_cmap("tab10" if k <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(6, 5.5))
    if k == 2:  # the probability of the second class, shaded: shows the network's confidence
        field = scores[:, 1].reshape(G0.shape)
        shade = ax.contourf(G0, G1, field, levels=np.linspace(0, 1, 21), cmap="RdBu_r", alpha=0.6)
        ax.contour(G0, G1, field, levels=[0.5], colors="k", linewidths=1)
        fig.colorbar(shade, ax=ax, ticks=np.linspace(0, 1, 6), label=f"probability of {classes[1]}")
        colors = ["#2166ac", "#b2182b"]
    else:
        region = np.argmax(scores, axis=1).reshape(G0.shape)
        ax.contourf(G0, G1, region, levels=np.arange(k + 1) - 0.5, colors=[cmap(i) for i in range(k)],
                    alpha=0.35)
        colors = [cmap(i) for i in range(k)]
    for i, name in enumerate(classes):
        members = labels == i
        ax.scatter(X[members, 0], X[members, 1], s=14, color=colors[i], edgecolors="k",
                   linewidths=0.3, label=name)
    ax.legend(loc="best", fontsize="small", title="class")
    ax.set(title=title, xlabel=axis_names[0], ylabel=axis_names[1])
    return _write(plt, fig, path)


def fitted_curve(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray,
                 path: str, title: str = "", axis_names: tuple[str, str] = ("x", "y")) -> str:
    """A 1-D regression: the data points ``x`` (N, 1), ``y`` (N,) or (N, 1) and the
    network's curve through them; ``axis_names``: the input's and the target's."""
    plt = _pyplot()
    grid = np.linspace(x.min(), x.max(), 500)[:, None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(x.ravel(), y.ravel(), s=10, alpha=0.5, label="data")
    ax.plot(grid.ravel(), predict(grid)[:, 0], color="C3", linewidth=2, label="network")
    ax.legend()
    ax.set(title=title, xlabel=axis_names[0], ylabel=axis_names[1])
    ax.grid(alpha=0.3)
    return _write(plt, fig, path)


RUN_PICTURES = {"curves": "curves.png", "boundary": "decision_boundary.png", "fit": "fit.png"}
"""The pictures ``--plot DIR`` may draw, by what they show."""


def prepare_folder(folder: str) -> str:
    """Create ``folder``; refuse, before training, a run picture that would replace a user's file."""
    from .checkpoint import check_writable

    os.makedirs(folder, exist_ok=True)
    for name in RUN_PICTURES.values():
        check_writable(os.path.join(folder, name), "picture")
    return folder


def bench_figure(report: dict, path: str) -> str:
    """``backprop bench``: step time and speedup against network size (FLOPs per step).

    Left, the median step time of every (device, implementation). Right, how many
    times faster ours runs on each device than on the first one, and than each
    contender on the same device (above 1: ours is faster).
    """
    plt = _pyplot()
    rows = report["results"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    _step_time_panel(left, rows)
    _speedup_panel(right, _speedup_lines(report), rows[0]["device"] if rows else "")
    fig.suptitle(_bench_title(report))
    return _write(plt, fig, path)


def _step_time_panel(ax, rows: list[dict]) -> None:
    """Median step time against FLOPs per step, one line per (device, implementation) in
    the order the rows first name them; the sizes named once, along the first line."""
    series = dict.fromkeys((r["device"], r["impl"]) for r in rows)
    for n, (device, impl) in enumerate(series):
        mine = sorted((r for r in rows if r["device"] == device and r["impl"] == impl),
                      key=lambda r: r["flops_per_step"])
        style = "-" if impl == "backprop" else "--"
        ax.plot([r["flops_per_step"] for r in mine], [r["step_s"] for r in mine], style, marker="o",
                color=f"C{n % 10}", label=f"{impl} on {device}")
        for r in mine if n == 0 else ():  # size names once, on the first line
            ax.annotate(r["size"], (r["flops_per_step"], r["step_s"]), fontsize=7,
                        textcoords="offset points", xytext=(4, -8))
    ax.set(xscale="log", yscale="log", xlabel="FLOPs per training step (matrix products)",
           ylabel="median step time (s)", title="step time")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")


def _speedup_lines(report: dict) -> dict[str, list[tuple[float, float]]]:
    """The speedup lines by label, each a list of (FLOPs per step, times faster): ours on
    each device against ours on the first, then ours against each contender per device."""
    rows = report["results"]
    lines: dict[str, list[tuple[float, float]]] = {}
    for s in report.get("speedups", []):
        flops = next(r["flops_per_step"] for r in rows if r["size"] == s["size"])
        lines.setdefault(f"ours on {s['device']} vs ours on {s['over']}", []).append((flops, s["speedup"]))
    for r in rows:
        if r["impl"] != "backprop":
            lines.setdefault(f"ours vs {r['impl']} on {r['device']}", []).append(
                (r["flops_per_step"], r["backprop_speedup"]))
    return lines


def _speedup_panel(ax, lines: dict[str, list[tuple[float, float]]], first: str) -> None:
    """The speedup lines (devices solid, contenders dotted) around the break-even line at 1."""
    for n, (label, points) in enumerate(lines.items()):
        points.sort()
        ax.plot(*zip(*points), "-" if label.startswith("ours on") else ":", marker="s",
                color=f"C{(n + 3) % 10}", label=label)
    ax.axhline(1.0, color="k", linewidth=0.8)
    ax.set(xscale="log", yscale="log", xlabel="FLOPs per training step (matrix products)",
           ylabel="times faster (above 1: ours wins)",
           title=f"speedup (devices against {first}; ours against the others)")
    ax.grid(alpha=0.3, which="both")
    if lines:
        ax.legend(fontsize="small")


def _bench_title(report: dict) -> str:
    """The settings and the machine the numbers were measured with, GPU names included."""
    settings = report["settings"]
    return (f"backprop bench: {settings['dtype']}, {settings['optimizer']['name']}, "
            f"{settings['activation']}; {report['machine']['cpu']} ({report['machine']['cores']} cores)"
            + "".join(f"; {d['device_name']}" for d in report["devices"] if d["device"] != "cpu"))
