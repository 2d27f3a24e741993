"""BatchNorm and LayerNorm: worked examples by hand and by plain NumPy loops, gradients against
differences on every backend (training mode: the batch statistics are part of the function),
PyTorch's BatchNorm1d/2d and LayerNorm as oracles (training, inference, running statistics,
SGD trajectories), and the running statistics through checkpoints, pickles and ``to()``."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import backprop as bp
from backends.comm import Communicator
from backprop.errors import ConfigError, DataError
from conftest import hessian_by_differences
from tests.conftest import assert_belongs


def _host(backend, a):
    return np.asarray(backend.to_numpy(a))


def _loop_batchnorm(X, gamma, beta, eps):
    """BatchNorm in training by plain loops over channels: mean and biased variance of every entry
    of channel c (all samples, all positions)."""
    Y = np.empty_like(X)
    means, variances = [], []
    for c in range(X.shape[1]):
        values = [float(v) for v in X[:, c, ...].ravel()]
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / len(values)
        Y[:, c, ...] = (X[:, c, ...] - mean) / np.sqrt(var + eps) * gamma[c] + beta[c]
        means.append(mean)
        variances.append(var * len(values) / (len(values) - 1))  # unbiased, for the running one
    return Y, np.array(means), np.array(variances)


def test_batchnorm_by_hand_one_channel_of_four_values():
    """Channel values 1, 3, 5, 7: mean 4, biased variance 5, unbiased 20/3; the running statistics
    move a tenth of the way from (0, 1); dX of dY = (1, 0, 0, 0) through the statistics."""
    layer = bp.BatchNorm(eps=1e-5)
    model = bp.Sequential([layer], input_shape=(1, 2), dtype="float64")
    X = np.array([[[1.0, 3.0]], [[5.0, 7.0]]])  # (N=2, C=1, L=2)
    Y, backward = layer.forward(X, train=True)
    s = np.sqrt(5.0 + 1e-5)
    np.testing.assert_allclose(Y, np.array([[[-3.0, -1.0]], [[1.0, 3.0]]]) / s, rtol=1e-14)
    np.testing.assert_allclose(_host(model.backend, layer.buffers["running_mean"]), [0.4], rtol=1e-15)
    np.testing.assert_allclose(_host(model.backend, layer.buffers["running_var"]), [0.9 + 2.0 / 3.0],
                               rtol=1e-15)
    dX = backward(np.array([[[1.0, 0.0]], [[0.0, 0.0]]]))
    # dX_i = (δ_i1 - 1/4 - x̂_i x̂_1 / 4) / s, with x̂ = (-3, -1, 1, 3) / s
    xhat = np.array([-3.0, -1.0, 1.0, 3.0]) / s
    expected = (np.array([1.0, 0, 0, 0]) - 0.25 - xhat * xhat[0] / 4) / s
    np.testing.assert_allclose(dX.ravel(), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.grads["gamma"], [xhat[0]], rtol=1e-14)
    np.testing.assert_allclose(layer.grads["beta"], [1.0], rtol=1e-15)
    # Inference: the running statistics, an affine map.
    Y, backward = layer.forward(X, train=False)
    np.testing.assert_allclose(Y, (X - 0.4) / np.sqrt(0.9 + 2.0 / 3.0 + 1e-5), rtol=1e-14)
    inv = 1 / np.sqrt(0.9 + 2.0 / 3.0 + 1e-5)
    np.testing.assert_allclose(backward(np.ones_like(X)), np.full_like(X, inv), rtol=1e-14)


@pytest.mark.parametrize("shape", [(7, 3), (5, 3, 4), (4, 2, 3, 5)])
def test_batchnorm_training_equals_plain_loops_on_every_backend(backend, shape):
    rng = np.random.default_rng(0)
    X = rng.normal(2.0, 3.0, size=shape)
    gamma, beta = rng.normal(size=shape[1]), rng.normal(size=shape[1])
    model = bp.Sequential([bp.BatchNorm(momentum=0.3, eps=1e-3)], input_shape=shape[1:], device=backend,
                          dtype="float64")
    model.set_parameters({"0.gamma": gamma, "0.beta": beta})
    with backend.activate():
        Y = model.forward(backend.asarray(X, "float64"), train=True)[0]
    expected, mean, var = _loop_batchnorm(X.reshape(*shape, 1) if len(shape) == 2 else X, gamma, beta, 1e-3)
    np.testing.assert_allclose(_host(backend, Y), expected.reshape(shape), rtol=1e-12, atol=1e-12)
    buffers = model.layers[0].buffers
    assert_belongs(buffers["running_mean"], backend, "float64", (shape[1],))
    np.testing.assert_allclose(_host(backend, buffers["running_mean"]), 0.3 * mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(_host(backend, buffers["running_var"]), 0.7 + 0.3 * var, rtol=1e-12)


def test_layernorm_by_hand_one_sample():
    """Entries 1, 2, 3, 4: mean 2.5, biased variance 1.25; gamma and beta per entry."""
    layer = bp.LayerNorm(eps=0.0001)
    bp.Sequential([layer], input_shape=(2, 2), dtype="float64")
    layer.params["gamma"][...] = np.array([[1.0, 2.0], [3.0, 4.0]])
    layer.params["beta"][...] = np.array([[0.0, 0.0], [0.0, 1.0]])
    X = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    Y, backward = layer.forward(X, train=True)
    xhat = np.array([[-1.5, -0.5], [0.5, 1.5]]) / np.sqrt(1.25 + 0.0001)
    np.testing.assert_allclose(Y[0], xhat * [[1, 2], [3, 4]] + [[0, 0], [0, 1]], rtol=1e-14)
    for train in (True, False):  # no running statistics: the same in both modes
        np.testing.assert_array_equal(layer.forward(X, train=train)[0], Y)
    dY = np.array([[[1.0, 0.0], [0.0, -1.0]]])
    dX = backward(dY)
    d = np.array([1.0, 0, 0, -4])  # dx̂ = dY · gamma
    s = np.sqrt(1.25 + 0.0001)
    expected = (d - d.mean() - xhat.ravel() * np.mean(d * xhat.ravel())) / s
    np.testing.assert_allclose(dX.ravel(), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.grads["gamma"], xhat * dY[0], rtol=1e-14)
    np.testing.assert_array_equal(layer.grads["beta"], dY[0])


@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 5), (3, 2, 3, 4)])
@pytest.mark.parametrize("make", [lambda: bp.BatchNorm(momentum=0.2, eps=1e-4),
                                  lambda: bp.LayerNorm(eps=1e-3)])
def test_gradients_in_training_mode_on_every_backend(backend, shape, make):
    """The layer between a Reshape and a Flatten (so a loss reads its output), with random gamma and
    beta, in a model and alone."""
    rng = np.random.default_rng(1)
    size = int(np.prod(shape[1:]))
    X, y = rng.normal(1.0, 2.0, size=(shape[0], size)), rng.normal(size=(shape[0], size))
    model = bp.Sequential([bp.Reshape(shape[1:]), make(), bp.Flatten()], input_shape=(size,), device=backend,
                          dtype="float64")
    model.set_parameters({name: rng.normal(size=p.shape) for name, p in model.parameters().items()})
    result = bp.gradcheck(model, X, y, loss="mse")
    assert result.ok and result.worst < 1e-6
    alone = bp.gradcheck(model.layers[1], X.reshape(shape))
    assert alone.ok and alone.worst < 1e-6


def test_a_network_with_batchnorm_gradchecks_on_every_backend(backend):
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(10, 4)), rng.normal(size=(10, 2))
    model = bp.Sequential([bp.Dense(4, 6), bp.BatchNorm(), "tanh", bp.LayerNorm(), bp.Dense(6, 2)],
                          device=backend, dtype="float64", seed=3)
    result = bp.gradcheck(model, X, y, loss="mse")
    assert result.ok and result.worst < 1e-6


# -- PyTorch as the oracle ------------------------------------------------------------
def _torch_norm(torch, layer, shape):
    if isinstance(layer, bp.BatchNorm):
        cls = torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d
        twin = cls(shape[1], eps=layer.eps, momentum=layer.momentum, dtype=torch.float64)
    else:
        twin = torch.nn.LayerNorm(shape[1:], eps=layer.eps, dtype=torch.float64)
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(np.asarray(layer.params["gamma"]).copy()))
        twin.bias.copy_(torch.from_numpy(np.asarray(layer.params["beta"]).copy()))
    return twin


@pytest.mark.parametrize("shape", [(8, 3), (6, 3, 5), (5, 2, 4, 3)])
@pytest.mark.parametrize("kind", ["batchnorm", "layernorm"])
def test_forward_backward_and_running_statistics_equal_torch(shape, kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    layer = bp.BatchNorm(momentum=0.25, eps=1e-4) if kind == "batchnorm" else bp.LayerNorm(eps=1e-4)
    bp.Sequential([layer], input_shape=shape[1:], dtype="float64")
    layer.params["gamma"][...] = rng.normal(size=layer.params["gamma"].shape)
    layer.params["beta"][...] = rng.normal(size=layer.params["beta"].shape)
    twin = _torch_norm(torch, layer, shape)
    for step, train in enumerate([True, True, True, False]):
        twin.train(train)
        X, dY = rng.normal(step, 2.0, size=shape), rng.normal(size=shape)
        Xt = torch.from_numpy(X).requires_grad_(True)
        Yt = twin(Xt)
        Yt.backward(torch.from_numpy(dY))
        Y, backward = layer.forward(X, train=train)
        np.testing.assert_allclose(Y, Yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(backward(dY), Xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.grads["gamma"], twin.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.grads["beta"], twin.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
        twin.zero_grad()
        if kind == "batchnorm":
            np.testing.assert_allclose(layer.buffers["running_mean"], twin.running_mean.numpy(), rtol=1e-12)
            np.testing.assert_allclose(layer.buffers["running_var"], twin.running_var.numpy(), rtol=1e-12)


def _norm_net(input_shape):
    """Dense -> Reshape to maps -> BatchNorm over channels -> relu -> LayerNorm -> Flatten -> Dense."""
    return bp.Sequential([bp.Dense(2 * 3 * 2), bp.Reshape((2, 3, 2)), bp.BatchNorm(momentum=0.2), "relu",
                          bp.LayerNorm(), bp.Flatten(), bp.Dense(2)], input_shape=input_shape,
                         dtype="float64", seed=4)


def test_five_sgd_steps_equal_torch_within_1e_10():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 2))
    model = _norm_net((5,))
    p = {k: torch.from_numpy(np.asarray(v).copy()).requires_grad_(True)
         for k, v in model.parameters().items()}
    bn = torch.nn.BatchNorm2d(2, momentum=0.2, dtype=torch.float64)
    optimizer = torch.optim.SGD(list(p.values()), lr=0.1, momentum=0.9)

    def twin(Xt):
        H = (Xt @ p["0.W"] + p["0.b"]).reshape(-1, 2, 3, 2)
        H = torch.nn.functional.batch_norm(H, bn.running_mean, bn.running_var, p["2.gamma"], p["2.beta"],
                                           training=True, momentum=0.2, eps=1e-5)
        H = torch.nn.functional.layer_norm(torch.relu(H), (2, 3, 2), p["4.gamma"], p["4.beta"], eps=1e-5)
        return H.reshape(-1, 12) @ p["6.W"] + p["6.b"]

    for _ in range(5):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(twin(torch.from_numpy(X)), torch.from_numpy(y)).backward()
        optimizer.step()
    model.fit(X, y, loss="mse", optimizer="sgd", lr=0.1, momentum=0.9, epochs=5, batch_size=12,
              shuffle=False, validation_split=0.0)
    for name, value in model.parameters().items():
        np.testing.assert_allclose(value, p[name].detach().numpy(), rtol=0, atol=1e-10, err_msg=name)
    np.testing.assert_allclose(model.layers[2].buffers["running_mean"], bn.running_mean.numpy(), atol=1e-10)
    np.testing.assert_allclose(model.layers[2].buffers["running_var"], bn.running_var.numpy(), atol=1e-10)


# -- the running statistics go wherever the model goes -----------------------------------
def _trained_norm_net():
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(20, 5)), rng.normal(size=(20, 2))
    model = _norm_net((5,))
    model.fit(X, y, loss="mse", optimizer="adam", lr=0.01, epochs=3, batch_size=5)
    running = {k: np.asarray(v).copy() for k, v in model.layers[2].buffers.items()}
    assert not np.allclose(running["running_mean"], 0.0)  # training moved them
    return model, X, running


def test_checkpoints_and_pickles_keep_the_running_statistics(tmp_path):
    model, X, running = _trained_norm_net()
    bp.checkpoint.save(model, str(tmp_path / "n.safetensors"))
    loaded = bp.checkpoint.load(str(tmp_path / "n.safetensors")).model
    for copy in (loaded, pickle.loads(pickle.dumps(model))):
        for k, v in running.items():
            np.testing.assert_array_equal(copy.layers[2].buffers[k], v)
        assert copy.layers[2].config() == model.layers[2].config()
        np.testing.assert_array_equal(copy.predict(X), model.predict(X))


def test_to_strict_moves_the_buffers_and_gives_the_same_outputs():
    model, X, running = _trained_norm_net()
    moved = model.to("strict")
    for k, v in running.items():
        assert_belongs(moved.layers[2].buffers[k], moved.backend, "float64", v.shape)
        np.testing.assert_array_equal(_host(moved.backend, moved.layers[2].buffers[k]), v)
    for train in (False, True):
        with model.backend.activate():
            ours = model.forward(X, train=train)[0]
        with moved.backend.activate():
            theirs = moved.forward(moved.backend.asarray(X, "float64"), train=train)[0]
        np.testing.assert_allclose(_host(moved.backend, theirs), ours, rtol=1e-13, atol=1e-13)


def test_inference_reads_the_running_statistics_and_changes_nothing():
    model, X, running = _trained_norm_net()
    first = model.predict(X)
    np.testing.assert_array_equal(model.predict(X), first)
    for k, v in running.items():
        np.testing.assert_array_equal(model.layers[2].buffers[k], v)


# -- refusals -----------------------------------------------------------------------------
@pytest.mark.parametrize("make, message", [
    (lambda: bp.BatchNorm(momentum=1.5), r"BatchNorm momentum must be a number in \[0, 1\]"),
    (lambda: bp.BatchNorm(eps=0), "BatchNorm eps must be a positive number"),
    (lambda: bp.BatchNorm(num_features=0), "num_features must be a positive integer"),
    (lambda: bp.LayerNorm(eps=-1.0), "LayerNorm eps must be a positive number"),
    (lambda: bp.LayerNorm(normalized_shape=(3, 0)), "normalized_shape must be positive sizes"),
    (lambda: bp.Sequential([bp.BatchNorm()], input_shape=(1, 2, 3, 4)),
     r"BatchNorm takes \(features,\), .* got \(1, 2, 3, 4\)"),
    (lambda: bp.Sequential([bp.BatchNorm(num_features=3)], input_shape=(4,)),
     r"a BatchNorm of 3 channels got samples of shape \(4,\)"),
    (lambda: bp.Sequential([bp.LayerNorm(normalized_shape=(3,))], input_shape=(4,)),
     r"over samples of shape \(3,\) got samples of shape \(4,\)"),
])
def test_bad_settings_and_shapes_are_refused_in_one_line(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_a_training_batch_of_one_value_per_channel_is_refused():
    model = bp.Sequential([bp.Dense(3, 2), bp.BatchNorm()], dtype="float64")
    with pytest.raises(DataError, match="BatchNorm needs more than one value per channel in training"):
        model.forward(np.ones((1, 3)), train=True)
    model.forward(np.ones((1, 3)), train=False)  # inference takes one sample


def _layernorm_nets():
    """LayerNorm first (R{X} None), and after layers with parameters, over (features,) and maps."""
    first = [bp.LayerNorm(), bp.Dense(3), "tanh", bp.Reshape((3, 1)), bp.LayerNorm(), bp.Flatten(),
             bp.Dense(2)]
    maps = [bp.Dense(6), bp.Reshape((2, 3)), bp.LayerNorm(), bp.Flatten(), "tanh", bp.Dense(2)]
    return [bp.Sequential(layers, input_shape=(4,), dtype="float64", seed=1) for layers in (first, maps)]


def test_layernorms_jacobian_rows_and_r_operator_agree_with_differences():
    from backprop.hessian import hessian
    from backprop.host.gradcheck import jacobian_check

    rng = np.random.default_rng(9)
    X, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 2))
    for model in _layernorm_nets():
        model.set_parameters({k: rng.normal(size=v.shape) for k, v in model.parameters().items()})
        result = jacobian_check(model, X)
        assert result.ok and result.worst < 1e-8
        _, g, H = hessian(model, bp.losses.get("mse"), X, y)
        numeric = hessian_by_differences(model, X, y)
        # The differences' truncation error (shrinks as the step squared) is ~1e-9 of the largest entry.
        assert np.abs(H - numeric).max() < 1e-8 * np.abs(H).max()
        model.loss_and_gradients(X, y, loss="mse")
        np.testing.assert_allclose(g, model.flat_gradients(), rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["lm", "newton"])
def test_levenberg_marquardt_and_newton_train_through_layernorm(optimizer):
    rng = np.random.default_rng(10)
    X = rng.normal(size=(20, 4))
    y = np.stack([np.tanh(X[:, 0] - X[:, 1]), X[:, 2] * X[:, 3]], axis=1)
    model = _layernorm_nets()[1]
    model.fit(X, y, loss="mse", optimizer=optimizer, epochs=5)
    assert model.history["train_loss"][-1] < 0.75 * model.history["train_loss"][0]


def test_second_order_methods_refuse_batchnorm_in_one_line():
    X, y = np.random.default_rng(7).normal(size=(10, 2)), np.zeros(10)
    model = bp.Sequential([bp.Dense(2, 3), bp.BatchNorm(), "tanh", bp.Dense(3, 1)], dtype="float64")
    with pytest.raises(ConfigError, match="does not cover the BatchNorm layer"):
        model.fit(X, y, loss="mse", optimizer="lm", epochs=1)
    model.fit(X, y, loss="mse", optimizer="lbfgs", epochs=2)  # L-BFGS takes any network


class _Mirrored(Communicator):
    """Rank 0 of 2 whose peer holds the same part: the all-reduce doubles."""

    size = 2

    def allreduce(self, buffer):
        buffer *= 2.0
        return buffer

    def allreduce_host(self, values):
        return 2.0 * np.asarray(values, dtype=np.float64)


def test_data_parallel_statistics_are_each_ranks_own_part_of_the_batch():
    """Batch 4 over 2 ranks: rank 0 normalizes by, and moves its running statistics towards, its own
    2 rows' statistics (PyTorch's BatchNorm without SyncBatchNorm), not the global batch's."""
    X = np.random.default_rng(8).normal(size=(4, 3))
    model = bp.Sequential([bp.BatchNorm()], input_shape=(3,), dtype="float64")
    model.fit(X, np.zeros((4, 3)), loss="mse", optimizer="sgd", lr=1e-9, epochs=1, batch_size=4,
              shuffle=False, validation_split=0.0, comm=_Mirrored())
    buffers = model.layers[0].buffers
    np.testing.assert_allclose(buffers["running_mean"], 0.1 * X[:2].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(buffers["running_var"], 0.9 + 0.1 * X[:2].var(axis=0, ddof=1), rtol=1e-12)


def test_second_order_training_through_layernorm_and_a_residual_is_the_same_on_every_backend(other_backend):
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(8, 4)), rng.normal(size=(8, 2))
    found = []
    for device in ("cpu", other_backend):
        model = bp.Sequential([bp.Residual([bp.Dense(4), "tanh"]), bp.Reshape((2, 2)), bp.LayerNorm(),
                               bp.Flatten(), bp.Dense(2)], input_shape=(4,), dtype="float64", seed=1,
                              device=device)
        model.fit(X, y, loss="mse", optimizer="newton", epochs=2)
        model.fit(X, y, loss="mse", optimizer="lm", epochs=2)
        found.append(model.history["train_loss"])
    np.testing.assert_allclose(found[1], found[0], rtol=1e-10)
