"""BackpropClassifier/Regressor beside scikit-learn's MLPClassifier/MLPRegressor, in one run.

    python benchmarks/estimators.py [--json results/estimators.json]

1. cross_val_score (5 folds, StandardScaler in a Pipeline, default settings but
   random_state): breast cancer and wine (classifiers), diabetes (regressors, at the
   default max_iter=200 and at 1000, targets as they are). Means over the folds, then
   over ``--seeds`` random states (0, 1, ...), with the paired difference and its
   standard error: one seed's spread is larger than the gap between the two.
2. GridSearchCV(Pipeline(StandardScaler(), estimator), n_jobs=2, cv=3) on digits over
   hidden_layer_sizes (32,), (64,) and alpha 1e-4, 1e-2: best accuracy and wall-clock.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from backprop.estimators import BackpropClassifier, BackpropRegressor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    report: dict = {"cross_val_score": {}, "grid_search": {}}
    cases = [("breast_cancer", load_breast_cancer, BackpropClassifier, MLPClassifier, {}),
             ("wine", load_wine, BackpropClassifier, MLPClassifier, {}),
             ("diabetes", load_diabetes, BackpropRegressor, MLPRegressor, {}),
             ("diabetes max_iter=1000", load_diabetes, BackpropRegressor, MLPRegressor, {"max_iter": 1000})]
    for name, load, ours, theirs, extra in cases:
        X, y = load(return_X_y=True)
        row, means = {}, {}
        for label, cls in (("backprop", ours), ("scikit-learn", theirs)):
            started = time.perf_counter()
            seeds = range(args.seeds)
            pipes = [make_pipeline(StandardScaler(), cls(random_state=seed, **extra)) for seed in seeds]
            means[label] = np.array([cross_val_score(pipe, X, y).mean() for pipe in pipes])
            row[label] = {"mean": float(means[label].mean()), "seed0": float(means[label][0]),
                          "seconds": (time.perf_counter() - started) / args.seeds}
        gap = means["backprop"] - means["scikit-learn"]
        row["difference"] = {"mean": float(gap.mean()),
                             "stderr": float(gap.std(ddof=1) / np.sqrt(len(gap))) if len(gap) > 1 else None}
        report["cross_val_score"][name] = row
        print(name, json.dumps(row), flush=True)
    X, y = load_digits(return_X_y=True)
    grid = {"hidden_layer_sizes": [(32,), (64,)], "alpha": [1e-4, 1e-2]}
    for label, cls in (("backprop", BackpropClassifier), ("scikit-learn", MLPClassifier)):
        pipe = make_pipeline(StandardScaler(), cls(random_state=0))
        step = pipe.steps[-1][0]
        search = GridSearchCV(pipe, {f"{step}__{k}": v for k, v in grid.items()}, cv=3, n_jobs=2)
        started = time.perf_counter()
        search.fit(X, y)
        best = {k.split("__")[1]: v for k, v in search.best_params_.items()}
        report["grid_search"][label] = {"best_score": float(search.best_score_),
                                        "seconds": time.perf_counter() - started, "best_params": best}
    print(json.dumps(report, indent=1, default=str))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1, default=str)


if __name__ == "__main__":
    main()
