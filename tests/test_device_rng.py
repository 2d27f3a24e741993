"""The device generator (backends.rng.DeviceRNG, Philox-4x32-10 on the Array API): the published
known answers, the same bits on every backend, uniform draws, a counter that advances and
restores, and its state in FitState, pickles and checkpoints (older files start it from the seed)."""

from __future__ import annotations

import copy
import json
import math
import pickle

import numpy as np
import pytest
from safetensors.numpy import load_file
from safetensors.numpy import save as st_save

import backprop as bp
from backends import DeviceRNG, Stream, get_backend
from backends.rng import philox4x32
from backprop import checkpoint
from backprop.errors import CheckpointError
from conftest import assert_belongs, to_np

M32 = 0xFFFFFFFF

# Random123 1.14, examples/kat_vectors, the "philox4x32 10" lines: counter (4 words), key (2 words),
# then the expected output (4 words). The same answers cuRAND's and oneMKL's Philox4x32-10 give.
KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def reference(counter, key, rounds=10):
    """Philox-4x32 of one block in plain Python integers (unbounded, so no limbs): the oracle."""
    c, (k0, k1) = list(counter), key
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & M32, (p0 >> 32) ^ c[3] ^ k1, p0 & M32]
    return c


def stream_words(seed, stream, first_block, n_blocks):
    """The words DeviceRNG draws, by the reference: block b is the counter (b low, b high,
    stream low, stream high) under the key (seed low, seed high)."""
    out = []
    for b in range(first_block, first_block + n_blocks):
        out += reference((b & M32, (b >> 32) & M32, stream & M32, stream >> 32), (seed & M32, seed >> 32))
    return out


def test_the_published_known_answers_on_every_backend(backend):
    xp = backend.xp
    with backend.activate():
        columns = [xp.asarray([c[i] for c, _, _ in KAT], dtype=xp.int64, device=backend.device)
                   for i in range(4)]
    for row, (_, key, expected) in enumerate(KAT):
        out = philox4x32(tuple(c[row:row + 1] for c in columns), key)
        assert [int(to_np(w)[0]) for w in out] == list(expected)
        assert [int(to_np(w)[0]) for w in out] == reference(KAT[row][0], key)


@pytest.mark.parametrize("wide", [False, True], ids=["int64 halves", "uint64 products"])
def test_both_products_match_unbounded_integers_over_many_counters(wide):
    """Counters near 2**32 and random ones: the 16-bit split of the 32x32-bit products (every
    backend) and the one uint64 product (NumPy's draws) lose nothing."""
    host = np.random.default_rng(0).integers(0, 2**32, size=(200, 4), dtype=np.int64)
    host[:8] = np.array([[M32 - i] * 4 for i in range(8)])
    counter = tuple(host[:, i].astype(np.uint64 if wide else np.int64) for i in range(4))
    out = philox4x32(counter, (3, 0xDEADBEEF), wide=wide)
    expected = [reference(tuple(int(v) for v in row), (3, 0xDEADBEEF)) for row in host]
    np.testing.assert_array_equal(np.stack(out, axis=1).astype(np.int64), np.array(expected, dtype=np.int64))


def test_the_stream_is_philox_of_its_counters():
    """Known values of the stream itself, and the floats worked out from its words by hand."""
    seed, stream = 2**40 + 12345, int(Stream.DROPOUT)
    rng = DeviceRNG(seed, stream, backend=get_backend("cpu"))
    words = stream_words(seed, stream, 0, 3)
    np.testing.assert_array_equal(rng.words((2, 5)), np.reshape(words[:10], (2, 5)))
    assert rng.counter == 3  # ten words take three blocks; the last two words are dropped
    w = stream_words(seed, stream, 3, 1)
    assert rng.uniform((1,), "float32")[0] == np.float32((w[0] >> 8) / 2**24)
    w = stream_words(seed, stream, 4, 1)
    assert rng.uniform((1,), "float64")[0] == ((w[0] >> 5) * 2**26 + (w[1] >> 6)) / 2**53
    w = stream_words(seed, stream, 5, 2)
    mask = rng.bernoulli(0.3, (8,))
    np.testing.assert_array_equal(mask, np.array(w) < math.floor(0.3 * 2**32))


def test_the_counter_carries_into_its_high_word():
    rng = DeviceRNG(9, 1, counter=2**32 - 1, backend=get_backend("cpu"))
    np.testing.assert_array_equal(rng.words((8,)), stream_words(9, 1, 2**32 - 1, 2))
    assert rng.counter == 2**32 + 1
    rng.set_state({"seed": 9, "stream": 1, "counter": 2**64 - 1})
    rng.words((4,))
    assert rng.counter == 0  # the 64-bit block counter wraps, as cuRAND's does


def test_seeds_beyond_64_bits_fold_into_the_key():
    cpu = get_backend("cpu")
    big = (5 << 64) | 7
    np.testing.assert_array_equal(DeviceRNG(big, backend=cpu).words((4,)), stream_words(7 ^ 5, 0, 0, 1))


@pytest.mark.parametrize("draw", [
    lambda rng: rng.words((3, 7)),
    lambda rng: rng.uniform((5, 3), "float32"),
    lambda rng: rng.uniform((5, 3), "float64"),
    lambda rng: rng.bernoulli(0.5, (6, 2)),
], ids=["words", "float32", "float64", "bernoulli"])
def test_every_backend_draws_the_same_bits(draw, other_backend):
    ours, theirs = DeviceRNG(11, Stream.DROPOUT, backend=get_backend("cpu")), other_backend.device_rng(11, 10)
    for _ in range(3):  # and keeps doing so as the counter advances
        expected, got = draw(ours), draw(theirs)
        assert_belongs(got, other_backend, shape=expected.shape)
        assert to_np(got).dtype == expected.dtype and to_np(got).tobytes() == expected.tobytes()
    assert theirs.get_state() == ours.get_state()


def test_draws_land_on_the_device_in_the_dtype(backend):
    rng = backend.device_rng(0, Stream.DROPOUT)
    assert_belongs(rng.uniform((4, 3)), backend, "float32", (4, 3))
    assert_belongs(rng.uniform((4, 3), "float64"), backend, "float64", (4, 3))
    assert_belongs(rng.bernoulli(0.5, (2, 2)), backend, "bool", (2, 2))
    assert_belongs(rng.words((5,)), backend, "int64", (5,))


CHI2_15_999 = 37.697  # the 99.9% quantile of the chi-square distribution with 15 degrees of freedom


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniform_draws_look_uniform(dtype):
    n = 100_000
    u = np.asarray(DeviceRNG(2024, Stream.DROPOUT, backend=get_backend("cpu")).uniform((n,), dtype),
                   dtype=np.float64)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 4 * math.sqrt(1 / 180 / n)  # the variance of (u - 1/2)^2 is 1/180
    counts = np.bincount((u * 16).astype(int), minlength=16)
    chi2 = float(((counts - n / 16) ** 2 / (n / 16)).sum())
    assert chi2 < CHI2_15_999, chi2


def test_bernoulli_keeps_the_asked_share():
    rng, n = DeviceRNG(5, backend=get_backend("cpu")), 100_000
    for p in (0.1, 0.5, 0.8):
        share = float(np.mean(rng.bernoulli(p, (n,))))
        assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / n), (p, share)
    assert not rng.bernoulli(0.0, (1000,)).any() and rng.bernoulli(1.0, (1000,)).all()


def test_the_counter_advances_and_a_saved_state_repeats_the_draw():
    cpu = get_backend("cpu")
    rng = DeviceRNG(3, Stream.DROPOUT, backend=cpu)
    first, second = rng.uniform((10,)), rng.uniform((10,))
    assert not np.array_equal(first, second) and rng.counter == 6  # ceil(10 / 4) blocks each
    state = rng.get_state()
    assert json.loads(json.dumps(state)) == state == {"seed": 3, "stream": 10, "counter": 6}
    expected = rng.bernoulli(0.5, (64,))
    rng.set_state(state)
    np.testing.assert_array_equal(rng.bernoulli(0.5, (64,)), expected)
    for clone in (pickle.loads(pickle.dumps(rng)), copy.deepcopy(rng), rng.to(cpu)):
        clone.set_state(state)
        np.testing.assert_array_equal(clone.bernoulli(0.5, (64,)), expected)
    # Whole blocks: two draws of four words are one draw of eight.
    a = DeviceRNG(1, backend=cpu)
    np.testing.assert_array_equal(np.concatenate([a.words((4,)), a.words((4,))]),
                                  DeviceRNG(1, backend=cpu).words((8,)))
    one, two = DeviceRNG(1, 1, backend=cpu), DeviceRNG(1, 2, backend=cpu)
    assert not np.array_equal(one.words((8,)), two.words((8,)))  # streams differ


@pytest.mark.parametrize("call, message", [
    (lambda: DeviceRNG(-1), "seed must be a non-negative integer, got -1"),
    (lambda: DeviceRNG(True), "seed must be a non-negative integer, got True"),
    (lambda: DeviceRNG(0, 2**64), "stream must be a non-negative integer below 2**64"),
    (lambda: DeviceRNG(0, counter=1.5), "counter must be a non-negative integer below 2**64, got 1.5"),
    (lambda: DeviceRNG(0).uniform((2,)), "this DeviceRNG has no device: pass backend=, or bind one with"),
    (lambda: DeviceRNG(0, backend=get_backend("cpu")).bernoulli(1.5, (2,)), "p must be a probability in"),
    (lambda: DeviceRNG(0, backend=get_backend("cpu")).uniform((2,), "int64"), "uniform draws are float32"),
])
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message.replace("*", r"\*").replace("(", r"\(")):
        call()


# -- the fit state and checkpoints -------------------------------------------------------------
def _model(spec="cpu"):
    return bp.Sequential([bp.Dense(2, 3), "tanh", bp.Dense(3, 1)], seed=4, device=spec)


def test_the_fit_state_carries_one_moved_with_the_model(other_backend):
    model = _model()
    rng = model.state.device_rng
    assert (rng.seed, rng.stream, rng.counter) == (4, Stream.DROPOUT, 0)
    rng.uniform((7,), backend=model.backend)
    expected = copy.deepcopy(rng).uniform((6, 2), backend=model.backend)
    for moved in (model.to(other_backend.spec), pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert moved.state.device_rng.backend is moved.backend and moved.state.device_rng.counter == 2
        assert to_np(moved.state.device_rng.uniform((6, 2))).tobytes() == expected.tobytes()
    assert rng.counter == 2  # the copies drew, the original did not


def test_a_checkpoint_keeps_the_state_and_the_next_draw(tmp_path):
    model = _model()
    rng = model.state.device_rng
    rng.bernoulli(0.5, (9, 9), backend=model.backend)
    path = str(tmp_path / "m.safetensors")
    checkpoint.save(model, path)
    assert checkpoint.read_header(path)["device_rng"] == {"seed": 4, "stream": 10, "counter": 21}
    loaded = checkpoint.load(path, device="strict").model
    assert loaded.state.device_rng.backend is loaded.backend
    expected = rng.bernoulli(0.5, (5, 4), backend=model.backend)
    assert to_np(loaded.state.device_rng.bernoulli(0.5, (5, 4))).tobytes() == expected.tobytes()


def _resign(src, dst, edit):
    """``src`` copied to ``dst`` with its header edited by ``edit(meta)``, re-signed."""
    meta, tensors = checkpoint.read_header(src), dict(load_file(src))
    edit(meta)
    meta["sha256"] = checkpoint._digest(tensors, meta)
    with open(dst, "wb") as handle:
        handle.write(st_save(tensors, metadata={"backprop": json.dumps(meta)}))


def test_a_checkpoint_from_before_starts_the_generator_from_the_seed(tmp_path):
    model = _model()
    model.state.device_rng.words((100,), backend=model.backend)
    saved, old = str(tmp_path / "new.safetensors"), str(tmp_path / "old.safetensors")
    checkpoint.save(model, saved)
    _resign(saved, old, lambda meta: meta.pop("device_rng"))  # as written before the device generator
    rng = checkpoint.load(old).model.state.device_rng
    assert rng.get_state() == {"seed": 4, "stream": int(Stream.DROPOUT), "counter": 0}
    np.testing.assert_array_equal(rng.words((8,)), stream_words(4, Stream.DROPOUT, 0, 2))


def test_format_1_files_load_with_a_fresh_generator():
    path = "tests/data/v1_python.safetensors"
    meta = checkpoint.read_header(path)
    rng = checkpoint.load(path).model.state.device_rng
    assert "device_rng" not in meta and rng.get_state() == {"seed": meta["seed"], "stream": 10, "counter": 0}


@pytest.mark.parametrize("state", [{"seed": 1, "stream": 10}, {"seed": 1, "stream": 10, "counter": -1},
                                   {"seed": 1, "stream": 10, "counter": 2**64}, [1, 10, 0], "x"])
def test_a_forged_generator_state_is_refused(state, tmp_path):
    path, forged = str(tmp_path / "m.safetensors"), str(tmp_path / "forged.safetensors")
    checkpoint.save(_model(), path)
    _resign(path, forged, lambda meta: meta.update(device_rng=state))
    with pytest.raises(CheckpointError, match=r"its header is inconsistent \(device_rng\)"):
        checkpoint.load(forged)


def test_a_new_models_generator_draws_on_the_models_device():
    """Sequential hands its backend to the fit state's generator: a Dropout layer draws on the
    model's device (array-api-strict's second device here) with no backend passed."""
    model = bp.mlp([2, 1], device="strict", seed=4)
    draw = model.state.device_rng.uniform((3,))
    assert draw.device == model.backend.device
