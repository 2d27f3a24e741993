"""``backprop evaluate``, ``predict`` and ``gradcheck``: using a saved (or described) model."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from typing import Any

import numpy as np

from .. import losses
from .. import spec as text_spec
from ..apps import runner
from ..edges import checkpoint, datafiles
from ..edges.datafiles import read_file
from ..edges.heads import scores
from ..errors import DataError
from ..host.gradcheck import check_budget, gradcheck, jacobian_check
from ..model import Sequential, mlp
from .common import device_spec
from .report import emit_json, table


def _check_width(model, transform, X: np.ndarray, what: str) -> None:
    # With computed features the model's inputs are not the file's columns: the transform knows.
    width = transform.n_columns if transform.features is not None else model.n_inputs
    if X.shape[1] != width:
        raise DataError(f"{what} has {X.shape[1]} features but the model takes {width}: "
                        "give the same feature columns as in training")


def evaluate(args: argparse.Namespace) -> int:
    model, transform, head, extra = runner.restore(args.model, device_spec(args.device, args.backend))
    # The columns the model was trained on, by name where the file's header has them (as predict).
    given = args.target is not None
    dataset = datafiles.load(args.data, args.target if given else
                             extra.get("train", {}).get("settings", {}).get("target"),
                             feature_names=extra.get("feature_names"),
                             target_name=None if given else extra.get("target_name"))
    parts = {"test": (dataset.X_test, dataset.y_test), "val": (dataset.X_val, dataset.y_val),
             "train": (dataset.X, dataset.y)}
    split = args.split or ("test" if dataset.X_test is not None else "all")
    if split == "all":
        X, y = dataset.X, dataset.y
    else:
        X, y = parts[split]
        if X is None:
            raise DataError(f"{dataset.name} has no {split} part: use --split all")
    _check_width(model, transform, X, dataset.name)
    result = scores(model, head, transform, X, y)
    if args.json:
        emit_json({"type": "evaluate", "data": dataset.name, "split": split, "samples": len(X),
                   **result, "device": model.backend.label, "backend": model.backend.name})
    else:
        print(f"{args.model} on {dataset.name} ({split}, {len(X)} samples, {model.backend.label})")
        print(table({split: result}))
    return 0


def predict(args: argparse.Namespace) -> int:
    if args.out == "-":  # the usual spelling of standard output
        args.out = None
    if args.out:  # before any work: never over the model, the input, or a file not ours
        checkpoint.check_writable(args.out, "predictions", inputs=(args.model, args.input), force=args.force)
    model, transform, head, extra = runner.restore(args.model, device_spec(args.device, args.backend))
    dataset = read_file(args.input, extra.get("train", {}).get("settings", {}).get("target"),
                        inputs_only=True, feature_names=extra.get("feature_names"))
    X = dataset.X
    _check_width(model, transform, X, args.input)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if transform.task == "classification":
        _write_classes(writer, head.class_scores(model, transform.inputs(X)), transform.classes, args.proba)
    else:
        if args.proba:
            raise DataError("--proba is for classifiers; this model is a regressor")
        _write_values(writer, transform.outputs(np.asarray(model.predict(transform.inputs(X)))))
    if args.out:
        checkpoint.write_atomic(args.out, out.getvalue().encode())
        print(f"wrote {len(X)} predictions to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(out.getvalue())
    return 0


def _write_classes(writer, probs: np.ndarray, classes: list, proba: bool) -> None:
    """The predicted class of each row of ``probs`` (N, K), and with ``proba`` its K
    probabilities (six significant digits), under a header."""
    labels = np.asarray(classes)[np.argmax(probs, axis=1)]
    if proba:
        writer.writerow(["prediction"] + [f"p_{c}" for c in classes])
        writer.writerows([label, *(f"{p:.6g}" for p in row)] for label, row in zip(labels, probs))
    else:
        writer.writerow(["prediction"])
        writer.writerows([label] for label in labels)


def _write_values(writer, Y: np.ndarray) -> None:
    """A regressor's outputs ``Y`` (N, T) in the data's units (eight significant digits) under
    a header: ``prediction``, or ``prediction_<i>`` for each of several targets."""
    names = ["prediction"] if Y.shape[1] == 1 else [f"prediction_{i}" for i in range(Y.shape[1])]
    writer.writerow(names)
    writer.writerows([f"{v:.8g}" for v in row] for row in Y)


def _gradcheck_model(args: argparse.Namespace, spec) -> tuple:
    """The model to check, its loss and a description; a network built from the options is
    refused by the budget before it is built (a checkpoint is bounded by its own size)."""
    if args.model:
        model, _, head, _ = runner.restore(args.model, spec)
        check_budget([tuple(p.shape) for p in model.parameter_list()], model.n_inputs, args.samples,
                     args.max_params)
        return model, head.loss, args.model
    if args.layers is not None:
        return _gradcheck_layers(args, spec)
    loss = args.loss if args.loss != "auto" else ("ce" if args.outputs > 1 else "mse")
    sizes = [args.inputs, *args.hidden, args.outputs]
    check_budget([s for a, b in zip(sizes, sizes[1:]) for s in ((a, b), (b,))], args.inputs, args.samples,
                 args.max_params)
    model = mlp(sizes, activation=args.activation, output=None, device=spec, dtype="float64", seed=args.seed)
    return model, loss, f"{'-'.join(map(str, sizes))} {args.activation} network, {loss} loss"


def _gradcheck_layers(args: argparse.Namespace, device: Any) -> tuple:
    """The network ``--layers`` describes on ``--input-shape`` samples (float64), its loss and a
    description; bounded by the budget once its shapes are known."""
    shape = tuple(args.input_shape) if args.input_shape else (args.inputs,)
    model = Sequential(text_spec.parse(args.layers), input_shape=shape, device=device, dtype="float64",
                       seed=args.seed)
    check_budget([tuple(p.shape) for p in model.parameter_list()], model.n_inputs, args.samples,
                 args.max_params)
    loss = args.loss if args.loss != "auto" else ("ce" if model.n_outputs > 1 else "mse")
    return model, loss, f"{text_spec.outline(model)}, {loss} loss"


def gradcheck_command(args: argparse.Namespace) -> int:
    spec = device_spec(args.device, args.backend)
    rng = np.random.default_rng(args.seed)
    model, loss, source = _gradcheck_model(args, spec)
    task = losses.get(loss).task
    if task == "multiclass" and model.n_outputs < 2:
        raise DataError(f"--loss {loss} needs at least 2 outputs")
    X = rng.normal(size=(args.samples, *model.input_shape))
    if task == "multiclass":
        y = rng.integers(0, model.n_outputs, size=args.samples)
    elif task == "binary":
        y = rng.integers(0, 2, size=(args.samples, model.n_outputs))
    else:
        y = rng.normal(size=(args.samples, model.n_outputs))
        if not losses.get(loss).centred_targets:  # counts (poisson): the same draws, kept >= 0
            y = np.abs(y)
    if args.jacobian:
        result = jacobian_check(model, X, tolerance=args.tolerance or 1e-7, max_entries=args.max_params,
                                seed=args.seed)
        source = f"the output Jacobian of {source.split(',')[0]}"
    else:
        result = gradcheck(model, X, y, loss=loss, tolerance=args.tolerance or 1e-6,
                           max_entries=args.max_params, seed=args.seed)
    if args.json:
        emit_json({"type": "gradcheck", "ok": result.ok, "jacobian": args.jacobian, "worst": result.worst,
                   "tolerance": result.tolerance, "errors": result.errors, "entries": result.entries,
                   "sizes": result.sizes, "floor": result.floor, "floored": result.floored,
                   "device": model.backend.label, "backend": model.backend.name})
    else:
        print(f"gradient check of {source} on {model.backend.label} (float64, "
              f"{args.samples} samples, five-point differences)")
        print(f"checked {result.checked:,} of {sum(result.sizes.values()):,} entries "
              f"(at most {args.max_params} per array: --max-params)")
        print(result)
    return 0 if result.ok else 1
