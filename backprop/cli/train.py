"""``backprop train``: the command line around :class:`backprop.runner.Run`.

Everything a run does lives in the library; this module turns options into
settings, and prints the banner, the progress and the summary (or JSON lines).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from typing import Any

from backends import dtype_name

from .. import spec
from ..apps.runner import Run
from ..edges import tfplayground
from ..errors import ConfigError
from ..settings import SETTINGS
from .common import device_spec
from .report import Progress, counted, emit_json, table


class _Interrupt:
    """First Ctrl-C: finish the current epoch, save, and stop. Second: stop at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = None

    def __enter__(self) -> _Interrupt:
        if hasattr(signal, "SIGINT"):
            try:
                self.previous = signal.signal(signal.SIGINT, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test runner thread)
                self.previous = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this epoch (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings the command line gave (an option left out is not given: None)."""
    return {name: getattr(args, name) for name in SETTINGS if getattr(args, name, None) is not None}


def from_link(args: argparse.Namespace, given: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The data and settings of ``--from``'s TensorFlow Playground link, under those the command line
    gave (``given``, and the data named); each key the link sets that backprop cannot follow is a note."""
    if args.resume:
        raise ConfigError("--from sets up a new run: leave out --resume (or --from)")
    setup = tfplayground.read(args.from_link)
    if not args.quiet and not args.json:
        for note in setup.notes:
            print(f"backprop: note: {note}", file=sys.stderr)
    settings = setup.train_settings()
    data = settings.pop("data")
    return args.data or data, {**settings, **given}


def run(args: argparse.Namespace) -> int:
    given = given_settings(args)
    data = args.data
    if getattr(args, "from_link", None) is not None:
        data, given = from_link(args, given)
    job = Run(data, resume=args.resume, save=args.save, plot=args.plot,
              device=device_spec(args.device, args.backend), distributed=getattr(args, "distributed", False),
              **given)
    model, mode = job.model, _mode(args, job)
    if mode not in ("json", "quiet"):
        print(_banner(job), flush=True)
    if mode != "quiet":
        for note in job.notes:
            print(f"backprop: note: {note}", file=sys.stderr)
    progress = Progress(mode, model.epoch, job.settings["epochs"], model.backend.label, model.backend.name)
    with _Interrupt() as interrupt:
        try:
            summary = job.fit(callbacks=[lambda record, _model: progress.epoch(record),
                                         lambda record, _model: interrupt.requested])
        except KeyboardInterrupt:
            progress.close()
            print(f"interrupted in epoch {model.epoch + 1}; {job.kept()}", file=sys.stderr)
            return 130
        finally:
            progress.close()
    _report(job, summary, mode)
    if job.comm is not None:
        # Under python -m mpi4py a rank's non-zero exit aborts the job: none leaves before rank 0
        # has printed everything (and drawn its plots).
        sys.stdout.flush()
        sys.stderr.flush()
        job.comm.barrier()
    return 1 if summary.get("error") else 130 if summary["status"] == "interrupted" else 0


def _mode(args: argparse.Namespace, job: Run) -> str:
    """How the run reports: JSON lines, nothing, a progress bar (a terminal) or plain lines;
    rank 0 reports for the whole job."""
    if not job.root:
        return "quiet"
    return "json" if args.json else "quiet" if args.quiet else "bar" if _terminal_width() else "lines"


def _report(job: Run, summary: dict, mode: str) -> None:
    """The summary: a JSON line, or the closing lines and the table; a failure's line on stderr."""
    model, status, failure = job.model, summary["status"], summary.get("error")
    if mode == "json":
        emit_json(summary)
    elif mode != "quiet":
        rate = summary["samples_per_s"]
        print(f"{_STATUS[status]} at epoch {model.epoch} in {summary['seconds']:.2f} s"
              + (f" ({rate:,.0f} samples/s training)" if rate else "")
              + (f": {summary['reason']}" if summary.get("reason") else ""))
        if status != "diverged" and summary["best_epoch"] not in (None, model.epoch):
            print(f"the weights of epoch {summary['best_epoch']} (best validation loss) are kept")
        if "gamma" in summary:
            print(f"effective number of parameters (gamma) {summary['gamma']:.3g} of {summary['n_params']}")
        print(table(job.rows))
        if job.save_path:
            print(f"saved {job.save_path} (epoch {model.epoch})")
        for path in summary.get("plots", []):
            print(f"wrote {path}")
    if failure:
        kept = f"; {job.save_path} holds epoch {model.epoch}" if job.save_path else ""
        print(f"backprop: error: {failure}{kept}", file=sys.stderr)


def _banner(job: Run) -> str:
    """One line: backend, device, dtype, data shape, architecture, parameters, training plan."""
    model, dataset, transform, s = job.model, job.dataset, job.transform, job.settings
    backend = model.backend
    widths = [str(model.n_inputs)] + [str(math.prod(shape)) for layer, shape in
                                      zip(model.layers, model.layer_shapes()) if layer.param_shapes()]
    parts = f"{len(job.train[0])} train" + (f" / {len(job.val[0])} val" if job.val else "") + (
        f" / {len(dataset.X_test)} test" if dataset.X_test is not None else "")
    k = transform.n_targets
    kind = counted(k, "class", "classes") if transform.task == "classification" else \
        f"regression, {counted(k, 'target')}"
    epochs = f"epochs {model.epoch + 1}..{s['epochs']}" if job.resumed else counted(s["epochs"], "epoch")
    ranks = f" × {counted(job.comm.size, 'rank')} ({job.comm.name})" if job.comm is not None else ""
    return (f"backprop · {backend.name} on {backend.label}{ranks} · {dtype_name(model.dtype)} · "
            f"{dataset.name}: {parts}, {counted(model.n_inputs, 'feature')}, {kind} · "
            f"{_architecture(job, widths)}, {counted(model.n_params, 'parameter')} · "
            f"{job.head.loss} loss, {s['optimizer']}"
            + ("" if not job.optimizer.has_lr else f" lr {job.optimizer.base_lr:g}")
            + f", batch {s['batch_size']}, "
            f"{epochs}")


def _architecture(job: Run, widths: list[str]) -> str:
    """The network in the banner: ``64-32-10 relu`` for the default MLP, each layer with its output
    shape and parameters for one given by ``--layers``."""
    if job.settings["layers"] is None:
        return f"{'-'.join(widths)} {job.settings['activation']}"
    return spec.outline(job.model)


def _terminal_width() -> int:
    """Columns of the terminal stderr writes to; 0 when it is not one (or reports no size)."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns if sys.stderr.isatty() else 0
    except (OSError, ValueError, AttributeError):
        return 0


_STATUS: dict[str, Any] = {
    "completed": "done", "converged": "converged", "early_stopping": "stopped early",
    "interrupted": "interrupted",
    "diverged": "diverged (weights kept from before the bad epoch)"}
