"""Activations and losses stay finite and warning-free for |x| up to 1e4.

pytest turns RuntimeWarning (NumPy's overflow / invalid-value warnings) into
errors for the whole suite (pyproject.toml), so a warning fails these tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from backprop import activations, losses

EXTREMES = np.array([[-1e4, -710.0, -50.0, -1e-8, 0.0, 1e-8, 50.0, 710.0, 1e4]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "softmax"])
def test_activation_is_finite_at_extremes(backend, name, dtype):
    X = backend.asarray(EXTREMES, dtype)
    Y, backward = activations.get(name).forward(X, train=True)
    dX = backward(backend.asarray(np.ones_like(EXTREMES), dtype))
    for out in (Y, dX):
        assert np.all(np.isfinite(backend.to_numpy(out))), name


def test_activation_limits(numpy_backend):
    X = EXTREMES.astype(np.float64)
    sig = activations.sigmoid(numpy_backend.xp, X)
    assert sig[0, 0] == 0.0 and sig[0, -1] == 1.0 and sig[0, 4] == 0.5
    sp = activations.softplus(numpy_backend.xp, X)
    assert sp[0, -1] == 1e4 and sp[0, 0] == 0.0 and sp[0, 4] == pytest.approx(np.log(2.0))
    sm = activations.softmax(numpy_backend.xp, X)
    assert sm[0, -1] == 1.0 and np.sum(sm) == pytest.approx(1.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropies_are_exact_for_huge_logits(backend, dtype):
    Z = backend.asarray([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype)
    T = backend.asarray([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]], dtype)  # first row: confidently wrong
    loss, dZ = losses.CrossEntropy().forward(Z, T)
    # Row 1 costs 2e4 nats (log-softmax is exact), row 2 costs 0: mean 1e4.
    assert float(loss) == pytest.approx(1e4, rel=1e-6)
    np.testing.assert_allclose(backend.to_numpy(dZ), [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], atol=1e-7)
    bce, dB = losses.BinaryCrossEntropy().forward(Z, T)
    # softplus(z) - t z: 1e4 + 1e4 + log 2 ... summed per element, mean over 6.
    expected = (1e4 + 1e4 + np.log(2) + 0 + 0 + np.log(2)) / 6
    assert float(bce) == pytest.approx(expected, rel=1e-6)
    assert np.all(np.isfinite(backend.to_numpy(dB)))
