"""TensorFlow Playground links: the state its address holds, read as backprop's own settings, and back.

TensorFlow Playground (playground.tensorflow.org) keeps its whole setup in the address after
``#``, as ``key=value`` pairs joined by ``&`` (its ``src/state.ts``: the keys, their types and
defaults; a key left out takes the default). :func:`read` turns such a link into the same
problem on backprop's own generated sets (:mod:`.datasets`), input features (:mod:`.features`)
and settings (:data:`backprop.settings.SETTINGS`); :func:`link` writes one back from them.

What carries over, and how (TensorFlow Playground's ``src/dataset.ts``, ``src/nn.ts`` and
``src/playground.ts`` read against ours):

- data set, noise, points (500 to classify, 1200 to regress, as its page draws), the share of
  them held out for testing (``percTrainData``: the rest trains), and the seed (one number
  that seeds both the points and the weights: backprop draws its own, not TF Playground's);
- the input features, the hidden widths (``networkShape``), the hidden activation (its
  ``linear`` is our ``identity``), batch size, learning rate, regularization and its rate;
- its update rule is plain SGD on the batch's mean gradient (``updateWeights``: no momentum),
  so the optimizer is ``sgd``. Its penalty comes after the gradient step, w -= lr * rate * dP/dw,
  on the weights and never the biases, with P = w^2 / 2 for L2 (our ``weight_decay``: w -= lr *
  (g + weight_decay * w)) and P = |w| for L1 (our ``l1``: the same sign(w) step, though TF
  Playground also stops a weight that the step takes across zero, at zero, for good).
  A regression's loss there is (out - target)^2 / 2 per point, half our ``mse``: our gradient
  is twice its, so the rate is halved and the penalties doubled (:data:`GRADIENT_SCALE`), which
  gives the same step. A classifier there fits a tanh output to labels -1 and 1 by squared
  error; backprop's classifier is a sigmoid on cross-entropy, so the rate carries over as it is
  and means a comparable step, not the same one.

backprop also standardizes the inputs (and a regression's targets) where TF Playground feeds
them raw: ``--no-standardize`` on ``backprop train`` feeds them as it does. Its weights start
from U(-0.5, 0.5) and its biases from 0.1 (ours: Glorot or He, biases 0), and it walks the
training points in one fixed order every epoch, a last short batch carrying over into the next
epoch (ours: reshuffled every epoch).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..errors import ConfigError
from . import datasets

OPTIMIZER = "sgd"
"""Our optimizer that takes TensorFlow Playground's step: plain SGD on the batch's mean gradient
(``updateWeights`` in its ``src/nn.ts``), no momentum."""

ADDRESS = "https://playground.tensorflow.org/"

TF_DEFAULTS: dict[str, str] = {
    "activation": "tanh", "regularization": "none", "batchSize": "10", "dataset": "circle",
    "regDataset": "reg-plane", "learningRate": "0.03", "regularizationRate": "0", "noise": "0",
    "networkShape": "4,2", "percTrainData": "50", "x": "true", "y": "true", "xTimesY": "false",
    "xSquared": "false", "ySquared": "false", "sinX": "false", "sinY": "false",
    "problem": "classification", "initZero": "false"}
"""The keys that set the problem, with the defaults ``src/state.ts`` gives a key left out
(``seed``, left out, is drawn at random there: here the data's own seed is kept)."""

SHOWN_ONLY = ("showTestData", "discretize", "collectStats", "hideText", "tutorial", "cosX", "cosY")
"""Keys that change only what TF Playground's page shows (``cosX``/``cosY`` are in its state but
not among its page's inputs, so they feed nothing there either); ``*_hide`` keys too."""

TF_POINTS = {"classification": 500, "regression": 1200}
"""How many points TF Playground draws (``NUM_SAMPLES_CLASSIFY``, ``NUM_SAMPLES_REGRESS``)."""

DATASETS = {"circle": "circle", "xor": "quadrants", "gauss": "gauss", "spiral": "spiral"}
REG_DATASETS = {"reg-plane": "plane", "reg-gauss": "bumps"}
ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "linear": "identity"}
FEATURES = {"x": "x1", "y": "x2", "xSquared": "x1^2", "ySquared": "x2^2", "xTimesY": "x1*x2",
            "sinX": "sin(x1)", "sinY": "sin(x2)"}
"""TF Playground's inputs, in its page's order (which is :data:`backprop.edges.features.PLANE`'s)."""

GRADIENT_SCALE = {"classification": 1.0, "regression": 2.0}
"""Our loss's gradient over TF Playground's, per problem: lr = its rate / scale, penalty = its
rate * scale (see the module's text)."""

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


# -- noise: TF Playground's percentage <-> our generator's parameter ------------------------------
# circle, xor: TF reads the label at the point moved by U(-5, 5) * noise/100 in each coordinate
#   and leaves the point; ours moves the point by the same U(-5, 5) * noise after its class is
#   decided. The same amplitude, so the same parameter: labels overlap near the boundary there,
#   points here. spiral: both move the point by U(-1, 1) * noise/100 (ours divides by 5 inside).
# gauss: TF's clouds have variance 0.5 + 7 * noise/100 (d3's scale from [0, 0.5] to [0.5, 4],
#   read as a variance by normalRandom); ours have that number as their standard deviation, so
#   ours = (sqrt(0.5 + 7 f) - 0.5) / 7 gives the same spread; TF's narrowest clouds (f = 0) are
#   ours at 0.0296, and ours below that have no TF counterpart.
# plane, bumps: written from TF's own generators: the same parameter.
def _noise_in(data: str, fraction: float) -> float:
    """Our ``noise`` for TF Playground's ``noise`` percentage / 100 on set ``data``."""
    ours = (math.sqrt(0.5 + 7.0 * fraction) - 0.5) / 7.0 if data == "gauss" else fraction
    return round(ours, 6)


def _noise_out(data: str, ours: float) -> float:
    """TF Playground's noise fraction for our ``noise``: the inverse of :func:`_noise_in` (may be < 0)."""
    return ((0.5 + 7.0 * ours) ** 2 - 0.5) / 7.0 if data == "gauss" else ours


@dataclass
class Setup:
    """A link's problem in backprop's terms.

    ``data``: a generated set's name; ``options``: its ``n``, ``noise``, ``test`` and ``seed`` (as
    :func:`backprop.edges.datasets.parse_spec` reads them); ``settings``: run settings by their
    :data:`backprop.settings.SETTINGS` names; ``notes``: one line per key not honoured.
    """

    data: str
    options: dict[str, Any]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def spec(self) -> str:
        """The data as ``backprop train`` reads it: ``circle:n=500,noise=0.1,test=0.5,seed=7``."""
        return datasets.spec(self.data, **self.options)

    def train_settings(self) -> dict[str, Any]:
        """``backprop train``'s settings, the data included: every training point trains (TF
        Playground validates nothing), the held-out ones are the test part."""
        return {"data": self.spec(), **self.settings, "val_split": 0.0}


def state(url: str) -> dict[str, str]:
    """The ``key=value`` pairs after ``#`` of a TF Playground link (a later key wins, as there);
    a ConfigError of one line for an address without them."""
    text = _fragment(url)
    pairs: dict[str, str] = {}
    for item in text.split("&"):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"TensorFlow Playground link: {_short(item)!r} is not key=value")
        pairs[unquote(key)] = unquote(value)
    if not pairs:
        raise ConfigError(f"{_short(url.strip())} holds no TensorFlow Playground state (key=value pairs "
                          "after '#')")
    return pairs


def _fragment(url: str) -> str:
    """What follows ``#`` in an http(s) address (the whole text, where it is no address)."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("a TensorFlow Playground link: give its address, e.g. "
                          f"'{ADDRESS}#dataset=circle&networkShape=4,2'")
    text = url.strip()
    parts = urlsplit(text if "://" in text or text.startswith("#") else "#" + text)
    if parts.scheme not in ("", "http", "https"):
        raise ConfigError(f"{_short(text)} is not a TensorFlow Playground link (an http(s) address)")
    return parts.fragment


def read(url: str) -> Setup:
    """The problem a TF Playground link sets up; refuses (ConfigError, one line) a malformed link
    or value, or a key that would change the problem and backprop cannot honour (``initZero``)."""
    given = state(url)
    notes = _notes(given)
    s = {**TF_DEFAULTS, **{k: v for k, v in given.items() if v.strip() or k == "networkShape"}}
    if _switch(s, "initZero"):
        raise ConfigError("initZero=true: backprop starts from random weights and cannot start from zeros "
                          "(all units alike); drop it from the link")
    problem = _pick(s, "problem", {p: p for p in TF_POINTS})
    data = _pick(s, "regDataset", REG_DATASETS) if problem == "regression" else _pick(s, "dataset", DATASETS)
    options = {"n": TF_POINTS[problem], "noise": _noise(s, data), "test": _test(s)}
    settings = {"hidden": _widths(s["networkShape"]), "activation": _pick(s, "activation", ACTIVATIONS),
                "optimizer": OPTIMIZER, **_rates(s, problem),
                "batch_size": _number(s, "batchSize", integer=True, low=1),
                "features": _features(s)}
    if given.get("seed", "").strip():  # an empty one is left out, as there
        options["seed"] = settings["seed"] = seed_of(given["seed"])
        notes.append(f"seed={given['seed']} seeds backprop's own draw ({settings['seed']}): other points and "
                     "weights than TensorFlow Playground's")
    if s["regularization"] == "L1" and settings["l1"]:
        notes.append("regularization=L1: backprop's step does not hold a weight at zero once it crosses, "
                     "as TensorFlow Playground's does")
    return Setup(data, options, settings, notes)


def _notes(given: dict[str, str]) -> list[str]:
    """One line for the keys that change only TF Playground's page (those switched on), and one for
    keys it has not."""
    page_only = [k for k in given if k in SHOWN_ONLY or k.endswith("_hide")]
    shown = [k for k in page_only if given[k].strip() not in ("", "false")]  # off: nothing left undone
    unknown = [k for k in given if k not in TF_DEFAULTS and k not in page_only and k != "seed"]
    notes = []
    if shown:
        notes.append(f"{', '.join(shown)}: how TensorFlow Playground's page shows things; nothing to train")
    if unknown:
        notes.append(f"{', '.join(unknown)}: not TensorFlow Playground keys (it ignores them too); ignored")
    return notes


def _pick(s: dict[str, str], key: str, names: dict[str, str]) -> str:
    if s[key] not in names:
        raise ConfigError(f"{key}={_short(s[key])}: backprop reads {_either(names)}")
    return names[s[key]]


def _either(names: Any) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _switch(s: dict[str, str], key: str) -> bool:
    if s[key] not in ("true", "false"):
        raise ConfigError(f"{key}={s[key]}: expected true or false")
    return s[key] == "true"


def _number(s: dict[str, str], key: str, *, integer: bool = False, low: float = 0.0,
            high: float = math.inf) -> Any:
    """``s[key]`` as a finite number in [low, high] (an integer where asked)."""
    text = s[key].strip()
    value = float(text) if _NUMBER.match(text) else math.nan
    if not (math.isfinite(value) and low <= value <= high) or (integer and value != int(value)):
        what = "an integer" if integer else "a number"
        bounds = f" >= {low:g}" if high == math.inf else f" in [{low:g}, {high:g}]"
        raise ConfigError(f"{key}={_short(s[key])}: expected {what}{bounds}")
    return int(value) if integer else value


def _widths(text: str) -> list[int]:
    parts = [p for p in text.split(",") if p.strip()] if text.strip() else []
    if not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        raise ConfigError(f"networkShape={_short(text)}: expected hidden widths such as 4,2 (none: empty)")
    return [int(p) for p in parts]


def _noise(s: dict[str, str], data: str) -> float:
    high = datasets.GENERATED[data].max_noise
    fraction = _number(s, "noise", low=0.0) / 100.0
    ours = _noise_in(data, fraction)
    if ours > high:
        raise ConfigError(f"noise={s['noise']}: backprop's {data} reaches at most "
                          f"{100 * _noise_out(data, high):g}")
    return ours


def _test(s: dict[str, str]) -> float:
    """The held-out share: 1 - percTrainData/100, within what a generated set holds out."""
    _, low, high = datasets.SPEC_KEYS["test"]
    percent = _number(s, "percTrainData", low=100 * (1 - high), high=100 * (1 - low))
    return round(1.0 - percent / 100.0, 6)


def _rates(s: dict[str, str], problem: str) -> dict[str, float]:
    """``lr``, ``weight_decay`` and ``l1``, scaled to our loss (:data:`GRADIENT_SCALE`)."""
    scale = GRADIENT_SCALE[problem]
    lr = _number(s, "learningRate")
    if lr == 0:
        raise ConfigError("learningRate=0: nothing would train; give a positive rate")
    rate = _number(s, "regularizationRate") * scale
    kind = _pick(s, "regularization", {"none": "none", "L1": "l1", "L2": "weight_decay"})
    return {"lr": lr / scale, "weight_decay": rate if kind == "weight_decay" else 0.0,
            "l1": rate if kind == "l1" else 0.0}


def _features(s: dict[str, str]) -> list[str]:
    chosen = [ours for key, ours in FEATURES.items() if _switch(s, key)]
    if not chosen:
        raise ConfigError(f"no input feature is on: set {_either(FEATURES)} to true")
    return chosen


def seed_of(text: str) -> int:
    """A TF Playground seed (``0.58712``, or any text) as one of ours, the same for the same text:
    its digits after ``0.`` (or all of them), else a checksum of the text; below 2**31."""
    found = re.fullmatch(r"(?:0?\.)?(\d{1,18})", text.strip())
    number = int(found.group(1)) if found else zlib.crc32(text.encode("utf-8"))
    return number % 2**31


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


# -- the other way: our settings as a TF Playground link ------------------------------------------
def link(data: str, options: dict[str, Any], settings: dict[str, Any]) -> tuple[str | None, list[str]]:
    """``(address, left out)``: the TF Playground link for a generated set ``data`` with its
    ``options`` (n, noise, test, seed) and run ``settings`` (SETTINGS names); each setting that
    TF Playground cannot hold is left out and named in one line. No address (None) for a data
    set it does not have."""
    sets = {ours: (tf, "classification") for tf, ours in DATASETS.items()}
    sets.update({ours: (tf, "regression") for tf, ours in REG_DATASETS.items()})
    if data not in sets:
        return None, [f"data {data}: TensorFlow Playground has {_either(sets)} only"]
    name, problem = sets[data]
    scale, left = GRADIENT_SCALE[problem], []
    state = {"dataset" if problem == "classification" else "regDataset": name, "problem": problem,
             **_settings_out(settings, scale, left), **_data_out(data, options, problem, settings, left)}
    chosen = set(settings.get("features") or ("x1", "x2"))
    state.update({key: str(ours in chosen).lower() for key, ours in FEATURES.items()})
    extra = sorted(chosen - set(FEATURES.values()))
    if extra:
        left.append(f"features {', '.join(extra)}: not among TensorFlow Playground's inputs")
    return ADDRESS + "#" + "&".join(f"{k}={quote(str(v), safe=',.-')}" for k, v in state.items()), left


def _settings_out(settings: dict[str, Any], scale: float, left: list[str]) -> dict[str, Any]:
    """The training keys of a link; what does not map goes to ``left``."""
    out: dict[str, Any] = {"learningRate": _shown(settings["lr"] * scale),
                           "batchSize": settings["batch_size"],
                           "networkShape": ",".join(map(str, settings["hidden"]))}
    tf_activation = {ours: tf for tf, ours in ACTIVATIONS.items()}
    if settings["activation"] in tf_activation:
        out["activation"] = tf_activation[settings["activation"]]
    else:
        left.append(f"activation {settings['activation']}: TensorFlow Playground has "
                    f"{_either(ACTIVATIONS)}")
    if settings.get("optimizer", OPTIMIZER) != OPTIMIZER:
        left.append(f"optimizer {settings['optimizer']}: TensorFlow Playground trains with plain SGD")
    if settings.get("dropout"):
        left.append(f"dropout {settings['dropout']:g}: TensorFlow Playground has none")
    out.update(_penalty_out(settings, scale, left))
    return out


def _penalty_out(settings: dict[str, Any], scale: float, left: list[str]) -> dict[str, Any]:
    """``regularization`` and its rate: L1 where ``l1`` is set, else L2 where ``weight_decay`` is."""
    l1, l2 = settings.get("l1") or 0.0, settings.get("weight_decay") or 0.0
    kind, rate = ("L1", l1) if l1 else ("L2", l2) if l2 else ("none", 0.0)
    if l1 and l2:
        left.append(f"weight_decay {l2:g}: TensorFlow Playground takes one penalty, L1 here")
    return {"regularization": kind, "regularizationRate": _shown(rate / scale)}


def _data_out(data: str, options: dict[str, Any], problem: str, settings: dict[str, Any],
              left: list[str]) -> dict[str, Any]:
    """The data keys of a link (noise, percTrainData, seed); what does not map goes to ``left``."""
    fraction = _noise_out(data, options.get("noise", datasets.GENERATED[data].noise))
    if fraction < -1e-9:
        left.append(f"noise {options['noise']:g}: tighter than TensorFlow Playground's narrowest {data} "
                    "(noise 0 there)")
    out: dict[str, Any] = {"noise": _shown(round(max(fraction, 0.0) * 100, 6)),
                           "percTrainData": _shown(round(100 * (1 - options.get("test", 0.5)), 6))}
    n = options.get("n", TF_POINTS[problem])
    if n != TF_POINTS[problem]:
        left.append(f"n {n}: TensorFlow Playground draws {TF_POINTS[problem]} points")
    if options.get("seed") is not None:
        out["seed"] = options["seed"]
        if settings.get("seed", options["seed"]) != options["seed"]:
            left.append(f"seed {settings['seed']} of the weights: the link's one seed is the data's, "
                        f"{options['seed']}")
    return out


def _shown(value: float) -> str:
    """A number as a link writes it: short where that is exact."""
    text = f"{value:g}"
    return text if float(text) == value else repr(float(value))
