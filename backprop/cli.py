"""The ``backprop`` command line. ``info`` for now; training commands come next."""

from __future__ import annotations

import argparse
import json
import platform
import sys

from backends import available_backends


def _info(args: argparse.Namespace) -> int:
    from . import __version__

    rows = available_backends()
    if args.json:
        print(json.dumps({"version": __version__, "python": platform.python_version(),
                          "backends": rows}, default=str))
        return 0
    print(f"backprop {__version__} (Python {platform.python_version()}, {platform.machine()})")
    print("backends:")
    for row in rows:
        if row["usable"]:
            extra = ", ".join(str(row[k]) for k in ("version", "device_name") if row.get(k))
            memory = f", {row['memory_gib']} GiB" if row.get("memory_gib") else ""
            print(f"  {row['spec']:<11} usable       {extra}{memory}")
        else:
            state = "installed, unusable" if row["installed"] else "not installed"
            print(f"  {row['spec']:<11} {state}: {row['reason']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="backprop",
        description="Neural networks trained by hand-written backpropagation on NumPy or CuPy.",
    )
    parser.add_argument("--version", action="version", version=f"backprop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="version and the backends usable on this machine")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
