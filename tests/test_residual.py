"""Residual: Y = X + block(X), the block's layers holding the model's views of its flat buffers
(parameters and gradients), their specs in checkpoints, the mode and the device generator
passed down; a residual MLP gradchecked on every backend and trained as a torch twin; its
Jacobian rows and R-operator (Levenberg–Marquardt, Newton) against differences."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import backprop as bp
from backends import DeviceRNG, Stream
from backprop.errors import ConfigError
from backprop.host.gradcheck import jacobian_check
from conftest import hessian_by_differences


def _host(backend, a):
    return np.asarray(backend.to_numpy(a))


def _residual_mlp(**kwargs):
    return bp.Sequential([bp.Dense(8), bp.Residual([bp.Dense(8), "relu", bp.Dense(8)]), bp.Dense(1)],
                         input_shape=(3,), dtype="float64", seed=7, **kwargs)


def test_the_output_is_the_input_plus_the_blocks_by_hand():
    """Residual(["relu"]): Y = X + relu(X); dX = dY · (1 + [X > 0])."""
    X = np.array([[-2.0, 0.5], [3.0, -1.0]])
    Y, backward = bp.Residual(["relu"]).forward(X)
    np.testing.assert_array_equal(Y, [[-2.0, 1.0], [6.0, -1.0]])
    np.testing.assert_array_equal(backward(np.array([[1.0, 2.0], [3.0, 4.0]])), [[1.0, 4.0], [6.0, 4.0]])
    assert bp.Residual(["relu"]).forward(X, input_grad=False)[1](X) is None


def test_parameters_are_the_inner_layers_under_prefixed_names_and_views_of_the_flat_buffer():
    model = _residual_mlp()
    block = model.layers[1]
    assert list(model.parameters()) == ["0.W", "0.b", "1.0.W", "1.0.b", "1.2.W", "1.2.b", "2.W", "2.b"]
    assert block.param_shapes() == {"0.W": (8, 8), "0.b": (8,), "2.W": (8, 8), "2.b": (8,)}
    theta = np.arange(model.n_params, dtype=np.float64) / 100
    model.set_flat_parameters(theta)  # reaches the inner layers' own arrays
    np.testing.assert_array_equal(block.block[0].params["W"], theta[32:96].reshape(8, 8))
    np.testing.assert_array_equal(block.block[2].params["b"], theta[168:176])
    before = np.array(model.flat_parameters()).copy()
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 3)), rng.normal(size=10)
    model.fit(X, y, loss="mse", optimizer="sgd", lr=0.01, epochs=1, batch_size=5)
    after = np.asarray(model.flat_parameters())
    assert not np.array_equal(after[32:176], before[32:176])  # training moved the inner weights
    np.testing.assert_array_equal(after[32:96].reshape(8, 8), block.block[0].params["W"])
    # The inner layers' gradients are the gradient buffer's views too.
    model.loss_and_gradients(X, y)
    np.testing.assert_array_equal(np.asarray(model.flat_gradients())[32:96].reshape(8, 8),
                                  block.block[0].grads["W"])


def test_a_residual_mlp_gradchecks_on_every_backend(backend):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(9, 3)), rng.normal(size=9)
    result = bp.gradcheck(_residual_mlp(device=backend), X, y, loss="mse")
    assert result.ok and result.worst < 1e-6
    nested = bp.Sequential([bp.Residual([bp.Dense(3), "tanh", bp.Residual([bp.LayerNorm(), bp.Dense(3)])]),
                            bp.Dense(2)], input_shape=(3,), device=backend, dtype="float64", seed=1)
    result = bp.gradcheck(nested, X, rng.normal(size=(9, 2)), loss="mse")
    assert result.ok and result.worst < 1e-6


def test_a_residual_alone_gradchecks_and_leaves_the_given_layers_unbuilt():
    block = bp.Residual([bp.Dense(4, 4), "tanh", bp.Dense(4, 4)])
    result = bp.gradcheck(block, np.random.default_rng(2).normal(size=(5, 4)))
    assert result.ok and result.worst < 1e-6
    assert block.block[0].params == {} and block.backend is None  # the check built a copy


def test_five_sgd_steps_equal_a_torch_twin_within_1e_10():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 1))
    model = _residual_mlp()
    p = {k: torch.from_numpy(np.asarray(v).copy()).requires_grad_(True)
         for k, v in model.parameters().items()}
    optimizer = torch.optim.SGD(list(p.values()), lr=0.05, momentum=0.9)

    def twin(Xt):
        H = Xt @ p["0.W"] + p["0.b"]
        H = H + (torch.relu(H @ p["1.0.W"] + p["1.0.b"]) @ p["1.2.W"] + p["1.2.b"])
        return H @ p["2.W"] + p["2.b"]

    for _ in range(5):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(twin(torch.from_numpy(X)), torch.from_numpy(y)).backward()
        optimizer.step()
    model.fit(X, y, loss="mse", optimizer="sgd", lr=0.05, momentum=0.9, epochs=5, batch_size=16,
              shuffle=False, validation_split=0.0)
    for name, value in model.parameters().items():
        np.testing.assert_allclose(value, p[name].detach().numpy(), rtol=0, atol=1e-10, err_msg=name)


def test_a_block_that_changes_the_shape_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"a Residual block must keep its input's shape \(8,\), but it "
                                          r"gives \(3,\)"):
        bp.Sequential([bp.Dense(8), bp.Residual([bp.Dense(3)])], input_shape=(2,))
    for bad in ([], "relu", [bp.Dense(2), 3]):
        with pytest.raises(ConfigError, match="Residual takes a non-empty list of layers|is not a layer"):
            bp.Residual(bad)


def _with_batchnorm_and_dropout():
    return bp.Sequential([bp.Dense(6), bp.Residual([bp.Dense(6), bp.BatchNorm(), "relu", bp.Dropout(0.3)]),
                          bp.Dense(2)], input_shape=(4,), dtype="float64", seed=2)


def _fitted():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(24, 4)), rng.normal(size=(24, 2))
    model = _with_batchnorm_and_dropout()
    model.fit(X, y, loss="mse", optimizer="adam", lr=0.01, epochs=2, batch_size=8)
    return model, X, y


def test_checkpoints_pickles_and_to_rebuild_the_block_its_buffers_and_its_generator(tmp_path):
    model, X, y = _fitted()
    running = _host(model.backend, model.layers[1].block[1].buffers["running_var"])
    assert not np.allclose(running, 1.0)
    bp.checkpoint.save(model, str(tmp_path / "r.safetensors"))
    header = bp.checkpoint.read_header(str(tmp_path / "r.safetensors"))
    assert [s["type"] for s in header["layers"][1]["config"]["layers"]] == ["dense", "batchnorm", "relu",
                                                                             "dropout"]
    copies = [bp.checkpoint.load(str(tmp_path / "r.safetensors")).model, pickle.loads(pickle.dumps(model)),
              copy.deepcopy(model), model.to("strict")]
    for other in copies:
        inner = other.layers[1].block
        assert inner[3].rng is other.state.device_rng  # the copy's generator reaches the inner Dropout
        np.testing.assert_array_equal(_host(other.backend, inner[1].buffers["running_var"]), running)
        np.testing.assert_array_equal(_host(other.backend, other.flat_parameters()),
                                      _host(model.backend, model.flat_parameters()))
        np.testing.assert_allclose(np.asarray(other.predict(X)), model.predict(X), rtol=1e-13, atol=1e-13)
    # Resumed training continues where the original does, masks and running statistics included.
    resumed = copies[0]
    model.fit(X, y, epochs=1, batch_size=8)
    resumed.fit(X, y, epochs=1, batch_size=8)
    np.testing.assert_array_equal(resumed.flat_parameters(), model.flat_parameters())


def test_the_mode_and_the_models_generator_reach_an_inner_dropout():
    """Residual([Dropout(0.5)]): inference gives 2X; training gives X + X · mask / 0.5, the mask the
    model's own device generator's next draw."""
    model = bp.Sequential([bp.Residual([bp.Dropout(0.5)])], input_shape=(3, 4), dtype="float64", seed=5)
    X = np.random.default_rng(5).normal(size=(6, 3, 4))
    np.testing.assert_array_equal(model.forward(X, train=False)[0], 2 * X)
    oracle = DeviceRNG(5, Stream.DROPOUT, backend=model.backend)
    oracle.set_state(model.state.device_rng.get_state())
    mask = np.asarray(oracle.bernoulli(0.5, (6, 3, 4)), dtype=np.float64)
    Y, backward = model.forward(X, train=True)
    np.testing.assert_array_equal(Y, X + X * mask / 0.5)
    np.testing.assert_array_equal(backward(np.ones_like(X)), 1 + mask / 0.5)


def test_a_residual_holding_a_dropout_gradchecks_with_its_masks_held_fixed():
    rng = np.random.default_rng(6)
    model = bp.Sequential([bp.Dense(5), bp.Residual([bp.Dense(5), "tanh", bp.Dropout(0.4)]), bp.Dense(1)],
                          input_shape=(3,), dtype="float64", seed=3)
    result = bp.gradcheck(model, rng.normal(size=(8, 3)), rng.normal(size=8), loss="mse")
    assert result.ok and result.floored == [] and result.worst < 1e-6


def _second_order_net():
    """A residual block nested in another, the outer one first (its input's R{X} is None)."""
    inner = bp.Residual([bp.Dense(4), "sigmoid"])
    return bp.Sequential([bp.Residual([bp.Dense(4), "tanh", inner, bp.Dense(4)]), "tanh", bp.Dense(2)],
                         input_shape=(4,), dtype="float64", seed=4)


def test_the_jacobian_and_the_hessian_cover_a_residual_as_differences_say():
    from backprop.hessian import hessian

    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 2))
    model = _second_order_net()
    assert model.layers[0].second_order and not bp.Residual([bp.Dropout(0.1)]).second_order
    result = jacobian_check(model, X)
    assert result.ok and result.worst < 1e-7
    _, g, H = hessian(model, bp.losses.get("mse"), X, y)
    numeric = hessian_by_differences(model, X, y)
    np.testing.assert_allclose(H, numeric, atol=1e-7)
    model.loss_and_gradients(X, y, loss="mse")
    np.testing.assert_allclose(g, model.flat_gradients(), rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["lm", "newton"])
def test_levenberg_marquardt_and_newton_train_a_residual_network(optimizer):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(20, 4))
    y = np.stack([np.sin(X[:, 0]) + X[:, 1], X[:, 2] * X[:, 3]], axis=1)
    model = _second_order_net()
    model.fit(X, y, loss="mse", optimizer=optimizer, epochs=5)
    losses = model.history["train_loss"]
    assert losses[-1] < 0.5 * losses[0]


def test_second_order_methods_refuse_a_residual_holding_a_stochastic_layer_in_one_line():
    X, y = np.random.default_rng(7).normal(size=(10, 4)), np.zeros(10)
    for inner in (bp.BatchNorm(), bp.Dropout(0.2)):
        model = bp.Sequential([bp.Dense(4), bp.Residual([bp.Dense(4), inner]), bp.Dense(1)], input_shape=(4,),
                              dtype="float64")
        before = np.asarray(model.flat_parameters()).copy()
        with pytest.raises(ConfigError, match=r"does not cover the Residual layer \(layer 1\)"):
            model.fit(X, y, loss="mse", optimizer="lm", epochs=1)
        np.testing.assert_array_equal(model.flat_parameters(), before)
        if isinstance(inner, bp.BatchNorm):  # deterministic on the full batch: L-BFGS takes it
            model.fit(X, y, loss="mse", optimizer="lbfgs", epochs=2)


HOSTILE = [None, 0, -1, 1.5, "x", True, [], {}, [None], [{"type": "residual", "config": {}}],
           [{"type": "dense", "config": {"out_features": 3}}], [{"config": {}}], {"layers": "relu"}]


def test_a_forged_residual_spec_ends_in_a_checkpoint_error(tmp_path):
    """Each part of a saved Residual's spec set to each hostile value: loaded as it says, or refused
    with a CheckpointError (never another exception)."""
    from tests.test_hostile_checkpoints import forge

    model = _with_batchnorm_and_dropout()
    src, dst = tmp_path / "r.safetensors", tmp_path / "forged.safetensors"
    bp.checkpoint.save(model, str(src))
    places = [("config",), ("config", "layers"), ("config", "layers", 0), ("config", "layers", 0, "type"),
              ("config", "layers", 1, "config"), ("config", "layers", 1, "config", "num_features"),
              ("config", "layers", 3, "config", "rate")]
    refused = 0
    for place in places:
        for value in HOSTILE:
            def edit(meta, place=place, value=value):
                target = meta["layers"][1]
                for key in place[:-1]:
                    target = target[key]
                target[place[-1]] = value

            forge(src, dst, edit_meta=edit)
            try:
                bp.checkpoint.load(str(dst))
            except bp.CheckpointError:
                refused += 1
    assert refused > 0.8 * len(places) * len(HOSTILE)
