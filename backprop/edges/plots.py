"""Pictures of a training run: loss and accuracy curves, decision boundaries, fitted curves,
and the fit pictures MATLAB users read (``plotregression``, ``ploterrhist``, ``plotperform``,
``plotconfusion``).

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


PART_COLORS = {"training": "C0", "validation": "C2", "test": "C3", "all": "k"}
"""The parts of a run's data as the fit plots name them (MATLAB's colours: blue, green, red)."""


def regression_line(outputs: np.ndarray, targets: np.ndarray) -> tuple[float, float, float]:
    """``(R, slope, intercept)`` of outputs against targets, every entry of (N,) or (N, K)
    pooled (as MATLAB's ``plotregression``): Pearson's R and the least-squares line
    ``output ≈ slope·target + intercept``; NaN where the targets (or outputs) do not vary."""
    o = np.asarray(outputs, dtype=np.float64).ravel()
    t = np.asarray(targets, dtype=np.float64).ravel()
    dt, do = t - t.mean(), o - o.mean()
    st, so, cross = float(dt @ dt), float(do @ do), float(dt @ do)
    slope = cross / st if st > 0 else np.nan
    r = cross / np.sqrt(st * so) if st > 0 and so > 0 else np.nan
    return float(r), float(slope), float(o.mean() - slope * t.mean())


def _with_all(parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``parts`` (name -> (outputs, targets), each (N, K)) and, with more than one, their union."""
    if len(parts) < 2:
        return dict(parts)
    pooled = tuple(np.concatenate([np.asarray(p[i], dtype=np.float64).reshape(-1) for p in parts.values()])
                   for i in (0, 1))
    return {**parts, "all": pooled}


def regression(parts: dict[str, tuple[np.ndarray, np.ndarray]], path: str, name: str = "") -> str:
    """MATLAB's ``plotregression``: one panel per part (``parts``: "training", "validation",
    "test" -> (outputs, targets), each (N,) or (N, K) in the target's units, every output pooled)
    and one for all of them: the points, the least-squares line, the line ``output = target``,
    and R in the title."""
    plt = _pyplot()
    panels = _with_all(parts)
    cols = 2 if len(panels) == 4 else len(panels)
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.3 * rows), squeeze=False)
    for ax, (part, (outputs, targets)) in zip(axes.ravel(), panels.items()):
        _regression_panel(ax, part, np.ravel(outputs), np.ravel(targets))
    fig.suptitle(f"{name + ': ' if name else ''}outputs against targets")
    return _write(plt, fig, path)


def _regression_panel(ax, part: str, outputs: np.ndarray, targets: np.ndarray) -> None:
    """One part's outputs (N,) against its targets (N,), the fit and ``output = target``."""
    r, slope, intercept = regression_line(outputs, targets)
    color = PART_COLORS.get(part, "C0")
    ax.scatter(targets, outputs, s=12, facecolors="none", edgecolors=color, linewidths=0.8, label="data")
    low, high = min(targets.min(), outputs.min()), max(targets.max(), outputs.max())
    ends = np.array([low, high])
    ax.plot(ends, ends, ":", color="0.4", label="output = target")
    line = "output"  # no line through targets that do not vary
    if np.isfinite(slope):
        ax.plot(ends, slope * ends + intercept, "-", color=color, linewidth=1.8, label="fit")
        line = f"output ≈ {slope:.3g}·target {'+' if intercept >= 0 else '−'} {abs(intercept):.3g}"
    ax.set(title=f"{part.capitalize()}: R = {r:.5f}", xlabel="target", ylabel=line)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")


def error_bins(errors: dict[str, np.ndarray], bins: int = 20) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(edges (bins + 1,), {part: counts (bins,)})``: the bins span every part's errors (as
    MATLAB's ``ploterrhist``, which stacks the parts on the same bins)."""
    pooled = np.concatenate([np.asarray(e, dtype=np.float64).ravel() for e in errors.values()])
    edges = np.histogram_bin_edges(pooled, bins=bins)
    return edges, {part: np.histogram(np.ravel(e), bins=edges)[0] for part, e in errors.items()}


def error_histogram(parts: dict[str, tuple[np.ndarray, np.ndarray]], path: str, name: str = "",
                    bins: int = 20) -> str:
    """MATLAB's ``ploterrhist``: the errors (targets − outputs, every output pooled) of each
    part in ``parts`` (name -> (outputs, targets), (N,) or (N, K)) stacked on ``bins`` shared
    bins, with the zero error marked."""
    plt = _pyplot()
    errors = {part: np.ravel(targets) - np.ravel(outputs) for part, (outputs, targets) in parts.items()}
    edges, counts = error_bins(errors, bins)
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bottom = np.zeros(bins)
    for part, count in counts.items():
        ax.bar(centres, count, width=width * 0.9, bottom=bottom, color=PART_COLORS.get(part, "C0"),
               label=part)
        bottom += count
    ax.axvline(0.0, color="C1", linewidth=1.5, label="zero error")
    ax.set(title=f"{name + ': ' if name else ''}error histogram with {bins} bins",
           xlabel="error = target − output", ylabel="instances")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    return _write(plt, fig, path)


def performance(records: list[dict], path: str, name: str = "", *, loss: str = "loss",
                test_losses: dict[int, float] | None = None, best_epoch: int | None = None) -> str:
    """MATLAB's ``plotperform``: the loss per epoch of training and validation (``records``,
    the history's) and of the test part (``test_losses``: epoch -> loss, where measured), on a
    log scale while every loss is above 0, the best validation epoch circled (``best_epoch``,
    else the lowest validation loss)."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in records]
    tested = test_losses or {}
    lines = {"training": [r.get("train_loss") for r in records],
             "validation": [r.get("val_loss") for r in records],
             "test": [tested.get(e) for e in epochs]}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _loss_lines(ax, epochs, lines)
    ax.set(xlabel="epoch", ylabel=f"{loss} (training units)",
           title=f"{name + ': ' if name else ''}{_best(ax, epochs, lines['validation'], best_epoch)}")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _write(plt, fig, path)


def _loss_lines(ax, epochs: list[int], lines: dict[str, list[float | None]]) -> None:
    """Each part's loss per epoch that has any (a gap where an epoch lacks it), on a log scale
    while every loss drawn is above 0."""
    drawn = []
    for part, values in lines.items():
        known = [v for v in values if v is not None]
        if known:
            ax.plot(epochs, [np.nan if v is None else v for v in values], color=PART_COLORS[part], label=part)
            drawn += known
    if drawn and min(drawn) > 0:
        ax.set_yscale("log")


def _best(ax, epochs: list[int], val: list[float | None], best_epoch: int | None) -> str:
    """Circle the best validation epoch (``best_epoch``, else the lowest validation loss) on
    ``ax``; the title saying it (or that there was no validation part)."""
    known = {e: v for e, v in zip(epochs, val) if v is not None and np.isfinite(v)}
    if not known:
        return "loss per epoch (no validation part)"
    best = best_epoch if best_epoch in known else min(known, key=known.get)
    ax.axvline(best, color="0.4", linestyle=":", linewidth=1)
    ax.plot([best], [known[best]], "o", markersize=10, markerfacecolor="none", markeredgecolor="C2",
            label="best")
    return f"best validation loss {known[best]:.4g} at epoch {best}"


def confusion_counts(predicted: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: row ``i``, column ``j`` the samples of target class ``j`` the network
    put in class ``i`` (MATLAB's ``plotconfusion``: output class down, target class across);
    ``predicted`` and ``targets`` (N,) class indices."""
    flat = np.asarray(predicted, dtype=np.int64) * k + np.asarray(targets, dtype=np.int64)
    return np.bincount(flat, minlength=k * k).reshape(k, k)


def confusion(parts: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str], path: str,
              name: str = "") -> str:
    """MATLAB's ``plotconfusion``: one matrix per part (``parts``: name -> (predicted, targets),
    (N,) class indices) and one for all of them, each cell's count and share of the part, the
    share correct in the title."""
    plt = _pyplot()
    panels = _with_all(parts)
    cols = 2 if len(panels) == 4 else len(panels)
    rows = (len(panels) + cols - 1) // cols
    side = min(9.0, 2.5 + 0.45 * len(classes))
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, side * rows), squeeze=False)
    for ax, (part, (predicted, targets)) in zip(axes.ravel(), panels.items()):
        _confusion_panel(ax, part, confusion_counts(predicted, targets, len(classes)), classes)
    fig.suptitle(f"{name + ': ' if name else ''}confusion matrices")
    return _write(plt, fig, path)


def _confusion_panel(ax, part: str, counts: np.ndarray, classes: list[str]) -> None:
    """One part's (K, K) counts: the diagonal green, the rest red, shaded by the share."""
    total = max(int(counts.sum()), 1)
    share = counts / total
    correct = np.eye(len(classes), dtype=bool)
    colours = np.where(correct[..., None], [0.3, 0.75, 0.3], [0.9, 0.35, 0.3])
    strength = np.where(counts > 0, 0.25 + 0.75 * share / share.max(initial=1e-300), 0.0)[..., None]
    ax.imshow(1.0 - (1.0 - colours) * strength)  # white for an empty cell, deeper for a larger share
    if len(classes) <= 12:  # past a dozen classes the numbers no longer fit their cells
        for (i, j), c in np.ndenumerate(counts):
            if c == 0 and len(classes) > 4:  # many classes: the empty cells stay white and blank
                continue
            ax.text(j, i, f"{c}\n{100 * c / total:.1f}%", ha="center", va="center", fontsize="small")
    ticks = range(len(classes))
    ax.set(xticks=ticks, yticks=ticks, xticklabels=classes, yticklabels=classes, xlabel="target class",
           ylabel="output class", title=f"{part.capitalize()}: {100 * np.trace(counts) / total:.1f}% correct")


RUN_PICTURES = {"curves": "curves.png", "boundary": "decision_boundary.png", "fit": "fit.png",
                "regression": "regression.png", "errors": "error_histogram.png",
                "performance": "performance.png", "confusion": "confusion.png"}
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
