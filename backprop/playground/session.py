"""One playground run: the library's training run on a thread of its own, steered by the page.

The page's settings are checked here (every value bounded: a request cannot ask for a
huge allocation), turned into a :class:`backprop.runner.Run`, and trained on a worker
thread that is the only one to touch the model. Between epochs the worker obeys the
controls (play, pause, one step, stop), runs what the HTTP threads asked of the model
(a checkpoint, a new learning rate), and, at most every :data:`UPDATE_EVERY_S`,
publishes a picture of the model for the page (:mod:`.views`). The run stops when its
page stops listening.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import numpy as np

from backends import available_backends

from .. import optimizers
from ..apps.runner import Run
from ..edges import datasets, tfplayground
from ..edges.features import PLANE
from ..edges.preprocessing import infer_task
from ..errors import BackpropError, DataError
from ..settings import SETTINGS
from . import views

LIMITS = {"layers": 6, "units": 16, "points": 5000, "grid": (10, 100), "unit_grid": (6, 32), "runs": 4,
          "lr": 10.0, "penalty": 1.0, "dropout": 0.9, "seed": 2**31 - 1, "rows": 100_000,
          "classes": len(views.CLASS_COLOURS)}
"""Bounds on what a page may ask for, and on the data file it is offered (rows; classes: as
many as the pictures colour apart)."""

EPOCHS = 10_000_000
"""A playground run's epoch budget: in effect, until paused or stopped."""

UPDATE_EVERY_S = 0.05
"""At most 20 pictures a second: the page stays smooth, training runs between them."""

UNHEARD_S = 15.0
"""A run whose page has not connected for this long (or has gone) stops."""

RECORD_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
PLANE_SETS = ("circle", "quadrants", "gauss", "spiral", "moons", "circles", "spirals", "blobs", "plane",
              "bumps")
CURVE_SETS = ("sine",)
LINE_FEATURES = ("x1", "x1^2", "sin(x1)")


class BadRequest(Exception):
    """A request the server answers with ``status`` and this one-line message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Source:
    """The data a playground offers: the generated sets, and the file named on its command line
    (``target``: its target column, a name or index, as ``backprop train --target`` reads it)."""

    def __init__(self, path: str | None = None, target: str | None = None) -> None:
        # a file by its absolute path (the run's command line works from anywhere); a built-in
        # set such as digits by its name
        self.path = os.path.abspath(path) if path and os.path.exists(path) else path
        self.target = target
        self.file = None
        if path:
            from ..edges.datafiles import load

            self.file = load(path, target)  # a DataError here is the command line's one-line error
            _check_drawable(self.file, path)

    def names(self) -> list[str]:
        return (["file"] if self.file is not None else []) + list(PLANE_SETS + CURVE_SETS)

    def describe(self) -> dict:
        """What the page's data controls offer."""
        sets = {name: {"task": datasets.GENERATED[name].task, "noise": datasets.GENERATED[name].noise,
                       "max_noise": datasets.GENERATED[name].max_noise,
                       "columns": 1 if name in CURVE_SETS else 2,
                       "defaults": datasets.GENERATED[name].defaults} for name in PLANE_SETS + CURVE_SETS}
        out: dict[str, Any] = {"sets": sets, "file": None}
        if self.file is not None:
            f = self.file
            out["file"] = {"name": os.path.basename(self.path), "columns": f.X.shape[1], "rows": len(f.X),
                           "feature_names": f.feature_names, "task": f.task or infer_task(f.y)}
        return out


def _check_drawable(f: Any, path: str) -> None:
    """Refuses a data file the page cannot draw: more than one target, too many rows or
    classes, or values whose picture's box overflows (its JSON would need Infinity)."""
    if f.y.ndim != 1:
        raise DataError(f"{path}: the playground draws one target column; this file has {f.y.shape[1]}: "
                        "pick one with --target")
    if len(f.X) > LIMITS["rows"]:
        raise DataError(f"{path} has {len(f.X)} rows: the playground draws at most {LIMITS['rows']}; "
                        "sample it, or train it with backprop train")
    task = f.task or infer_task(f.y)
    if task == "classification" and len(np.unique(f.y)) > LIMITS["classes"]:
        raise DataError(f"{path} has {len(np.unique(f.y))} classes: the playground colours at most "
                        f"{LIMITS['classes']} apart; train it with backprop train")
    columns = [(name, f.X[:, c]) for c, name in enumerate(f.feature_names)]
    if task == "regression" or f.X.shape[1] == 1:  # one column: the target's values are the y axis
        columns.append((f.target_name or "the target", f.y))
    for name, values in columns:
        if not views.drawable(np.asarray(values, dtype=np.float64)):
            raise DataError(f"{path}: column {name!r} spans {np.min(values):.3g} to {np.max(values):.3g}, "
                            "too wide to draw (its picture's box overflows a float): rescale it")


# -- checking a page's settings ----------------------------------------------------------
def _number(payload: dict, key: str, low: float, high: float, default: float, *, integer: bool = False,
            open_low: bool = False) -> Any:
    value = payload.get(key, default)
    # an int is compared as it is: a 400-digit one does not fit a float (math.isfinite overflows)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or (isinstance(value, float) and not math.isfinite(value)):
        raise BadRequest(f"{key} must be a number, got {_shown(value)}")
    if integer and value != int(value):
        raise BadRequest(f"{key} must be an integer, got {_shown(value)}")
    if value < low or value > high or (open_low and value == low):
        bound = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
        raise BadRequest(f"{key} must be in {bound}, got {_shown(value)}")
    return int(value) if integer else float(value)


def _shown(value: Any) -> str:
    """A value as a message quotes it: at most 40 characters of its repr."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _index(value: Any, bound: int) -> bool:
    """Whether ``value`` is an int (not a bool) in [0, bound)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < bound


def _choice(payload: dict, key: str, allowed: Any, default: Any) -> Any:
    value = payload.get(key, default)
    if not isinstance(value, str) or value not in allowed:
        raise BadRequest(f"{key} must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return value


DEFAULTS: dict[str, Any] = {
    "data": "circle", "n": 500, "noise": 0.0, "test": 0.5, "data_seed": 1, "features": ["x1", "x2"],
    "hidden": [4, 2], "activation": "tanh", "optimizer": "sgd", "lr": 0.03, "batch_size": 10, "l1": 0.0,
    "l2": 0.0, "dropout": 0.0, "seed": 0, "device": "cpu", "dtype": "float32", "grid": 80, "unit_grid": 16,
    "pair": [0, 1],
}
"""TensorFlow Playground's start (circle, 4-2 tanh units, rate 0.03, batch 10, half the points
for testing), on plain SGD as it trains."""


def devices() -> list[dict]:
    """``cpu``, and ``cuda`` with whether it is usable here and why not (as ``backprop info``)."""
    rows = {row["spec"]: row for row in available_backends()}
    return [{"spec": spec, "usable": bool(rows[spec]["usable"]), "reason": rows[spec]["reason"]}
            for spec in ("cpu", "cuda") if spec in rows]


RUN_SETTINGS: dict[str, tuple[str, float | None, str | None]] = {
    "activation": ("activation", None, None), "optimizer": ("optimizer", None, None),
    "lr": ("lr", None, "lr"), "batch_size": ("batch_size", None, "points"), "l1": ("l1", None, "penalty"),
    "l2": ("weight_decay", None, "penalty"), "dropout": ("dropout", None, "dropout"),
    "seed": ("seed", None, "seed"), "dtype": ("dtype", None, None),
    "test": ("val_split", 0.1, None),
}
"""The page's keys for the run's settings (:data:`backprop.settings.SETTINGS`): the setting each
one gives, and the page's narrower bounds: its low one (None: the setting's) and the
:data:`LIMITS` key of its high one (None: ``test``'s 0.9; a name setting: its choices). A
page's ``l2`` is the run's ``weight_decay``, its ``test`` share the run's ``val_split``."""


def _run_value(payload: dict, key: str, default: Any) -> Any:
    """The page's value for ``key`` of :data:`RUN_SETTINGS`, checked against the setting's type
    and choices, or its bounds narrowed to the page's."""
    name, low, limit = RUN_SETTINGS[key]
    setting = SETTINGS[name]
    if setting.kind == "name":
        return _choice(payload, key, setting.choices(), default)
    high = LIMITS[limit] if limit else 0.9
    return _number(payload, key, setting.low if low is None else low, high, default,
                   integer=setting.kind in ("integer", "batch"), open_low=setting.open_low)


def check_settings(payload: Any, source: Source) -> dict:
    """A page's settings, every value checked and bounded; unknown keys refused."""
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object of settings")
    unknown = sorted(set(payload) - set(DEFAULTS))
    if unknown:
        raise BadRequest(f"unknown setting(s) {', '.join(unknown)[:200]}: use some of {', '.join(DEFAULTS)}")
    s: dict[str, Any] = {"data": _choice(payload, "data", source.names(), DEFAULTS["data"])}
    columns = _check_data(payload, s, source)
    s["test"] = _run_value(payload, "test", DEFAULTS["test"])
    _check_inputs(payload, s, columns)
    s["hidden"] = _check_hidden(payload)
    for key in RUN_SETTINGS:
        if key != "test":
            s[key] = _run_value(payload, key, DEFAULTS[key])
    refusal = optimizers.class_of(s["optimizer"]).refusal
    if s["l1"] and refusal("l1"):
        raise BadRequest(refusal("l1"))
    offered = {row["spec"]: row for row in devices()}
    s["device"] = _choice(payload, "device", list(offered), DEFAULTS["device"])
    if not offered[s["device"]]["usable"]:
        raise BadRequest(f"{s['device']} is not usable here: {offered[s['device']]['reason']}")
    s["grid"] = _number(payload, "grid", *LIMITS["grid"], DEFAULTS["grid"], integer=True)
    s["unit_grid"] = _number(payload, "unit_grid", *LIMITS["unit_grid"], DEFAULTS["unit_grid"], integer=True)
    return s


def _check_data(payload: dict, s: dict, source: Source) -> int:
    """A generated set's size, noise and seed into ``s``; the data's number of columns."""
    if s["data"] == "file":
        return source.file.X.shape[1]
    gen = datasets.GENERATED[s["data"]]
    s["n"] = _number(payload, "n", 10, LIMITS["points"], DEFAULTS["n"], integer=True)
    s["noise"] = _number(payload, "noise", 0.0, gen.max_noise, payload.get("noise", gen.noise))
    s["data_seed"] = _number(payload, "data_seed", 0, LIMITS["seed"], DEFAULTS["data_seed"], integer=True)
    return 1 if s["data"] in CURVE_SETS else 2


def _check_inputs(payload: dict, s: dict, columns: int) -> None:
    """The features crossed from one or two columns, or the pair of a wider file's columns drawn."""
    crosses = PLANE if columns == 2 else LINE_FEATURES if columns == 1 else ()
    if crosses:
        s["features"] = _check_crosses(payload.get("features", DEFAULTS["features"] if columns == 2
                                                   else ["x1"]), crosses)
        s["pair"] = [0, 1] if columns == 2 else [0]
        return
    s["features"] = None
    pair = payload.get("pair", DEFAULTS["pair"])
    if not (isinstance(pair, list) and len(pair) == 2 and all(_index(i, columns) for i in pair)
            and pair[0] != pair[1]):
        raise BadRequest(f"pair must be two different column indices in [0, {columns - 1}]")
    s["pair"] = pair


def _check_crosses(chosen: Any, crosses: tuple[str, ...]) -> list[str]:
    """The features chosen among ``crosses``, in the page's order."""
    if not isinstance(chosen, list) or not chosen or not all(isinstance(f, str) for f in chosen) \
            or len(set(chosen)) != len(chosen) or not set(chosen) <= set(crosses):
        raise BadRequest(f"features must be a non-empty list of distinct names from {', '.join(crosses)}")
    return [f for f in crosses if f in chosen]  # the page's order, always


def _check_hidden(payload: dict) -> list[int]:
    hidden = payload.get("hidden", DEFAULTS["hidden"])
    if not (isinstance(hidden, list) and len(hidden) <= LIMITS["layers"]
            and all(_index(h, LIMITS["units"] + 1) and h >= 1 for h in hidden)):
        raise BadRequest(f"hidden must be a list of at most {LIMITS['layers']} layer widths, each 1 to "
                         f"{LIMITS['units']}")
    return hidden


def data_reference(s: dict, source: Source) -> str:
    """What ``backprop train`` reads for these settings: the file, or a generated set's spec
    (all of its points: the held-out part is the run's validation split)."""
    if s["data"] == "file":
        return source.path
    return datasets.spec(s["data"], n=s["n"], noise=s["noise"], test=0, seed=s["data_seed"])


def run_settings(s: dict) -> dict:
    """The library run's settings for a page's settings (see :data:`backprop.settings.SETTINGS`)."""
    cls = optimizers.class_of(s["optimizer"])
    r = {"hidden": s["hidden"], "features": s["features"],
         **{name: s[key] for key, (name, _, _) in RUN_SETTINGS.items()},
         "early_stopping": 0, "epochs": EPOCHS}
    r["lr"] = r["lr"] if cls.has_lr else None
    r["batch_size"] = "full" if cls.full_batch else r["batch_size"]
    return r


def command_line(s: dict, source: Source, epochs: int) -> str:
    """The ``backprop train`` command that trains these settings to ``epochs`` epochs: each
    setting spelled by its declaration, so the train command's parser reads back the same run."""
    r = {**run_settings(s), "epochs": max(epochs, 1)}
    words = ["backprop", "train", data_reference(s, source)]
    if s["data"] == "file" and source.target is not None:
        words += ["--target", str(source.target)]
    for name, setting in SETTINGS.items():
        if name in r:
            words += setting.words(r[name])
    if s["device"] != "cpu":
        words += ["--device", s["device"]]
    return " ".join(shlex.quote(w) for w in words)


def page_settings(setup: tfplayground.Setup) -> dict:
    """A TensorFlow Playground link's setup as the page's settings (the page's keys of
    :data:`RUN_SETTINGS`; its held-out share is the page's ``test``)."""
    keys = {name: key for key, (name, _, _) in RUN_SETTINGS.items() if key != "test"}
    s = {"data": setup.data, "n": setup.options["n"], "noise": setup.options["noise"],
         "test": setup.options["test"], "hidden": setup.settings["hidden"],
         "features": setup.settings["features"],
         **{keys[name]: value for name, value in setup.settings.items() if name in keys}}
    if "seed" in setup.options:
        s["data_seed"] = setup.options["seed"]
    return s


def page_address(url: str, s: dict) -> str:
    """The page's address ``url`` with settings ``s`` after ``#``, as the page reads them."""
    return url + "#" + urlencode({k: ",".join(map(str, v)) if isinstance(v, list) else v
                                  for k, v in s.items()}, safe=",^*()")


def tf_link(s: dict) -> dict:
    """``{"url", "left_out"}``: the page's settings ``s`` (checked) as a TensorFlow Playground link,
    and one line per setting it cannot hold (no url for data it does not have)."""
    settings = {name: s[key] for key, (name, _, _) in RUN_SETTINGS.items() if key != "test"}
    settings.update(hidden=s["hidden"], features=s["features"])
    options = {"n": s.get("n"), "noise": s.get("noise"), "test": s["test"], "seed": s.get("data_seed")}
    url, left = tfplayground.link(s["data"], options, settings)
    return {"url": url, "left_out": left}


# -- one run -------------------------------------------------------------------------
class Session:
    """A run of the page: built at once (bad settings fail here, as a 400), trained on a worker.

    States: ``paused`` (also before the first epoch), ``running``, ``done`` (the optimizer
    converged, or training diverged: ``error`` says), ``stopped`` (the worker has ended).
    """

    def __init__(self, sid: str, settings: dict, source: Source) -> None:
        self.id, self.settings, self.source = sid, settings, source
        try:
            target = source.target if settings["data"] == "file" else None
            self.run = Run(data_reference(settings, source), device=settings["device"], target=target,
                           **run_settings(settings))
        except BackpropError as exc:
            raise BadRequest(str(exc).splitlines()[0]) from None
        X, y = self.run.train
        task = self.run.transform.task
        self.y_range = None
        if task == "regression":
            self.y_range = (float(np.min(y)), float(np.max(y)))
        self.plane = views.Plane.around(X, tuple(settings["pair"]), y if len(settings["pair"]) == 1 else None)
        self.cond = threading.Condition()
        self.state = "paused"
        self.steps = 0  # epochs still to run before pausing (one step)
        self.stop_asked = False
        self.error: str | None = None
        self.requests: list[tuple[Callable[[], Any], dict]] = []
        self.unsent: list[dict] = []  # epoch records the page has not been sent yet
        self.picture: dict | None = None
        self.version = 0
        self.listener: object | None = None
        self.heard = time.monotonic()
        self.last_picture = 0.0
        self.samples_per_s: float | None = None
        self.thread = threading.Thread(target=self._work, name=f"playground-{sid}", daemon=True)
        self.thread.start()

    # -- what the page learns on creation ----------------------------------------------
    def describe(self) -> dict:
        """The data points (raw coordinates of the plane), classes and plane, for drawing."""
        run, pair = self.run, self.settings["pair"]
        (X, y), val = run.train, run.val

        def points(X, y) -> dict:
            if run.transform.task == "classification":
                labels = run.transform.targets(y).tolist()
            else:
                labels = [round(float(v), 5) for v in np.asarray(y, dtype=np.float64).ravel()]
            cols = [[round(float(v), 5) for v in X[:, c]] for c in pair]
            return {"x": cols[0], "y": cols[1] if len(pair) > 1 else labels, "label": labels}

        return {"id": self.id, "settings": self.settings, "task": run.transform.task,
                "classes": run.transform.classes, "domain": self.plane.domain, "pair": pair,
                "train": points(X, y), "test": points(*val) if val is not None else None,
                "y_range": self.y_range,
                "full_batch": optimizers.class_of(self.settings["optimizer"]).full_batch,
                "n_params": run.model.n_params, "notes": run.notes,
                "command": command_line(self.settings, self.source, 1), "tf_link": tf_link(self.settings)}

    # -- controls, from the HTTP threads --------------------------------------------------
    def control(self, action: str) -> None:
        with self.cond:
            if not self.thread.is_alive():
                raise BadRequest("this run has ended: reset to start another", 409)
            if action == "play":
                if self.state == "done":
                    raise BadRequest(f"this run has finished ({self.error or 'converged'}): reset to "
                                     "start another", 409)
                self.state, self.steps = "running", 0
            elif action == "pause":
                if self.state == "running":
                    self.state, self.steps = "paused", 0
            elif action == "step":
                if self.state == "done":
                    raise BadRequest("this run has finished: reset to start another", 409)
                self.state, self.steps = "running", 1
            elif action == "stop":
                self.stop_asked = True
            else:
                raise BadRequest(f"action must be play, pause, step or stop, got {action!r}")
            self.cond.notify_all()

    def call(self, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Run ``fn`` on the worker between epochs (the model is its alone); its result."""
        box: dict[str, Any] = {"done": threading.Event()}
        with self.cond:
            if not self.thread.is_alive():
                raise BadRequest("this run has ended: reset to start another", 409)
            self.requests.append((fn, box))
            self.cond.notify_all()
        if not box["done"].wait(timeout):
            raise BadRequest("the run did not answer in time (an epoch is still running): try again", 503)
        if "error" in box:
            raise box["error"]
        return box["value"]

    def change(self, payload: Any) -> dict:
        """Learning rate, L1 and L2 changed while training; the settings as they are now."""
        if not isinstance(payload, dict) or not payload or not set(payload) <= {"lr", "l1", "l2"}:
            raise BadRequest("send a JSON object with some of lr, l1, l2")
        new = {}
        refusal = optimizers.class_of(self.settings["optimizer"]).refusal
        if "lr" in payload and refusal("lr"):
            raise BadRequest(refusal("lr"))
        for key in ("lr", "l1", "l2"):
            if key in payload:
                new[key] = _run_value(payload, key, 0.0)
        if new.get("l1") and refusal("l1"):
            raise BadRequest(refusal("l1"))

        def apply() -> dict:
            self.run.optimizer.update_settings(lr=new.get("lr"), weight_decay=new.get("l2"), l1=new.get("l1"))
            self.settings.update(new)
            self.run.settings.update(run_settings(self.settings), epochs=EPOCHS)
            self._publish(force=True)
            return self.settings

        return self.call(apply)

    def checkpoint(self) -> bytes:
        """The run as a checkpoint file that ``backprop predict``, ``evaluate`` and
        ``train --resume`` read."""
        def save() -> bytes:
            fd, path = tempfile.mkstemp(suffix=".safetensors", prefix="playground-")
            os.close(fd)
            try:
                self.run.save_path = path
                self.run.settings["epochs"] = max(self.run.model.epoch, 1)
                self.run.save("playground")
                with open(path, "rb") as handle:
                    return handle.read()
            finally:
                self.run.settings["epochs"] = EPOCHS
                self.run.save_path = None
                os.unlink(path)

        return self.call(save)

    # -- the page's stream -----------------------------------------------------------------
    def attach(self) -> object:
        """A new listener takes the stream over (the one before it is let go)."""
        token = object()
        with self.cond:
            self.listener, self.heard = token, time.monotonic()
            self.version += 1  # the newcomer gets the current picture at once
            self.cond.notify_all()
        return token

    def detach(self, token: object) -> None:
        """The listener is gone: with nobody watching, the run stops."""
        with self.cond:
            if self.listener is token:
                self.listener, self.stop_asked = None, True
                self.cond.notify_all()

    def next_event(self, token: object, seen: int, timeout: float) -> tuple[int, str | None]:
        """``(version, JSON)`` of a picture newer than ``seen``, or ``(seen, None)`` after
        ``timeout`` (a heartbeat is due). Raises LookupError once this listener is replaced
        or the run has ended and everything was sent."""
        with self.cond:
            self.cond.wait_for(lambda: self.version > seen or self.listener is not token
                               or not self.thread.is_alive(), timeout)
            if self.listener is not token:
                raise LookupError("another page took this run over")
            self.heard = time.monotonic()
            if self.version == seen or self.picture is None:
                if not self.thread.is_alive():
                    raise LookupError("the run has ended")
                return seen, None
            event = {**self.picture, "state": self.state, "error": self.error,
                     "records": self.unsent, "samples_per_s": self.samples_per_s}
            self.unsent = []
            return self.version, json.dumps(event, allow_nan=False, default=_plain)

    # -- the worker ---------------------------------------------------------------------------
    def _work(self) -> None:
        try:
            self._publish(force=True)
            if self._wait():
                return
            summary = self.run.fit(callbacks=[self._between_epochs])
            with self.cond:
                if summary["status"] in ("diverged", "converged", "completed"):
                    self.state = "done"
                    self.error = summary.get("error") or summary.get("reason")
            self._publish(force=True)
            while not self._wait():  # finished: still answers the page (a checkpoint) until it leaves
                with self.cond:
                    self.state = "done"
        except Exception as exc:  # noqa: BLE001 - the page shows it; the server stays up
            with self.cond:
                self.state = "done"
                self.error = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, BackpropError):
                traceback.print_exc()
        finally:
            with self.cond:
                if self.state != "done":
                    self.state = "stopped"
                self.version += 1
                for _, box in self.requests:
                    box["error"] = BadRequest("this run has ended", 409)
                    box["done"].set()
                self.requests = []
                self.cond.notify_all()

    def _between_epochs(self, record: dict, model: Any) -> bool:
        with self.cond:
            self.unsent.append({k: _finite(record[k]) for k in RECORD_KEYS if k in record})
            if len(self.unsent) > 20_000:  # a page that has not read for long: keep every other
                self.unsent = self.unsent[::2]
            self.samples_per_s = record.get("samples_per_s")
            if self.steps:
                self.steps -= 1
                if not self.steps:
                    self.state = "paused"
        self._publish(force=self.state != "running")
        return self._wait()

    def _wait(self) -> bool:
        """Between epochs: serve requests, and hold while paused. True: stop training."""
        while True:
            with self.cond:
                todo, self.requests = self.requests, []
            for fn, box in todo:
                try:
                    box["value"] = fn()
                except Exception as exc:  # noqa: BLE001 - handed to the asking thread
                    box["error"] = exc if isinstance(exc, BadRequest) else BadRequest(
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 409)
                box["done"].set()
            with self.cond:
                unheard = self.listener is None and time.monotonic() - self.heard > UNHEARD_S
                if self.stop_asked or unheard:
                    return True
                if self.state == "running" and not self.requests:
                    return False
                if not self.requests:
                    self.cond.wait(0.25)

    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_picture < UPDATE_EVERY_S:
            return
        run, s = self.run, self.settings
        picture = views.snapshot(run.model, run.transform, run.head, self.plane, s["grid"], s["unit_grid"],
                                 self.y_range)
        picture.update(epoch=run.model.epoch, command=command_line(s, self.source, run.model.epoch),
                       settings={k: s[k] for k in ("lr", "l1", "l2")}, tf_link=tf_link(s))
        with self.cond:
            self.picture, self.last_picture = picture, time.monotonic()
            self.version += 1
            self.cond.notify_all()


def _finite(value: Any) -> Any:
    """JSON has no NaN: a diverged loss goes to the page as null."""
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
