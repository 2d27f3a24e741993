"""Bayesian regularization (``br``, MATLAB's trainbr) against Levenberg–Marquardt with early stopping.

    OPENBLAS_NUM_THREADS=1 python benchmarks/trainbr.py [--seeds 10] [--n 200] [--epochs 1000]
        [--json results/trainbr.json]

Noisy curves y = f(x) + N(0, s²), x uniform on [-1, 1], for f a sine (sin 3x), a Gaussian
bump (exp(-8x²)) and a cubic (x³ - x/2), s in {0.05, 0.2}, ``--n`` points, weight seeds and
data seeds 0..seeds-1; inputs and targets standardized (as ``backprop train`` does). Each
fit is a 1-H-1 tanh network in float64, trained with:

- ``br``: all the points, no validation part (as trainbr), H = 20 and H = 50;
- ``lm``: 15% of the points held out for validation, early stopping after 6 failures
  (trainlm's default), the weights of the best validation epoch kept; H = 20.

The error is the mean squared error, in the original units, against the noise-free curve on
1001 grid points of [-1, 1]. Per setting: the median and worst seed of each, and the
seconds per iteration (the fit's time over its iterations, median over seeds).

``--matlab-start``: instead, br from its start here (a plain LM step from α = 0, β = 1, then
the fixed point of γ on JᵀJ's eigenvalues) against br from MATLAB trainbr's (γ = P at the
initial weights), 1-20-1, each setting's median and worst error and median γ.

``--timing``: instead, the seconds per iteration of br and lm alone (no validation part, no
early stopping, min_grad 0, 30 iterations, sine 0.1), median of 5 repeats: 300 points at
H = 20 and 50 (P = 61, 151: one eigh of JᵀJ), 200 (P = 601 > N: both in residual space,
one eigh of JJᵀ), and 1000 points at H = 200 (a Cholesky solve per μ trial, and br's
eigvalsh of JᵀJ for the trace).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import backprop as bp

CURVES = {"sine": lambda x: np.sin(3.0 * x), "bump": lambda x: np.exp(-8.0 * x * x),
          "cubic": lambda x: x**3 - x / 2.0}
GRID = np.linspace(-1.0, 1.0, 1001)[:, None]


def one(curve: str, noise: float, seed: int, n: int, method: str, hidden: int, epochs: int) -> dict:
    """Test error and seconds per iteration of one fit; ``method`` lm, br, or br_matlab_start (br
    from MATLAB trainbr's start: γ = P at the initial weights, α = P/2E_W, β = (N - P)/2E_D, or 1
    where that is not positive)."""
    f = CURVES[curve]
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, 1))
    y = f(x[:, 0]) + rng.normal(0.0, noise, n)
    mx, sx, my, sy = x.mean(), x.std(), y.mean(), y.std()
    xs, ys = (x - mx) / sx, (y - my) / sy
    model = bp.mlp([1, hidden, 1], activation="tanh", dtype="float64", seed=seed)
    if method == "lm":
        fit = dict(optimizer="lm", validation_split=0.15, early_stopping=6)
    else:
        start = matlab_start(model, xs, ys) if method == "br_matlab_start" else {}
        fit = dict(optimizer=bp.optimizers.get("br", **start), validation_split=0.0, early_stopping=None)
    started = time.perf_counter()
    history = model.fit(xs, ys, loss="mse", epochs=epochs, batch_size="full", **fit)
    seconds = time.perf_counter() - started
    z = np.asarray(model.predict((GRID - mx) / sx)).reshape(-1) * sy + my
    error = float(np.mean((z - f(GRID[:, 0])) ** 2))
    iterations = len(history.records)
    out = {"error": error, "iterations": iterations, "s_per_iter": seconds / max(iterations, 1)}
    if method != "lm":
        out["gamma"] = history.records[-1].get("gamma")
    return out


def matlab_start(model: bp.Sequential, x: np.ndarray, y: np.ndarray) -> dict:
    """trainbr's initial α and β: γ = P at the model's initial weights."""
    w = np.asarray(model.flat_parameters(), dtype=float)
    e_d = float(np.sum((np.asarray(model.predict(x)).reshape(-1) - y) ** 2))
    beta = (y.size - w.size) / (2.0 * e_d) if e_d > 0 else 1.0
    return {"alpha": w.size / (2.0 * float(w @ w)), "beta": beta if beta > 0 else 1.0}


def starts(seeds: int, n: int, epochs: int) -> dict:
    """br from backprop's start (a plain LM step, then the fixed point of γ) against br from
    trainbr's (γ = P at the initial weights), 1-20-1: median and worst error, median γ."""
    rows = {}
    print(f"{'setting':<12}{'ours med':>10}{'ours worst':>11}{'gamma':>7}"
          f"{'matlab med':>11}{'matlab worst':>13}{'gamma':>7}")
    for curve in CURVES:
        for noise in (0.05, 0.2):
            row = {}
            for method in ("br", "br_matlab_start"):
                runs = [one(curve, noise, s, n, method, 20, epochs) for s in range(seeds)]
                row[method] = {"median": statistics.median(r["error"] for r in runs),
                               "worst": max(r["error"] for r in runs),
                               "gamma_median": statistics.median(r["gamma"] for r in runs)}
            rows[f"{curve} {noise}"] = row
            a, b = row["br"], row["br_matlab_start"]
            print(f"{curve + ' ' + str(noise):<12}{a['median']:>10.2e}{a['worst']:>11.2e}"
                  f"{a['gamma_median']:>7.1f}{b['median']:>11.2e}{b['worst']:>13.2e}"
                  f"{b['gamma_median']:>7.1f}", flush=True)
    return rows


def timing(repeats: int = 5, epochs: int = 30) -> dict:
    """Median seconds per iteration of br and lm on the same fits (no validation), per H and N."""
    out = {}
    for hidden, n in ((20, 300), (50, 300), (200, 300), (200, 1000)):
        rng = np.random.default_rng(0)
        x = rng.uniform(-1.0, 1.0, (n, 1))
        y = np.sin(3.0 * x[:, 0]) + rng.normal(0.0, 0.1, n)
        x, y = (x - x.mean()) / x.std(), (y - y.mean()) / y.std()
        per = {}
        for method in ("lm", "br", "lm", "br"):  # interleaved: a load change hits both
            for _ in range(repeats):
                model = bp.mlp([1, hidden, 1], activation="tanh", dtype="float64", seed=0)
                started = time.perf_counter()
                # one thread: the thread rule gives these steps two, which on this 2-core
                # machine run them more slowly and more erratically
                history = model.fit(x, y, loss="mse", optimizer=bp.optimizers.get(method, min_grad=0.0),
                                    epochs=epochs, batch_size="full", validation_split=0.0,
                                    early_stopping=None, threads=1)
                per.setdefault(method, []).append((time.perf_counter() - started) / len(history.records))
        lm, br = statistics.median(per["lm"]), statistics.median(per["br"])
        out[f"H={hidden} N={n}"] = {"lm_s_per_iter": lm, "br_s_per_iter": br, "ratio": br / lm}
        print(f"H={hidden:<4} P={3 * hidden + 1:<5} N={n:<5} lm {1e3 * lm:7.2f} ms  br {1e3 * br:7.2f} ms  "
              f"br/lm {br / lm:.2f}", flush=True)
    return out


def comparison(seeds: int, n: int, epochs: int) -> dict:
    """Per curve and noise level: br (H = 20, 50) against lm with early stopping (H = 20)."""
    rows = {}
    print(f"{'setting':<12}{'lm med':>10}{'br med':>10}{'ratio':>7}{'lm worst':>10}{'br worst':>10}"
          f"{'br50 med':>10}{'50/20':>7}{'gamma':>7}{'s/it lm':>9}{'s/it br':>9}")
    for curve in CURVES:
        for noise in (0.05, 0.2):
            runs = {(m, h): [one(curve, noise, s, n, m, h, epochs) for s in range(seeds)]
                    for m, h in (("lm", 20), ("br", 20), ("br", 50))}
            err = {k: [r["error"] for r in v] for k, v in runs.items()}
            med = {k: statistics.median(v) for k, v in err.items()}
            spi = {k: statistics.median(r["s_per_iter"] for r in v) for k, v in runs.items()}
            gamma = statistics.median(r["gamma"] for r in runs[("br", 20)])
            row = {"lm_median": med[("lm", 20)], "br_median": med[("br", 20)],
                   "lm_worst": max(err[("lm", 20)]), "br_worst": max(err[("br", 20)]),
                   "br50_median": med[("br", 50)], "br20_gamma_median": gamma,
                   "lm_s_per_iter": spi[("lm", 20)], "br_s_per_iter": spi[("br", 20)],
                   "lm_iterations_median": statistics.median(r["iterations"] for r in runs[("lm", 20)]),
                   "br_iterations_median": statistics.median(r["iterations"] for r in runs[("br", 20)])}
            rows[f"{curve} {noise}"] = row
            print(f"{curve + ' ' + str(noise):<12}{row['lm_median']:>10.2e}{row['br_median']:>10.2e}"
                  f"{row['br_median'] / row['lm_median']:>7.2f}{row['lm_worst']:>10.2e}"
                  f"{row['br_worst']:>10.2e}"
                  f"{row['br50_median']:>10.2e}{row['br50_median'] / row['br_median']:>7.2f}{gamma:>7.1f}"
                  f"{1e3 * row['lm_s_per_iter']:>8.2f}m{1e3 * row['br_s_per_iter']:>8.2f}m", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--json")
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--matlab-start", action="store_true",
                        help="br from backprop's start against br from trainbr's")
    args = parser.parse_args()
    if args.matlab_start:
        result = starts(args.seeds, args.n, args.epochs)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"args": vars(args), "starts": result}, fh, indent=1)
        return
    if args.timing:
        result = timing()
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"timing": result}, fh, indent=1)
        return
    rows = comparison(args.seeds, args.n, args.epochs)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
