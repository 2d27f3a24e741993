"""Every hand-written backward against central differences in float64, on every backend."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

import backprop as bp
from backprop import activations, losses

ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "softmax"]


def away_from_kinks(shape, seed=0):
    """Inputs with |x| >= 0.1, so no ReLU kink lies within eps of one."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 2.0, shape)
    return np.where(np.abs(X) < 0.1, 0.1 * np.sign(X) + 0.1 * (X == 0), X)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradients(backend, name):
    result = bp.gradcheck(activations.get(name), backend.asarray(away_from_kinks((6, 5))))
    assert result.ok, str(result)
    assert result.worst < 1e-7


def test_dense_gradients(backend):
    layer = bp.Dense(7, 4)
    result = bp.gradcheck(layer, backend.asarray(np.random.default_rng(1).normal(size=(5, 7))),
                          max_entries=100)
    assert result.ok, str(result)
    assert set(result.errors) == {"X", "W", "b"}
    assert result.entries["W"] == 28  # every entry of a small array is checked


def test_dense_gradients_of_a_built_layer(backend):
    model = bp.Sequential([bp.Dense(3, 2, bias=0.5)], device=backend, seed=3)
    result = bp.gradcheck(model.layers[0], np.ones((4, 3)))
    assert result.ok, str(result)


LOSS_CASES = {
    "mse": lambda rng: rng.normal(size=(6, 3)),
    "sse": lambda rng: rng.normal(size=(6, 3)),
    "bce": lambda rng: rng.uniform(0, 1, size=(6, 3)),
    "ce": lambda rng: np.eye(3)[rng.integers(0, 3, 6)],
}


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_loss_gradients(backend, name):
    rng = np.random.default_rng(2)
    Z = rng.normal(0.0, 3.0, (6, 3))
    T = LOSS_CASES[name](rng)
    result = bp.gradcheck(losses.get(name), backend.asarray(Z), backend.asarray(T))
    assert result.ok, str(result)


MODELS = [
    # (widths, hidden activation, output layer, loss)
    ([4, 3], None, None, "mse"),
    ([4, 5, 3], "tanh", None, "mse"),
    ([4, 5, 3], "sigmoid", "sigmoid", "sse"),
    ([4, 6, 5, 3], "relu", "softmax", "ce"),
    ([4, 6, 5, 2], "leaky_relu", "sigmoid", "bce"),
    ([4, 8, 6, 5, 3], "softplus", "softmax", "ce"),
    ([4, 5, 3], "tanh", "softmax", "mse"),  # softmax without the fused loss
]


@pytest.mark.parametrize("widths,activation,output,loss", MODELS,
                         ids=[f"{len(m[0]) - 1}layers-{m[1]}-{m[2]}-{m[3]}" for m in MODELS])
def test_model_gradients(backend, widths, activation, output, loss):
    model = bp.mlp(widths, activation=activation or "identity", output=output, device=backend,
                   seed=4, bias=0.1)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(7, widths[0]))
    k = widths[-1]
    y = {"ce": rng.integers(0, k, 7), "bce": rng.integers(0, 2, (7, k)).astype(float)}.get(
        loss, rng.normal(size=(7, k)))
    result = bp.gradcheck(model, X, y, loss=loss)
    assert result.ok, str(result)
    assert len(result.errors) == 1 + 2 * (len(widths) - 1)  # X, then W and b per layer


def test_checker_catches_a_wrong_gradient(numpy_backend):
    """A checker that cannot fail proves nothing: break tanh's derivative on purpose."""

    class WrongTanh(bp.Tanh):
        def forward(self, X, *, train=False, input_grad=True):
            Y, _ = super().forward(X, train=train)
            return Y, lambda dY: dY * (1.0 - Y)  # should be 1 - Y**2

    result = bp.gradcheck(WrongTanh(), away_from_kinks((4, 3)))
    assert not result.ok
    assert result.worst > 1e-2
    assert "FAIL" in str(result)


def test_checker_catches_a_wrong_weight_gradient(numpy_backend):
    class NoTranspose(bp.Dense):
        def forward(self, X, *, train=False, input_grad=True):
            Y, backward = super().forward(X, train=train)

            def wrong(dY):
                dX = backward(dY)
                self.grads["W"] = self.grads["W"] * 1.01  # 1% off
                return dX

            return Y, wrong

    result = bp.gradcheck(NoTranspose(3, 2), np.ones((2, 3)))
    assert result.errors["W"] > 1e-3 and result.errors["X"] < 1e-7


# -- the checker must not cry wolf: roundoff and truncation on correct gradients ---------------
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=float)


class Skewed(bp.Dense):
    """A Dense layer whose backward is wrong by a relative ``skew`` in one parameter, once set."""

    skew: tuple[str, float] | None = None

    def forward(self, X, *, train=False, input_grad=True):
        Y, backward = super().forward(X, train=train, input_grad=input_grad)
        if self.skew is None:
            return Y, backward
        name, factor = self.skew

        def wrong(dY):
            dX = backward(dY)
            self.grads[name] = self.grads[name] * factor
            return dX

        return Y, wrong


def readme_xor(seed, layer=bp.Dense):
    """The README's textbook XOR network, trained as the README trains it."""
    model = bp.Sequential([layer(2, 2, init="textbook", bias="textbook"), "sigmoid",
                           layer(2, 1, init="textbook", bias="textbook"), "sigmoid"],
                          dtype="float64", seed=seed)
    model.fit(XOR_X, XOR_Y, loss="sse", optimizer="gd", lr=0.8, epochs=2000, batch_size="full")
    return model


def test_gradcheck_passes_the_readme_xor_at_its_saddle(numpy_backend):
    # Seed 0 sticks at loss 0.5 with gradients near 4e-5: central differences of a loss of 0.5
    # carry roundoff near 1e-10, 1.3e-6 of those gradients (this failed with tolerance 1e-6).
    model = readme_xor(0)
    result = bp.gradcheck(model, XOR_X, XOR_Y)
    assert result.ok, str(result)
    assert set(result.floored) == {"0.W", "0.b", "2.W", "2.b"} and "*" in str(result)
    assert 1e-10 < result.floor < 1e-8  # 15 eps_machine |L| / eps, with |L| = 0.5


def test_gradcheck_passes_a_tiny_bias_gradient_of_a_saved_model(tmp_path, capsys):
    """The report's case: an output bias whose gradient is 1e-7 next to a loss of 12."""
    from backprop.cli import main

    path = str(tmp_path / "circ.safetensors")
    assert main(["train", "circle", "--features", "x1,x2,x1^2,x1*x2,sin(x1)", "--save", path,
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["gradcheck", path, "--seed", "1"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "4.b" in out and "FAIL" not in out and "ok (tolerance 1e-06)" in out


def confident_classifier():
    """A softmax network with large logits, scored on its own predictions (loss 5e-8): the
    loss is a difference of large terms, so its roundoff is far above eps_machine |L|."""
    model = bp.mlp([3, 6, 3], activation="tanh", output="softmax", dtype="float64", seed=2)
    params = model.parameters()
    model.set_parameters({"2.W": params["2.W"] * 100.0, "2.b": params["2.b"]})
    X = np.random.default_rng(3).normal(size=(8, 3)) * 3.0
    return model, X, model.predict(X)


def test_gradcheck_passes_a_confident_classifier(numpy_backend):
    model, X, y = confident_classifier()
    loss, _ = model.loss_and_gradients(X, y, loss="ce")
    assert float(loss) < 1e-7
    result = bp.gradcheck(model, X, y, loss="ce")
    assert result.ok, str(result)


def test_gradcheck_passes_at_a_fitted_minimum(numpy_backend):
    # Targets 1e-8 from the outputs: loss 1e-16, gradients near 1e-8, where a central
    # difference's truncation (eps^2 L''' / 6, about 1e-12) would be 1e-4 of them.
    model = bp.mlp([3, 6, 2], activation="tanh", dtype="float64", seed=4)
    X = np.random.default_rng(5).normal(size=(8, 3))
    y = model.predict(X) + 1e-8 * np.random.default_rng(6).normal(size=(8, 2))
    result = bp.gradcheck(model, X, y, loss="mse")
    assert result.ok, str(result)
    assert result.worst < 1e-7


@pytest.mark.parametrize("seed, name", [(2, "2.W"), (0, "0.b"), (0, "0.W")],
                         ids=["converged", "saddle-tiny-bias", "saddle-tiny-weights"])
def test_gradcheck_fails_a_gradient_wrong_by_1e4(numpy_backend, seed, name):
    """The floor must not hide a wrong gradient: 1e-4 of its size, on arrays with large
    gradients (the converged XOR) and on arrays with tiny ones (gradients near 5e-5, which
    the floor decides: 1e-4 of them is about 3 floors)."""
    model = readme_xor(seed, layer=Skewed)
    assert bp.gradcheck(model, XOR_X, XOR_Y).ok
    index, array = name.split(".")
    model.layers[int(index)].skew = (array, 1.0 + 1e-4)
    result = bp.gradcheck(model, XOR_X, XOR_Y)
    failed = [k for k, e in result.errors.items() if e > result.tolerance]
    assert failed == [name], str(result)
    assert (name in result.floored) == (seed == 0)


def test_jacobian_check_passes_saturated_softmax_outputs(numpy_backend):
    # Saturated outputs have a tiny Jacobian (about 1e-5) next to outputs near 1.
    from backprop.gradcheck import jacobian_check

    model, X, _ = confident_classifier()
    result = jacobian_check(model, X)
    assert result.ok, str(result)
    assert result.floored


@pytest.mark.parametrize("saturated, skew", [(False, 1e-4), (True, 1e-2)])
def test_jacobian_check_fails_a_wrong_column(numpy_backend, monkeypatch, saturated, skew):
    import backprop.jacobian as jacobian_module
    from backprop.gradcheck import jacobian_check

    model, X, _ = confident_classifier()
    if not saturated:
        model = bp.mlp([3, 6, 3], activation="tanh", output="softmax", dtype="float64", seed=2)
    right = jacobian_module.jacobian

    def wrong(model, X):
        Z, J = right(model, X)
        J = J.copy()
        J[:, 7] *= 1.0 + skew  # a column of 0.W
        return Z, J

    monkeypatch.setattr(jacobian_module, "jacobian", wrong)
    result = jacobian_check(model, X)
    assert not result.ok and result.errors["0.W"] > result.tolerance, str(result)


# -- the command: how much it checks, what it refuses, what its options mean --------------------
def test_gradcheck_command_checks_a_bounded_sample_and_says_so(capsys):
    from backprop.cli import main

    assert main(["gradcheck", "--inputs", "30", "--hidden", "50", "--max-params", "7"]) == 0
    out = capsys.readouterr().out
    # X 8x30, 0.W 30x50, 0.b 50, 1.W... : 7 of each array (the last bias has 3)
    assert "checked 31 of 1,943 entries (at most 7 per array: --max-params)" in out, out
    assert "7 of 1500" in out and "3 of 3" in out
    assert main(["gradcheck", "--json", "--max-params", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["entries"].values()) == {3, 5} and result["sizes"]["0.W"] == 32


@pytest.mark.parametrize("argv", [["--hidden", "100000,100000"], ["--samples", "100000000"],
                                  ["--inputs", "1000000000"], ["--hidden", "1024,1024", "--inputs", "1024"]])
def test_gradcheck_command_refuses_absurd_sizes_in_one_line(capsys, argv):
    from backprop.cli import main

    assert main(["gradcheck", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("backprop: error: this check would take") and err.count("\n") == 1
    assert "use fewer --samples, a smaller --max-params or a smaller network" in err


def test_jacobian_check_refuses_a_jacobian_over_the_lm_limit(numpy_backend):
    from backprop.gradcheck import jacobian_check

    model = bp.mlp([2, 4, 3], dtype="float64", seed=0)  # 27 parameters, 3 outputs
    with pytest.raises(bp.ConfigError, match=r"the Jacobian would take 264 MiB \(427000 samples x 3 outputs "
                                             r"x 27 parameters; limit 256 MiB"):
        jacobian_check(model, np.zeros((427_000, 2)))


def test_every_gradcheck_option_has_help():
    from backprop.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = commands.choices["gradcheck"]._actions
    assert [a.option_strings for a in options if not a.help] == []
    assert "--max-params" in {s for a in options for s in a.option_strings}
