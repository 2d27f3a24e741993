"""``backprop info``: versions, and which backends and devices work here (and why not)."""

from __future__ import annotations

import argparse
import json
import platform

from backends import available_backends
from backends.comm import mpi_unusable, mpiexec_path, nccl_unusable


def info(args: argparse.Namespace) -> int:
    from .. import __version__

    rows = available_backends()
    comms = {"mpi": mpi_unusable(), "nccl": nccl_unusable()}  # None: usable
    if args.json:
        print(json.dumps({"version": __version__, "python": platform.python_version(),
                          "backends": rows, "distributed": {k: {"usable": v is None, "reason": v}
                                                            for k, v in comms.items()}}, default=str))
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
    print("distributed (--distributed):")
    for name, reason in comms.items():
        detail = f" (mpiexec: {mpiexec_path()})" if name == "mpi" else ""
        print(f"  {name:<11} " + (f"usable{detail}" if reason is None else f"unusable: {reason}"))
    return 0
