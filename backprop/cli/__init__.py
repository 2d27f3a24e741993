"""The ``backprop`` command line: train, evaluate, predict, gradcheck, bench, playground, export, info.

Every expected failure (bad data, a bad option, a missing GPU, a broken
checkpoint: a :class:`backprop.errors.BackpropError` or a
:class:`backends.BackendError`) ends in one line on stderr and exit status 2, and
so does running out of memory; a failed gradient check or a diverged run exits 1;
Ctrl-C exits 130; a reader that closes the pipe ends the command quietly with 141
(as SIGPIPE would). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback

from backends import BackendError, is_out_of_memory
from backends.comm import end_job, world

from .. import activations, losses
from ..edges.datasets import DESCRIPTIONS
from ..errors import BackpropError
from ..settings import SETTINGS, Setting


class Parser(argparse.ArgumentParser):
    """argparse, with errors as one line (no usage dump) that point to --help."""

    def error(self, message: str):
        # The same prefix as every other error line, whichever command it came from.
        self.exit(2, f"backprop: error: {message} (see {self.prog} --help)\n")


# -- option types: each rejects a bad value with a message that says what is allowed
def _int_from(minimum: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value
    return parse


_positive_int = _int_from(1, "a positive integer")
_seed = _int_from(0, "a non-negative integer")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _range(low: float, high: float, what: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not low <= value < high:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    return parse


def _batch_size(text: str) -> int | str:
    return "full" if text.strip().lower() in ("full", "all") else _positive_int(text)


def _hidden(text: str) -> list[int]:
    if text.strip().lower() in ("", "none", "0"):
        return []  # no hidden layer: a linear (logistic / softmax) model
    try:
        return [_positive_int(part) for part in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected widths like 128,64, got {text!r}") from None


def _shape(text: str) -> list[int]:
    try:
        return SETTINGS["input_shape"].check(text)
    except BackpropError:
        raise argparse.ArgumentTypeError(f"expected sizes like 1,64 or 1,8,8, got {text!r}") from None


def _option_type(setting: Setting):
    """The argparse type that reads a setting's value within its declared bounds."""
    if setting.kind in ("integer", "patience"):
        what = "a positive integer" if setting.low >= 1 else "a non-negative integer"
        return _int_from(int(setting.low), what)
    if setting.kind == "number":
        return _positive_float if setting.open_low else _range(setting.low, setting.high, setting.bounds)
    return {"widths": _hidden, "batch": _batch_size, "shape": _shape}.get(setting.kind)


def _add_setting(group, setting: Setting) -> None:
    """One ``backprop train`` option from its declaration; left out, it is None (not given)."""
    if setting.kind == "switch":
        group.add_argument(setting.flag, dest=setting.name, action="store_false", default=None,
                           help=setting.help_text())
        return
    choices = setting.choices() if setting.choices else None
    group.add_argument(setting.flag, type=_option_type(setting), choices=choices, default=None,
                       metavar=setting.metavar, help=setting.help_text())


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu (default), cuda or cuda:N")
    p.add_argument("--backend", choices=("numpy", "cupy", "torch"), default=None,
                   help="array library (default: numpy on cpu, cupy on cuda)")


def _train_parser(commands) -> None:
    sets = "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items())
    p = commands.add_parser(
        "train", help="train a network on a built-in data set or a CSV/NPZ file",
        description=f"Train a network and report. Built-in data sets: {sets}. Options left out take "
                    "the data set's own defaults (built-ins), then the general ones shown here.")
    p.add_argument("data", nargs="?", default=None,
                   help="a built-in data set name or a .csv/.npz path (default: digits; with "
                        "--resume: the checkpoint's data)")
    p.add_argument("--from", dest="from_link", default=None, metavar="URL", help="a TensorFlow Playground "
                   "link: its data set, features, network and training settings (options given here win)")
    groups = {"data": p, "model": p.add_argument_group("model"), "training": p.add_argument_group("training")}
    # each option, its choices (the registries', read now), help and default: the schema's
    for name, group in groups.items():
        for setting in SETTINGS.values():
            if setting.group == name:
                _add_setting(group, setting)
    g = groups["training"]
    _add_device(g)
    g.add_argument("--distributed", action="store_true", default=False,
                   help="data-parallel over the ranks of an MPI job: mpiexec -n N python -m mpi4py -m "
                        "backprop train ... --distributed (--batch-size stays the global batch)")
    g = p.add_argument_group("output")
    g.add_argument("--save", default=None, metavar="PATH", help="checkpoint file (.safetensors)")
    g.add_argument("--resume", default=None, metavar="PATH", help="continue training a checkpoint")
    g.add_argument("--plot", default=None, metavar="DIR", help="write loss curves (and the decision "
                   "boundary or fitted curve for 2-D / 1-D data) as PNGs into DIR")
    g.add_argument("--json", action="store_true", help="one JSON object per epoch and a summary, on stdout")
    g.add_argument("--quiet", action="store_true", help="print nothing but errors")

    def run(args):
        from .train import run as train_run

        return train_run(args)

    p.set_defaults(func=run)


def _gradcheck_parser(commands, command) -> None:
    from ..host.gradcheck import MAX_ENTRIES

    p = commands.add_parser("gradcheck", help="check the hand-written gradients against finite differences",
                            description="Compare the hand-written gradients (or, with --jacobian, the "
                            "Jacobian) with five-point finite differences in float64, on random inputs "
                            "and targets. Exit 0 when every array is within the tolerance, 1 otherwise.")
    p.add_argument("model", nargs="?", default=None, help="a checkpoint (default: a network built from "
                   "the options below)")
    p.add_argument("--inputs", type=_positive_int, default=4, help="inputs of the built network (4)")
    p.add_argument("--hidden", type=_hidden, default=[8, 8], help="its hidden widths, e.g. 8,8 (default); "
                   "0 for none")
    p.add_argument("--outputs", type=_positive_int, default=3, help="its outputs (3)")
    p.add_argument("--layers", default=None, metavar="LIST",
                   help=f"any network instead, as for train: {SETTINGS['layers'].help.split(': ')[0]}")
    p.add_argument("--input-shape", type=_shape, default=None, metavar="C,L|C,H,W",
                   help="each random sample's shape for --layers (default: --inputs features)")
    p.add_argument("--activation", choices=activations.HIDDEN, default="tanh",
                   help="its hidden activation (tanh)")
    p.add_argument("--loss", choices=("auto", *losses.names()), default="auto",
                   help="its loss (auto: ce for more than one output, mse otherwise); a checkpoint "
                   "uses its own")
    p.add_argument("--samples", type=_positive_int, default=8, help="random input rows to check on (8)")
    p.add_argument("--max-params", type=_positive_int, default=MAX_ENTRIES, metavar="N",
                   help=f"entries checked per array, drawn at random beyond that ({MAX_ENTRIES}); each "
                   "costs four forward passes")
    p.add_argument("--tolerance", type=_positive_float, default=None,
                   help="largest relative error allowed (1e-6; 1e-7 with --jacobian)")
    p.add_argument("--jacobian", action="store_true",
                   help="check the Jacobian of the outputs that Levenberg–Marquardt uses, not the gradient")
    p.add_argument("--seed", type=_seed, default=0,
                   help="seeds the network, the data and the entries drawn (0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    _add_device(p)
    p.set_defaults(func=command)


def build_parser() -> Parser:
    from .. import __version__

    parser = Parser(prog="backprop",
                    description="Neural networks trained by hand-written backpropagation on NumPy or CuPy.")
    parser.add_argument("--version", action="version", version=f"backprop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _train_parser(commands)

    from . import use

    p = commands.add_parser("evaluate", help="loss and accuracy (or MSE/MAE/R2) of a saved model on data")
    p.add_argument("model", help="checkpoint from 'backprop train --save'")
    p.add_argument("data", help="a built-in data set name or a .csv/.npz path")
    p.add_argument("--target", default=None, help="CSV target column (default: as in training)")
    p.add_argument("--split", choices=("all", "train", "val", "test"), default=None,
                   help="which part of the data (default: test when the data has one, else all)")
    p.add_argument("--json", action="store_true")
    _add_device(p)
    p.set_defaults(func=use.evaluate)

    p = commands.add_parser("predict", help="predictions of a saved model for a CSV/NPZ of inputs")
    p.add_argument("model", help="checkpoint from 'backprop train --save'")
    p.add_argument("input", help=".csv (header names or the training column order) or .npz with X")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="write CSV here instead of stdout (- is stdout; an existing file only when it holds "
                   "earlier predictions, or with --force)")
    p.add_argument("--force", action="store_true", help="let --out replace an existing file that does not "
                   "hold predictions (never a checkpoint or this command's input)")
    p.add_argument("--proba", action="store_true", help="also the probability of each class")
    _add_device(p)
    p.set_defaults(func=use.predict, exact_output=True)  # its CSV is data: never a '?' for a label

    _gradcheck_parser(commands, use.gradcheck_command)

    from .bench import add_parser as add_bench

    add_bench(commands, _positive_int, _hidden, _seed)

    from .playground import add_parser as add_playground

    add_playground(commands, _int_from)

    from .export import add_parser as add_export

    add_export(commands)

    from .info import info

    p = commands.add_parser("info", help="version and the backends usable on this machine")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=info)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, where a failed write is still one of ours to report
        return code
    except BrokenPipeError:
        # The reader went away (`backprop train --json | head -1`): end quietly, as Unix tools
        # do, with the status a shell shows for SIGPIPE. Later writes, including the interpreter's
        # final flush, go nowhere instead of printing a second traceback.
        _silence_stdout()
        return 128 + 13
    except OSError as exc:
        if exc.errno not in _FULL:
            raise
        _silence_stdout()  # the interpreter's final flush would fail the same way
        print(f"backprop: error: cannot write the output ({exc.strerror}): free some space or write "
              "elsewhere", file=sys.stderr)
        return 2


# Output that cannot be written (stdout to a full disk, /dev/full): one line, not a traceback.
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real descriptor (captured in a test): nothing to flush later
        pass


def _out_of_memory_message(exc: BaseException) -> str:
    # A run adds a note on what is big (Sequential.size_note): with many classes it is the
    # (N, K) targets and outputs, which a smaller batch does not shrink.
    notes = "; ".join(getattr(exc, "__notes__", ()))
    if notes:
        return (f"out of memory ({type(exc).__name__}): {notes}: use fewer samples or classes, "
                "a smaller network or a smaller --batch-size")
    return f"out of memory ({type(exc).__name__}): use a smaller --batch-size or a smaller network"


def _encoding_message(exc: UnicodeEncodeError) -> str:
    text = ascii(exc.object[exc.start:exc.end])  # the message itself must pass the same encoding
    return (f"the output holds {text}, which this terminal's encoding ({exc.encoding}) cannot write: "
            "set PYTHONIOENCODING=utf-8, or write to a file with --out")


def _tolerant_streams(exact_output: bool) -> None:
    """Text for people (banners, tables, messages) shows a character the terminal's encoding
    lacks as '?' (stderr: an escape); a command whose output is data (``exact_output``) keeps
    stdout strict, so an unwritable label is refused rather than changed. JSON is ASCII."""
    for stream, errors in ((sys.stdout, None if exact_output else "replace"),
                           (sys.stderr, "backslashreplace")):
        if errors and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=errors)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _tolerant_streams(getattr(args, "exact_output", False))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # In an MPI job a rank that stops alone leaves the others waiting in a collective:
    # a failing rank prints its line and ends every rank (end_job).
    distributed = getattr(args, "distributed", False)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("backprop: interrupted", file=sys.stderr)
        if distributed:
            end_job(130)
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - sorted below: expected ones become one line
        if isinstance(exc, UnicodeEncodeError):
            message = _encoding_message(exc)
        elif is_out_of_memory(exc):
            message = _out_of_memory_message(exc)
        elif isinstance(exc, (BackpropError, BackendError)):
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        elif distributed:  # a bug: its traceback, then the whole job ends
            traceback.print_exc()
            end_job(1)
            raise
        else:
            raise  # a bug: the traceback is what a report needs
        if not distributed:
            print(f"backprop: error: {message}", file=sys.stderr)
            return 2
        rank, size = world()
        if rank and getattr(exc, "every_rank", False):  # decided together: rank 0 alone says it
            end_job(2, None, grace_s=30.0)
        end_job(2, f"backprop: error: {f'rank {rank} of {size}: ' if rank else ''}{message}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
