"""Full-batch steps against the work they cannot avoid, in one process (issue 25).

    python benchmarks/full_batch_step.py [--repeats 5] [--lm-iterations 6] [--json out.json]

1. Levenberg–Marquardt at 2,161 parameters (mlp 10-180-1, tanh, float64) on 3,000 rows:
   each iteration's seconds against its floor, timed alone in the same process: the
   Jacobian J (N·K, P) by backpropagation, JᵀJ as one matrix product, and one
   ``linalg.solve`` of (JᵀJ + μI). An iteration whose first μ trial fails solves once more
   per retry (the method, not overhead), so each iteration is also set against the floor
   plus one solve and one forward pass per extra trial.
2. L-BFGS on digits (64 relu hidden units, α = 1e-4, i.e. ``weight_decay`` = α / n,
   standardized, stratified 75/25 split, ``max_iter`` 200, ``tol`` 1e-4, seeds 0-2)
   against scikit-learn's ``MLPClassifier(solver="lbfgs")``: fit seconds (median of
   ``--repeats``) and test accuracy.

Both are run with one BLAS thread (threadpoolctl) and with the default threads.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import backprop as bp
from backprop.jacobian import jacobian


def median_seconds(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def lm_problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 10))
    return x, np.sin(x[:, 0]) + x[:, 1] / 2.0 + 0.1 * rng.normal(size=3000)


def lm_model() -> bp.Sequential:
    return bp.mlp([10, 180, 1], activation="tanh", dtype="float64", seed=0)


def lm_floor() -> dict:
    """Seconds of the pieces an LM iteration cannot avoid, each timed alone once."""
    x, t = lm_problem()
    model = lm_model()
    Z, J = jacobian(model, x)
    A = J.T @ J
    b = (J.T @ (Z[:, 0] - t))[:, None]
    eye = np.eye(A.shape[0])
    pieces = {"jacobian": median_seconds(lambda: jacobian(model, x), 1),
              "JtJ": median_seconds(lambda: J.T @ J, 1),
              "solve": median_seconds(lambda: np.linalg.solve(A + 1e-3 * eye, b), 1),
              "forward": median_seconds(lambda: model.forward(x), 1)}
    pieces["floor"] = pieces["jacobian"] + pieces["JtJ"] + pieces["solve"]
    return pieces


def lm_iterations(iterations: int) -> list[dict]:
    """Seconds and μ trials of each of the first ``iterations`` LM iterations."""
    x, t = lm_problem()
    model = lm_model()
    optimizer = bp.optimizers.get("lm", min_grad=0.0)
    ends: list[float] = []
    started = time.perf_counter()
    history = model.fit(x, t, loss="mse", optimizer=optimizer, epochs=iterations,
                        callbacks=[lambda record, m: ends.append(time.perf_counter())])
    out, mu, previous = [], 1e-3, started
    for end, record in zip(ends, history.records):
        # Accepted at mu·10^(trials-1), then mu·0.1: trials = log10(new / old) + 2.
        trials = round(math.log10(record["mu"] / mu)) + 2
        out.append({"seconds": end - previous, "trials": trials})
        mu, previous = record["mu"], end
    return out


def lm(repeats: int, iterations: int) -> dict:
    """Medians over ``repeats`` rounds of (the floor's pieces timed alone, then one fit),
    interleaved so that a busy moment of the machine hits both."""
    floors, runs = [], []
    for _ in range(repeats):
        floors.append(lm_floor())
        runs.append(lm_iterations(iterations))
    floor = {key: statistics.median(f[key] for f in floors) for key in floors[0]}
    rows = []
    for i in range(iterations):
        trials = runs[0][i]["trials"]
        seconds = statistics.median(run[i]["seconds"] for run in runs)
        due = floor["floor"] + (trials - 1) * (floor["solve"] + floor["forward"])
        rows.append({"iteration": i + 1, "trials": trials, "seconds": seconds,
                     "vs_floor": seconds / floor["floor"], "vs_floor_and_retries": seconds / due})
    return {"floor": floor, "iterations": rows}


def digits_split(seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(Xa)
    return scaler.transform(Xa), scaler.transform(Xb), ya, yb


def fit_ours(seed: int, split: tuple[np.ndarray, ...]) -> tuple[float, int]:
    """(test accuracy, iterations) of backprop's lbfgs on a digits split."""
    Xa, Xb, ya, yb = split
    model = bp.mlp([64, 64, 10], dtype="float64", seed=seed)
    history = model.fit(Xa, ya, loss="ce", epochs=200,
                        optimizer=bp.optimizers.get("lbfgs", weight_decay=1e-4 / len(Xa)))
    return float(np.mean(np.asarray(model.predict(Xb)) == yb)), len(history)


def fit_theirs(seed: int, split: tuple[np.ndarray, ...]) -> tuple[float, int]:
    """(test accuracy, iterations) of scikit-learn's MLPClassifier(solver="lbfgs")."""
    from sklearn.neural_network import MLPClassifier

    Xa, Xb, ya, yb = split
    clf = MLPClassifier((64,), solver="lbfgs", alpha=1e-4, max_iter=200, random_state=seed).fit(Xa, ya)
    return clf.score(Xb, yb), clf.n_iter_


def lbfgs(repeats: int, seeds: range) -> list[dict]:
    rows = []
    for seed in seeds:
        split = digits_split(seed)
        fitters = {"backprop": fit_ours, "sklearn": fit_theirs}
        results = {name: fit(seed, split) for name, fit in fitters.items()}  # warm: imports, first calls
        seconds: dict[str, list[float]] = {name: [] for name in fitters}
        for _ in range(repeats):  # interleaved, so that a busy moment hits both
            for name, fit in fitters.items():
                started = time.perf_counter()
                fit(seed, split)
                seconds[name].append(time.perf_counter() - started)
        row: dict[str, Any] = {"seed": seed}
        for name in fitters:
            row[name] = {"seconds": statistics.median(seconds[name]), "accuracy": results[name][0],
                         "iterations": results[name][1]}
        row["ratio"] = row["backprop"]["seconds"] / row["sklearn"]["seconds"]
        rows.append(row)
    return rows


def table(report: dict) -> str:
    lines = []
    for threads, part in report.items():
        floor = part["lm"]["floor"]
        pieces = ", ".join(f"{k} {v:.3f}" for k, v in floor.items())
        lines.append(f"\n## {threads}\n\nLM floor (s): {pieces}\n")
        lines.append("| LM iteration | μ trials | seconds | ÷ floor | ÷ (floor + retries) |")
        lines.append("| ---: | ---: | ---: | ---: | ---: |")
        for row in part["lm"]["iterations"]:
            lines.append(f"| {row['iteration']} | {row['trials']} | {row['seconds']:.3f} | "
                         f"{row['vs_floor']:.2f} | {row['vs_floor_and_retries']:.2f} |")
        lines.append("\n| digits seed | backprop s | scikit-learn s | ratio | accuracy (ours / theirs) "
                     "| iterations |")
        lines.append("| ---: | ---: | ---: | ---: | --- | --- |")
        for row in part["lbfgs"]:
            ours, theirs = row["backprop"], row["sklearn"]
            lines.append(f"| {row['seed']} | {ours['seconds']:.3f} | {theirs['seconds']:.3f} | "
                         f"{row['ratio']:.2f} | {ours['accuracy']:.3f} / {theirs['accuracy']:.3f} | "
                         f"{ours['iterations']} / {theirs['iterations']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lm-iterations", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", choices=("one", "default", "both"), default="both")
    parser.add_argument("--skip", choices=("lm", "lbfgs"), default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    report = {}
    for threads in (("one", "default") if args.threads == "both" else (args.threads,)):
        with threadpool_limits(1 if threads == "one" else None):
            report[f"{threads} BLAS thread(s)"] = {
                "lm": lm(args.repeats, args.lm_iterations) if args.skip != "lm" else
                {"floor": {}, "iterations": []},
                "lbfgs": lbfgs(args.repeats, range(args.seeds)) if args.skip != "lbfgs" else []}
    print(table(report))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
