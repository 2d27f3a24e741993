"""``backprop export``: a saved model as an ONNX file (see :mod:`backprop.apps.onnx_export`)."""

from __future__ import annotations

import argparse
import sys

from ..apps import onnx_export


def add_parser(commands) -> None:
    p = commands.add_parser("export", help="a saved model as ONNX: raw columns in, predict's outputs out")
    p.add_argument("model", help="checkpoint from 'backprop train --save'")
    p.add_argument("out", help="the .onnx file to write (an existing one only when backprop wrote it, "
                   "or with --force)")
    p.add_argument("--force", action="store_true", help="let OUT replace an existing file backprop did not "
                   "write (never a checkpoint or the model)")
    p.set_defaults(func=export)


def export(args: argparse.Namespace) -> int:
    proto = onnx_export.export_onnx(args.model, args.out, force=args.force)
    graph = proto.graph

    def spelled(value) -> str:
        kind = value.type.tensor_type
        dims = [d.dim_param or str(d.dim_value) for d in kind.shape.dim]
        return f"{value.name} ({', '.join(dims)}{',' if len(dims) == 1 else ''}) " \
               f"{onnx_export.type_name(kind.elem_type)}"

    print(f"wrote {args.out}: ONNX opset {onnx_export.OPSET}, IR version {onnx_export.IR_VERSION}, "
          f"{len(graph.node)} nodes", file=sys.stderr)
    print(f"  input:  {', '.join(map(spelled, graph.input))}", file=sys.stderr)
    print(f"  output: {', '.join(map(spelled, graph.output))}", file=sys.stderr)
    return 0
