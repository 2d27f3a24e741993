"""Second-order training against first-order and against scikit-learn, on one machine, in one run.

    python benchmarks/second_order.py [--device cpu] [--seeds 30] [--json results/second_order.json]

1. Textbook XOR (2-2-1 and 2-4-1 sigmoid, U(-0.5, 0.5) weights and biases, sse):
   how many of the seeds each of Levenberg–Marquardt, damped Newton and gradient
   descent (lr 0.5, full batch) solve (every output within 0.1 of its target), and in how many
   iterations.
2. Noisy sine (y = sin 2x + x/2 + N(0, 0.1²), 200 points, 1-20-1 tanh, mse): the
   iterations and wall-clock seconds each of LM, L-BFGS and full-batch Adam (lr 0.01)
   needs to reach train MSE <= 0.0105 (the noise floor), per weight seed.
3. Digits (hidden 64 relu, L2 alpha 1e-4, standardized, stratified 75/25 split):
   backprop's lbfgs against scikit-learn's MLPClassifier(solver="lbfgs") with the same
   settings (max_iter 200, tol 1e-4): test accuracy and seconds to converge, per seed.
   scikit-learn's penalty is alpha/2 |W|² / n_samples, so our weight_decay is alpha / n.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import backprop as bp

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0.0, 1.0, 1.0, 0.0])


def textbook(hidden: int, seed: int, device: str) -> bp.Sequential:
    return bp.Sequential([bp.Dense(2, hidden, init="textbook", bias="textbook"), "sigmoid",
                          bp.Dense(hidden, 1, init="textbook", bias="textbook"), "sigmoid"],
                         dtype="float64", seed=seed, device=device)


def first_epoch(model: bp.Sequential, X, y, done, **fit) -> tuple[int | None, float]:
    """(first epoch after which ``done(model)`` holds, or None; seconds of the whole fit)."""
    hits: list[bool] = []
    started = time.perf_counter()
    model.fit(X, y, callbacks=[lambda record, m: hits.append(done(m))], **fit)
    seconds = time.perf_counter() - started
    return next((i + 1 for i, hit in enumerate(hits) if hit), None), seconds


def xor(seeds: int, device: str) -> dict:
    out = {}
    solved = lambda m: float(np.max(np.abs(np.asarray(m.predict(XOR_X)) - XOR_Y))) < 0.1  # noqa: E731
    for hidden in (2, 4):
        for name, fit in (("lm", dict(optimizer="lm", epochs=100)),
                          ("newton", dict(optimizer="newton", epochs=100)),
                          ("gd", dict(optimizer="gd", lr=0.5, epochs=2000, batch_size="full"))):
            its = [first_epoch(textbook(hidden, s, device), XOR_X, XOR_Y, solved, loss="sse", **fit)[0]
                   for s in range(seeds)]
            done = [i for i in its if i is not None]
            out[f"2-{hidden}-1 {name}"] = {"solved": len(done), "of": seeds,
                                           "median_iterations": statistics.median(done) if done else None,
                                           "max_iterations": max(done) if done else None}
    return out


def sine(seeds: int, device: str) -> dict:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2.0, 2.0, (200, 1))
    t = np.sin(2.0 * x[:, 0]) + x[:, 0] / 2.0 + rng.normal(0.0, 0.1, 200)
    out = {}
    for name, fit in (("lm", dict(optimizer="lm", epochs=200)),
                      ("lbfgs", dict(optimizer="lbfgs", epochs=2000)),
                      ("adam", dict(optimizer="adam", lr=0.01, epochs=20000, batch_size="full"))):
        its, secs = [], []
        for seed in range(seeds):
            model = bp.mlp([1, 20, 1], activation="tanh", dtype="float64", seed=seed, device=device)
            reached = []

            def watch(record, m, reached=reached):
                if record["train_loss"] <= 0.0105:
                    reached.append((record["epoch"], time.perf_counter()))
                    return True  # stop at the floor: the time to reach it is what is compared

            started = time.perf_counter()
            model.fit(x, t, loss="mse", callbacks=[watch], **fit)
            if reached:
                its.append(reached[0][0])
                secs.append(reached[0][1] - started)
        out[name] = {"reached": len(its), "of": seeds,
                     "median_iterations": statistics.median(its) if its else None,
                     "median_seconds": statistics.median(secs) if secs else None}
    return out


def digits(seeds: int, device: str) -> dict:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    out = {"backprop": [], "scikit-learn": []}
    for seed in range(seeds):
        Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
        scaler = StandardScaler().fit(Xa)
        Xa, Xb = scaler.transform(Xa), scaler.transform(Xb)
        started = time.perf_counter()
        clf = MLPClassifier((64,), solver="lbfgs", alpha=1e-4, max_iter=200, random_state=seed).fit(Xa, ya)
        out["scikit-learn"].append({"accuracy": clf.score(Xb, yb), "seconds": time.perf_counter() - started,
                                    "iterations": clf.n_iter_})
        model = bp.mlp([64, 64, 10], dtype="float64", seed=seed, device=device)
        started = time.perf_counter()
        history = model.fit(Xa, ya, loss="ce", epochs=200,
                            optimizer=bp.optimizers.get("lbfgs", weight_decay=1e-4 / len(Xa)))
        seconds = time.perf_counter() - started
        out["backprop"].append({"accuracy": float(np.mean(np.asarray(model.predict(Xb)) == yb)),
                                "seconds": seconds, "iterations": len(history)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--digits-seeds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    report = {"device": args.device, "xor": xor(args.seeds, args.device),
              "sine": sine(args.seeds, args.device), "digits": digits(args.digits_seeds, args.device)}
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
