"""Full-batch steps against the work they cannot avoid, in one process (issue 25).

    python benchmarks/full_batch_step.py [--repeats 5] [--lm-iterations 6] [--against COMMIT]
                                         [--threads one|default|both] [--json out.json]

1. Levenberg–Marquardt at 2,161 parameters (mlp 10-180-1, tanh, float64) on 3,000 rows:
   each iteration's seconds against its floor, timed alone in the same process at its
   cheapest: the Jacobian J (N·K, P) by backpropagation into a buffer already there, JᵀJ
   as one matrix product, and one ``linalg.solve`` of (JᵀJ + μI). An iteration whose
   first μ trial fails solves once more per retry (the method, not overhead), so each
   iteration is also set against the floor plus one solve and one forward pass per
   extra trial.
2. L-BFGS on digits (64 relu hidden units, α = 1e-4, i.e. ``weight_decay`` = α / n,
   standardized, stratified 75/25 split, ``max_iter`` 200, ``tol`` 1e-4, seeds 0-2)
   against scikit-learn's ``MLPClassifier(solver="lbfgs")``: fit seconds and test accuracy.

``--against COMMIT`` also runs LM and L-BFGS as that commit of the repository wrote them
(``backprop/second_order.py``, ``jacobian.py`` and ``host/lbfgs.py`` loaded from git
beside today's), interleaved with today's in the same process: before and after on the
same machine state. Every time is a median of ``--repeats`` interleaved rounds; both
parts run with one BLAS thread (threadpoolctl) and with the default threads.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
import types
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import backprop as bp
from backprop import optimizers
from backprop.host.lbfgs import LBFGS
from backprop.jacobian import jacobian
from backprop.second_order import LevenbergMarquardt


def seconds_of(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def load_at(commit: str, path: str, name: str) -> types.ModuleType:
    """The module at ``path`` as ``commit`` wrote it, loaded as ``name`` (its package's relative
    imports resolve to today's modules); its registrations are left out."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(["git", "-C", str(root), "show", f"{commit}:{path}"], capture_output=True,
                            text=True, check=True).stdout
    module = types.ModuleType(name)
    module.__package__, module.__file__ = name.rsplit(".", 1)[0], f"{commit}:{path}"
    sys.modules[name] = module
    register, optimizers.register = optimizers.register, lambda *args, **kwargs: None
    try:
        exec(compile(source, module.__file__, "exec"), module.__dict__)
    finally:
        optimizers.register = register
    return module


def classes_at(commit: str | None) -> dict[str, dict[str, Any]]:
    """The LM and L-BFGS classes to time: today's, and ``commit``'s when given."""
    out = {"lm": {"now": LevenbergMarquardt}, "lbfgs": {"now": LBFGS}}
    if commit:
        old_jacobian = load_at(commit, "backprop/jacobian.py", "backprop._then_jacobian")
        old = load_at(commit, "backprop/second_order.py", "backprop._then_second_order")
        old.jacobian = old_jacobian.jacobian
        out["lm"]["then"] = old.LevenbergMarquardt
        out["lbfgs"]["then"] = load_at(commit, "backprop/host/lbfgs.py", "backprop.host._then_lbfgs").LBFGS
    return out


def lm_problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 10))
    return x, np.sin(x[:, 0]) + x[:, 1] / 2.0 + 0.1 * rng.normal(size=3000)


def lm_model() -> bp.Sequential:
    return bp.mlp([10, 180, 1], activation="tanh", dtype="float64", seed=0)


def lm_floor() -> dict:
    """Seconds of the pieces an LM iteration cannot avoid, each timed alone after a warm call:
    the Jacobian into a buffer already there, the solve of a matrix already shifted."""
    x, t = lm_problem()
    model = lm_model()
    buffer = np.empty((x.shape[0], 1, model.n_params))
    Z, J = jacobian(model, x, out=buffer)
    A = J.T @ J
    b = (J.T @ (Z[:, 0] - t))[:, None]
    shifted = A + 1e-3 * np.eye(A.shape[0])
    pieces = {"jacobian": lambda: jacobian(model, x, out=buffer), "JtJ": lambda: J.T @ J,
              "solve": lambda: np.linalg.solve(shifted, b), "forward": lambda: model.forward(x)}
    out = {}
    for name, piece in pieces.items():
        piece()
        out[name] = seconds_of(piece)
    out["floor"] = out["jacobian"] + out["JtJ"] + out["solve"]
    return out


def lm_iterations(cls: Any, iterations: int) -> list[dict]:
    """Seconds and μ trials of each of the first ``iterations`` LM iterations."""
    x, t = lm_problem()
    model = lm_model()
    ends: list[float] = []
    started = time.perf_counter()
    history = model.fit(x, t, loss="mse", optimizer=cls(min_grad=0.0), epochs=iterations,
                        callbacks=[lambda record, m: ends.append(time.perf_counter())])
    out, mu, previous = [], 1e-3, started
    for end, record in zip(ends, history.records):
        # Accepted at mu·10^(trials-1), then mu·0.1: trials = log10(new / old) + 2.
        trials = round(math.log10(record["mu"] / mu)) + 2
        out.append({"seconds": end - previous, "trials": trials})
        mu, previous = record["mu"], end
    return out


def lm(repeats: int, iterations: int, classes: dict[str, Any]) -> dict:
    """Medians over ``repeats`` rounds of (the floor's pieces, then one fit per class),
    interleaved so that a busy moment of the machine hits all of them."""
    floors, runs = [], {name: [] for name in classes}
    for _ in range(repeats):
        floors.append(lm_floor())
        for name, cls in classes.items():
            runs[name].append(lm_iterations(cls, iterations))
    floor = {key: statistics.median(f[key] for f in floors) for key in floors[0]}
    rows = []
    for i in range(iterations):
        trials = runs["now"][0][i]["trials"]
        row = {"iteration": i + 1, "trials": trials}
        for name in classes:
            row[name] = statistics.median(run[i]["seconds"] for run in runs[name])
        due = floor["floor"] + (trials - 1) * (floor["solve"] + floor["forward"])
        row.update(vs_floor=row["now"] / floor["floor"], vs_floor_and_retries=row["now"] / due)
        rows.append(row)
    return {"floor": floor, "iterations": rows}


def digits_split(seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(Xa)
    return scaler.transform(Xa), scaler.transform(Xb), ya, yb


def fit_ours(cls: Any, seed: int, split: tuple[np.ndarray, ...]) -> tuple[float, int]:
    """(test accuracy, iterations) of backprop's L-BFGS (class ``cls``) on a digits split."""
    Xa, Xb, ya, yb = split
    model = bp.mlp([64, 64, 10], dtype="float64", seed=seed)
    history = model.fit(Xa, ya, loss="ce", epochs=200, optimizer=cls(weight_decay=1e-4 / len(Xa)))
    return float(np.mean(np.asarray(model.predict(Xb)) == yb)), len(history)


def fit_theirs(seed: int, split: tuple[np.ndarray, ...]) -> tuple[float, int]:
    """(test accuracy, iterations) of scikit-learn's MLPClassifier(solver="lbfgs")."""
    from sklearn.neural_network import MLPClassifier

    Xa, Xb, ya, yb = split
    clf = MLPClassifier((64,), solver="lbfgs", alpha=1e-4, max_iter=200, random_state=seed).fit(Xa, ya)
    return clf.score(Xb, yb), clf.n_iter_


def lbfgs(repeats: int, seeds: range, classes: dict[str, Any]) -> list[dict]:
    rows = []
    for seed in seeds:
        split = digits_split(seed)
        fitters = {name: partial(fit_ours, cls, seed, split) for name, cls in classes.items()}
        fitters["sklearn"] = partial(fit_theirs, seed, split)
        results = {name: fit() for name, fit in fitters.items()}  # warm: imports, first calls
        seconds: dict[str, list[float]] = {name: [] for name in fitters}
        for _ in range(repeats):  # interleaved, so that a busy moment hits all
            for name, fit in fitters.items():
                seconds[name].append(seconds_of(fit))
        row: dict[str, Any] = {"seed": seed}
        for name in fitters:
            row[name] = {"seconds": statistics.median(seconds[name]), "accuracy": results[name][0],
                         "iterations": results[name][1]}
        row["ratio"] = row["now"]["seconds"] / row["sklearn"]["seconds"]
        rows.append(row)
    return rows


def lm_table(part: dict, then: bool) -> list[str]:
    pieces = ", ".join(f"{k} {v:.3f}" for k, v in part["floor"].items())
    lines = [f"LM floor (s): {pieces}\n",
             "| LM iteration | μ trials | " + ("before s | " if then else "") +
             "now s | now ÷ floor | now ÷ (floor + retries) |",
             "| ---: | ---: | " + ("---: | " if then else "") + "---: | ---: | ---: |"]
    for row in part["iterations"]:
        ratios = f"{row['vs_floor']:.2f} | {row['vs_floor_and_retries']:.2f}"
        before = f"{row['then']:.3f} | " if then else ""
        lines.append(f"| {row['iteration']} | {row['trials']} | {before}{row['now']:.3f} | {ratios} |")
    return lines


def lbfgs_table(rows: list[dict], then: bool) -> list[str]:
    lines = ["\n| digits seed | " + ("before s | " if then else "") +
             "now s | scikit-learn s | now ÷ scikit-learn | accuracy (ours / theirs) | iterations |",
             "| ---: | " + ("---: | " if then else "") + "---: | ---: | ---: | --- | --- |"]
    for row in rows:
        ours, theirs = row["now"], row["sklearn"]
        lines.append(f"| {row['seed']} | " + (f"{row['then']['seconds']:.3f} | " if then else "") +
                     f"{ours['seconds']:.3f} | {theirs['seconds']:.3f} | {row['ratio']:.2f} | "
                     f"{ours['accuracy']:.3f} / {theirs['accuracy']:.3f} | "
                     f"{ours['iterations']} / {theirs['iterations']} |")
    return lines


def table(report: dict) -> str:
    lines = []
    for threads, part in report.items():
        then = any("then" in row for row in part["lm"]["iterations"] + part["lbfgs"])
        lines.append(f"\n## {threads}\n")
        if part["lm"]["iterations"]:
            lines += lm_table(part["lm"], then)
        if part["lbfgs"]:
            lines += lbfgs_table(part["lbfgs"], then)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lm-iterations", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", choices=("one", "default", "both"), default="both")
    parser.add_argument("--skip", choices=("lm", "lbfgs"), default=None)
    parser.add_argument("--against", default=None, metavar="COMMIT",
                        help="also time LM and L-BFGS as this commit wrote them")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    classes = classes_at(args.against)
    report = {}
    for threads in (("one", "default") if args.threads == "both" else (args.threads,)):
        with threadpool_limits(1 if threads == "one" else None):
            skip_lm, skip_lbfgs = args.skip == "lm", args.skip == "lbfgs"
            report[f"{threads} BLAS thread(s)"] = {
                "lm": {"floor": {}, "iterations": []} if skip_lm else
                lm(args.repeats, args.lm_iterations, classes["lm"]),
                "lbfgs": [] if skip_lbfgs else lbfgs(args.repeats, range(args.seeds), classes["lbfgs"])}
    print(table(report))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
