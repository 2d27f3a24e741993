"""The fit loop talks to the host once per epoch, never once per step.

On a GPU every ``float()``/``bool()`` of a device array waits for the device, and
every host array moved in is a copy over PCIe. We count both on array-api-strict
(whose conversions we can intercept) and check they do not grow with the number
of batches.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backends import get_backend


@pytest.fixture
def counters(monkeypatch):
    from array_api_strict._array_object import Array

    counts = {"sync": 0, "upload": 0}
    for name in ("__float__", "__bool__", "__int__", "__index__"):
        original = getattr(Array, name)

        def counted(self, _original=original):
            counts["sync"] += 1
            return _original(self)

        monkeypatch.setattr(Array, name, counted)
    backend = get_backend("strict")
    original_from_host = backend._from_host

    def upload(host):
        counts["upload"] += 1
        return original_from_host(host)

    monkeypatch.setattr(backend, "_from_host", upload)
    return backend, counts


def run(backend, counts, batch_size):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(96, 4)), rng.integers(0, 3, 96)
    model = bp.mlp([4, 8, 3], device=backend)
    counts.update(sync=0, upload=0)
    model.fit(X, y, epochs=3, batch_size=batch_size, validation_split=0.25, optimizer="adam")
    return dict(counts)


def test_host_traffic_does_not_grow_with_the_number_of_steps(counters):
    backend, counts = counters
    few = run(backend, counts, batch_size=36)   # 2 steps per epoch
    many = run(backend, counts, batch_size=4)   # 18 steps per epoch
    assert many == few, (few, many)
    # Per epoch: one permutation upload; loss, accuracy and validation read once each.
    assert many["upload"] <= 2 + 1 + 3
    assert many["sync"] <= 10 + 3 * 5
