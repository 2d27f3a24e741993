"""The playground's server through its HTTP API, without a browser: runs, the stream, refusals."""

from __future__ import annotations

import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from backprop import runner
from backprop.cli import main as cli_main
from backprop.playground import make_server
from backprop.playground import session as sessions
from backprop.playground.views import decode


@pytest.fixture
def server(tmp_path):
    srv = make_server("127.0.0.1", 0, None)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.stop_all()
    srv.server_close()


class Client:
    def __init__(self, srv):
        self.host, self.port = srv.server_address[:2]

    def request(self, method, path, body=None, headers=None, raw=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        sent = {"Host": f"127.0.0.1:{self.port}"}
        if body is not None or raw is not None:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers=sent)
        answer = conn.getresponse()
        payload = answer.read()
        conn.close()
        kind = answer.getheader("Content-Type", "")
        return answer.status, (json.loads(payload) if kind.startswith("application/json") else payload)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, {} if body is None else body, **kw)

    def new_run(self, **settings):
        status, run = self.post("/api/runs", settings)
        assert status == 201, run
        return run

    def stream(self, run_id):
        return Stream(self, run_id)

    def watch(self, **settings):
        """A new run with its stream open and the first (untrained) picture read."""
        run = self.new_run(**settings)
        stream = self.stream(run["id"])
        stream.next()
        return run, stream


class Stream:
    """The run's Server-Sent Events, as a page's EventSource reads them."""

    def __init__(self, client, run_id):
        self.conn = http.client.HTTPConnection(client.host, client.port, timeout=10)
        self.conn.request("GET", f"/api/runs/{run_id}/events", headers={"Host": f"127.0.0.1:{client.port}"})
        self.answer = self.conn.getresponse()
        assert self.answer.status == 200 and self.answer.getheader("Content-Type") == "text/event-stream"

    def next(self):
        while True:
            line = self.answer.fp.readline()
            if not line:
                return None
            if line.startswith(b"data: "):
                return json.loads(line[6:])

    def close(self):
        self.answer.close()
        self.conn.close()


def test_info_says_what_can_be_chosen(server):
    status, info = Client(server).request("GET", "/api/info")
    assert status == 200
    assert {"circle", "quadrants", "gauss", "spiral", "moons", "circles", "spirals", "blobs", "sine"} <= \
        set(info["data"]["sets"])
    assert {"lm", "lbfgs", "newton", "adam"} <= set(info["optimizers"])
    cuda = [d for d in info["devices"] if d["spec"] == "cuda"][0]
    assert cuda["usable"] or cuda["reason"]  # unusable: the page says why


def test_a_run_streams_epochs_in_order_with_falling_loss_and_right_sized_grids(server):
    client = Client(server)
    run = client.new_run(data="gauss", hidden=[8, 8], grid=30, unit_grid=10, optimizer="adam", lr=0.01)
    assert len(run["train"]["x"]) == 250 and len(run["test"]["x"]) == 250  # test=0.5 of 500
    stream = client.stream(run["id"])
    first = stream.next()
    assert first["epoch"] == 0 and first["state"] == "paused" and first["records"] == []
    assert client.post(f"/api/runs/{run['id']}/control", {"action": "play"})[0] == 200
    records, pictures = [], []
    while len(records) < 60:
        picture = stream.next()
        records += picture["records"]
        pictures.append(picture)
    epochs = [r["epoch"] for r in records]
    assert epochs == list(range(1, len(epochs) + 1))
    assert records[-1]["train_loss"] < 0.5 * records[0]["train_loss"]
    last = pictures[-1]
    output = decode(last["output"])
    assert output.shape == (30 * 30,) and output.min() >= -1 and output.max() <= 1
    assert output.min() < -0.5 and output.max() > 0.5  # both classes drawn
    assert [len(layer) for layer in last["units"]] == [8, 8]
    assert all(decode(u).shape == (100,) for layer in last["units"] for u in layer)
    assert [np.shape(W) for W in last["weights"]] == [(2, 8), (8, 8), (8, 2)]
    assert "--optimizer adam" in last["command"] and "--hidden 8,8" in last["command"]
    stream.close()


def test_closing_the_page_stops_its_run(server):
    client = Client(server)
    run, stream = client.watch(data="circle")
    client.post(f"/api/runs/{run['id']}/control", {"action": "play"})
    stream.next()
    stream.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status, _ = client.post(f"/api/runs/{run['id']}/control", {"action": "play"})
        if status == 409:
            break
        time.sleep(0.05)
    assert status == 409
    session = server.sessions[run["id"]]
    session.thread.join(5)
    assert not session.thread.is_alive()


def test_one_step_is_one_epoch_then_paused(server):
    client = Client(server)
    run, stream = client.watch(data="circle")
    client.post(f"/api/runs/{run['id']}/control", {"action": "step"})
    picture = stream.next()
    while picture["state"] != "paused" or picture["epoch"] == 0:
        picture = stream.next()
    assert picture["epoch"] == 1 and [r["epoch"] for r in picture["records"]] == [1]
    stream.close()


def test_checkpoint_loads_and_the_command_line_reproduces_the_weights(server, tmp_path):
    client = Client(server)
    run = client.new_run(data="spiral", n=200, noise=0.1, hidden=[6], features=["x1", "x2", "sin(x1)"],
                         optimizer="momentum", lr=0.03, batch_size=16, l2=0.001, seed=3)
    stream = client.stream(run["id"])
    stream.next()
    for _ in range(5):
        client.post(f"/api/runs/{run['id']}/control", {"action": "step"})
        picture = stream.next()
        while picture["state"] != "paused" or not picture["records"]:
            picture = stream.next()
    assert picture["epoch"] == 5
    status, data = client.post(f"/api/runs/{run['id']}/checkpoint")
    assert status == 200 and isinstance(data, bytes)
    saved = tmp_path / "page.safetensors"
    saved.write_bytes(data)
    model, transform, head, extra = runner.restore(str(saved))
    assert model.epoch == 5 and transform.features == ["x1", "x2", "sin(x1)"]
    words = shlex.split(picture["command"])
    assert words[:2] == ["backprop", "train"] and words[words.index("--epochs") + 1] == "5"
    again = tmp_path / "cli.safetensors"
    assert cli_main(words[1:] + ["--save", str(again), "--quiet"]) == 0
    cli_model, *_ = runner.restore(str(again))
    for name, value in model.parameters().items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(cli_model.parameters()[name]))
    stream.close()


def test_live_rate_change_and_its_refusals(server):
    client = Client(server)
    run, stream = client.watch(data="circle")
    status, settings = client.post(f"/api/runs/{run['id']}/settings", {"lr": 0.1, "l1": 0.001})
    assert status == 200 and settings["lr"] == 0.1 and settings["l1"] == 0.001
    assert server.sessions[run["id"]].run.optimizer.lr == 0.1
    assert "--lr 0.1" in stream.next()["command"]
    assert client.post(f"/api/runs/{run['id']}/settings", {"lr": -1})[0] == 400
    assert client.post(f"/api/runs/{run['id']}/settings", {"momentum": 1})[0] == 400
    stream.close()
    lm = client.new_run(data="circle", optimizer="lm")
    assert client.post(f"/api/runs/{lm['id']}/settings", {"lr": 0.1})[0] == 400


@pytest.mark.parametrize("settings, fragment", [
    ({"hidden": [10**7]}, "hidden"),
    ({"hidden": [4] * 50}, "hidden"),
    ({"grid": 10**6}, "grid"),
    ({"unit_grid": 1000}, "unit_grid"),
    ({"lr": -0.1}, "lr"),
    ({"lr": "fast"}, "lr"),
    ({"n": 10**9}, "n"),
    ({"noise": 5}, "noise"),
    ({"batch_size": 0}, "batch_size"),
    ({"data": "../../etc/passwd"}, "data"),
    ({"features": ["x1", "cos(x1)"]}, "features"),
    ({"device": "cuda:7"}, "device"),
    ({"optimizer": "lbfgs", "l1": 0.1}, "L1"),
    ({"seed": True}, "seed"),
    ({"surprise": 1}, "unknown"),
])
def test_bad_settings_get_a_400_with_a_message(server, settings, fragment):
    status, answer = Client(server).post("/api/runs", settings)
    assert status == 400 and fragment in answer["error"]


def test_cuda_is_refused_with_the_reason_where_it_is_unusable(server):
    cuda = [d for d in sessions.devices() if d["spec"] == "cuda"][0]
    if cuda["usable"]:
        pytest.skip("a GPU is usable here")
    status, answer = Client(server).post("/api/runs", {"device": "cuda"})
    assert status == 400 and cuda["reason"] in answer["error"]


def test_hostile_requests_are_refused(server):
    client = Client(server)
    port = client.port
    # DNS rebinding: another name for this address
    assert client.request("GET", "/api/info", headers={"Host": f"evil.example:{port}"})[0] == 421
    assert client.request("GET", "/", headers={"Host": "127.0.0.1:1"})[0] == 421
    assert client.request("GET", "/", headers={"Host": f"192.0.2.5:{port}"})[0] == 421  # not loopback
    for name in ("localhost", "LOCALHOST", "[::1]"):
        assert client.request("GET", "/api/info", headers={"Host": f"{name}:{port}"})[0] == 200
    # another site's page may not start runs
    assert client.post("/api/runs", {}, headers={"Origin": "http://evil.example"})[0] == 403
    assert client.post("/api/runs", {}, headers={"Origin": f"http://127.0.0.1:{port}"})[0] == 201
    # a form cannot post JSON: anything else is refused
    assert client.request("POST", "/api/runs", raw=b"data=x",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})[0] == 415
    status, answer = client.request("POST", "/api/runs", raw=b"{not json")
    assert status == 400 and "JSON" in answer["error"]
    assert client.request("POST", "/api/runs", raw=b"[1, 2]")[0] == 400
    assert client.request("POST", "/api/runs", raw=b" " * (70 * 1024))[0] == 413
    # nothing but the page's own files
    for path in ("/static/../session.py", "/static/%2e%2e/session.py", "/static/server.py", "/etc/passwd"):
        assert client.request("GET", path)[0] == 404
    # state changes are never a GET; no other methods
    assert client.request("GET", "/api/runs/abc/control")[0] == 405
    assert client.request("DELETE", "/api/runs")[0] == 405
    assert client.post("/api/runs/nosuchrun/control", {"action": "play"})[0] == 404
    run = client.new_run()
    assert client.post(f"/api/runs/{run['id']}/control", {"action": "explode"})[0] == 400
    status, page = client.request("GET", "/")
    assert status == 200 and b"backprop" in page


def test_listening_on_every_address_answers_ip_literals_and_its_own_names_only():
    srv = make_server("0.0.0.0", 0, None)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        client = Client(srv)
        client.host, port = "127.0.0.1", srv.server_address[1]
        ok = {"Host": f"192.0.2.5:{port}"}  # how another machine on the network names it
        assert client.request("GET", "/api/info", headers=ok)[0] == 200
        named = {"Host": f"{socket.gethostname()}:{port}"}
        assert client.request("GET", "/api/info", headers=named)[0] == 200
        assert client.request("GET", "/api/info", headers={"Host": f"rebound.example:{port}"})[0] == 421
        same = {**ok, "Origin": f"http://192.0.2.5:{port}"}
        assert client.post("/api/runs", {}, headers=same)[0] == 201
        other = {**ok, "Origin": f"http://192.0.2.6:{port}"}
        assert client.post("/api/runs", {}, headers=other)[0] == 403
    finally:
        srv.shutdown()
        srv.stop_all()
        srv.server_close()


def test_at_most_a_few_runs_at_once(server):
    client = Client(server)
    for _ in range(sessions.LIMITS["runs"]):
        client.new_run()
    status, answer = client.post("/api/runs", {})
    assert status == 429 and "close another" in answer["error"]
    for sid in list(server.sessions):
        client.post(f"/api/runs/{sid}/control", {"action": "stop"})
    for s in list(server.sessions.values()):
        s.thread.join(5)
    assert client.post("/api/runs", {})[0] == 201


def test_an_unwatched_run_stops_by_itself(server, monkeypatch):
    monkeypatch.setattr(sessions, "UNHEARD_S", 0.3)
    run = Client(server).new_run()
    session = server.sessions[run["id"]]
    session.thread.join(5)
    assert not session.thread.is_alive()


def test_a_data_file_is_offered_and_drawn_on_a_chosen_pair(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    y = (X[:, 1] + X[:, 3] > 0).astype(int)
    path = tmp_path / "four.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header="a,b,c,d,label", comments="")
    srv = make_server("127.0.0.1", 0, str(path))
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        client = Client(srv)
        info = client.request("GET", "/api/info")[1]
        assert info["data"]["file"]["columns"] == 4 and info["data"]["file"]["feature_names"] == list("abcd")
        run = client.new_run(data="file", pair=[1, 3], hidden=[4])
        assert run["pair"] == [1, 3] and run["train"]["x"][0] == pytest.approx(
            float(np.round(srv.sessions[run["id"]].run.train[0][0, 1], 5)))
        assert client.post("/api/runs", {"data": "file", "pair": [1, 9]})[0] == 400
        stream = client.stream(run["id"])
        assert decode(stream.next()["output"]).shape == (80 * 80,)
        stream.close()
    finally:
        srv.shutdown()
        srv.stop_all()
        srv.server_close()


def _start_cli(*args):
    proc = subprocess.Popen([sys.executable, "-m", "backprop", "playground", "--no-browser", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line


def test_the_command_prints_its_address_and_stops_on_ctrl_c():
    proc, line = _start_cli("--port", "0")
    try:
        assert line.startswith("backprop playground: http://127.0.0.1:")
        port = int(line.split(":")[3].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/api/info")
        assert conn.getresponse().status == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        proc.kill()


def test_a_taken_default_port_gives_a_free_one_and_a_taken_chosen_port_an_error():
    from backprop.cli.playground import DEFAULT_PORT

    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", DEFAULT_PORT))
    except OSError:
        blocker.close()
        blocker = None  # something else holds it already: just as good
    try:
        proc, line = _start_cli()
        try:
            assert line.startswith("backprop playground: http://127.0.0.1:")
            assert f":{DEFAULT_PORT}/" not in line
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
        done = subprocess.run([sys.executable, "-m", "backprop", "playground", "--no-browser", "--port",
                               str(DEFAULT_PORT)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and "in use" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    finally:
        if blocker is not None:
            blocker.close()


def test_listening_beyond_this_machine_warns():
    proc, line = _start_cli("--port", "0", "--host", "0.0.0.0")
    try:
        assert line.startswith("backprop playground: http://")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert "warning" in proc.stderr.read()


def test_a_bad_data_file_is_one_line():
    done = subprocess.run([sys.executable, "-m", "backprop", "playground", "--no-browser", "nosuch.csv"],
                          capture_output=True, text=True, timeout=30, env={**os.environ})
    assert done.returncode == 2 and done.stderr.startswith("backprop: error: no such file")


def test_a_curve_for_one_dimensional_regression(server):
    client = Client(server)
    run = client.new_run(data="sine", hidden=[5], grid=40, unit_grid=12, features=["x1", "sin(x1)"],
                         optimizer="lbfgs")
    assert run["task"] == "regression" and run["pair"] == [0] and run["classes"] is None
    stream = client.stream(run["id"])
    picture = stream.next()
    assert len(picture["curve"]) == 40 and "output" not in picture
    assert [len(layer) for layer in picture["units"]] == [5]
    assert decode(picture["units"][0][0]).shape == (12,)
    assert [np.shape(W) for W in picture["weights"]] == [(2, 5), (5, 1)]
    stream.close()


def test_a_built_in_set_named_on_the_command_line_is_offered_by_name():
    source = sessions.Source("blobs")
    assert source.path == "blobs" and source.describe()["file"]["columns"] == 2
    settings = sessions.check_settings({"data": "file"}, source)
    assert sessions.command_line(settings, source, 3).startswith("backprop train blobs ")


def test_random_settings_never_break_the_server(server):
    """Any mix of wrong types and sizes in the settings: a 201 or a 400, never a 500 or a
    dropped connection (a fixed seed, so a failure replays)."""
    import random

    client, rng = Client(server), random.Random(0)
    odd = [None, True, 0, -1, 0.5, 1e308, "x", "", [], [1], [0, 1], [10**7], {}, {"a": 1}, ["x1"], 10**30,
           [[1]], "cuda", "float64", "adam", "circle"]
    seen = set()
    for _ in range(150):
        payload = dict(sessions.DEFAULTS)
        for key in rng.sample(list(sessions.DEFAULTS), rng.randint(1, 3)):
            payload[key] = rng.choice(odd)
        status, answer = client.post("/api/runs", payload)
        seen.add(status)
        assert status in (201, 400), (payload, answer)
        if status == 201:
            client.post(f"/api/runs/{answer['id']}/control", {"action": "stop"})
            server.sessions[answer["id"]].thread.join(5)
    assert seen == {201, 400}


# -- what a hostile or careless client sends -------------------------------------------------------
def test_a_huge_integer_or_a_deeply_nested_body_is_a_bad_request_not_a_server_failure(server, capfd):
    client = Client(server)
    status, answer = client.request("POST", "/api/runs", raw=b'{"seed": ' + b"9" * 400 + b"}")
    assert status == 400 and answer["error"].startswith("seed must be in [0, 2147483647], got 999")
    assert len(answer["error"]) < 100  # the number is not echoed whole
    status, answer = client.request("POST", "/api/runs", raw=b"[" * 30_000 + b"]" * 30_000)
    assert status == 400 and "nests too deeply" in answer["error"]
    assert "Traceback" not in capfd.readouterr().err


def test_a_page_gone_mid_request_leaves_no_traceback(server, capfd):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(f"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json"
                 "\r\nContent-Length: 1000\r\n\r\n{".encode())
    time.sleep(0.2)  # the server is reading the body
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # a reset, as a closed tab's
    assert Client(server).request("GET", "/api/info")[0] == 200  # still serving
    time.sleep(0.3)
    assert "Traceback" not in capfd.readouterr().err


def _raw_answer(port, request: bytes, seconds: float = 3.0) -> bytes:
    """What the server sends for ``request`` until it closes the connection (at most ``seconds``)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=seconds)
    sock.sendall(request)
    got, deadline = b"", time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except TimeoutError:
        pass
    sock.close()
    return got


def test_head_of_the_stream_sends_headers_only_and_leaves_the_page_listening(server):
    client = Client(server)
    run, stream = client.watch(data="circle")
    session = server.sessions[run["id"]]
    listener = session.listener
    answer = _raw_answer(client.port, f"HEAD /api/runs/{run['id']}/events HTTP/1.1\r\n"
                                      f"Host: 127.0.0.1:{client.port}\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head and body == b""
    assert session.listener is listener and session.thread.is_alive() and not session.stop_asked
    client.post(f"/api/runs/{run['id']}/control", {"action": "step"})
    picture = stream.next()
    while picture["epoch"] == 0:
        picture = stream.next()
    assert picture["epoch"] == 1  # the page's stream goes on
    stream.close()


def test_connections_that_trickle_are_closed_when_their_request_time_is_up(server, monkeypatch):
    from backprop.playground import server as served

    monkeypatch.setattr(served, "REQUEST_S", 1.0)
    slow = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(4)]
    for sock in slow:
        sock.sendall(b"GET /api/info HTTP/1.1\r\n")
        sock.setblocking(False)
    start, closed = time.monotonic(), {}
    while len(closed) < len(slow) and time.monotonic() - start < 4.0:  # a byte each 0.1 s: never idle
        for i, sock in enumerate(slow):
            if i in closed:
                continue
            try:
                if sock.recv(1024) == b"":
                    closed[i] = time.monotonic() - start
                    continue
            except BlockingIOError:
                pass
            except OSError:
                closed[i] = time.monotonic() - start
                continue
            try:
                sock.send(b"X")
            except OSError:
                closed[i] = time.monotonic() - start
        time.sleep(0.1)
    for sock in slow:
        sock.close()
    assert len(closed) == len(slow) and max(closed.values()) < 2.0, closed
    assert Client(server).request("GET", "/api/info")[0] == 200  # others are served


def _serve(path, target=None):
    srv = make_server("127.0.0.1", 0, str(path), target)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return srv


def _close(srv):
    srv.shutdown()
    srv.stop_all()
    srv.server_close()


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_data_too_wide_to_draw_is_refused_and_wide_data_still_sends_finite_json(tmp_path):
    from backprop.errors import DataError

    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(100, 2))
    y = (X[:, 0] > 0).astype(int)
    near_max = tmp_path / "near_max.csv"
    np.savetxt(near_max, np.column_stack([X * 1.7e308, y]), delimiter=",", header="a,b,label", comments="")
    with pytest.raises(DataError, match=r"column 'a' spans .* too wide to draw .*: rescale it"):
        make_server("127.0.0.1", 0, str(near_max))
    curve = tmp_path / "curve.csv"  # a regression target too wide: the curve's axis
    t = np.linspace(-1, 1, 400) * 1.7e308  # more distinct values than classes are: a regression
    np.savetxt(curve, np.column_stack([t / 1e308, t]), delimiter=",", header="x,t", comments="")
    with pytest.raises(DataError, match="column 't' spans"):
        make_server("127.0.0.1", 0, str(curve))
    labels = tmp_path / "labels.csv"  # one column of classes: their values are the y axis too
    np.savetxt(labels, np.column_stack([X[:, 0], np.where(y, 1.7e308, -1.7e308)]), delimiter=",",
               header="a,t", comments="")
    with pytest.raises(DataError, match="column 't' spans"):
        make_server("127.0.0.1", 0, str(labels))
    wide = tmp_path / "wide.csv"  # a box of width 2.4e307 still fits: drawn, in finite JSON
    np.savetxt(wide, np.column_stack([X * 1e307, y]), delimiter=",", header="a,b,label", comments="")
    srv = _serve(wide)
    try:
        client = Client(srv)
        conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=10)
        conn.request("POST", "/api/runs", body=b'{"data": "file"}',
                     headers={"Host": f"127.0.0.1:{client.port}", "Content-Type": "application/json"})
        run = _strict_json(conn.getresponse().read())
        assert all(np.isfinite(run["domain"])) and run["domain"][1] > 9e306
        stream = client.stream(run["id"])
        line = stream.answer.fp.readline()
        while not line.startswith((b"data: ", b"event: end")):  # heartbeats, while the picture is made
            line = stream.answer.fp.readline()
        assert line.startswith(b"data: "), stream.answer.fp.readline()  # not the run's end
        picture = _strict_json(line[len("data: "):])
        assert decode(picture["output"]).shape == (80 * 80,)
        stream.close()
    finally:
        _close(srv)


def test_a_data_file_is_bounded_in_classes_and_in_rows_whatever_its_width(tmp_path, monkeypatch):
    from backprop.errors import DataError

    rng = np.random.default_rng(0)
    limit = sessions.LIMITS["classes"]
    assert limit == 10  # one colour each: the page's palette

    def classes(k):
        path = tmp_path / f"classes{k}.csv"
        rows = "".join(f"{rng.normal()},{rng.normal()},c{i % k}\n" for i in range(3 * k))
        path.write_text("a,b,label\n" + rows)
        return str(path)

    assert sessions.Source(classes(limit)).describe()["file"]["task"] == "classification"
    with pytest.raises(DataError, match=f"has {limit + 1} classes: the playground colours at most {limit}"):
        sessions.Source(classes(limit + 1))
    monkeypatch.setitem(sessions.LIMITS, "rows", 50)
    for columns in (1, 2):
        path = tmp_path / f"rows{columns}.csv"
        np.savetxt(path, rng.normal(size=(51, columns + 1)), delimiter=",", comments="",
                   header=",".join(f"c{i}" for i in range(columns + 1)))
        with pytest.raises(DataError, match="has 51 rows: the playground draws at most 50"):
            sessions.Source(str(path))


def test_the_target_column_is_chosen_as_backprop_train_does(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 2))
    path = tmp_path / "first.csv"
    path.write_text("species,a,b\n" + "".join(f"{'red' if a + b > 0 else 'blue'},{a},{b}\n" for a, b in X))
    srv = _serve(path, "species")
    try:
        client = Client(srv)
        assert client.request("GET", "/api/info")[1]["data"]["file"]["feature_names"] == ["a", "b"]
        run = client.new_run(data="file", hidden=[3])
        assert run["task"] == "classification" and run["classes"] == ["blue", "red"]
        words = shlex.split(run["command"])
        assert words[2:5] == [str(path), "--target", "species"]
    finally:
        _close(srv)
    from backprop.errors import DataError

    with pytest.raises(DataError, match="no column 'kind'"):  # train's own rule and message
        make_server("127.0.0.1", 0, str(path), "kind")
    # Without --target the last column is the target, and the text one is named as the likely one.
    with pytest.raises(DataError, match="if 'species' is the target, name it with --target 'species'"):
        make_server("127.0.0.1", 0, str(path))


def test_a_port_above_65535_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        cli_main(["playground", "--no-browser", "--port", "99999"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "must be a port number 0..65535" in err and "got 99999" in err


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_an_ipv6_literal_is_served_over_ipv6():
    srv = make_server("::1", 0, None)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        port = srv.server_address[1]
        assert srv.url == f"http://[::1]:{port}/" and srv.local
        conn = http.client.HTTPConnection("::1", port, timeout=5)
        conn.request("GET", "/api/info", headers={"Host": f"[::1]:{port}"})
        assert conn.getresponse().status == 200
        conn.close()
        conn = http.client.HTTPConnection("::1", port, timeout=5)
        conn.request("POST", "/api/runs", body=b"{}", headers={
            "Host": f"[::1]:{port}", "Origin": f"http://[::1]:{port}", "Content-Type": "application/json"})
        assert conn.getresponse().status == 201  # the page's own origin, as a browser names it
        conn.close()
    finally:
        _close(srv)
    proc, line = _start_cli("--port", "0", "--host", "::1")
    try:
        assert line.startswith("backprop playground: http://[::1]:")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert "warning" not in proc.stderr.read()  # loopback
