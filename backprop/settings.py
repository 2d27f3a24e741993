"""The one declaration of a training run's settings.

Each setting is declared once here: its name, the Python types it takes, its bounds or
choices (the registries' names, read when asked, never a second list), its default, its
help text, its command-line flag, whether it counts the run's total (``epochs``) and
whether a resumed checkpoint fixes it. From :data:`SETTINGS` come ``Run``'s defaults,
kinds and checks (:mod:`backprop.apps.runner`), the ``backprop train`` options and their
help (:mod:`backprop.cli`), the playground's bounds and printed command line, and the
defaults ``fit`` keeps per call where they differ from a run's (:func:`fit_defaults`).

What an optimizer can do (full batch, a rate, L1, ranks, its entry defaults) is asked of
its class (:mod:`backprop.optimizers`), never restated here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backends import FLOAT_DTYPES

from . import activations, initializers, losses, optimizers, schedules
from .errors import ConfigError
from .targets import positive_int

INF = math.inf
_SAME = object()  # fit's default is the run's


@dataclass(frozen=True)
class Setting:
    """One setting of a run.

    ``kind`` says how a value reads and is checked: ``"name"`` (one of ``choices()``),
    ``"integer"`` and ``"number"`` (within ``low``..``high``; ``open_low``: the low bound
    excluded, the high one always excluded, as on the command line), ``"patience"`` (an
    integer >= 0, True or False), ``"batch"`` (an integer or ``"full"``), ``"widths"`` (hidden
    widths), ``"switch"`` (on unless ``--no-...``), ``"text"`` (a string as given).
    ``checked_here``: ``Run`` checks the value against the bounds or choices itself; otherwise
    its owner (a registry, the optimizer, early stopping) refuses a bad one when built.
    """

    name: str
    kind: str
    default: Any
    types: tuple[type, ...]
    what: str  # the type, as a message says it
    help: str  # "{default}" is filled in from ``default``
    choices: Callable[[], tuple[str, ...]] | None = None
    low: float = -INF
    high: float = INF
    open_low: bool = False
    bounds: str = ""  # the bounds, as a message says them
    checked_here: bool = False
    fixed: bool = False  # fixed by a resumed checkpoint (another model, or other validation samples)
    total: bool = False  # counts the run's total, not what one call adds (``fit`` counts per call)
    fit_name: str | None = None  # fit's keyword for it, where fit takes one
    fit_default: Any = _SAME
    metavar: str | None = None
    group: str = "training"  # where ``backprop train --help`` lists it: data, model or training

    @property
    def flag(self) -> str:
        """Its option on ``backprop train``."""
        return "--no-" + self.name if self.kind == "switch" else "--" + self.name.replace("_", "-")

    def shown(self, value: Any) -> str:
        """``value`` as the command line writes it (one word)."""
        if self.kind == "widths":
            return ",".join(map(str, value)) or "0"
        if isinstance(value, float):  # short where that is exact, so the value reads back the same
            text = f"{value:g}"
            return text if float(text) == value else repr(value)
        if isinstance(value, list):
            return ",".join(map(str, value))
        return str(value)

    def words(self, value: Any) -> list[str]:
        """The command-line words that give ``value`` (none for None, or for a switch left on)."""
        if value is None or (self.kind == "switch" and value):
            return []
        return [self.flag] if self.kind == "switch" else [self.flag, self.shown(value)]

    def help_text(self) -> str:
        """Its ``--help`` line, the default and the full-batch optimizers read now."""
        full = ", ".join(optimizers.names(full_batch=True))
        return self.help.format(default=self.shown(self.default), full_batch=full or "none")

    def check(self, value: Any) -> Any:
        """``value`` (not None) checked: its type always, its bounds or choices where ``checked_here``;
        returns it in canonical form (hidden widths as a list). A ConfigError names the setting."""
        if value is None:  # not set (a checkpoint's "none": no rate, no early stopping...)
            # where a run cannot go without a value, refused as a bad one
            needed = self.checked_here and self.kind not in ("name", "widths")
            return _CHECKS[self.kind](self, value) if needed else None
        wrong = not isinstance(value, self.types) or (isinstance(value, bool) and bool not in self.types)
        if wrong:
            raise ConfigError(f"{self.name} must be {self.what}, got {value!r}")
        if not self.checked_here:
            return value
        return _CHECKS[self.kind](self, value)


def _check_widths(setting: Setting, value: Any) -> list[int]:
    # one width, or 0 for none, as on the command line
    widths = value if isinstance(value, list) else [value] if value else []
    return [positive_int(w, "each hidden width") for w in widths]


def _check_shape(setting: Setting, value: Any) -> list[int]:
    # per-sample sizes, channels first: "1,64" or [1, 8, 8]
    parts = value.split(",") if isinstance(value, str) else value
    sizes = [int(p) if isinstance(p, str) and p.strip().isdigit() else p for p in parts]
    if not 1 <= len(sizes) <= 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in sizes):
        raise ConfigError(f"{setting.name} must be one to three positive sizes, such as 1,64 or 1,8,8, "
                          f"got {value!r}")
    return sizes


def _check_integer(setting: Setting, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < setting.low:
        raise ConfigError(f"{setting.name} must be an integer >= {setting.low:g}, got {value!r}")
    return value


def _check_batch(setting: Setting, value: Any) -> Any:
    return value if value == "full" else positive_int(value, setting.name)


def _check_number(setting: Setting, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not in_range(setting, value):
        raise ConfigError(f"{setting.name} must be {setting.bounds}, got {value!r}")
    return value


def _check_name(setting: Setting, value: Any) -> str:
    allowed = setting.choices()
    if value not in allowed:
        raise ConfigError(f"{setting.name} must be {' or '.join(map(repr, allowed))}, got {value!r}")
    return value


_CHECKS: dict[str, Callable[[Setting, Any], Any]] = {
    "widths": _check_widths, "integer": _check_integer, "batch": _check_batch, "number": _check_number,
    "name": _check_name, "shape": _check_shape}


def _inits() -> tuple[str, ...]:
    return tuple(sorted({"auto", *initializers.names(aliases=True)}))


_NAME = ((str,), "a name")
_NUMBER = ((int, float), "a number")


def _declare(*settings: Setting) -> dict[str, Setting]:
    return {s.name: s for s in settings}


SETTINGS: dict[str, Setting] = _declare(
    Setting("hidden", "widths", [64], (int, list), "a width or a list of widths",
            "hidden layer widths, e.g. 128,128; 0 for none (default {default})", checked_here=True,
            fixed=True, group="model"),
    Setting("activation", "name", "relu", *_NAME, "hidden activation ({default})",
            choices=lambda: activations.HIDDEN, fixed=True, group="model"),
    Setting("loss", "name", "auto", *_NAME,
            "{default} (default): cross-entropy for class labels, MSE for real targets",
            choices=lambda: ("auto", *losses.names()), fixed=True, group="model", fit_name="loss"),
    Setting("optimizer", "name", "adam", *_NAME, "{default} (default); {full_batch}: full batch",
            choices=lambda: optimizers.NAMES, fit_name="optimizer", fit_default=None),
    Setting("lr", "number", None, *_NUMBER, "learning rate (the optimizer's default)", low=0.0,
            open_low=True, bounds="a positive number", fit_name="lr"),
    Setting("momentum", "number", None, *_NUMBER, "for sgd, momentum and nesterov (0.9 for the latter two)",
            low=0.0, high=1.0, bounds="in [0, 1)"),
    Setting("weight_decay", "number", None, *_NUMBER, "L2 penalty on weight matrices (decoupled for adamw)",
            low=0.0, bounds=">= 0", fit_name="weight_decay"),
    Setting("schedule", "name", "constant", *_NAME, "learning-rate schedule ({default})",
            choices=schedules.names, fit_name="schedule", fit_default=None),
    Setting("epochs", "integer", 100, (int,), "an integer",
            "total epochs ({default}); with --resume, the total to reach, not extra ones", low=1,
            checked_here=True, total=True, fit_name="epochs", fit_default=10),
    Setting("batch_size", "batch", 32, (int, str), "an integer or 'full'", "N or full ({default})",
            low=1, checked_here=True, fit_name="batch_size", fit_default=None),
    Setting("init", "name", "auto", *_NAME, "weight initializer (auto: He before ReLU, Glorot otherwise)",
            choices=_inits, fixed=True, group="model"),
    Setting("seed", "integer", 0, (int,), "an integer", "seeds weights, shuffles and the split ({default})",
            low=0, checked_here=True, fixed=True, group="model"),
    Setting("dtype", "name", "float32", *_NAME, "{default} (default)", choices=lambda: FLOAT_DTYPES,
            checked_here=True, group="model"),
    Setting("val_split", "number", 0.1, *_NUMBER,
            "fraction held out for validation when the data has no validation part ({default})",
            low=0.0, high=1.0, bounds="a fraction in [0, 1)", checked_here=True, fixed=True,
            fit_name="validation_split", fit_default=0.0),
    Setting("early_stopping", "patience", 10, (bool, int), "a patience (an integer), True or False",
            "stop after PATIENCE epochs without a better validation loss and keep the best weights "
            "(default {default} when there is validation data; 0: never)", low=0, metavar="PATIENCE",
            fit_name="early_stopping", fit_default=None),
    Setting("standardize", "switch", True, (bool,), "True or False",
            "feed the inputs (and regression targets) as they are", fixed=True, group="data"),
    Setting("task", "name", None, *_NAME, "override the task inferred from the target",
            choices=lambda: ("classification", "regression"), checked_here=True, fixed=True,
            group="data"),
    Setting("target", "text", None, (str, int), "a column name or index",
            "CSV target column, a name or index (default: the last)", fixed=True, group="data"),
    Setting("features", "text", None, (str, list),
            "a list of feature expressions or one comma-separated string",
            "inputs computed from the columns x1, x2...: e.g. x1,x2,x1^2,x1*x2,sin(x1) "
            "(default: the columns as they are)", fixed=True, metavar="LIST", group="model"),
    Setting("l1", "number", None, *_NUMBER, "L1 penalty on weight matrices (first-order optimizers)",
            low=0.0, bounds=">= 0"),
    Setting("layers", "text", None, (str,), "a list of layers as text",
            "the network, e.g. \"conv1d(16, 5, stride=2), relu, flatten, dense(10)\": registered layer "
            "and activation names with literal arguments; the output layer's width must fit the data "
            "(default: an MLP of --hidden and --activation)", fixed=True, metavar="LIST", group="model"),
    Setting("input_shape", "shape", None, (str, list), "sizes such as 1,64 or [1, 8, 8]",
            "each sample's shape, channels first, e.g. 1,64 or 1,8,8: the columns of a row are reshaped "
            "to it (C order) for --layers that take maps (default: the columns as they are)",
            checked_here=True, fixed=True, metavar="C,L|C,H,W", group="data"),
    Setting("dropout", "number", None, *_NUMBER, "dropout rate after each hidden layer of the default MLP "
            "(none)", low=0.0, high=1.0, bounds="a rate in [0, 1)", checked_here=True, fixed=True,
            group="model"),
    Setting("threads", "integer", None, (int,), "an integer",
            "CPU threads for the matrix products (default: 1 for small networks, all cores for large; "
            "see backends.machine.step_threads)", low=1, fit_name="threads"),
)
"""Every setting of a run, in the order the README lists them."""


def defaults() -> dict[str, Any]:
    """Each setting's default: what a run starts from when neither given, resumed nor the data set's own."""
    return {name: s.default for name, s in SETTINGS.items()}


def fixed_on_resume() -> tuple[str, ...]:
    """The settings a resumed checkpoint fixes: changing them would make another model (or, for
    ``val_split``, validate on other samples than early stopping's record refers to)."""
    return tuple(name for name, s in SETTINGS.items() if s.fixed)


def fit_defaults() -> dict[str, Any]:
    """``fit``'s keyword defaults, by fit's keyword names: per call (``epochs``: this call's,
    not a total) and without early stopping or a validation split unless asked."""
    return {s.fit_name: s.default if s.fit_default is _SAME else s.fit_default
            for s in SETTINGS.values() if s.fit_name}


def in_range(setting: Setting, value: float, low: float | None = None, high: float | None = None) -> bool:
    """Whether ``value`` lies within the setting's bounds, narrowed to ``low``..``high`` where given
    (a narrowed high bound is included: the playground's closed ranges)."""
    lo = setting.low if low is None else low
    above = value > lo if setting.open_low else value >= lo
    below = value < setting.high if high is None else value <= high
    return above and below
