"""How much memory and time ``backprop`` takes to read a CSV file, beside the file's size.

    python benchmarks/csv_reading.py [--rows 2000000] [--json results/csv_reading.json]

Writes a numeric CSV (``--rows`` rows of 10 features and a 0/1 label; 2,000,000 rows
are about 200 MB) and one with text class names, then reads each in a fresh process
with ``backprop.datafiles.read_csv`` and reports the process's peak resident memory
(``ru_maxrss``; and that of the interpreter with the imports alone), the wall-clock
time, and the size of the float64 array the numbers take. Also reads the numeric
file with the ``csv`` module forced (as a quoted file would be). The files are
deleted afterwards. Run it on a quiet machine: the times are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

READ = """
import resource, sys, time
from backprop import datafiles
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the interpreter and imports
t = time.perf_counter()
if sys.argv[2] == "csv-module":
    datafiles._read_numbers = lambda *a, **k: None  # what a quoted file takes
d = datafiles.read_csv(sys.argv[1])
seconds = time.perf_counter() - t
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, before, d.X.nbytes)
"""


def write(path: str, rows: int, labels: np.ndarray | None) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        f.write(",".join([f"f{i}" for i in range(10)] + ["label"]) + "\n")
        for start in range(0, rows, 200_000):
            block = rng.normal(size=(min(200_000, rows - start), 10))
            y = (block[:, 0] > 0).astype(int)
            text = labels[y] if labels is not None else y.astype(str)
            lines = [",".join(f"{v:.9g}" for v in row) + "," + t for row, t in zip(block, text)]
            f.write("\n".join(lines) + "\n")


def measure(path: str, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", READ, path, mode], capture_output=True, text=True,
                         check=True).stdout.split()
    seconds, peak, imports, array = float(out[0]), int(out[1]), int(out[2]), int(out[3])
    size = os.path.getsize(path)
    return {"file_mb": size / 1e6, "array_mb": array / 1e6, "peak_rss_mb": peak / 1e6,
            "imports_rss_mb": imports / 1e6, "peak_over_file": peak / size, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--json", default=None)
    parser.add_argument("--write", nargs=2, metavar=("PATH", "LABELS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:  # in a child: Linux keeps a process's peak memory across exec, so the parent stays small
        names = None if args.write[1] == "numbers" else np.array(["setosa", "virginica"])
        write(args.write[0], args.rows, names)
        return
    report = {}
    with tempfile.TemporaryDirectory() as folder:
        numbers, names = os.path.join(folder, "numbers.csv"), os.path.join(folder, "names.csv")
        for path, labels in ((numbers, "numbers"), (names, "names")):
            subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--write", path, labels],
                           check=True)
        for label, path, mode in (("numbers", numbers, "fast"), ("class names", names, "fast"),
                                  ("numbers, csv module", numbers, "csv-module")):
            report[label] = row = measure(path, mode)
            print(f"{label:<22} file {row['file_mb']:7.1f} MB  array {row['array_mb']:7.1f} MB  "
                  f"peak {row['peak_rss_mb']:7.1f} MB ({row['peak_over_file']:.2f}x the file; imports alone "
                  f"{row['imports_rss_mb']:.0f} MB)  "
                  f"{row['seconds']:6.2f} s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": args.rows, "results": report}, f, indent=1)


if __name__ == "__main__":
    main()
