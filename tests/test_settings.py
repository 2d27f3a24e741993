"""The one settings schema (backprop.settings): what the command line, Run, the playground,
fit and the estimators derive from it."""

from __future__ import annotations

import inspect
import shlex

import pytest

from backprop import optimizers, settings, training
from backprop.apps import estimators, runner
from backprop.cli import build_parser
from backprop.cli.train import given_settings
from backprop.errors import ConfigError
from backprop.playground import session as sessions
from backprop.settings import SETTINGS


def _train_options() -> dict:
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    return {a.dest: a for a in train._actions if a.option_strings}


def test_every_setting_is_one_train_option_with_the_schemas_choices_and_default():
    options = _train_options()
    for name, setting in SETTINGS.items():
        action = options[name]
        assert action.option_strings == [setting.flag] and action.default is None
        assert list(action.choices or ()) == list(setting.choices() if setting.choices else ())
        assert action.help == setting.help_text()
        if "{default}" in setting.help:
            assert f"{setting.shown(setting.default)}" in action.help
    assert options["epochs"].help.startswith("total epochs (100)")
    assert options["standardize"].option_strings == ["--no-standardize"]


@pytest.mark.parametrize("name, value", [
    ("hidden", [16, 8]), ("hidden", []), ("activation", "tanh"), ("loss", "ce"), ("optimizer", "lbfgs"),
    ("lr", 0.0123456789), ("momentum", 0.5), ("weight_decay", 0.0), ("schedule", "cosine"),
    ("epochs", 7), ("batch_size", "full"), ("batch_size", 5), ("init", "he_normal"), ("seed", 3),
    ("dtype", "float64"), ("val_split", 0.25), ("early_stopping", 0), ("standardize", False),
    ("task", "regression"), ("target", "label"), ("features", "x1,x1^2"), ("l1", 1e-05),
    ("layers", "conv1d(4, 3), relu, flatten, dense(2)"), ("input_shape", [1, 8, 8]), ("dropout", 0.25)])
def test_each_settings_words_parse_back_to_its_value(name, value):
    words = SETTINGS[name].words(value)
    assert given_settings(build_parser().parse_args(["train", *words])) == {name: value}


@pytest.mark.parametrize("name, value, message", [
    ("epochs", 0, "epochs must be an integer >= 1, got 0"), ("seed", -1, "seed must be an integer >= 0"),
    ("epochs", None, "epochs must be an integer >= 1, got None"),
    ("val_split", 1.0, r"val_split must be a fraction in \[0, 1\), got 1.0"),
    ("val_split", float("nan"), r"val_split must be a fraction in \[0, 1\), got nan"),
    ("batch_size", 0, "batch_size must be a positive integer, got 0"),
    ("dtype", "float16", "dtype must be 'float32' or 'float64', got 'float16'"),
    ("task", "ranking", "task must be 'classification' or 'regression'"),
    ("hidden", [3, 0], "each hidden width must be a positive integer, got 0"),
    ("standardize", 1, "standardize must be True or False, got 1"),
    ("lr", "fast", "lr must be a number, got 'fast'")])
def test_run_checks_each_setting_by_its_declaration(name, value, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        runner.checked_settings({name: value})


def test_what_may_be_unset_passes_unset():
    """None is a checkpoint's "none" (no rate, no early stopping); only what a run cannot do
    without is refused."""
    unset = {"lr": None, "early_stopping": None, "task": None, "hidden": None, "dtype": None, "l1": None}
    assert runner.checked_settings(unset) == unset
    assert runner.checked_settings({"hidden": 5, "features": "x1, x2"}) == {"hidden": [5],
                                                                         "features": ["x1", "x2"]}


def test_runs_tables_are_the_schemas():
    assert runner.DEFAULTS == settings.defaults() and list(runner.DEFAULTS) == list(SETTINGS)
    assert runner.KINDS == {n: (s.types, s.what) for n, s in SETTINGS.items()}
    assert set(runner.ARCHITECTURE) == {"hidden", "activation", "loss", "init", "seed", "standardize", "task",
                                        "target", "val_split", "features", "layers", "input_shape", "dropout"}
    assert [n for n, s in SETTINGS.items() if s.total] == ["epochs"]


def test_fits_defaults_are_the_schemas_per_call_ones():
    """fit counts epochs per call (10) and starts without a split or early stopping; a run counts
    the total (100) and watches 10% of the data with a patience of 10."""
    fit = inspect.signature(training.fit).parameters
    per_call = settings.fit_defaults()
    assert per_call == {"loss": "auto", "optimizer": None, "lr": None, "weight_decay": None, "schedule": None,
                        "epochs": 10, "batch_size": None, "validation_split": 0.0, "early_stopping": None,
                        "threads": None}
    assert {name: fit[name].default for name in per_call} == per_call
    assert (runner.DEFAULTS["epochs"], runner.DEFAULTS["val_split"], runner.DEFAULTS["early_stopping"]) == \
        (100, 0.1, 10)


def test_precedence_given_over_the_data_sets_own_over_the_defaults():
    own = runner.Run("xor", epochs=1).settings  # xor's own: 4 tanh units, the full batch
    assert own["hidden"] == [4] and own["activation"] == "tanh" and own["optimizer"] == "adam"
    given = runner.Run("xor", epochs=1, hidden=[3], activation="relu").settings
    assert given["hidden"] == [3] and given["activation"] == "relu"
    assert given["batch_size"] == own["batch_size"] == "full"


def test_a_resumed_checkpoints_settings_come_before_the_data_sets_own(tmp_path):
    path = str(tmp_path / "xor.safetensors")
    runner.run("xor", epochs=2, optimizer="sgd", lr=0.5, batch_size=2, save=path)
    resumed = runner.Run(resume=path, epochs=3)
    assert (resumed.settings["optimizer"], resumed.settings["lr"], resumed.settings["batch_size"]) == \
        ("sgd", 0.5, 2)
    assert runner.Run(resume=path, epochs=3, lr=0.25).settings["lr"] == 0.25  # given wins
    with pytest.raises(ConfigError, match="^--hidden cannot change when resuming"):
        runner.Run(resume=path, epochs=3, hidden=[2])


# -- the playground's printed command -----------------------------------------------------------
PAGES = [
    {},
    {"optimizer": "adamw", "l2": 0.0, "lr": 0.0123456789, "hidden": []},  # adamw's own decay is 0.01
    {"optimizer": "lm", "dtype": "float64", "seed": 7, "data": "spiral", "noise": 0.2, "test": 0.3},
    {"optimizer": "adam", "l1": 0.001, "l2": 0.01, "features": ["x1", "sin(x1)"], "data": "sine"},
    {"optimizer": "lbfgs", "activation": "relu", "hidden": [8, 8, 8], "data": "gauss", "n": 100},
    {"optimizer": "momentum", "batch_size": 1, "data": "quadrants", "data_seed": 0,
     "features": ["x1", "x2", "x1*x2"]},
]


@pytest.mark.parametrize("page", PAGES)
def test_the_playgrounds_command_parses_back_to_its_run(page):
    source = sessions.Source()
    s = sessions.check_settings(page, source)
    words = shlex.split(sessions.command_line(s, source, 12))
    args = build_parser().parse_args(words[1:])
    assert args.data == sessions.data_reference(s, source)
    run = {k: v for k, v in sessions.run_settings(s).items() if v is not None}
    # the same settings as Run reads them (features: a comma-separated string, or a list)
    assert runner.checked_settings(given_settings(args)) == runner.checked_settings({**run, "epochs": 12})


def test_the_playgrounds_bounds_are_the_schemas_narrowed():
    source = sessions.Source()
    # lr's low bound is open, as the command line's
    with pytest.raises(sessions.BadRequest, match=r"^lr must be in \(0.0, 10.0\], got 0"):
        sessions.check_settings({"lr": 0}, source)
    with pytest.raises(sessions.BadRequest, match=r"^test must be in \[0.1, 0.9\], got 0.95"):
        sessions.check_settings({"test": 0.95}, source)
    with pytest.raises(sessions.BadRequest, match=r"^batch_size must be in \[1, 5000\], got 0"):
        sessions.check_settings({"batch_size": 0}, source)
    assert {name for name, _, _ in sessions.RUN_SETTINGS.values()} <= set(SETTINGS)


# -- the estimators' one translation ------------------------------------------------------------
def test_scikit_learns_names_are_translated_in_one_table():
    # every name an estimator's parameter (loss: the regressor's); each gives a run setting, or a
    # keyword of the solver's or the schedule's constructor
    params = (set(inspect.signature(estimators.BackpropClassifier).parameters)
              | set(inspect.signature(estimators.BackpropRegressor).parameters))
    assert set(estimators.SKLEARN_NAMES) <= params
    settings = {name for name in estimators.SKLEARN_NAMES.values() if "." not in name}
    keywords = {name for name in estimators.SKLEARN_NAMES.values() if "." in name}
    assert settings <= set(SETTINGS)
    assert {k.split(".")[0] for k in keywords} == {"optimizer", "schedule"}
    constructors = {kw for name in optimizers.names() for kw in optimizers.settings(name)}
    assert {k.split(".")[1] for k in keywords if k.startswith("optimizer.")} <= constructors
    assert set(estimators.SKLEARN_VALUES) <= set(estimators.SKLEARN_NAMES)
    est = estimators.BackpropRegressor((7,), "logistic", solver="sgd", alpha=0.5, learning_rate_init=0.02,
                                       max_iter=3, validation_fraction=0.2, n_iter_no_change=4,
                                       random_state=1, batch_size=16, dtype="float64", momentum=0.5)
    assert est._settings() == {"hidden": (7,), "activation": "sigmoid", "optimizer": "sgd",
                               "weight_decay": 0.5, "batch_size": 16, "lr": 0.02, "epochs": 3,
                               "val_split": 0.2,
                               "early_stopping": 4, "seed": 1, "dtype": "float64", "momentum": 0.5,
                               "schedule": "constant", "loss": "mse"}
