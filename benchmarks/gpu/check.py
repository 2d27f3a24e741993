"""The Python part of the one-shot GPU check (``benchmarks/gpu/check.sh`` runs it).

    python3 benchmarks/gpu/check.py checks --device cuda     # what no test checks on CuPy
    python3 benchmarks/gpu/check.py cli --device cuda        # the command line on the device
    mpiexec -n 1 python3 benchmarks/gpu/check.py comm nccl   # NCCL's all-reduce, called for real
    mpiexec -n 2 python3 benchmarks/gpu/check.py comm mpi --device cuda

``--device strict`` (array-api-strict's non-default device) stands in for the GPU in a dry
run: every device-neutral check runs, a check that needs CUDA prints SKIP with why. Every
check prints PASS / FAIL / SKIP lines and carries on after a failure; the last line is a
tally, and the exit status is 1 when anything failed.

Test-only: ``GPU_CHECK_INJECT_FAIL=1`` adds a check that always fails (the test suite uses
it to see that a failure reaches the summary and the exit status).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import backprop as bp  # noqa: E402
from backends import get_backend, to_numpy_any  # noqa: E402

TALLY = {"PASS": 0, "FAIL": 0, "SKIP": 0}
CHECKS: dict[str, object] = {}


class Skip(Exception):
    """A check that cannot run here; its message says why."""


def line(status: str, name: str, text: str = "") -> None:
    TALLY[status] += 1
    print(f"{status} {name}{': ' + text if text else ''}", flush=True)


def expect(name: str, ok: bool, text: str = "") -> None:
    line("PASS" if ok else "FAIL", name, text)


def check(fn):
    """Register ``fn(device)`` as a check under its name (less the ``check_`` prefix)."""
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


def run_checks(names: list[str], device: str) -> None:
    for name in names:
        started = time.perf_counter()
        print(f"\n=== {name}", flush=True)
        try:
            CHECKS[name](device)
        except Skip as why:
            line("SKIP", name, str(why))
        except Exception as exc:  # noqa: BLE001 - report, then the next check
            traceback.print_exc(file=sys.stdout)
            line("FAIL", name, f"raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        print(f"--- {name} {time.perf_counter() - started:.1f} s", flush=True)


def is_gpu(device: str) -> bool:
    return device.startswith("cuda")


def needs_cuda(device: str, what: str) -> None:
    if not is_gpu(device):
        raise Skip(f"{what} needs CuPy on a GPU (device {device})")


def device_module(device: str) -> str:
    """The array library a model on ``device`` holds: absent from a pickle meant for anywhere."""
    b = get_backend(device)
    return type(b.asarray(np.zeros(1))).__module__.split(".")[0]


def host(x) -> np.ndarray:
    return np.asarray(to_numpy_any(x))


def rel(a, b) -> float:
    """max |a - b| / max |a| over whole arrays (float64)."""
    a, b = np.asarray(host(a), np.float64), np.asarray(host(b), np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-300))


def loads_without(data: bytes, module: str) -> str:
    """Unpickle ``data`` in a fresh process where ``module`` cannot be imported; its last line."""
    code = (f"import sys, pickle, warnings; sys.modules[{module!r}] = None; warnings.simplefilter('ignore');"
            "sys.path.insert(0, sys.argv[1]); o = pickle.loads(sys.stdin.buffer.read());"
            "print('loaded', type(o).__name__)")
    done = subprocess.run([sys.executable, "-c", code, ROOT], input=data, capture_output=True, timeout=120)
    tail = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
    return (tail[-1] if tail else "") if done.returncode else "ok"


# -- the targeted checks ------------------------------------------------------------------
@check
def check_cast(device):
    """A float64 -> float32 cast on the device keeps NumPy's bits; NaN stays NaN (any payload)."""
    awkward = np.array([1 / 7, -0.0, np.inf, -np.inf, np.nan, 1e-45, 3.4e38, 1e300])
    b = get_backend(device)
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 1e300 overflows to inf, as it should
        got = host(b.asarray(b.asarray(awkward, "float64"), "float32"))
        want = awkward.astype(np.float32)
    nan = np.isnan(want)
    expect("cast NaN stays NaN", bool(np.array_equal(np.isnan(got), nan)))
    expect("cast keeps every other value bit for bit",
           got[~nan].tobytes() == want[~nan].tobytes(),
           f"device {got[~nan].tolist()} host {want[~nan].tolist()}")


@check
def check_flat_views(device):
    """The flat parameter buffer and the layers' arrays are one memory on the device."""
    m = bp.mlp([3, 4, 2], device=device, seed=0)
    theta = m.flat_parameters()
    theta[...] = 1.5
    expect("flat buffer write reaches every layer",
           all(bool(np.all(host(p) == 1.5)) for p in m.parameter_list()))
    m.parameter_list()[0][...] = 2.0
    expect("layer write reaches the flat buffer", float(host(m.flat_parameters())[0]) == 2.0)
    m.fit(np.ones((8, 3)), np.arange(8) % 2, epochs=2, batch_size=4)
    expect("training keeps the buffer and the layers one", rel(m.flat_parameters(), np.concatenate(
        [host(p).ravel() for p in m.parameter_list()])) == 0.0)


@check
def check_pickle(device):
    """Fitted models (each optimizer kind) pickle to host arrays, load where the device library is missing."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = np.sin(X[:, 0]) + X[:, 1]
    module = device_module(device)
    for opt in ("adam", "lbfgs", "lm", "newton"):
        m = bp.mlp([2, 4, 1], activation="tanh", device=device, dtype="float64", seed=0)
        m.fit(X, y, loss="mse", optimizer=opt, epochs=3, batch_size=8 if opt == "adam" else "full")
        data = pickle.dumps(m)
        expect(f"pickle {opt}: no {module} arrays inside", module.encode() not in data)
        again = pickle.loads(data)
        expect(f"pickle {opt}: comes back on {device}, same predictions",
               again.backend.spec == m.backend.spec and rel(m.predict(X), again.predict(X)) == 0.0)
        result = loads_without(data, module)
        expect(f"pickle {opt}: loads where {module} is missing", result == "ok", result)


@check
def check_equivalence(device):
    """CPU == device after N steps of every optimizer: float64 <= 1e-10, float32 <= 1e-4."""
    from backprop import optimizers

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(48, 6)), rng.integers(0, 3, 48)
    x1 = np.linspace(-2, 2, 40).reshape(-1, 1)
    t1 = np.sin(2 * x1[:, 0]) + x1[:, 0] / 2
    full = set(optimizers.names(full_batch=True))  # the registry's: br, lm, newton, lbfgs
    for dtype, tol in (("float64", 1e-10), ("float32", 1e-4)):
        for opt in optimizers.NAMES:
            if dtype == "float32" and opt in full:
                continue  # second-order steps amplify float32 rounding: float64 is the contract
            params = []
            for dev in ("cpu", device):
                if opt in full:
                    m = bp.mlp([1, 5, 1], activation="tanh", dtype=dtype, seed=3, device=dev)
                    m.fit(x1, t1, loss="mse", optimizer=opt, epochs=6, batch_size="full")
                else:
                    m = bp.mlp([6, 12, 3], activation="tanh", dtype=dtype, seed=7, device=dev)
                    m.fit(X, y, loss="ce", optimizer=opt, epochs=2, batch_size=16)
                params.append(m.flat_parameters())
            d = rel(params[0], params[1])
            expect(f"equivalence {dtype} {opt}", d <= tol, f"params rel diff {d:.2e} (<= {tol:g})")
    m = bp.mlp([6, 8, 3], device="cpu", dtype="float64", seed=0)
    m.fit(X, y, loss="ce", epochs=1)
    moved = m.to(device)
    expect("model.to(device) predicts as on the CPU",
           rel(m.predict_proba(X), moved.predict_proba(X)) <= 1e-12)


@check
def check_layers(device):
    """Issue 24's layers on the device: the device generator draws the CPU's bits; a network of
    every family gradchecks there; CPU == device after three SGD steps in float64 (the same
    dropout masks and batch statistics), <= 1e-10."""
    from backends import DeviceRNG, Stream

    cpu, dev = get_backend("cpu"), get_backend(device)
    for kind, draw in (("words", lambda g, b: g.words((3, 7), backend=b)),
                       ("uniform float32", lambda g, b: g.uniform((3, 7), "float32", backend=b)),
                       ("uniform float64", lambda g, b: g.uniform((3, 7), "float64", backend=b)),
                       ("bernoulli", lambda g, b: g.bernoulli(0.3, (3, 7), backend=b))):
        same = np.array_equal(host(draw(DeviceRNG(11, Stream.DROPOUT), cpu)),
                              host(draw(DeviceRNG(11, Stream.DROPOUT), dev)))
        expect(f"layers: device generator {kind} as on the CPU", same)
    text = ("conv2d(4, 3, padding=1), batchnorm, relu, maxpool2d(2), conv2d(6, 3, stride=1), "
            "layernorm, avgpool2d(1), flatten, dropout(0.3), dense(8), residual([dense(8), tanh]), dense(3)")
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(6, 2, 6, 6)), rng.integers(0, 3, 6)
    model = bp.Sequential(bp.spec.parse(text), input_shape=(2, 6, 6), dtype="float64", seed=2, device=device)
    result = bp.gradcheck(model, X, y, loss="ce")
    expect("layers: gradcheck of every family on the device", result.ok,
           f"worst {result.worst:.1e}; held to the roundoff floor: {', '.join(result.floored) or 'none'}")
    params = []
    for spec in ("cpu", device):
        m = bp.Sequential(bp.spec.parse(text), input_shape=(2, 6, 6), dtype="float64", seed=2, device=spec)
        m.fit(X, y, loss="ce", optimizer="sgd", lr=0.05, epochs=3, batch_size=3)
        params.append(m.flat_parameters())
    d = rel(params[0], params[1])
    expect("layers: CPU == device after 3 SGD steps (float64)", d <= 1e-10, f"params rel diff {d:.2e}")


@check
def check_fast_step(device):
    """Issue 25's fast step on the device: each ``out=`` operation against NumPy and written into
    ``out``; the Cholesky solve; the fused update against the per-array reference (20 Adam steps
    with weight decay, float64, <= 1e-12); the workspace's buffers reused, with the numbers of a
    step without them."""
    from backends.inplace import into
    from backends.linalg import spd_solve
    from backprop.step import Step

    b = get_backend(device)
    ops, rng = into(b.xp), np.random.default_rng(0)
    A2, C = rng.normal(size=(5, 4)), rng.uniform(1, 2, size=(5, 4))
    cases = {"matmul": ((A2, C.T), A2 @ C.T), "multiply": ((A2, C), A2 * C), "divide": ((A2, C), A2 / C),
             "sqrt": ((C,), np.sqrt(C)), "exp": ((A2,), np.exp(A2)), "positive": ((A2,), (A2 > 0) * 1.0),
             "sum0": ((A2,), A2.sum(axis=0)), "row_max": ((A2,), A2.max(axis=1, keepdims=True))}
    with b.activate():
        for name, (args, want) in cases.items():
            out = b.asarray(np.zeros(want.shape), "float64")
            got = getattr(ops, name)(*(b.asarray(a, "float64") for a in args), out=out)
            ok = rel(want, got) <= 1e-14 and (got is out or not ops.in_place)
            expect(f"fast step: {name} with out=", ok, f"rel {rel(want, got):.1e}, in place {ops.in_place}")
        M = rng.normal(size=(40, 40))
        S = M @ M.T + np.eye(40)
        x = spd_solve(b.xp, b.asarray(S, "float64"), b.asarray(C[:, :1].repeat(8, 0)[:40], "float64"))
        if x is None:
            line("SKIP", "fast step: Cholesky solve", f"none for {b.xp.__name__}: LU instead")
        else:
            want = np.linalg.solve(S, C[:, :1].repeat(8, 0)[:40])
            expect("fast step: Cholesky solve", rel(want, x) <= 1e-10, f"rel {rel(want, x):.1e}")
    params = []
    X, y = rng.normal(size=(32, 6)), rng.integers(0, 3, 32)
    for fused in (True, False):
        m = bp.mlp([6, 16, 3], device=device, dtype="float64", seed=1)
        loss, opt = bp.losses.get("ce"), bp.optimizers.get("adam", weight_decay=0.01)
        step = Step(m, loss, opt)
        with m.backend.activate():
            Xd = m.backend.asarray(X, "float64")
            T, _ = loss.targets(m.xp, m.dtype, m.backend.asarray(y, "int64"), 3)
            for _ in range(20):
                grads = step.gradients(Xd, T)[2]
                step.apply(grads) if fused else opt.step(step.params, grads)
        params.append(host(m.flat_parameters()).copy())  # the live buffer: the step below moves it
        if fused:
            held = [id(a) for a in step.workspace.buffers]
            with m.backend.activate():
                step(Xd, T)
            expect("fast step: the workspace's buffers reused",
                   [id(a) for a in step.workspace.buffers] == held and (bool(held) or not ops.in_place),
                   f"{len(held)} buffers")
            expect("fast step: the fused update ran", opt._flat is not None)
    d = rel(params[1], params[0])
    expect("fast step: fused update == per-array reference (20 Adam steps, float64)", d <= 1e-12,
           f"rel {d:.1e}")


@check
def check_trainbr(device):
    """Issue 27's Bayesian regularization on the device: tr(A⁻¹) from the library's Cholesky, and
    8 br iterations in float64 against NumPy (<= 1e-10, parameters and gamma) in parameter space
    (N > P) and in residual space (N < P, Woodbury)."""
    from backends.linalg import spd_inverse_trace

    b, rng = get_backend(device), np.random.default_rng(0)
    M = rng.normal(size=(40, 40))
    S = M @ M.T + np.eye(40)
    with b.activate():
        got = spd_inverse_trace(b.xp, b.asarray(S, "float64"))
    want = float(np.sum(1.0 / np.linalg.eigvalsh(S)))
    if got is None:
        line("SKIP", "trainbr: Cholesky trace", f"none for {b.xp.__name__}: eigvalsh instead")
    else:
        value = float(host(got))
        expect("trainbr: Cholesky trace", abs(value - want) <= 1e-10 * want, f"{value!r} against {want!r}")
    x = rng.uniform(-1.0, 1.0, (40, 2))
    y = np.sin(2.0 * x[:, 0]) + x[:, 1] + rng.normal(0.0, 0.1, 40)
    for hidden in (6, 20):
        runs = []
        for where in ("cpu", device):
            m = bp.mlp([2, hidden, 1], activation="tanh", dtype="float64", seed=2, device=where)
            h = m.fit(x, y, loss="sse", optimizer="br", epochs=8, batch_size="full", validation_split=0.0,
                      early_stopping=None)
            runs.append((host(m.flat_parameters()).copy(), np.asarray(h["gamma"])))
        d, g = rel(runs[0][0], runs[1][0]), rel(runs[0][1], runs[1][1])
        expect(f"trainbr: 8 iterations == NumPy (P = {4 * hidden + 1}, N = 40)",
               d <= 1e-10 and g <= 1e-10, f"parameters rel {d:.1e}, gamma rel {g:.1e}")


@check
def check_tf32(device):
    """TF32 on: faster, float32-ish error; off: plain float32; the switch does not leak out."""
    needs_cuda(device, "TF32")
    from cupy._core import _routines_linalg as linalg

    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(4096, 4096)), rng.normal(size=(4096, 4096))
    ref = A @ B
    errs = {}
    for tf32 in (False, True):
        b = get_backend(device, tf32=tf32)
        with b.activate():
            a, c = b.asarray(A, "float32"), b.asarray(B, "float32")
            out = a @ c
            b.synchronize()
            started = time.perf_counter()
            for _ in range(10):
                out = a @ c
            b.synchronize()
            ms = (time.perf_counter() - started) * 100
        errs[tf32] = float(np.max(np.abs(host(out) - ref)) / np.max(np.abs(ref)))
        line("PASS", f"tf32={tf32}", f"4096^3 float32 product {ms:.2f} ms "
             f"({2 * 4096 ** 3 / ms / 1e9:.1f} TFLOP/s), max rel err {errs[tf32]:.1e}")
    expect("tf32 off: float32 accuracy", errs[False] < 1e-5, f"{errs[False]:.1e}")
    expect("tf32 on: TF32 accuracy (10-bit mantissa)", errs[True] < 1e-2, f"{errs[True]:.1e}")
    expect("compute type restored outside the backend",
           linalg.get_compute_type(np.float32) != linalg.COMPUTE_TYPE_TF32)


@check
def check_syncs(device):
    """Device synchronisations (counted through CuPy) do not grow with the steps of a fit."""
    needs_cuda(device, "counting CuPy's synchronisations")
    try:
        import cupy._core.syncdetect as syncdetect

        original = syncdetect._declare_synchronize  # what cupyx.allow_synchronize hooks
    except (ImportError, AttributeError) as exc:
        raise Skip(f"this CuPy has no synchronisation hook to count through ({exc})") from None

    counts = [0]

    def counted():
        counts[0] += 1
        return original()

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(96, 4)), rng.integers(0, 3, 96)
    seen = {}
    syncdetect._declare_synchronize = counted
    try:
        for batch in (36, 4):  # 2 and 18 steps per epoch
            m = bp.mlp([4, 8, 3], device=device)
            counts[0] = 0
            m.fit(X, y, epochs=3, batch_size=batch, validation_split=0.25, optimizer="adam")
            seen[batch] = counts[0]
    finally:
        syncdetect._declare_synchronize = original
    expect("syncs per fit do not grow with the steps", seen[36] == seen[4],
           f"2 steps/epoch: {seen[36]}, 18 steps/epoch: {seen[4]} (3 epochs)")


@check
def check_estimators(device):
    """The estimators take device X and y (y also (N, 1)), answer on the device, pickle to host arrays."""
    from sklearn.datasets import load_iris
    from sklearn.exceptions import ConvergenceWarning

    from backprop.estimators import BackpropClassifier, BackpropRegressor

    warnings.simplefilter("ignore", ConvergenceWarning)  # a few iterations are enough here
    b = get_backend(device)
    X, y = load_iris(return_X_y=True)
    module = device_module(device).encode()
    for solver in ("adam", "lbfgs", "lm"):
        est = BackpropClassifier(solver=solver, hidden_layer_sizes=(6,), random_state=0, max_iter=20)
        ref = BackpropClassifier(solver=solver, hidden_layer_sizes=(6,), random_state=0, max_iter=20)
        est.fit(b.asarray(X), b.asarray(y))
        ref.fit(X, y)
        labels = est.predict(b.asarray(X))
        expect(f"classifier {solver}: outputs on the device", b.is_native(labels)
               and b.is_native(est.predict_proba(b.asarray(X))))
        agree = float(np.mean(host(labels) == ref.predict(X)))
        expect(f"classifier {solver}: same labels as the host fit", agree == 1.0, f"agree on {agree:.3f}")
        data = pickle.dumps(est)
        expect(f"classifier {solver}: pickle holds no device arrays", module not in data)
    for Est, target in ((BackpropClassifier, y), (BackpropRegressor, X[:, 0])):
        for solver in ("adam", "lm"):
            est = Est(solver=solver, hidden_layer_sizes=(4,), random_state=0, max_iter=3)
            try:
                est.fit(b.asarray(X[:, 1:]), b.asarray(target.reshape(-1, 1)))
                shape = tuple(est.predict(b.asarray(X[:, 1:])).shape)
                expect(f"{Est.__name__} {solver}: device y of shape (N, 1)", shape == (len(y),), str(shape))
            except ValueError as exc:
                expect(f"{Est.__name__} {solver}: device y of shape (N, 1)", False, str(exc)[:160])
            try:
                est.fit(b.asarray(X[:, 1:]), b.asarray(target[:-1].reshape(-1, 1)))
                expect(f"{Est.__name__} {solver}: device y (N-1, 1) refused", False, "accepted")
            except ValueError as exc:
                expect(f"{Est.__name__} {solver}: device y (N-1, 1) refused", True, str(exc)[:120])


def _events(port: int, run_id: str):
    """The run's Server-Sent Events as dicts (what the page's EventSource reads)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/api/runs/{run_id}/events")
    answer = conn.getresponse()
    try:
        for raw in answer.fp:
            if raw.startswith(b"data: "):
                yield json.loads(raw[6:])
    finally:
        conn.close()


def _post(port: int, path: str, body: dict):
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as answer:
        return answer.read()


@check
def check_playground(device):
    """The playground trains on the device and hands back a checkpoint that loads."""
    from backprop import checkpoint
    from backprop.playground.server import make_server

    srv = make_server("127.0.0.1", 0, None)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    port = srv.server_address[1]
    try:
        offered = {d["spec"]: d for d in json.loads(_post_get(port))["devices"]}
        spec = "cuda" if is_gpu(device) else "cpu"
        if not offered.get(spec, {}).get("usable"):
            raise Skip(f"the playground does not offer {spec} here: {offered.get(spec, {}).get('reason')}")
        run = json.loads(_post(port, "/api/runs", {"device": spec, "data": "spiral", "hidden": [8, 8],
                                                   "optimizer": "adam", "lr": 0.03}))
        epoch, started = 0, time.perf_counter()
        events = _events(port, run["id"])
        next(events)
        _post(port, f"/api/runs/{run['id']}/control", {"action": "play"})
        for event in events:
            epoch = event.get("epoch", epoch)
            if epoch >= 20 or event.get("error") or time.perf_counter() - started > 30:
                break
        took = time.perf_counter() - started
        expect(f"playground trains on {spec}", epoch >= 20, f"epoch {epoch} in {took:.1f} s")
        _post(port, f"/api/runs/{run['id']}/control", {"action": "pause"})
        data = _post(port, f"/api/runs/{run['id']}/checkpoint", {})
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "run.safetensors")
            with open(path, "wb") as f:
                f.write(data)
            expect("playground checkpoint loads", checkpoint.load(path).model.epoch >= 1)
    finally:
        srv.shutdown()
        srv.stop_all()
        srv.server_close()


def _post_get(port: int) -> bytes:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=30) as answer:
        return answer.read()


def check_injected(device):
    """Test-only (GPU_CHECK_INJECT_FAIL=1): a check that always fails."""
    expect("injected failure (GPU_CHECK_INJECT_FAIL, test only)", False)


# -- the command line on the device ----------------------------------------------------------
def cli(*argv: str) -> tuple[int, str]:
    """``backprop ARGV`` in this process (one CuPy start for all): exit status and stdout."""
    from backprop.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    print(f"$ backprop {' '.join(argv)} -> exit {code}" + (f"\n  {err.getvalue().strip()[-400:]}"
                                                           if code else ""), flush=True)
    return code, out.getvalue()


def run_cli(device: str) -> None:
    with tempfile.TemporaryDirectory() as w:
        model, inputs = os.path.join(w, "m.safetensors"), os.path.join(w, "in.csv")
        code, _ = cli("train", "moons", "--device", device, "--epochs", "10", "--hidden", "16,16",
                      "--save", model, "--quiet")
        expect("cli train --save", code == 0)
        np.savetxt(inputs, np.random.default_rng(3).normal(size=(50, 2)), delimiter=",")
        code_d, on_dev = cli("predict", model, inputs, "--proba", "--device", device)
        code_c, on_cpu = cli("predict", model, inputs, "--proba", "--device", "cpu")
        ok = code_d == code_c == 0
        if ok:
            a, b = (np.loadtxt(io.StringIO(t), delimiter=",", skiprows=1) for t in (on_cpu, on_dev))
            d = float(np.max(np.abs(a - b)))
            expect("cli predict, device vs cpu from one checkpoint", d <= 1e-5, f"max abs diff {d:.1e}")
        else:
            expect("cli predict on the device and the cpu", False, f"exits {code_d}, {code_c}")
        code, text = cli("evaluate", model, "moons", "--device", device, "--json")
        expect("cli evaluate", code == 0 and "loss" in text)
        for args in (("train", "moons", "--resume", model, "--epochs", "15"),
                     ("train", "digits", "--epochs", "2"),
                     ("train", "sine", "--optimizer", "lm", "--epochs", "10", "--dtype", "float64"),
                     ("train", "xor", "--optimizer", "newton", "--hidden", "2", "--epochs", "20"),
                     ("train", "moons", "--optimizer", "lbfgs", "--epochs", "20"),
                     ("train", "moons", "--epochs", "3", "--plot", os.path.join(w, "plots")),
                     ("gradcheck",), ("gradcheck", "--jacobian", "--loss", "mse")):
            code, _ = cli(*args, "--device", device, "--quiet" if args[0] == "train" else "--json")
            expect(f"cli {' '.join(args[:4]).replace(model, 'MODEL')}", code == 0)
        plots = os.listdir(os.path.join(w, "plots")) if os.path.isdir(os.path.join(w, "plots")) else []
        expect("cli --plot wrote pictures", bool(plots), ", ".join(sorted(plots)))


# -- the communicators ---------------------------------------------------------------------
def _fit(device: str, comm, batch: int = 64) -> np.ndarray:
    r = np.random.default_rng(0)
    X, y = r.normal(size=(300, 5)), r.integers(0, 3, 300)
    m = bp.mlp([5, 16, 3], output="softmax", device=device, dtype="float64", seed=1)
    m.fit(X, y, epochs=3, batch_size=batch, validation_split=0.2, comm=comm)
    return host(m.flat_parameters())


def run_comm(mode: str, device: str) -> None:
    from backends.comm import MPIComm, NCCLComm

    if mode == "nccl":
        needs_cuda(device, "NCCL")
        import cupy

        c = NCCLComm()
        buf = cupy.arange(1000, dtype=cupy.float64)
        want = buf.get()
        c.size = 2  # one rank: allreduce returns early, so pretend two to reach the real ncclAllReduce
        try:
            out = c.allreduce(buf)
        finally:
            c.size = 1
        cupy.cuda.get_current_stream().synchronize()
        expect("nccl all-reduce called for real (1 rank: identity)",
               out is buf and np.array_equal(buf.get(), want))
        d = float(np.max(np.abs(_fit(device, None) - _fit(device, c))))
        expect("nccl fit(comm=NCCLComm) == fit()", d < 1e-12, f"max diff {d:.1e}")
        return
    c = MPIComm()
    b = get_backend(device)
    out = c.allreduce(b.asarray(np.full(7, c.rank + 1.0)))
    want = c.size * (c.size + 1) / 2
    expect(f"mpi rank {c.rank}: all-reduce of a {device} buffer staged through the host",
           b.is_native(out) and float(host(out)[0]) == want, f"{host(out)[:2]} want {want}")
    ours = _fit(device, c)
    if c.rank == 0:
        d = float(np.max(np.abs(_fit(device, None) - ours)))
        expect(f"mpi {c.size} ranks on {device} == one process", d < 1e-10, f"max diff {d:.1e}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("checks", "cli", "comm"))
    p.add_argument("mode", nargs="?", choices=("mpi", "nccl"), help="for comm")
    p.add_argument("--device", default="cuda")
    p.add_argument("--only", default=os.environ.get("GPU_CHECK_ONLY", ""),
                   help=f"comma-separated checks (default all: {', '.join(CHECKS)})")
    args = p.parse_args(argv)
    if args.what == "checks":
        names = [n for n in args.only.split(",") if n] or list(CHECKS)
        unknown = [n for n in names if n not in CHECKS]
        if unknown:
            p.error(f"unknown checks {unknown}: use {', '.join(CHECKS)}")
        if os.environ.get("GPU_CHECK_INJECT_FAIL") == "1":
            CHECKS["injected"] = check_injected
            names.insert(0, "injected")
        run_checks(names, args.device)
    else:
        try:
            run_cli(args.device) if args.what == "cli" else run_comm(args.mode, args.device)
        except Skip as why:
            line("SKIP", f"{args.what} {args.mode or ''}".strip(), str(why))
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc(file=sys.stdout)
            line("FAIL", args.what, f"raised {type(exc).__name__}: {exc}")
    print(f"TALLY {args.what}: {TALLY['PASS']} passed, {TALLY['FAIL']} failed, {TALLY['SKIP']} skipped",
          flush=True)
    return 1 if TALLY["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
