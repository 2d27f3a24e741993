"""One registry per kind (activations, losses, initializers, schedules), as the optimizers'
(tests/test_optimizer_registry.py): one registered from outside the package is usable by name
in ``fit``/``mlp``, the command line, checkpoints, pickles and the gradient checker; every other
list of names reads the registry."""

from __future__ import annotations

import ast
import contextlib
import pathlib
import pickle

import numpy as np
import pytest

import backprop as bp
from backprop import activations, checkpoint, estimators, initializers, losses, optimizers, schedules
from backprop.activations import Activation, sigmoid
from backprop.cli import build_parser
from backprop.errors import ConfigError
from backprop.layers import Dense
from backprop.namespace import namespace_of
from conftest import run_cli

PACKAGE = pathlib.Path(bp.__file__).parent


class Swish(Activation):
    """A user's activation: y = x sigmoid(x); a rectifier (He initialization before it)."""

    rectifier = True

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = float(beta)

    def config(self) -> dict:
        return {"beta": self.beta}

    def forward(self, X, *, train=False, input_grad=True):
        xp = self._ns(X)
        S = sigmoid(xp, self.beta * X)
        return X * S, lambda dY: dY * (S + self.beta * X * S * (1.0 - S))


class LogCosh(losses.Loss):
    """A user's loss: mean over samples and outputs of log cosh(z - t); dL/dz = tanh(z - t) / (N K)."""

    def forward(self, Z, T, S=None):
        xp = namespace_of(Z)
        D = Z - T
        A = xp.abs(D)
        inv = 1.0 / (Z.shape[0] * Z.shape[1])
        return xp.sum(A + xp.log1p(xp.exp(-2.0 * A)) - np.log(2.0)) * inv, xp.tanh(D) * inv


class Halving(schedules.Schedule):
    """A user's schedule: the rate halves every ``every`` epochs."""

    def __init__(self, every: int = 2) -> None:
        self.every = int(every)

    def config(self) -> dict:
        return {"every": self.every}

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr * 0.5 ** (epoch // self.every)


def small(rng, shape, fan_in, fan_out):
    """A user's initializer: U(-0.3, 0.3)."""
    return rng.uniform(-0.3, 0.3, shape)


MODULES = (activations, losses, initializers, schedules)


@pytest.fixture
def registered():
    """Swish, LogCosh, Halving and small under their names, for one test."""
    with contextlib.ExitStack() as stack:
        for module in MODULES:
            stack.enter_context(module.REGISTRY.restoring())
        activations.register("swish", Swish, aliases=("silu",))
        losses.register("logcosh", LogCosh)
        schedules.register("halving", Halving)
        initializers.register("small", small)
        yield


def _data(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(0).normal(size=(n, 2))
    return X, np.sin(X[:, :1] * 2.0) + X[:, 1:]


def _by_name(X, y, epochs: int = 3) -> bp.Sequential:
    model = bp.mlp([2, 5, 1], activation="swish", init="small", dtype="float64", seed=3)
    model.fit(X, y, loss="logcosh", optimizer="sgd", lr=0.2, schedule="halving", epochs=epochs, batch_size=16)
    return model


# -- usable by name ------------------------------------------------------------------
def test_registered_kinds_train_by_name_as_the_objects_do(registered):
    X, y = _data()
    model = _by_name(X, y)
    assert [type(layer) for layer in model.layers][1] is Swish and type(model.loss) is LogCosh
    assert type(model.optimizer.schedule) is Halving and model.optimizer.lr == 0.2 * 0.5
    # The oracle: the same run from the objects themselves.
    twin = bp.Sequential([Dense(2, 5, init=small), Swish(), Dense(5, 1, init=small)], dtype="float64", seed=3)
    twin.fit(X, y, loss=LogCosh(), optimizer="sgd", lr=0.2, schedule=Halving(), epochs=3, batch_size=16)
    np.testing.assert_array_equal(model.flat_parameters(), twin.flat_parameters())
    assert type(activations.get("SiLU")) is Swish  # its alias, any case


def test_a_registered_rectifier_gets_he_initialization(registered):
    """``init="auto"`` reads the class's ``rectifier``, not a list of names."""
    first = {a: bp.mlp([3, 6, 1], activation=a, seed=1).layers[0].params["W"]
             for a in ("swish", "relu", "tanh")}
    np.testing.assert_array_equal(first["swish"], first["relu"])
    assert not np.array_equal(first["swish"], first["tanh"])


def test_registered_kinds_save_load_and_pickle(registered, tmp_path):
    X, y = _data()
    model = _by_name(X, y, epochs=2)
    model.layers[1].beta = 1.5  # a setting of its own, saved through config()
    checkpoint.save(model, str(tmp_path / "own.st"))
    back = checkpoint.load(str(tmp_path / "own.st")).model
    assert type(back.layers[1]) is Swish and back.layers[1].beta == 1.5
    assert type(back.loss) is LogCosh and type(back.optimizer.schedule) is Halving
    assert Swish.name == "swish" and LogCosh.name == "logcosh" and Halving.name == "halving"
    copy = pickle.loads(pickle.dumps(model))
    for other in (back, copy, model):
        other.fit(X, y, epochs=1, batch_size=16)
    for other in (back, copy):
        np.testing.assert_array_equal(other.flat_parameters(), model.flat_parameters())


def test_registered_kinds_gradcheck(registered):
    X, y = _data(6)
    assert bp.gradcheck(Swish(1.5), X).ok
    model = bp.mlp([2, 3, 1], activation="swish", dtype="float64", seed=0)
    assert bp.gradcheck(model, X, y, loss="logcosh").ok


def test_registered_kinds_run_from_the_command_line(registered, tmp_path, capsys):
    path = tmp_path / "cli.st"
    code, _, err = run_cli(["train", "sine", "--activation", "swish", "--loss", "logcosh", "--init", "small",
                            "--schedule", "halving", "--epochs", "3", "--quiet", "--save", path], capsys)
    assert code == 0, err
    back = checkpoint.load(str(path)).model
    assert type(back.layers[1]) is Swish and type(back.loss) is LogCosh
    assert type(back.optimizer.schedule) is Halving
    code, _, err = run_cli(["train", "--resume", path, "--epochs", "4", "--quiet"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["gradcheck", "--activation", "swish", "--loss", "logcosh", "--outputs", "1"],
                             capsys)
    assert code == 0, err + out


# -- the registry is the only list ---------------------------------------------------
def _choices(command: str, option: str) -> list[str]:
    sub = next(a for a in build_parser()._subparsers._group_actions[0].choices.values()
               if a.prog.endswith(" " + command))
    return list(next(a for a in sub._actions if option in a.option_strings).choices)


def test_the_command_lines_choices_are_the_registries(registered):
    assert "swish" in activations.HIDDEN and "softmax" not in activations.HIDDEN
    for command in ("train", "gradcheck"):
        assert _choices(command, "--activation") == list(activations.HIDDEN)
        assert _choices(command, "--loss") == ["auto", *losses.names()]
    assert _choices("train", "--init") == sorted({"auto", *initializers.names(aliases=True)})
    assert "small" in _choices("train", "--init")
    assert _choices("train", "--schedule") == list(schedules.names()) == [*schedules.SCHEDULES]
    assert losses.names()[-1] == "logcosh" and set(losses.LOSSES) >= {"logcosh", "cross_entropy"}


def test_the_estimators_and_the_playground_read_the_registry(registered):
    rule = estimators.BackpropClassifier._parameter_constraints["activation"][0]
    for name in activations.names(aliases=True):
        assert rule.is_satisfied_by(name) is activations.class_of(name).hidden
    from backprop.playground import session as sessions
    from backprop.playground.server import PlaygroundServer

    source = sessions.Source("blobs")
    assert sessions.check_settings({"activation": "swish"}, source)["activation"] == "swish"
    server = PlaygroundServer.__new__(PlaygroundServer)  # info() reads no socket
    server.source = source
    assert server.info()["activations"] == list(activations.HIDDEN)


def test_register_refuses_what_would_break_lookups(registered):
    with pytest.raises(ConfigError, match="taken"):  # two classes, one saved name
        activations.register("relu2", type("OtherReLU", (Activation,), {"name": "relu"}))
    with pytest.raises(ConfigError, match="taken"):
        losses.register("auto", LogCosh)  # "auto" picks a loss; it cannot be one
    with pytest.raises(ConfigError, match="subclass"):
        schedules.register("bad", object)
    with pytest.raises(ConfigError, match="taken"):
        initializers.register("textbook", small)  # an alias already


def test_mlp_reads_whether_an_output_is_linear_off_the_class():
    assert len(bp.mlp([2, 3, 1], output="linear").layers) == len(bp.mlp([2, 3, 1]).layers) == 3
    assert type(bp.mlp([2, 3, 1], output="sigmoid").layers[-1]) is activations.Sigmoid


# -- no other list of names ----------------------------------------------------------
def _restated(node: ast.AST, known: set[str]) -> list[str]:
    """Two or more names of a kind in one tuple, list or set of strings."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        hits = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in known]
        return hits if len(hits) >= 2 else []
    return []


# The benchmark and its contenders (a hand-written step, PyTorch) implement relu and tanh only,
# and the ce/bce heads: their names are the contenders' fixed table, not lists of ours.
CONTENDERS = {"apps/bench.py", "contenders", "cli/bench.py"}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_no_module_restates_a_kinds_names(module):
    known = set(module.REGISTRY.names(aliases=True))
    own = pathlib.Path(module.__file__)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if path == own or relative.parts[0] in CONTENDERS or relative.as_posix() in CONTENDERS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{relative}:{node.lineno}: {_restated(node, known)}"
                  for node in ast.walk(tree) if _restated(node, known)]
    assert found == []


def test_a_class_with_its_own_name_is_found_by_it(registered):
    """A checkpoint saves a class's own ``name``; the lookup finds it even where it was
    registered under another."""
    own = type("OwnNamedLoss", (LogCosh,), {"name": "own_logcosh"})
    losses.register("lc2", own)
    assert type(losses.get("own_logcosh")) is own and type(losses.get("LC2")) is own
    act = type("OwnNamedSwish", (Swish,), {"name": "own_swish"})
    activations.register("sw2", act)
    assert type(activations.get("own_swish")) is act
    sched = type("OwnHalving", (Halving,), {"name": "own_halving"})
    schedules.register("h2", sched)
    assert type(schedules.get("own_halving")) is sched


@pytest.mark.parametrize("module", (*MODULES, optimizers), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_a_registration_inside_restoring_is_gone_after_it(module):
    """Every kind's registry is one Registry, whose restoring() undoes what was registered in it."""
    before = module.REGISTRY.names(aliases=True)
    entry = small if module is initializers else type("Own", (module.REGISTRY.base,), {})
    with module.REGISTRY.restoring():
        module.register("own_one", entry, aliases=("own-alias",))
        assert module.class_of("OWN-ONE") is entry and module.class_of("own_alias") is entry
    assert module.REGISTRY.names(aliases=True) == before
    with pytest.raises(ConfigError, match="unknown .*'own_one'"):
        module.class_of("own_one")


def test_a_layer_registered_inside_restoring_is_gone_after_it():
    own = type("Own", (bp.layers.Layer,), {})
    before = bp.layers.names()
    with bp.layers.REGISTRY.restoring():
        bp.layers.register("own_layer", own)
        assert bp.layers.class_of("own_layer") is own
        with pytest.raises(ConfigError, match="'relu' is taken"):  # an activation's saved name
            bp.layers.register("relu", type("Other", (bp.layers.Layer,), {}))
    assert bp.layers.names() == before
    with pytest.raises(ConfigError, match="unknown layer type 'own_layer'"):
        bp.layers.class_of("own_layer")
