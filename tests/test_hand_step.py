"""One gradient-descent step of the textbook 2-2-1 sigmoid network, worked by hand.

Network: h = sigmoid(x W1 + b1), o = sigmoid(h W2 + b2), E = 1/2 (o - t)^2
(the 'sse' loss), learning rate 0.5, one sample x = (1, 0), target t = 1.

Forward, by hand (4 decimals shown; the test uses full precision):
  net_h1 = 1*0.1 + 0*0.3 + 0.1 = 0.2      h1 = sigmoid(0.2)  = 0.549834
  net_h2 = 1*0.2 + 0*0.4 - 0.1 = 0.1      h2 = sigmoid(0.1)  = 0.524979
  net_o  = 0.5*h1 - 0.4*h2 + 0.2 = 0.264925   o = sigmoid(net_o) = 0.565846
Backward (chain rule):
  delta_o  = (o - t) o (1 - o)             = -0.106658
  dE/dW2   = delta_o * (h1, h2)            = (-0.058644, -0.055993)
  dE/db2   = delta_o                       = -0.106658
  delta_h1 = delta_o * 0.5 * h1 (1 - h1)   = -0.013200
  delta_h2 = delta_o * -0.4 * h2 (1 - h2)  =  0.010636
  dE/dW1   = x^T (delta_h1, delta_h2)      = [[-0.013200, 0.010636], [0, 0]]
Update w -= 0.5 * dE/dw.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop as bp


def sig(z):
    return 1.0 / (1.0 + math.exp(-z))


W1 = [[0.1, 0.2], [0.3, 0.4]]
B1 = [0.1, -0.1]
W2 = [[0.5], [-0.4]]
B2 = [0.2]


def by_hand():
    h1, h2 = sig(0.2), sig(0.1)
    o = sig(0.5 * h1 - 0.4 * h2 + 0.2)
    d_o = (o - 1.0) * o * (1 - o)
    d_h1 = d_o * 0.5 * h1 * (1 - h1)
    d_h2 = d_o * -0.4 * h2 * (1 - h2)
    return {
        "0.W": [[0.1 - 0.5 * d_h1, 0.2 - 0.5 * d_h2], [0.3, 0.4]],
        "0.b": [0.1 - 0.5 * d_h1, -0.1 - 0.5 * d_h2],
        "2.W": [[0.5 - 0.5 * d_o * h1], [-0.4 - 0.5 * d_o * h2]],
        "2.b": [0.2 - 0.5 * d_o],
    }, 0.5 * (o - 1.0) ** 2


def test_hand_numbers_are_what_the_docstring_says():
    expected, loss = by_hand()
    assert loss == pytest.approx(0.5 * (1 - 0.565846) ** 2, rel=1e-5)
    assert expected["2.b"][0] == pytest.approx(0.2 + 0.5 * 0.106658, rel=1e-5)
    assert expected["0.W"][0][0] == pytest.approx(0.1 + 0.5 * 0.013200, rel=1e-4)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-14), ("float32", 1e-6)])
def test_one_step_matches_hand_computation(backend, dtype, tol):
    model = bp.Sequential([bp.Dense(2, 2), "sigmoid", bp.Dense(2, 1), "sigmoid"],
                          device=backend, dtype=dtype)
    model.set_parameters({"0.W": W1, "0.b": B1, "2.W": W2, "2.b": B2})
    history = model.fit([[1.0, 0.0]], [1.0], loss="sse", optimizer="gd", lr=0.5, epochs=1,
                        batch_size="full")
    expected, loss = by_hand()
    assert history["train_loss"][0] == pytest.approx(loss, rel=tol)
    for name, value in model.parameters().items():
        np.testing.assert_allclose(backend.to_numpy(value), np.array(expected[name]), rtol=tol, atol=tol)
