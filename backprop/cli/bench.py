"""``backprop bench``: training-step speed per size and device, beside PyTorch, as a table."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap

from backends import FLOAT_DTYPES, BackendUnavailable, get_backend

from ..apps import bench
from ..apps.bench import format_time
from ..contenders.handwritten import ACTIVATIONS as HANDWRITTEN_ACTIVATIONS
from .common import UsageError
from .report import json_value

COLUMNS = (  # header, report key
    ("size", "size"), ("layers", "layers"), ("batch", "batch"), ("device", "device"),
    ("impl", "impl"), ("precision", "precision"), ("step", "step_s"),
    ("samples/s", "samples_per_s"), ("TFLOP/s", "tflops"), ("of peak", "ceiling_fraction"),
    ("memory", "peak_memory_bytes"), ("ours x", "backprop_speedup"),
)


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _cell(key: str, row: dict) -> str:
    value = row[key]
    if key == "step_s":
        return format_time(value)
    if key == "samples_per_s":
        return f"{value:,.0f}"
    if key == "tflops":
        return f"{value:.3g}"
    if key == "ceiling_fraction":
        return f"{100 * value:.1f}%"
    if key == "peak_memory_bytes":
        return _bytes(value)
    if key == "backprop_speedup":
        return "" if row["impl"] == "backprop" else f"{value:.2f}"
    return str(value)


def render(report: dict) -> str:
    """The human-readable report: settings, ceilings, the table, speedups, agreement."""
    out = _header(report) + [""] + _aligned(_grid(report["results"])) + [""]
    out += textwrap.wrap(
        "step: median over the timed blocks, the device synchronised before the clock is read. "
        "of peak: TFLOP/s over the device's matrix-multiply ceiling. ours x: how many times faster "
        "our fit loop runs than that row (below 1: slower), timed block by block in turn.", 100)
    threads = {f"{r['size']} {r['threads']}": None for r in report["results"] if r.get("threads")}
    if threads:
        out.append(f"CPU threads, every row of a size alike (fit's rule, or --threads): {', '.join(threads)}")
    for f in report.get("step_over_matmuls", []):
        out.append(f"step / matmuls, {f['size']} on {f['device']}: {f['ratio']:.2f} "
                   f"({format_time(f['step_s'])} a step, {format_time(f['matmuls_s'])} for its matrix "
                   "products alone)")
    for sp in report["speedups"]:
        out.append(f"speedup {sp['size']}: {sp['device']} is {sp['speedup']:.2f}x {sp['over']}")
    out += [_agreement_line(a) for a in report["agreement"]]
    out += [f"note: {n}" for n in report["notes"]]
    return "\n".join(out)


def _header(report: dict) -> list[str]:
    """The lines above the table: the settings, the CPU and its threads, each device's ceiling."""
    s, m = report["settings"], report["machine"]
    opt = s["optimizer"]
    opt_text = ", ".join(f"{k} {v}" for k, v in opt.items() if k != "name")
    threads = f"{m['blas']} with {m['blas_threads']} threads" if m.get("blas") else "BLAS threads unknown"
    if m.get("torch_threads"):
        threads += f"; torch {m['torch_threads']} threads"
    out = [f"backprop bench: {s['dtype']}, {opt['name']} ({opt_text}), {s['activation']}, seed {s['seed']}",
           f"CPU: {m['cpu']}, {m['cores']} cores ({threads})"]
    for d in report["devices"]:
        out.append(f"{d['device']}: {d.get('device_name', '')}; matrix-multiply ceiling "
                   f"{d['ceiling_tflops']:.3g} TFLOP/s ({d['ceiling_gemm']} {d['precision']})")
    return out


def _grid(rows: list[dict]) -> list[list[str]]:
    """The table's cells, the header first: size, layers and batch once per group of rows
    of a size, and the device once per run of rows on it within the group."""
    grid = [[h for h, _ in COLUMNS]]
    previous = None
    for row in rows:
        cells = [_cell(key, row) for _, key in COLUMNS]
        if previous is not None and row["size"] == previous["size"]:
            cells[:3] = ["", "", ""]  # size, layers and batch once per group
            if row["device"] == previous["device"]:
                cells[3] = ""
        grid.append(cells)
        previous = row
    return grid


def _aligned(grid: list[list[str]]) -> list[str]:
    """The grid as lines of padded columns: text (the first six) left-aligned, numbers right."""
    widths = [max(len(line[i]) for line in grid) for i in range(len(COLUMNS))]
    return ["  ".join(c.ljust(w) if i < 6 else c.rjust(w)
                      for i, (c, w) in enumerate(zip(line, widths))).rstrip() for line in grid]


def _agreement_line(a: dict) -> str:
    """One comparison of two runs' losses after the timed steps, and its verdict."""
    verdict = {True: "ok", None: "not compared: a run diverged (lower the learning rate)"}.get(
        a["ok"], f"DIFFERS (allowed {a['atol']:g} + {a['rtol']:g} x loss)")
    return (f"loss after the timed steps, {a['size']}: {a['a']} {a['loss_a']:.6g}, {a['b']} "
            f"{a['loss_b']:.6g} (difference {a['abs_diff']:.2g}, relative {a['rel_diff']:.2g}): {verdict}")


def _names(text: str, allowed: tuple[str, ...] | None, what: str) -> list[str]:
    names = list(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    if allowed is not None:
        bad = [n for n in names if n not in allowed]
        if bad:
            raise UsageError(f"unknown {what} {bad[0]!r}: use {', '.join(allowed)}")
    return names


def _devices(text: str | None, notes: list[str]) -> list[str]:
    if text is not None:
        names = _names(text, None, "device")
        if not names:
            raise UsageError("--devices names no device: use e.g. cpu or cpu,cuda")
        for name in names:
            get_backend(name)  # a clear one-line error for an unknown or unusable device
        return names
    names = ["cpu"]
    try:
        get_backend("cuda")
        names.append("cuda")
    except BackendUnavailable as exc:
        notes.append(f"cuda not measured: {exc}")
    return names


def _sizes(args: argparse.Namespace) -> list[bench.Size]:
    sizes = []
    if args.sizes is not None or args.layers is None:
        names = _names(args.sizes or ",".join(bench.SIZES), tuple(bench.SIZES), "size")
        if not names:
            raise UsageError(f"--sizes names no size: use some of {','.join(bench.SIZES)}")
        sizes += [bench.with_counts(bench.SIZES[name], args.steps, args.repeats) for name in names]
    if args.layers is not None:
        sizes.append(bench.custom_size(args.layers, args.batch_size or 128, args.steps, args.repeats))
    elif args.batch_size is not None:
        raise UsageError("--batch-size goes with --layers (the named sizes have their own batch)")
    return sizes


def run(args: argparse.Namespace) -> int:
    from backends.machine import limit_threads

    notes: list[str] = []
    compare = _names(args.compare or "", bench.CONTENDERS, "--compare choice")
    if args.plot:
        from ..edges.plots import require_matplotlib

        require_matplotlib()
        _check_picture_path(args.plot)  # before minutes of measuring, not after
    settings = bench.Settings(sizes=_sizes(args), devices=_devices(args.devices, notes), compare=compare,
                              dtype=args.dtype, precision=args.precision, optimizer=args.optimizer,
                              activation=args.activation, seed=args.seed, threads=args.threads)
    if "torch" in compare:
        from backends.machine import blas_info
        from backprop.contenders.torch_reference import torch_threads

        # The same thread count on both sides, or the comparison measures the thread pools.
        torch_threads(args.threads or blas_info()["blas_threads"])

    def progress(line: str) -> None:
        if not (args.json or args.quiet):
            print(line, file=sys.stderr, flush=True)

    with limit_threads(args.threads):
        report = bench.run(settings, progress)
    report["notes"] = notes + report["notes"]
    if args.plot:
        from ..edges.plots import bench_figure

        report["plot"] = bench_figure(report, args.plot)
    if args.json:
        print(json.dumps(_clean(report)))
    elif not args.quiet:
        print(render(report))
        if args.plot:
            print(f"picture: {args.plot}")
    if not report["ok"]:
        bad = next(a for a in report["agreement"] if a["ok"] is False)
        print(f"backprop: error: {bad['a']} and {bad['b']} disagree on the {bad['size']} loss after the "
              f"timed steps ({bad['loss_a']:.6g} vs {bad['loss_b']:.6g}): a bug; please report it",
              file=sys.stderr)
        return 1
    return 0


def _check_picture_path(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.splitext(path)[1].lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"--plot {path}: give a .png, .svg or .pdf file name")
    if os.path.isdir(path):
        raise UsageError(f"--plot {path} is a folder: give a file name such as bench.png")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UsageError(f"--plot {path}: the folder {folder} does not exist or is not writable")
    from ..edges.checkpoint import check_writable

    check_writable(path, "picture")  # never over a user's file, a checkpoint or through a device


def _clean(obj):
    """JSON has no NaN or infinity: null in their place, recursively."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return json_value(obj)


def add_parser(commands, positive_int, hidden, seed) -> None:
    p = commands.add_parser(
        "bench", help="training-step speed per network size on CPU and GPU, beside PyTorch",
        description="Time training steps of the real fit loop for networks from XOR size to large and two "
                    "convolutional ones, on "
                    "each device, and print step time, samples/s, TFLOP/s against the device's "
                    "measured matrix-multiply ceiling, peak memory, the GPU/CPU speedup and the loss "
                    "each run reached (which must agree). Sizes: "
                    + "; ".join(f"{s.name} {s.label} batch {s.batch}" for s in bench.SIZES.values()))
    p.add_argument("--sizes", default=None, help="comma-separated sizes (default: all of them, or none "
                   "with --layers)")
    p.add_argument("--layers", type=hidden, default=None, metavar="W,W,...",
                   help="a custom network: input, hidden..., output widths, e.g. 784,512,10")
    p.add_argument("--batch-size", type=positive_int, default=None, help="batch for --layers (128)")
    p.add_argument("--devices", default=None,
                   help="comma-separated, e.g. cpu,cuda (default: cpu, and cuda when usable)")
    p.add_argument("--compare", default=None, metavar=",".join(bench.CONTENDERS),
                   help="also time PyTorch eager, a hand-written NumPy (CuPy) step (MLP sizes only) "
                        "and/or the size's own matrix products alone (matmuls: every size and device; "
                        "prints step / matmuls), interleaved")
    p.add_argument("--dtype", choices=FLOAT_DTYPES, default="float32")
    p.add_argument("--precision", choices=("default", "tf32"), default="default",
                   help="tf32: TF32 tensor cores for float32 products on GPUs (CPU rows stay float32)")
    p.add_argument("--optimizer", choices=tuple(bench.OPTIMIZER_SETTINGS), default="momentum",
                   help="momentum (default: SGD, momentum 0.9, lr 0.01), sgd or adam")
    p.add_argument("--activation", choices=HANDWRITTEN_ACTIVATIONS, default="relu",
                   help="between the layers of every size, the convolutional ones too (relu)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="timed steps per block (default: by size, from 200 for xor to 1 for large)")
    p.add_argument("--repeats", type=positive_int, default=None,
                   help="timed blocks; the median is reported (default: by size, 5 to 9)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for NumPy's BLAS and PyTorch (default: fit's rule for each size's "
                        "step; the ceiling as they start)")
    p.add_argument("--seed", type=seed, default=0, help="seeds the weights and the data (0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="draw step time and speedup")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)
