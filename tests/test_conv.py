"""Conv1D and Conv2D: worked examples (a 3×3 image by hand, a plain NumPy loop as the oracle),
gradients against differences on every backend, including the sizes where col2im's slice-adds
overlap or skip entries, torch.nn.functional's forward and backward, a few SGD steps of a small
network against torch, the Jacobian rows and R-operator against differences, checkpoints and
pickles, and the one-line refusals."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

import backprop as bp
from backprop import layers, losses
from backprop.errors import ConfigError
from backprop.hessian import hessian
from backprop.host.gradcheck import jacobian_check
from conftest import hessian_by_differences, to_np

# (class, sample shape, settings): odd sizes where the windows overlap (kernel 3 stride 2), skip
# entries (kernel 5 stride 3 dilation 2: the dilated kernel has holes), pad more after ("same"
# with an even kernel), and 2-D settings that differ per axis.
CASES = [
    ("Conv1D", (3, 11), {"kernel_size": 3, "stride": 2}),
    ("Conv1D", (2, 17), {"kernel_size": 5, "stride": 3, "dilation": 2, "padding": 2}),
    ("Conv1D", (2, 10), {"kernel_size": 4, "padding": "same"}),
    ("Conv2D", (2, 7, 6), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("Conv2D", (2, 11, 9), {"kernel_size": (3, 2), "stride": (3, 1), "dilation": (2, 1), "padding": (1, 0)}),
    ("Conv2D", (2, 6, 7), {"kernel_size": 2, "padding": "same", "dilation": (1, 2)}),
]
IDS = [f"{name}-{'-'.join(f'{k}{v}' for k, v in kw.items())}" for name, _, kw in CASES]


def _layer(name, shape, settings, backend=None, seed=1):
    layer = getattr(bp, name)(4, **settings)
    layer.infer(shape)
    backend = backend or bp.get_backend("cpu")
    layer.build(backend, backend.dtype("float64"), backend.rng(seed))
    layer.params["b"] = backend.asarray(np.linspace(-0.5, 0.5, 4), "float64")  # nonzero biases
    return layer


def _pads(settings, spatial):
    """(before, after) per axis, worked out here from the settings as PyTorch documents them."""
    kernel, dilation = (np.broadcast_to(settings.get(k, d), spatial)
                        for k, d in (("kernel_size", 1), ("dilation", 1)))
    padding = settings.get("padding", 0)
    if padding == "same":
        return [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)]
    return [(p, p) for p in np.broadcast_to(padding, spatial)]


def _loop_conv(X, W, b, settings, dY):
    """The definition, entry by entry: Y[n, o, i] = b[o] + Σ_{c, k} W[o, c, k] X_pad[n, c, i·s + k·d],
    and its transpose for dX (every product's share added where it came from)."""
    spatial = X.ndim - 2
    stride, dilation = (tuple(np.broadcast_to(settings.get(k, 1), spatial)) for k in ("stride", "dilation"))
    pads = _pads(settings, spatial)
    Xp = np.pad(X, [(0, 0), (0, 0), *pads])
    kernel = W.shape[2:]
    out = [(Xp.shape[2 + a] - dilation[a] * (kernel[a] - 1) - 1) // stride[a] + 1 for a in range(spatial)]
    Y = np.zeros((X.shape[0], W.shape[0], *out))
    dXp = np.zeros_like(Xp)
    for n, o, c in itertools.product(range(X.shape[0]), range(W.shape[0]), range(X.shape[1])):
        for i in itertools.product(*(range(m) for m in out)):
            for k in itertools.product(*(range(m) for m in kernel)):
                at = (n, c, *(i[a] * stride[a] + k[a] * dilation[a] for a in range(spatial)))
                Y[(n, o, *i)] += W[(o, c, *k)] * Xp[at]
                dXp[at] += W[(o, c, *k)] * dY[(n, o, *i)]
    Y += b.reshape(1, -1, *[1] * spatial)
    crop = tuple(slice(lo, lo + s) for (lo, _), s in zip(pads, X.shape[2:]))
    return Y, dXp[(slice(None), slice(None), *crop)]


def test_a_three_by_three_image_worked_by_hand():
    """X = 1..9, W = [[1, 2], [3, 4]], b = 0.5. Valid: each output is its window dotted with W;
    dY = 1 puts a copy of W at each window (dX adds them up), dW sums the windows, db counts them.
    Padding 1, stride 2: the windows (0,0), (0,2), (2,0), (2,2) of the zero-padded 5×5 image."""
    X = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    layer = bp.Conv2D(1, 2, in_channels=1)
    backend = bp.get_backend("cpu")
    layer.build(backend, backend.dtype("float64"), backend.rng(0))
    layer.params = {"W": np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), "b": np.array([0.5])}
    Y, backward = layer.forward(X)
    np.testing.assert_array_equal(Y, [[[[37.5, 47.5], [67.5, 77.5]]]])
    dX = backward(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(dX, [[[[1, 3, 2], [4, 10, 6], [3, 7, 4]]]])
    np.testing.assert_array_equal(layer.grads["W"], [[[[12, 16], [24, 28]]]])
    np.testing.assert_array_equal(layer.grads["b"], [4])
    layer.grads = {}
    assert layer.forward(X, input_grad=False)[1](np.ones((1, 1, 2, 2))) is None  # a first layer: no dX
    np.testing.assert_array_equal(layer.grads["W"], [[[[12, 16], [24, 28]]]])
    strided = bp.Conv2D(1, 2, stride=2, padding=1, in_channels=1)
    strided.build(backend, backend.dtype("float64"), backend.rng(0))
    strided.params = layer.params
    Y, backward = strided.forward(X)
    np.testing.assert_array_equal(Y, [[[[4.5, 18.5], [36.5, 77.5]]]])
    # each entry is met by exactly one window: dX is W's entry that met it
    np.testing.assert_array_equal(backward(np.ones((1, 1, 2, 2))), [[[[4, 3, 4], [2, 1, 2], [4, 3, 4]]]])


@pytest.mark.parametrize("name, shape, settings", CASES, ids=IDS)
def test_forward_and_input_gradient_equal_the_definitions_loops(name, shape, settings):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, *shape))
    layer = _layer(name, shape, settings)
    Y, backward = layer.forward(X)
    dY = rng.normal(size=Y.shape)
    expected_Y, expected_dX = _loop_conv(X, np.asarray(layer.params["W"]), np.asarray(layer.params["b"]),
                                         settings, dY)
    np.testing.assert_allclose(Y, expected_Y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(backward(dY), expected_dX, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, shape, settings", CASES, ids=IDS)
def test_the_layer_gradchecks_on_every_backend(backend, name, shape, settings):
    X = np.random.default_rng(1).normal(size=(3, *shape))
    layer = getattr(bp, name)(3, **settings)
    layer.infer(shape)
    with backend.activate():
        result = bp.gradcheck(layer, backend.asarray(X, "float64"))
    assert result.ok and result.worst < 1e-7, str(result)


def _conv_model(device="cpu", seed=3, dtype="float64"):
    # two convolutions, so the second one's dX (col2im) and the R-operator's R{X} both matter
    return bp.Sequential([bp.Conv2D(3, 3, stride=2, padding=1), "tanh", bp.Conv2D(2, 2, dilation=(1, 2)),
                          "tanh", bp.Flatten(), bp.Dense(2)], input_shape=(2, 7, 7), dtype=dtype,
                         seed=seed, device=device)


def test_a_model_of_convolutions_gradchecks_on_every_backend(backend):
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(4, 2, 7, 7)), rng.normal(size=(4, 2))
    result = bp.gradcheck(_conv_model(backend), X, y, loss="mse")
    assert result.ok and result.worst < 1e-7, str(result)


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is optional; install it to compare against it")


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("name, shape, settings", CASES, ids=IDS)
def test_forward_and_backward_equal_torch_functional(name, shape, settings):
    torch = _torch()
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3, *shape))
    layer = _layer(name, shape, settings)
    Y, backward = layer.forward(X)
    dY = rng.normal(size=Y.shape)
    dX = backward(dY)
    Xt = torch.tensor(X, requires_grad=True)
    Wt = torch.tensor(np.asarray(layer.params["W"]), requires_grad=True)
    bt = torch.tensor(np.asarray(layer.params["b"]), requires_grad=True)
    conv = torch.nn.functional.conv1d if name == "Conv1D" else torch.nn.functional.conv2d
    theirs = conv(Xt, Wt, bt, **{k: v for k, v in settings.items() if k != "kernel_size"})
    theirs.backward(torch.tensor(dY))
    for ours, other in ((Y, theirs), (dX, Xt.grad), (layer.grads["W"], Wt.grad), (layer.grads["b"], bt.grad)):
        np.testing.assert_allclose(ours, other.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_five_sgd_steps_of_a_small_network_equal_torch():
    torch = _torch()
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(12, 2, 15)), rng.integers(0, 3, 12)
    model = bp.Sequential([bp.Conv1D(4, 3, stride=2, padding=1), "relu", bp.Conv1D(3, 4, padding="same"),
                           "tanh", bp.Flatten(), bp.Dense(3)], input_shape=(2, 15), dtype="float64", seed=6)
    params = model.parameters()
    twin = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3, stride=2, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv1d(4, 3, 4, padding="same"), torch.nn.Tanh(), torch.nn.Flatten(),
                               torch.nn.Linear(24, 3)).double()
    theirs = [twin[0].weight, twin[0].bias, twin[2].weight, twin[2].bias, twin[5].weight, twin[5].bias]
    with torch.no_grad():
        for name, p in zip(params, theirs):
            p.copy_(torch.from_numpy(np.asarray(params[name]).T.copy() if name == "5.W" else params[name]))
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.1)
    for _ in range(5):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.from_numpy(X)), torch.from_numpy(y)).backward()
        optimizer.step()
    model.fit(X, y, loss="ce", optimizer="gd", lr=0.1, epochs=5, batch_size="full")
    for name, p in zip(model.parameters(), theirs):
        expected = p.detach().numpy().T if name == "5.W" else p.detach().numpy()
        np.testing.assert_allclose(model.parameters()[name], expected, rtol=1e-10, atol=1e-13)


def test_the_jacobian_rows_and_the_hessian_agree_with_differences():
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(3, 2, 7, 7)), rng.normal(size=(3, 2))
    model = _conv_model()
    assert jacobian_check(model, X).ok
    Xd, T = model.backend.asarray(X, "float64"), model.backend.asarray(y, "float64")
    _, g, H = hessian(model, losses.get("mse"), Xd, T)
    numeric = hessian_by_differences(model, X, y)
    np.testing.assert_allclose(to_np(H), numeric, atol=1e-7)
    model.loss_and_gradients(X, y, loss="mse")
    np.testing.assert_allclose(to_np(g), to_np(model.flat_gradients()), rtol=1e-12)
    model.fit(X, y, loss="mse", optimizer="lm", epochs=2)  # trains: nothing refused


def test_a_conv_model_saves_loads_pickles_and_moves_to_strict(tmp_path):
    model = bp.Sequential([bp.Conv1D(3, 5, stride=2, padding="valid", init="he_normal", bias=0.1), "relu",
                           bp.Flatten(), bp.Dense(2)], input_shape=(2, 20), seed=4)
    X = np.random.default_rng(8).normal(size=(5, 2, 20))
    expected = model.predict(X, loss="mse")
    bp.checkpoint.save(model, str(tmp_path / "c.safetensors"))
    loaded = bp.checkpoint.load(str(tmp_path / "c.safetensors")).model
    assert loaded.layers[0].config() == model.layers[0].config()
    np.testing.assert_array_equal(loaded.predict(X, loss="mse"), expected)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(X, loss="mse"), expected)
    np.testing.assert_array_equal(model.to("strict").predict(X, loss="mse"), expected)


def test_settings_round_trip_through_config():
    layer = bp.Conv2D(8, (3, 5), stride=2, padding=(1, 2), dilation=(1, 2), in_channels=3)
    assert layer.config() == {"out_channels": 8, "kernel_size": [3, 5], "stride": 2, "padding": [1, 2],
                              "dilation": [1, 2], "init": "auto", "bias": 0.0, "in_channels": 3}
    assert bp.Conv2D.from_config(layer.config()).config() == layer.config()
    assert layer.param_shapes() == {"W": (8, 3, 3, 5), "b": (8,)}
    assert layer.output_shape((3, 10, 10)) == (8, 5, 3)
    assert {"conv1d", "conv2d"} <= set(layers.names())
    assert layers.class_of("conv2d") is bp.Conv2D


@pytest.mark.parametrize("make, message", [
    (lambda: bp.Conv1D(4, 3, padding="full"), "padding must be 'valid', 'same' or a number"),
    (lambda: bp.Conv1D(4, 3, stride=2, padding="same"), "padding='same' needs stride 1"),
    (lambda: bp.Conv2D(4, (3, 3, 3)), "kernel_size must be an integer or 2 integers >= 1"),
    (lambda: bp.Conv1D(0, 3), "out_channels must be an integer >= 1"),
    (lambda: bp.Conv1D(4, 3, padding=-1), "padding must be an integer >= 0"),
    (lambda: bp.Conv1D(4, 3, bias="textbook"), "bias must be a number"),
])
def test_bad_settings_are_refused_in_one_line(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


@pytest.mark.parametrize("layer, shape, message", [
    (bp.Conv2D(4, 3), (1, 8), r"Conv2D takes \(channels, height, width\) samples, got \(1, 8\)"),
    (bp.Conv1D(4, 5, dilation=3), (1, 12), r"does not fit samples of shape \(1, 12\)"),
    (bp.Conv1D(4, 3, in_channels=2), (3, 12), "expecting 2 input channels"),
])
def test_an_input_the_layer_cannot_take_is_refused_when_the_model_is_built(layer, shape, message):
    with pytest.raises(ConfigError, match=message):
        bp.Sequential([layer, bp.Flatten(), bp.Dense(1)], input_shape=shape)


@pytest.mark.parametrize("following, limit", [("relu", np.sqrt(6 / 150)), ("tanh", np.sqrt(6 / (150 + 400)))])
def test_auto_init_counts_every_kernel_entry_in_the_fans(following, limit):
    """He before a rectifier (fan in = 6·5·5), Glorot otherwise (fan out = 16·5·5), as PyTorch's."""
    model = bp.Sequential([bp.Conv2D(16, 5), following, bp.Flatten(), bp.Dense(2)], input_shape=(6, 14, 14),
                          dtype="float64", seed=0)
    W = np.asarray(model.parameters()["0.W"])
    assert W.shape == (16, 6, 5, 5)
    assert 0.99 * limit < np.abs(W).max() <= limit
