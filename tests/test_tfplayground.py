"""TensorFlow Playground links: read as backprop's settings, written from the page's, refused in one line."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from backprop.apps.runner import Run
from backprop.cli import main as cli_main
from backprop.cli.train import from_link
from backprop.edges import datasets, tfplayground
from backprop.errors import ConfigError
from backprop.playground import make_server
from backprop.playground import session as sessions

TF = "https://playground.tensorflow.org/#"
UI = ("showTestData=false&discretize=false&cosX=false&cosY=false&collectStats=false&initZero=false&"
      "hideText=false")

LINKS = {
    # TF Playground's own start, as its page writes it
    "circle": (TF + "activation=tanh&batchSize=10&dataset=circle&regDataset=reg-plane&learningRate=0.03&"
               "regularizationRate=0&noise=0&networkShape=4,2&seed=0.59871&" + UI + "&percTrainData=50&"
               "x=true&y=true&xTimesY=false&xSquared=false&ySquared=false&sinX=false&sinY=false&"
               "problem=classification",
               {"data": "circle:n=500,noise=0.0,test=0.5,seed=59871", "hidden": [4, 2], "activation": "tanh",
                "optimizer": "sgd", "lr": 0.03, "weight_decay": 0.0, "l1": 0.0, "batch_size": 10,
                "features": ["x1", "x2"], "seed": 59871, "val_split": 0.0}),
    "xor": (TF + "activation=relu&batchSize=30&dataset=xor&learningRate=0.1&regularization=L1&"
            "regularizationRate=0.003&noise=25&networkShape=6&percTrainData=70&x=false&y=false&"
            "xTimesY=true&problem=classification",
            {"data": "quadrants:n=500,noise=0.25,test=0.3", "hidden": [6], "activation": "relu",
             "optimizer": "sgd", "lr": 0.1, "weight_decay": 0.0, "l1": 0.003, "batch_size": 30,
             "features": ["x1*x2"], "val_split": 0.0}),
    "gauss": (TF + "activation=sigmoid&batchSize=1&dataset=gauss&learningRate=0.3&regularization=L2&"
              "regularizationRate=0.01&noise=20&networkShape=&percTrainData=80&seed=42",
              {"data": "gauss:n=500,noise=0.125486,test=0.2,seed=42", "hidden": [], "activation": "sigmoid",
               "optimizer": "sgd", "lr": 0.3, "weight_decay": 0.01, "l1": 0.0, "batch_size": 1,
               "features": ["x1", "x2"], "seed": 42, "val_split": 0.0}),
    "spiral": (TF + "activation=tanh&batchSize=10&dataset=spiral&learningRate=0.03&noise=10&"
               "networkShape=8,8,5&percTrainData=60&x=true&y=true&xSquared=true&ySquared=true&"
               "xTimesY=true&sinX=true&sinY=true",
               {"data": "spiral:n=500,noise=0.1,test=0.4", "hidden": [8, 8, 5], "activation": "tanh",
                "optimizer": "sgd", "lr": 0.03, "weight_decay": 0.0, "l1": 0.0, "batch_size": 10,
                "features": ["x1", "x2", "x1^2", "x2^2", "x1*x2", "sin(x1)", "sin(x2)"], "val_split": 0.0}),
    # a regression: our mse's gradient is twice TF's (out - target)^2 / 2, so lr / 2, penalty * 2
    "regression": (TF + "activation=linear&batchSize=10&dataset=circle&regDataset=reg-gauss&"
                   "learningRate=0.01&regularization=L2&regularizationRate=0.1&noise=5&networkShape=3&percTrainData=50&"
                   "problem=regression",
                   {"data": "bumps:n=1200,noise=0.05,test=0.5", "hidden": [3], "activation": "identity",
                    "optimizer": "sgd", "lr": 0.005, "weight_decay": 0.2, "l1": 0.0, "batch_size": 10,
                    "features": ["x1", "x2"], "val_split": 0.0}),
}


@pytest.mark.parametrize("name", LINKS)
def test_each_link_gives_the_settings_it_should_and_builds_a_run(name):
    url, expected = LINKS[name]
    settings = tfplayground.read(url).train_settings()
    assert settings == expected
    data = settings.pop("data")
    job = Run(data, epochs=1, **settings)
    assert job.transform.task == ("regression" if name == "regression" else "classification")
    # TF Playground trains on its whole training share: no validation part is taken from it
    points = 1200 if name == "regression" else 500
    assert job.val is None and len(job.train[0]) + len(job.dataset.X_test) == points


def test_a_link_without_keys_is_tf_playgrounds_start():
    assert tfplayground.read(TF + "seed=1").train_settings() == {
        **LINKS["circle"][1], "data": "circle:n=500,noise=0.0,test=0.5,seed=1", "seed": 1}


def test_gauss_noise_gives_tf_playgrounds_spread():
    """TF Playground's clouds have variance 0.5 + 7 f; ours at the mapped noise the same."""
    for percent in (0, 20, 50):
        noise = tfplayground.read(TF + f"dataset=gauss&noise={percent}").options["noise"]
        X, y = datasets.GENERATED["gauss"].draw(np.random.default_rng(0), 200_000, noise)
        spread = np.std(X - np.where(y[:, None] == 1, 2.0, -2.0))
        assert spread == pytest.approx(np.sqrt(0.5 + 7 * percent / 100), rel=0.01)


def test_the_regression_sets_are_tf_playgrounds():
    X, y = datasets.GENERATED["plane"].draw(np.random.default_rng(0), 100, 0.0)
    assert np.allclose(y, X.sum(axis=1) / 10) and np.abs(X).max() <= 6
    # the six tops, a point 1 from the first (half way down its radius of 2), one between them all
    points = np.array([[-4, 2.5], [0, 2.5], [4, 2.5], [-4, -2.5], [0, -2.5], [4, -2.5], [-4, 1.5], [-2, 0]])
    rng = np.random.default_rng(0)
    _, values = datasets._bumps(_Fixed(rng, points), len(points), 0.0)
    assert values.tolist() == [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 0.5, 0.0]


class _Fixed:
    """A generator whose first uniform draw is ``points``."""

    def __init__(self, rng, points):
        self.rng, self.points = rng, points

    def uniform(self, low, high, size):
        points, self.points = self.points, None
        return np.array(points, dtype=float) if points is not None else self.rng.uniform(low, high, size)


def _page(**changes):
    s = {**sessions.DEFAULTS, "seed": 7, "data_seed": 7, **changes}
    return sessions.check_settings(s, sessions.Source())


ROUND_TRIPS = {
    "circle": {},
    "quadrants": {"noise": 0.35, "activation": "relu", "features": ["x1^2", "x2^2", "x1*x2"], "l1": 0.003},
    "gauss": {"noise": 0.1, "hidden": [], "activation": "sigmoid", "l2": 0.01, "test": 0.2, "batch_size": 25},
    "spiral": {"noise": 0.2, "hidden": [8, 8, 6, 6], "features": list(sessions.PLANE), "lr": 0.3},
    "plane": {"n": 1200, "activation": "identity", "l2": 0.001, "test": 0.7},
    "bumps": {"n": 1200, "noise": 0.05, "l1": 0.01, "lr": 0.01},
}


@pytest.mark.parametrize("data", ROUND_TRIPS)
def test_page_settings_make_a_link_that_reads_back_the_same(data):
    page = _page(data=data, **ROUND_TRIPS[data])
    link = sessions.tf_link(page)
    assert link["left_out"] == [] and link["url"].startswith(tfplayground.ADDRESS + "#")
    setup = tfplayground.read(link["url"])
    assert setup.notes[0] == ("seed=7 seeds backprop's own draw (7): other points and weights than "
                              "TensorFlow Playground's")
    assert len(setup.notes) == 1 + bool(page["l1"])  # and the L1 rule's note
    back = sessions.page_settings(setup)
    assert set(page) - set(back) == {"dropout", "dtype", "device", "grid", "unit_grid", "pair"}
    assert {k: page[k] for k in back} == back


LEFT_OUT = [
    ({"optimizer": "adam"}, "optimizer adam: TensorFlow Playground trains with plain SGD"),
    ({"activation": "softplus"},
     "activation softplus: TensorFlow Playground has relu, tanh, sigmoid or linear"),
    ({"dropout": 0.2}, "dropout 0.2: TensorFlow Playground has none"),
    ({"n": 300}, "n 300: TensorFlow Playground draws 500 points"),
    ({"seed": 3}, "seed 3 of the weights: the link's one seed is the data's, 7"),
    ({"l1": 0.01, "l2": 0.02}, "weight_decay 0.02: TensorFlow Playground takes one penalty, L1 here"),
    ({"data": "gauss", "noise": 0.01}, "noise 0.01: tighter than TensorFlow Playground's narrowest gauss "
                                       "(noise 0 there)"),
]


@pytest.mark.parametrize("changes, line", LEFT_OUT)
def test_each_page_setting_a_link_cannot_hold_is_named(changes, line):
    link = sessions.tf_link(_page(**changes))
    assert link["left_out"] == [line] and link["url"]


def test_data_tf_playground_lacks_gives_no_link_and_says_so():
    link = sessions.tf_link(_page(data="moons", noise=0.2))
    assert link == {"url": None, "left_out": [
        "data moons: TensorFlow Playground has circle, quadrants, gauss, spiral, plane or bumps only"]}


@pytest.mark.parametrize("key", ["showTestData=true", "discretize=true", "collectStats=true", "hideText=true",
                                 "tutorial=dataset", "cosX=true", "cosY=true", "noise_hide=true"])
def test_each_key_that_only_changes_tf_playgrounds_page_is_named(key):
    name = key.split("=")[0]
    assert tfplayground.read(TF + key).notes == [
        f"{name}: how TensorFlow Playground's page shows things; nothing to train"]


def test_page_only_keys_switched_off_need_no_note():
    assert tfplayground.read(LINKS["circle"][0].replace("&seed=0.59871", "")).notes == []


def test_unknown_keys_are_named_together():
    assert tfplayground.read(TF + "learningrate=0.1&foo=1").notes == [
        "learningrate, foo: not TensorFlow Playground keys (it ignores them too); ignored"]


def test_l1_notes_the_zero_crossing_rule_it_does_not_follow():
    assert tfplayground.read(TF + "regularization=L1&regularizationRate=0.01").notes == [
        "regularization=L1: backprop's step does not hold a weight at zero once it crosses, as TensorFlow "
        "Playground's does"]


REFUSED = [
    ("", "a TensorFlow Playground link: give its address"),
    ("https://playground.tensorflow.org/", "holds no TensorFlow Playground state"),
    ("ftp://playground.tensorflow.org/#noise=1", "is not a TensorFlow Playground link"),
    (TF + "noise=1&oops", "'oops' is not key=value"),
    (TF + "initZero=true", "initZero=true: backprop starts from random weights"),
    (TF + "dataset=moons", "dataset=moons: backprop reads circle, xor, gauss or spiral"),
    (TF + "problem=regression&regDataset=reg-sine",
     "regDataset=reg-sine: backprop reads reg-plane or reg-gauss"),
    (TF + "problem=ranking", "problem=ranking: backprop reads classification or regression"),
    (TF + "activation=softmax", "activation=softmax: backprop reads relu, tanh, sigmoid or linear"),
    (TF + "regularization=L3", "regularization=L3: backprop reads none, L1 or L2"),
    (TF + "noise=abc", "noise=abc: expected a number >= 0"),
    (TF + "noise=-5", "noise=-5: expected a number >= 0"),
    (TF + "noise=80", "noise=80: backprop's circle reaches at most 50"),
    (TF + "learningRate=Infinity", "learningRate=Infinity: expected a number >= 0"),
    (TF + "learningRate=0", "learningRate=0: nothing would train"),
    (TF + "batchSize=2.5", "batchSize=2.5: expected an integer >= 1"),
    (TF + "percTrainData=5", "percTrainData=5: expected a number in [10, 100]"),
    (TF + "networkShape=4,x", "networkShape=4,x: expected hidden widths"),
    (TF + "x=yes", "x=yes: expected true or false"),
    (TF + "x=false&y=false", "no input feature is on: set x, y, xSquared, ySquared, xTimesY, sinX or sinY"),
]


@pytest.mark.parametrize("url, start", REFUSED)
def test_a_malformed_link_or_value_is_refused_in_one_line(url, start):
    with pytest.raises(ConfigError) as caught:
        tfplayground.read(url)
    message = str(caught.value)
    assert start in message and "\n" not in message


def test_train_from_a_link_lets_the_command_line_win(capsys):
    args = argparse.Namespace(from_link=LINKS["spiral"][0] + "&hideText=true", data=None, resume=None,
                              quiet=False, json=False)
    data, settings = from_link(args, {"lr": 0.5, "hidden": [3]})
    assert data == "spiral:n=500,noise=0.1,test=0.4"
    link = {k: v for k, v in LINKS["spiral"][1].items() if k != "data"}
    assert settings == {**link, "lr": 0.5, "hidden": [3]}
    assert capsys.readouterr().err == (
        "backprop: note: hideText: how TensorFlow Playground's page shows things; nothing to train\n")
    args.data = "circle"
    assert from_link(args, {})[0] == "circle"


def test_train_from_the_command_line_trains_and_refuses_in_one_line(capsys):
    assert cli_main(["train", "--from", LINKS["xor"][0], "--epochs", "2", "--quiet"]) == 0
    assert cli_main(["train", "--from", TF + "initZero=true", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("backprop: error: initZero=true") and err.count("\n") == 1


def test_playground_from_a_link_opens_the_page_on_its_settings(capsys, monkeypatch):
    from backprop.cli.playground import _from_link

    server = make_server("127.0.0.1", 0, None)
    try:
        address = _from_link(LINKS["gauss"][0], server)
    finally:
        server.server_close()
    assert address == (server.url + "#data=gauss&n=500&noise=0.125486&test=0.2&hidden=&features=x1,x2&"
                       "activation=sigmoid&optimizer=sgd&lr=0.3&l2=0.01&l1=0.0&batch_size=1&seed=42&data_seed=42")
    assert "seed=42 seeds backprop's own draw" in capsys.readouterr().err
    def serve(self, poll_interval):  # were the link let through, the server would stop at once
        raise KeyboardInterrupt

    monkeypatch.setattr(type(server), "serve_forever", serve)
    assert cli_main(["playground", "--no-browser", "--port", "0", "--from", TF + "percTrainData=95"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("backprop: error: --from: test must be in [0.1, 0.9]") and err.count("\n") == 1


def test_a_page_run_carries_its_link_as_its_settings_change():
    server = make_server("127.0.0.1", 0, None)
    try:
        run = server.new_session({"data": "quadrants", "hidden": [3], "seed": 5, "data_seed": 5})
        assert run.describe()["tf_link"] == sessions.tf_link(run.settings)
        assert "learningRate=0.03&" in run.describe()["tf_link"]["url"]
        run.change({"lr": 0.1})
        assert "learningRate=0.1&" in run.picture["tf_link"]["url"]  # what the page copies after a change
    finally:
        server.stop_all()
        server.server_close()
