"""One optimizer registry: an optimizer registered from outside the package is usable by name
everywhere (fit, Run, the CLI, the estimators, checkpoints, pickles), every other list of
names reads the registry, and the refusals follow the class's capabilities."""

from __future__ import annotations

import ast
import pathlib
import pickle

import numpy as np
import pytest

import backprop as bp
from backprop import checkpoint, estimators, optimizers
from backprop.cli import build_parser
from backprop.errors import ConfigError
from backprop.runner import Run
from backprop.second_order import FullBatch
from conftest import run_cli

PACKAGE = pathlib.Path(bp.__file__).parent


class SignMomentum(optimizers.Optimizer):
    """A user's own rule: m = beta m + (1 - beta) g; p -= lr sign(m) (state "m" per parameter)."""

    default_lr = 0.01

    def __init__(self, lr: float | None = None, beta: float = 0.5, **kwargs) -> None:
        super().__init__(lr, **kwargs)
        self.beta = optimizers.fraction(beta, "beta")

    def config(self) -> dict:
        return {**super().config(), "beta": self.beta}

    def _init_state(self, xp, p):
        return {"m": xp.zeros_like(p)}

    def _update(self, xp, p, g, s):
        s["m"] *= self.beta
        s["m"] += (1.0 - self.beta) * g
        p -= self.lr * xp.sign(s["m"])


class OwnFullBatch(FullBatch):
    """A full-batch method of a user's: its capabilities come from FullBatch, its run defaults its own."""

    entry_defaults = {**FullBatch.entry_defaults, "epochs": 7, "dtype": "float64"}


@pytest.fixture
def registered():
    """SignMomentum as "signmomentum" (and "sm"), OwnFullBatch as "ownfull", for one test."""
    with optimizers.REGISTRY.restoring():
        optimizers.register("signmomentum", SignMomentum, aliases=("sm",))
        optimizers.register("ownfull", OwnFullBatch)
        yield


def _xor(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(0).normal(size=(n, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def _sign_momentum_by_hand(X, y, epochs: int) -> bp.Sequential:
    """The same training with the update written out, as the oracle for the registered name."""
    model = bp.mlp([2, 4, 2], dtype="float64", seed=3)
    model.fit(X, y, optimizer=SignMomentum(0.05, beta=0.25), epochs=epochs, batch_size=16)
    return model


# -- usable by name ------------------------------------------------------------------
def test_registered_optimizer_trains_by_name_in_fit(registered):
    X, y = _xor()
    model = bp.mlp([2, 4, 2], dtype="float64", seed=3)
    model.fit(X, y, optimizer="signmomentum", lr=0.05, beta=0.25, epochs=3, batch_size=16)
    assert type(model.optimizer) is SignMomentum and model.optimizer.beta == 0.25
    np.testing.assert_array_equal(model.flat_parameters(), _sign_momentum_by_hand(X, y, 3).flat_parameters())
    assert type(optimizers.get("SM")) is SignMomentum  # its alias, any case


def test_registered_optimizer_saves_loads_and_pickles(registered, tmp_path):
    X, y = _xor()
    model = bp.mlp([2, 4, 2], dtype="float64", seed=3)
    model.fit(X, y, optimizer="signmomentum", lr=0.05, beta=0.25, epochs=2, batch_size=16)
    checkpoint.save(model, str(tmp_path / "own.st"))
    back = checkpoint.load(str(tmp_path / "own.st")).model
    assert SignMomentum.name == "signmomentum"  # a class without its own name is saved by the registered one
    assert type(back.optimizer) is SignMomentum and back.optimizer.config() == model.optimizer.config()
    assert back.optimizer.t == model.optimizer.t
    # Continuing either (the loaded one, the pickled one) goes on exactly as the original.
    copy = pickle.loads(pickle.dumps(model))
    for other in (back, copy):
        other.fit(X, y, epochs=1, batch_size=16)
    model.fit(X, y, epochs=1, batch_size=16)
    for other in (back, copy):
        np.testing.assert_array_equal(other.flat_parameters(), model.flat_parameters())


def test_registered_optimizer_runs_from_the_command_line(registered, tmp_path, capsys):
    path = tmp_path / "cli.st"
    code, _, err = run_cli(["train", "xor", "--optimizer", "signmomentum", "--lr", "0.05", "--epochs", "3",
                            "--quiet", "--save", path], capsys)
    assert code == 0, err
    back = checkpoint.load(str(path))
    assert type(back.model.optimizer) is SignMomentum and back.model.optimizer.base_lr == 0.05
    assert back.extra["train"]["settings"]["optimizer"] == "signmomentum"
    code, _, err = run_cli(["train", "--resume", path, "--epochs", "4", "--quiet"], capsys)
    assert code == 0, err
    assert checkpoint.read_header(path)["epoch"] == 4


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 3 iterations, on purpose
def test_registered_optimizer_in_run_and_the_estimators(registered):
    run = Run("xor", optimizer="signmomentum", epochs=2)
    run.fit()
    assert type(run.optimizer) is SignMomentum and run.model.epoch == 2
    X, y = _xor()
    est = estimators.BackpropClassifier(hidden_layer_sizes=(4,), solver="signmomentum", max_iter=3,
                                        random_state=0).fit(X, y)
    assert type(est.model_.optimizer) is SignMomentum


# -- the registry is the only list ---------------------------------------------------
def _parser_choices(option: str) -> list[str]:
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.values()
                 if a.prog.endswith(" train"))
    return list(next(a for a in train._actions if option in a.option_strings).choices)


def test_every_list_of_names_is_the_registry(registered):
    names = optimizers.names()
    assert "signmomentum" in names and "ownfull" in names
    assert optimizers.NAMES == names == tuple(estimators.SOLVERS)
    assert _parser_choices("--optimizer") == list(names)
    assert checkpoint.OPTIMIZER_CLASSES == optimizers.classes()
    assert optimizers.names(full_batch=True) == ("lm", "br", "newton", "lbfgs", "ownfull")
    assert estimators.BackpropClassifier._parameter_constraints["solver"][0].is_satisfied_by("ownfull")
    from backprop.playground.session import run_settings
    assert run_settings({"hidden": [2], "activation": "tanh", "features": None, "optimizer": "ownfull",
                         "lr": 0.03, "batch_size": 10, "l2": 0.0, "l1": 0.0, "seed": 0, "dtype": "float64",
                         "test": 0.2, "dropout": 0.0})["batch_size"] == "full"


def _names_in(node: ast.AST, known: set[str]) -> list[str]:
    """The optimizer names restated by ``node``: two or more in a tuple, list or set of strings,
    or one compared with."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        hits = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in known]
        return hits if len(hits) >= 2 else []
    if isinstance(node, ast.Compare):
        return [c.value for c in node.comparators if isinstance(c, ast.Constant) and c.value in known]
    return []


# The benchmark times three implementations (ours, a hand-written one, PyTorch) of its own fixed
# table of optimizer settings: those names are its contenders', not a list of ours.
CONTENDERS = {"apps/bench.py", "contenders"}


def test_no_module_restates_optimizer_names():
    """No tuple of optimizer names nor comparison with one in the package (a registration's
    aliases aside): each reads the registry or the class's capabilities."""
    known = set(optimizers.names(aliases=True))
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in CONTENDERS or relative.as_posix() in CONTENDERS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        registering = {id(n) for call in ast.walk(tree) if isinstance(call, ast.Call)
                       and getattr(call.func, "id", None) == "register" for k in call.keywords
                       for n in ast.walk(k.value)}
        found += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {_names_in(node, known)}"
                  for node in ast.walk(tree) if id(node) not in registering and _names_in(node, known)]
    assert found == []


# -- capabilities drive the refusals ---------------------------------------------------
def test_a_registered_full_batch_optimizer_gets_the_same_refusals(registered, capsys):
    for name in ("lm", "ownfull"):
        with pytest.raises(ConfigError, match=f"^{name} has no learning rate: .*drop lr$"):
            optimizers.get(name, 0.1)
        with pytest.raises(ConfigError, match=f"^{name} has no L1 penalty"):
            optimizers.get(name, l1=0.1)
        with pytest.raises(ConfigError, match=f"^{name} has no learning rate"):
            Run("xor", optimizer=name, lr=0.1)
        code, _, err = run_cli(["train", "xor", "--optimizer", name, "--lr", "0.1"], capsys)
        assert code == 2 and f"{name} has no learning rate" in err
        assert "does not train data-parallel" in optimizers.class_of(name).refusal("ranks")
        assert "lr" not in optimizers.settings(name) and "l1" not in optimizers.settings(name)
    assert "ownfull" not in optimizers.class_of("lm").refusal("ranks")  # it lists those that do


def test_entry_defaults_come_from_the_class(registered):
    s = Run("xor", optimizer="ownfull").settings
    assert (s["epochs"], s["dtype"], s["batch_size"], s["lr"]) == (7, "float64", "full", None)
    s = Run("xor", optimizer="ownfull", epochs=3, dtype="float32").settings
    assert (s["epochs"], s["dtype"]) == (3, "float32")
    lm = Run("moons", optimizer="lm").settings  # trainlm's, as before (moons has a validation part)
    assert (lm["dtype"], lm["early_stopping"], lm["loss"], lm["batch_size"]) == ("float64", 6, "mse", "full")
    lbfgs = Run("moons", optimizer="lbfgs").settings
    assert (lbfgs["epochs"], lbfgs["early_stopping"], lbfgs["dtype"]) == (200, None, "float32")


def test_register_refuses_what_would_break_checkpoints(registered):
    with pytest.raises(ConfigError, match="subclass of backprop.optimizers.Optimizer"):
        optimizers.register("bad", object)

    class Clash(optimizers.Optimizer):
        name = "adam"  # another class's checkpoint name

    with pytest.raises(ConfigError, match="'adam' is taken"):
        optimizers.register("clash", Clash)
    assert "clash" not in optimizers.NAMES
