"""Pooling: MaxPool1D/2D, AvgPool1D/2D, GlobalAvgPool1D/2D.

Oracles: worked examples by hand (a 4x4 map, ties, -inf padding), a plain NumPy loop over every
window (ties included: ``np.argmax`` picks the first entry in C order, the rule the layers
document), PyTorch's functional pools and a torch network trained beside ours, and central
differences (``bp.gradcheck``) on every CPU backend.
"""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

import backprop as bp
from backprop import losses
from backprop.errors import ConfigError
from backprop.hessian import hessian
from backprop.host.gradcheck import jacobian_check
from conftest import hessian_by_differences, to_np


def _run(layer, X, dY, backend=None):
    """(Y, dX) of ``layer`` on host ``X``, ``dY``, computed on ``backend`` (NumPy by default)."""
    backend = backend or bp.get_backend("cpu")
    with backend.activate():
        Y, backward = layer.forward(backend.asarray(X, "float64"))
        dX = backward(backend.asarray(dY, "float64"))
    return to_np(Y), to_np(dX)


# -- worked examples by hand ---------------------------------------------------------------
MAP = np.array([[1.0, 5, 2, 0],
                [3, 4, 8, 6],
                [7, -1, 0, 2],
                [9, 3, 4, 10]])[None, None]  # (1, 1, 4, 4)
GRAD = np.array([[1.0, 2], [3, 4]])[None, None]


def test_a_4x4_map_through_maxpool2d_of_2_by_hand(backend):
    """Windows {1,5,3,4} {2,0,8,6} {7,-1,9,3} {0,2,4,10}: their maxima, and dY back at them."""
    Y, dX = _run(bp.MaxPool2D(2), MAP, GRAD, backend)
    np.testing.assert_array_equal(Y, [[[[5, 8], [9, 10]]]])
    np.testing.assert_array_equal(dX, [[[[0, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0], [3, 0, 0, 4]]]])


def test_a_4x4_map_through_avgpool2d_of_2_by_hand(backend):
    """Means 13/4, 16/4, 18/4, 16/4; each dY spread as dY/4 over its window."""
    Y, dX = _run(bp.AvgPool2D(2), MAP, GRAD, backend)
    np.testing.assert_array_equal(Y, [[[[3.25, 4], [4.5, 4]]]])
    q = np.array([[0.25, 0.5], [0.75, 1.0]])
    np.testing.assert_array_equal(dX, [[np.kron(q, np.ones((2, 2)))]])


def test_ties_send_the_gradient_to_the_first_entry_in_c_order(backend):
    """Window [[3, 7], [7, 7]]: the 7 at row 0, column 1 (first row first); an all-equal window:
    its top-left entry. Overlapping 1-D windows over [1, 4, 4, 2]: the tie [4, 4] goes to the
    first 4, which so gathers two windows' gradients."""
    X = np.array([[3.0, 7, 2, 2], [7, 7, 2, 2]])[None, None]
    Y, dX = _run(bp.MaxPool2D(2), X, np.ones((1, 1, 1, 2)), backend)
    np.testing.assert_array_equal(Y, [[[[7, 2]]]])
    np.testing.assert_array_equal(dX, [[[[0, 1, 1, 0], [0, 0, 0, 0]]]])
    X, dY = np.array([[[1.0, 4, 4, 2]]]), np.array([[[1.0, 10, 100]]])
    Y, dX = _run(bp.MaxPool1D(2, stride=1), X, dY, backend)
    np.testing.assert_array_equal(Y, [[[4, 4, 4]]])
    np.testing.assert_array_equal(dX, [[[0, 11, 100, 0]]])


def test_padding_is_minus_infinity_for_max_and_counted_zeros_for_average(backend):
    """Pool 3, stride 2, padding 1 over [-5, -2, -7, -1, -3]: windows [pad, -5, -2], [-2, -7, -1],
    [-1, -3, pad]. Max: -2, -1, -1 (a zero padding would win all three). Average (PyTorch's
    count_include_pad=True): -7/3, -10/3, -4/3; its backward dY/3 to every real entry of a window."""
    X, dY = np.array([[[-5.0, -2, -7, -1, -3]]]), np.array([[[1.0, 2, 3]]])
    Y, dX = _run(bp.MaxPool1D(3, stride=2, padding=1), X, dY, backend)
    np.testing.assert_array_equal(Y, [[[-2, -1, -1]]])
    np.testing.assert_array_equal(dX, [[[0, 1, 0, 5, 0]]])
    Y, dX = _run(bp.AvgPool1D(3, stride=2, padding=1), X, dY, backend)
    np.testing.assert_allclose(Y, [[[-7 / 3, -10 / 3, -4 / 3]]], rtol=1e-15)
    np.testing.assert_allclose(dX, [[[1 / 3, 1, 2 / 3, 5 / 3, 1]]], rtol=1e-15)


def test_global_average_pools_by_hand(backend):
    X = np.stack([np.arange(1.0, 7).reshape(2, 3), np.full((2, 3), -2.0)])[None]  # (1, 2, 2, 3)
    Y, dX = _run(bp.GlobalAvgPool2D(), X, np.array([[6.0, 12]]), backend)
    np.testing.assert_array_equal(Y, [[3.5, -2]])
    np.testing.assert_array_equal(dX, [[np.ones((2, 3)), np.full((2, 3), 2.0)]])
    Y, dX = _run(bp.GlobalAvgPool1D(), X[:, :, 0], np.array([[3.0, 6]]), backend)
    np.testing.assert_array_equal(Y, [[2, -2]])
    np.testing.assert_array_equal(dX, [[[1, 1, 1], [2, 2, 2]]])


# -- a plain loop over every window: the independent oracle -------------------------------
def _loop_pool(X, dY, kind, pool, stride, padding):
    """Forward and backward by loops over samples, channels and windows (N, C, *spatial)."""
    d = len(pool)
    fill = -np.inf if kind == "max" else 0.0
    Xp = np.pad(X, [(0, 0), (0, 0)] + [(p, p) for p in padding], constant_values=fill)
    out = [(n + 2 * p - k) // s + 1 for n, k, s, p in zip(X.shape[2:], pool, stride, padding)]
    Y, dXp = np.zeros(X.shape[:2] + tuple(out)), np.zeros_like(Xp)
    for n, c, *at in itertools.product(*map(range, X.shape[:2] + tuple(out))):
        corner = [a * s for a, s in zip(at, stride)]
        where = (n, c, *(slice(lo, lo + k) for lo, k in zip(corner, pool)))
        window, g = Xp[where], dY[(n, c, *at)]
        if kind == "max":
            first = np.unravel_index(np.argmax(window), pool)  # the first maximum in C order
            Y[(n, c, *at)] = window[first]
            dXp[(n, c, *(lo + f for lo, f in zip(corner, first)))] += g
        else:
            Y[(n, c, *at)] = window.sum() / np.prod(pool)
            dXp[where] += g / np.prod(pool)
    inner = (slice(None), slice(None), *(slice(p, p + m) for p, m in zip(padding, X.shape[2:])))
    assert d in (1, 2)
    return Y, dXp[inner]


SETTINGS = [  # (dims, pool, stride, padding, spatial): overlapping, gapped, padded, odd sizes
    (1, (2,), (2,), (0,), (7,)), (1, (3,), (1,), (1,), (6,)), (1, (3,), (2,), (1,), (8,)),
    (1, (2,), (3,), (0,), (9,)), (2, (2, 2), (2, 2), (0, 0), (5, 5)), (2, (3, 3), (2, 2), (1, 1), (7, 6)),
    (2, (2, 3), (1, 2), (1, 1), (4, 7)), (2, (3, 2), (3, 1), (0, 1), (8, 5)),
    (2, (1, 1), (2, 2), (0, 0), (3, 4)),
]
CLASSES = {("max", 1): bp.MaxPool1D, ("max", 2): bp.MaxPool2D,
           ("avg", 1): bp.AvgPool1D, ("avg", 2): bp.AvgPool2D}


def _layer(kind, dims, pool, stride, padding):
    return CLASSES[kind, dims](pool, stride=stride, padding=padding)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dims, pool, stride, padding, spatial", SETTINGS)
def test_every_window_as_a_loop_computes_it_ties_included(kind, dims, pool, stride, padding, spatial):
    """Small integers: many ties, each resolved as the loop's first maximum."""
    rng = np.random.default_rng(sum(spatial))
    X = rng.integers(-2, 3, (3, 2, *spatial)).astype(float)
    layer = _layer(kind, dims, pool, stride, padding)
    dY = rng.normal(size=(3, *layer.output_shape((2, *spatial))))
    Y, dX = _run(layer, X, dY)
    Y_loop, dX_loop = _loop_pool(X, dY, kind, pool, stride, padding)
    np.testing.assert_allclose(Y, Y_loop, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dX, dX_loop, rtol=1e-14, atol=1e-15)


# -- PyTorch's pools -----------------------------------------------------------------------
def _torch_pool(kind, dims, pool, stride, padding):
    F = pytest.importorskip("torch").nn.functional
    fn = getattr(F, f"{kind}_pool{dims}d")
    return lambda t: fn(t, pool, stride, padding)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dims, pool, stride, padding, spatial", SETTINGS)
def test_forward_and_backward_equal_torchs(kind, dims, pool, stride, padding, spatial):
    """Normal inputs (no ties: PyTorch's pick among tied entries is its own), floor mode."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(spatial) + sum(pool))
    X = rng.normal(size=(4, 3, *spatial))
    layer = _layer(kind, dims, pool, stride, padding)
    Xt = torch.tensor(X, requires_grad=True)
    Yt = _torch_pool(kind, dims, pool, stride, padding)(Xt)
    dY = rng.normal(size=tuple(Yt.shape))
    Yt.backward(torch.from_numpy(dY))
    Y, dX = _run(layer, X, dY)
    assert Y.shape == tuple(Yt.shape) == (4, *layer.output_shape((3, *spatial)))
    np.testing.assert_allclose(Y, Yt.detach().numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("dims", [1, 2])
def test_global_pools_equal_torchs_adaptive_average_pool_of_size_one(dims):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(dims)
    X = rng.normal(size=(5, 3, *(7, 6)[:dims]))
    Xt = torch.tensor(X, requires_grad=True)
    Yt = getattr(torch.nn.functional, f"adaptive_avg_pool{dims}d")(Xt, 1).flatten(1)
    dY = rng.normal(size=(5, 3))
    Yt.backward(torch.from_numpy(dY))
    Y, dX = _run((bp.GlobalAvgPool1D, bp.GlobalAvgPool2D)[dims - 1](), X, dY)
    np.testing.assert_allclose(Y, Yt.detach().numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=1e-14, atol=1e-15)


# -- central differences on every backend --------------------------------------------------
def _untied(shape, seed):
    """Entries spaced 0.01 apart at least, shuffled: the differences' steps (1e-6) never change a
    window's argmax, which a tie would (max pooling is not differentiable there)."""
    values = np.random.default_rng(seed).permutation(int(np.prod(shape))) * 0.01 - 0.3
    return values.reshape(shape)


@pytest.mark.parametrize("make", [
    lambda: bp.MaxPool1D(3, stride=2, padding=1), lambda: bp.MaxPool1D(2, stride=1),
    lambda: bp.MaxPool2D(2), lambda: bp.MaxPool2D((3, 2), stride=(1, 2), padding=1),
    lambda: bp.AvgPool1D(3, stride=2, padding=1), lambda: bp.AvgPool2D(3, stride=1, padding=1),
    lambda: bp.AvgPool2D(2, stride=3), bp.GlobalAvgPool1D, bp.GlobalAvgPool2D,
], ids=["max1-pad", "max1-overlap", "max2", "max2-mixed", "avg1-pad", "avg2-pad", "avg2-gap", "gap1", "gap2"])
def test_each_pool_alone_gradchecks_on_every_backend(make, backend):
    layer = make()
    shape = (3, 2, 7) if layer.dims == 1 else (3, 2, 5, 6)
    with backend.activate():
        X = backend.asarray(_untied(shape, 0), "float64")
    result = bp.gradcheck(layer, X)
    assert result.ok and result.worst < 1e-8, str(result)


# -- small networks using them ---------------------------------------------------------------
# (shape the Dense output is rearranged to, the pool, its torch twin's factory arguments)
NETWORKS = {
    "maxpool2d": ((1, 4, 4), lambda: bp.MaxPool2D(2), ("MaxPool2d", 2)),
    "maxpool2d-overlap": ((2, 3, 5), lambda: bp.MaxPool2D((2, 3), stride=(1, 2), padding=1),
                          ("MaxPool2d", (2, 3), (1, 2), 1)),
    "avgpool2d": ((1, 4, 4), lambda: bp.AvgPool2D(3, stride=2, padding=1), ("AvgPool2d", 3, 2, 1)),
    "maxpool1d": ((2, 8), lambda: bp.MaxPool1D(3, stride=2, padding=1), ("MaxPool1d", 3, 2, 1)),
    "avgpool1d": ((2, 7), lambda: bp.AvgPool1D(2), ("AvgPool1d", 2)),
    "globalavgpool2d": ((2, 4, 4), bp.GlobalAvgPool2D, ("AdaptiveAvgPool2d", 1)),
    "globalavgpool1d": ((2, 8), bp.GlobalAvgPool1D, ("AdaptiveAvgPool1d", 1)),
}


def _network(name, device="cpu"):
    """Dense(3 -> size) -> tanh -> Reshape -> the pool -> Flatten -> Dense(2): the pool's backward
    feeds the first Dense's gradients."""
    shape, pool, _ = NETWORKS[name]
    layers = [bp.Dense(3, int(np.prod(shape))), "tanh", bp.Reshape(shape), pool(), bp.Flatten(), bp.Dense(2)]
    return bp.Sequential(layers, dtype="float64", seed=4, device=device)


def _data(n=10):
    rng = np.random.default_rng(5)
    return rng.normal(size=(n, 3)), rng.normal(size=(n, 2))


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_a_network_using_each_pool_gradchecks_on_every_backend(name, backend):
    X, y = _data()
    result = bp.gradcheck(_network(name, backend), X, y, loss="mse")
    assert result.ok and result.worst < 1e-7, str(result)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_five_sgd_steps_equal_torchs_in_float64(name):
    torch = pytest.importorskip("torch")
    shape, _, (module, *args) = NETWORKS[name]
    model = _network(name)
    first, last = model.layers[0], model.layers[-1]
    linears = [torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
               for layer in (first, last)]
    with torch.no_grad():
        for linear, layer in zip(linears, (first, last)):
            linear.weight.copy_(torch.from_numpy(to_np(layer.params["W"]).T.copy()))
            linear.bias.copy_(torch.from_numpy(to_np(layer.params["b"]).copy()))
    twin = torch.nn.Sequential(linears[0], torch.nn.Tanh(), torch.nn.Unflatten(1, shape),
                               getattr(torch.nn, module)(*args), torch.nn.Flatten(), linears[1])
    X, y = _data()
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.1)
    for _ in range(5):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(twin(torch.from_numpy(X)), torch.from_numpy(y)).backward()
        optimizer.step()
    model.fit(X, y, loss="mse", optimizer="gd", lr=0.1, epochs=5, batch_size="full")
    params = model.parameters()
    for i, linear in zip((0, 5), linears):
        W, b = linear.weight.detach().numpy().T, linear.bias.detach().numpy()
        np.testing.assert_allclose(to_np(params[f"{i}.W"]), W, rtol=0, atol=1e-10)
        np.testing.assert_allclose(to_np(params[f"{i}.b"]), b, rtol=0, atol=1e-10)
    assert np.abs(to_np(params["0.W"]) - to_np(_network(name).parameters()["0.W"])).max() > 1e-3  # it moved


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_newtons_hessian_and_levenberg_marquardts_jacobian_cover_them(name):
    """H by the R-operator against differences of the backward pass's gradients; J against
    differences of the outputs (the pools are piecewise linear: exact away from ties)."""
    X, y = _data(6)
    model = _network(name)
    assert jacobian_check(model, X).ok
    Xd, T = model.backend.asarray(X, "float64"), model.backend.asarray(y, "float64")
    _, g, H = hessian(model, losses.get("mse"), Xd, T)
    numeric = hessian_by_differences(model, X, y)
    np.testing.assert_allclose(to_np(H), numeric, atol=1e-7)
    model.loss_and_gradients(X, y, loss="mse")
    np.testing.assert_allclose(to_np(g), to_np(model.flat_gradients()), rtol=1e-12)
    model.fit(X, y, loss="mse", optimizer="newton", epochs=1)  # refused by neither method
    model.fit(X, y, loss="mse", optimizer="lm", epochs=1)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_a_network_saves_loads_pickles_and_moves_to_strict(name, tmp_path):
    X, y = _data()
    model = _network(name)
    model.fit(X, y, loss="mse", optimizer="adam", epochs=2, batch_size=5)
    expected = model.predict(X, loss="mse")
    bp.checkpoint.save(model, str(tmp_path / "p.safetensors"))
    loaded = bp.checkpoint.load(str(tmp_path / "p.safetensors")).model
    assert [layer.config() for layer in loaded.layers] == [layer.config() for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(X, loss="mse"), expected)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(X, loss="mse"), expected)
    moved = model.to("strict")
    np.testing.assert_allclose(to_np(moved.predict(X, loss="mse")), expected, rtol=1e-14, atol=1e-15)


# -- settings and shapes -----------------------------------------------------------------------
def test_settings_per_axis_and_the_default_stride():
    layer = bp.MaxPool2D((3, 2), padding=(1, 0))
    assert (layer.pool_size, layer.stride, layer.padding) == ((3, 2), (3, 2), (1, 0))
    assert layer.config() == {"pool_size": [3, 2], "stride": [3, 2], "padding": [1, 0]}
    assert bp.AvgPool1D(4, stride=2).config() == {"pool_size": 4, "stride": 2, "padding": 0}
    assert bp.MaxPool2D(2).output_shape((6, 5, 9)) == (6, 2, 4)  # floor mode: the last row and column dropped
    assert bp.layers.class_of("globalavgpool2d") is bp.GlobalAvgPool2D
    assert bp.GlobalAvgPool1D().output_shape((4, 9)) == (4,)


@pytest.mark.parametrize("make, message", [
    (lambda: bp.MaxPool2D(0), r"MaxPool2D pool_size must be a positive integer or 2 of them, got 0"),
    (lambda: bp.MaxPool2D((2, 2, 2)), r"pool_size must be a positive integer or 2 of them"),
    (lambda: bp.AvgPool1D(2.0), r"AvgPool1D pool_size must be a positive integer or 1 of them"),
    (lambda: bp.AvgPool1D(2, stride=0), r"stride must be a positive integer"),
    (lambda: bp.MaxPool1D(2, padding=-1), r"padding must be a non-negative integer"),
    (lambda: bp.MaxPool1D(3, padding=2), r"padding must be at most half the pool size \(as PyTorch\)"),
    (lambda: bp.AvgPool2D(True), r"pool_size must be a positive integer"),
])
def test_bad_settings_are_refused_in_one_line(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


@pytest.mark.parametrize("layer, shape, message", [
    (bp.MaxPool2D(2), (16,), r"MaxPool2D takes \(channels, height, width\) inputs, got \(16,\): .*Reshape"),
    (bp.AvgPool1D(2), (1, 4, 4), r"AvgPool1D takes \(channels, length\) inputs, got \(1, 4, 4\)"),
    (bp.GlobalAvgPool2D(), (3, 8), r"GlobalAvgPool2D takes \(channels, height, width\) inputs"),
    (bp.MaxPool2D(3), (1, 2, 5), r"MaxPool2D\(pool_size=3, stride=3, padding=0\) cannot take samples of "
                                 r"shape \(1, 2, 5\): each spatial size plus twice the padding"),
])
def test_an_input_a_pool_cannot_take_is_refused_when_the_model_is_built(layer, shape, message):
    with pytest.raises(ConfigError, match=message):
        bp.Sequential([layer, bp.Flatten(), bp.Dense(1)], input_shape=shape)
