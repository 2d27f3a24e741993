"""Print the table of a saved ``backprop bench --json`` report (and redraw its picture).

Usage: python benchmarks/render.py results/cpu.json [picture.png]
"""

import json
import sys

from backprop.cli.bench import render
from backprop.plots import bench_figure

if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[-1])
    with open(sys.argv[1], encoding="utf-8") as f:
        report = json.load(f)
    print(render(report))
    if len(sys.argv) == 3:
        print(f"picture: {bench_figure(report, sys.argv[2])}")
