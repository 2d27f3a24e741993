"""Checkpoints and output files against a hostile user: forged headers (re-signed, so the
checksum passes) must end in one CheckpointError, never another exception nor an allocation the
file does not pay for; every file the tool writes goes through one guard (never over a
checkpoint or the command's own input, a foreign file only with --force, through symbolic
links, atomically, cleaning up what a killed save left)."""

from __future__ import annotations

import copy
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tracemalloc
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
from safetensors.numpy import load_file
from safetensors.numpy import save as st_save

import backprop as bp
from backprop import checkpoint, datafiles, runner
from backprop.cli import build_parser, main
from backprop.errors import BackpropError, CheckpointError

FOUR = "x0,x1\n0,0\n0,1\n1,0\n1,1\n"


def _write_signed(dst, meta, tensors):
    """Write a checkpoint re-signed as an attacker would: the checksum is public (SHA-256 of the
    tensors and the header)."""
    meta = {**meta, "sha256": checkpoint._digest(tensors, meta)}
    with open(dst, "wb") as handle:
        handle.write(st_save(tensors, metadata={"backprop": json.dumps(meta)}))
    return dst


def forge(src, dst, edit_meta=None, edit_tensors=None):
    """Copy checkpoint ``src`` to ``dst`` with its header and tensors edited, re-signed."""
    meta, tensors = checkpoint.read_header(str(src)), dict(load_file(str(src)))
    for edit, part in ((edit_meta, meta), (edit_tensors, tensors)):
        new = edit(part) if edit else None  # an edit changes its argument, or returns a new dict
        if isinstance(new, dict):
            meta, tensors = (new, tensors) if part is meta else (meta, new)
    return _write_signed(dst, meta, tensors)


def cli(argv):
    """(exit status, stderr) of ``backprop ARGV`` in-process; any exception but SystemExit escapes."""
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
    return code, err.getvalue()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Two small training runs' checkpoints: a classifier with computed features and early
    stopping (moons), and a regressor (sine); the folder also holds a 2-column CSV."""
    folder = tmp_path_factory.mktemp("saved")
    bp.run("moons", hidden=[3], epochs=3, val_split=0.2, early_stopping=5, features=["x1", "x2", "x1*x2"],
           save=str(folder / "moons.safetensors"))
    bp.run("sine", hidden=[3], epochs=2, save=str(folder / "sine.safetensors"))
    (folder / "four.csv").write_text(FOUR)
    (folder / "one.csv").write_text("x0\n0.5\n1.5\n")
    return folder


# -- forged headers ------------------------------------------------------------------
HOSTILE = [None, "[1,2]", [1, 2], {"a": 1}, -1, 10**30, float("nan"), True, "x"]


def _paths(obj, prefix=()):
    """Every key path of a JSON document (the first two items of each list)."""
    yield prefix
    items = obj.items() if isinstance(obj, dict) else enumerate(obj[:2]) if isinstance(obj, list) else ()
    for key, value in items:
        yield from _paths(value, prefix + (key,))


def _edited(meta, path, value, delete=False):
    meta = copy.deepcopy(meta)
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return meta


def _must_hold(path, data, input_csv):
    """Loading ``path`` ends in CheckpointError or a usable model; using it ends in success or a
    one-line error (what the command line prints with exit 2), never another exception."""
    try:
        runner.restore(str(path))
    except CheckpointError:
        return "refused"
    parser = build_parser()
    for argv in (["predict", path, input_csv, "--proba"], ["evaluate", path, data]):
        args = parser.parse_args([str(a) for a in argv])
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            try:
                args.func(args)
            except BackpropError:
                pass
    try:
        runner.Run(resume=str(path), epochs=10**6)
    except BackpropError:
        pass
    return "loaded"


@pytest.mark.parametrize("name, data, csv", [("moons", "moons", "four.csv"), ("sine", "sine", "one.csv")])
def test_header_fuzz_ends_in_checkpoint_error(name, data, csv, saved, tmp_path, monkeypatch):
    """Every key of the header set to each hostile value, or deleted (about 1,000 files per run)."""
    built_in = datafiles.load_builtin(data)  # drawn once: the run and evaluate read it per file
    monkeypatch.setattr(datafiles, "load_builtin", lambda spec: built_in if spec == data else None)
    src = saved / f"{name}.safetensors"
    meta, tensors = checkpoint.read_header(str(src)), dict(load_file(str(src)))
    meta["history"]["records"] = meta["history"]["records"][:1]
    forged, outcomes = tmp_path / "forged.safetensors", {"refused": 0, "loaded": 0}
    for path in list(_paths(meta))[1:]:
        if path[0] in ("format", "sha256"):
            continue
        edits = [(value, False) for value in HOSTILE] + [(None, True)] * isinstance(path[-1], str)
        for value, delete in edits:
            _write_signed(forged, _edited(meta, path, value, delete), tensors)
            try:
                outcomes[_must_hold(forged, data, saved / csv)] += 1
            except Exception as exc:
                raise AssertionError(f"{'deleting' if delete else f'setting to {value!r}'} "
                                     f"{'.'.join(map(str, path))}: {type(exc).__name__}: {exc}") from exc
    assert outcomes["refused"] > 300 and outcomes["loaded"] > 50  # both sides exercised


def _deep(depth):
    return "[" * depth + "]" * depth


WHOLE_HEADERS = {  # the metadata text itself; a checksum cannot be computed for most
    "a list": "[1,2]", "a string": '"x"', "a number": "5", "nested 100,000 deep": _deep(100_000),
    "a string version": '{"format": "backprop.checkpoint", "format_version": "2"}',
    "a float version": '{"format": "backprop.checkpoint", "format_version": 1.5}',
    "a boolean version": '{"format": "backprop.checkpoint", "format_version": true}',
}


@pytest.mark.parametrize("what", WHOLE_HEADERS)
def test_a_header_that_is_not_an_object(what, tmp_path):
    path = tmp_path / "h.safetensors"
    path.write_bytes(st_save({"param.0.W": np.zeros((1, 1), np.float32)},
                             metadata={"backprop": WHOLE_HEADERS[what]}))
    with pytest.raises(CheckpointError, match="is a safetensors file but not a backprop checkpoint"):
        runner.restore(str(path))


def test_a_header_nested_too_deep_to_sign_again(saved, monkeypatch):
    """JSON decodes a few levels deeper than the checksum's encoding reaches from deeper in the
    stack (a header nested about 990 deep): that too is one CheckpointError."""
    def too_deep(*args):
        raise RecursionError("maximum recursion depth exceeded while encoding a JSON object")

    monkeypatch.setattr(checkpoint, "_digest", too_deep)
    with pytest.raises(CheckpointError, match="not a backprop checkpoint"):
        runner.restore(str(saved / "sine.safetensors"))


TENSOR_FORGERIES = {
    "a weight transposed": lambda t: t.update({"param.2.W": t["param.2.W"].T.copy()}),
    "a bias missing": lambda t: t.pop("param.0.b"),
    "integer weights": lambda t: t.update({"param.0.W": t["param.0.W"].astype(np.int64)}),
    "an optimizer moment of another shape": lambda t: t.update({"opt.0.W.m": np.zeros(3, np.float32)}),
    "an optimizer moment missing": lambda t: t.pop("opt.0.W.m"),
    "a parameter too many": lambda t: t.update({"param.9.W": np.zeros((1, 1), np.float32)}),
    "a mean of other length": lambda t: t.update({"extra.x_mean": np.zeros(5)}),
    "a zero standard deviation": lambda t: t.update({"extra.x_std": np.zeros_like(t["extra.x_std"])}),
    "a NaN standard deviation": lambda t: t.update({"extra.x_std": np.full_like(t["extra.x_std"], np.nan)}),
    "a mean without its deviation": lambda t: t.pop("extra.x_std"),
}


@pytest.mark.parametrize("what", TENSOR_FORGERIES)
def test_forged_tensors_are_refused(what, saved, tmp_path):
    forged = forge(saved / "moons.safetensors", tmp_path / "f.safetensors",
                   edit_tensors=TENSOR_FORGERIES[what])
    with pytest.raises(CheckpointError, match="inconsistent"):
        runner.restore(str(forged))


@pytest.mark.parametrize("slots", [["m"], ["v"], []])
def test_forged_optimizer_state_keys_are_refused(slots, saved, tmp_path):
    """Adam keeps m and v for each parameter: a header naming fewer would resume into a KeyError."""
    forged = forge(saved / "moons.safetensors", tmp_path / "f.safetensors",
                   lambda m: m["optimizer"].update(state_keys=[slots] * len(m["optimizer"]["state_keys"])))
    with pytest.raises(CheckpointError, match=r"inconsistent \(optimizer state keys\)"):
        checkpoint.load(str(forged))


@pytest.mark.parametrize("record", [{"epoch": 1, "train_loss": "x"}, {"epoch": 1, "loss": 0.5}, {"epoch": 0}])
def test_forged_history_records_are_refused(record, saved, tmp_path):
    """The curves plot and the progress lines read every record: numbers under known keys only."""
    forged = forge(saved / "moons.safetensors", tmp_path / "f.safetensors",
                   lambda m: m["history"].update(records=[record]))
    with pytest.raises(CheckpointError, match=r"inconsistent \(history\)"):
        checkpoint.load(str(forged))


@pytest.mark.parametrize("source", ["a training run", "Python"])
def test_a_forged_huge_header_allocates_nothing(source, saved, tmp_path):
    """10,000 x 10,000 layers claimed by a 50 KB file: refused from the header and the tensor
    shapes, before any weight is drawn (before: 2.5 GB and 18 s, growing quadratically)."""
    src = saved / "moons.safetensors"
    if source == "Python":  # no run settings to disagree with: the shapes alone must tell
        src = tmp_path / "py.safetensors"
        checkpoint.save(bp.mlp([3, 3, 2], seed=0), str(src))

    def huge(meta):
        for spec in meta["layers"]:
            if spec["type"] == "dense":
                spec["config"].update(in_features=10_000, out_features=10_000)

    forged = forge(src, tmp_path / "big.safetensors", huge)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"layer 0 \(dense\) needs W \(10000, 10000\), b \(10000,\) "
                           r"but its param tensors are W \(3, 3\), b \(3,\)"):
            checkpoint.load(str(forged))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # bytes; a 10,000 x 10,000 float32 layer alone is 400 MB


def test_class_names_must_match_the_outputs(tmp_path):
    """Four classes trained, three names left: predict indexed past the list (IndexError)."""
    path = tmp_path / "blobs.safetensors"
    bp.run("blobs", hidden=[3], epochs=1, save=str(path))
    assert len(checkpoint.read_header(str(path))["extra"]["transform"]["classes"]) == 4
    forged = forge(path, tmp_path / "f.safetensors", lambda m: m["extra"]["transform"]["classes"].pop())
    (tmp_path / "four.csv").write_text(FOUR)
    code, err = cli(["predict", forged, tmp_path / "four.csv"])
    assert code == 2 and "does not fit 3 targets and 4 outputs" in err and len(err.splitlines()) == 1


def test_repeated_feature_names_are_a_checkpoint_error(saved, tmp_path):
    """Two columns of one name: evaluate would read the same column twice (chance accuracy, exit 0)."""
    forged = forge(saved / "moons.safetensors", tmp_path / "f.safetensors",
                   lambda m: m["extra"].update(feature_names=["x0", "x0"]))
    code, err = cli(["evaluate", forged, saved / "four.csv"])
    assert code == 2 and "inconsistent (the feature names (one distinct name per column))" in err


@pytest.mark.parametrize("key, value", [("seed", "[1,2]"), ("seed", -3), ("seed", None), ("epochs", 0),
                                        ("val_split", "[1,2]"), ("val_split", 1e308),
                                        ("val_split", float("nan"))])
def test_forged_run_settings_are_a_checkpoint_error(key, value, saved, tmp_path):
    forged = forge(saved / "moons.safetensors", tmp_path / "f.safetensors",
                   lambda m: m["extra"]["train"]["settings"].update({key: value}))
    code, err = cli(["train", "--resume", forged, "--epochs", "9", "--quiet"])
    assert code == 2 and "is a backprop checkpoint but its header is inconsistent (a setting" in err


@pytest.mark.parametrize("extra", ["[1,2]", [1, 2], None])
def test_extra_that_is_not_an_object(extra, saved, tmp_path):
    forged = forge(saved / "moons.safetensors", tmp_path / "f.safetensors", lambda m: m.update(extra=extra))
    code, err = cli(["predict", forged, saved / "four.csv"])
    assert code == 2 and "inconsistent (extra)" in err


def test_a_checkpoint_saved_from_python_keeps_its_own_extras(tmp_path):
    model = bp.mlp([2, 3, 1], seed=0)
    checkpoint.save(model, str(tmp_path / "m.st"), extra={"note": [1, 2], "user": {"a": None}})
    assert checkpoint.load(str(tmp_path / "m.st")).extra == {"note": [1, 2], "user": {"a": None}}


# -- every file the tool writes ---------------------------------------------------------
@pytest.fixture
def model(saved, tmp_path):
    """A copy of the moons model and the 4-row input, in a fresh folder."""
    path = tmp_path / "m.safetensors"
    path.write_bytes((saved / "moons.safetensors").read_bytes())
    (tmp_path / "four.csv").write_text(FOUR)
    return path


def _predict(model, *extra):
    return cli(["predict", model, model.parent / "four.csv", *extra])


def test_predict_out_never_over_the_model(model):
    before = model.read_bytes()
    for force in ([], ["--force"]):
        code, err = _predict(model, "--out", model, *force)
        assert code == 2 and "is a checkpoint: it is left alone" in err, err
    assert model.read_bytes() == before
    renamed = model.parent / "m.bin"  # another checkpoint (not this command's), by content
    renamed.write_bytes(before)
    code, err = _predict(model, "--out", renamed, "--force")
    assert code == 2 and "is a checkpoint" in err and renamed.read_bytes() == before


@pytest.mark.parametrize("how", ["name", "symlink", "hard link"])
def test_predict_out_never_over_its_input(how, model):
    data = model.parent / "four.csv"
    out = {"name": data, "symlink": model.parent / "link.csv", "hard link": model.parent / "hard.csv"}[how]
    if how == "symlink":
        out.symlink_to(data)
    elif how == "hard link":
        os.link(data, out)
    code, err = _predict(model, "--out", out, "--force")
    assert code == 2 and "is this command's own input" in err
    assert data.read_text() == FOUR


def test_predict_out_replaces_only_its_own_files_without_force(model):
    out = model.parent / "notes.csv"
    out.write_text("my,notes\n1,2\n")
    code, err = _predict(model, "--out", out)
    assert code == 2 and "is not a predictions file written by backprop" in err and "--force" in err
    assert out.read_text() == "my,notes\n1,2\n"
    assert _predict(model, "--out", out, "--force")[0] == 0
    written = out.read_text()
    assert written.splitlines()[0] == "prediction" and len(written.splitlines()) == 5
    for extra in ([], ["--proba"]):  # a predictions file, with or without probabilities: ours
        assert _predict(model, "--out", out, *extra)[0] == 0
    assert out.read_text().splitlines()[0] == "prediction,p_0,p_1"
    empty = model.parent / "empty.csv"
    empty.touch()  # nothing to lose, as from mktemp
    assert _predict(model, "--out", empty)[0] == 0 and empty.read_text().startswith("prediction\n")


def test_predict_out_refuses_what_is_not_a_regular_file(model):
    # Like /dev/null or /dev/stdout: renaming over it would replace the node itself (a socket
    # here, which unlike a FIFO cannot block the test should the check go).
    node = model.parent / "node"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(node))
        code, err = _predict(model, "--out", node, "--force")
    assert code == 2 and "not a regular file" in err and node.is_socket()
    code, err = _predict(model, "--out", model.parent)
    assert code == 2 and "is a folder" in err


def test_writes_follow_a_symbolic_link(model, tmp_path):
    """--save and --out through a link replace the file it points to; the link stays."""
    real, link = tmp_path / "run1.safetensors", tmp_path / "latest.safetensors"
    real.write_bytes(model.read_bytes())
    link.symlink_to(real.name)
    code, err = cli(["train", "--resume", link, "--epochs", "5", "--quiet"])
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == real.name
    assert checkpoint.read_header(str(real))["epoch"] == 5
    out, target = tmp_path / "out.csv", tmp_path / "sub" / "pred.csv"
    target.parent.mkdir()
    out.symlink_to(target)  # dangling: the file is made where the link points
    assert _predict(model, "--out", out)[0] == 0
    assert out.is_symlink() and target.read_text().startswith("prediction\n")


def test_python_save_never_over_a_foreign_file(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    with pytest.raises(CheckpointError, match="not a backprop checkpoint: it is left alone"):
        checkpoint.save(bp.mlp([2, 1]), str(data))
    assert data.read_text() == "a,b\n1,2\n"


def _temp(folder, name, pid, age_s):
    """A temporary file as write_atomic names it (``pid`` None: as before this version), ``age_s`` old."""
    _temp.n += 1
    random = f"rand{_temp.n:04d}"
    path = folder / (f".{name}.{pid}.{random}.tmp" if pid is not None else f".{name}.{random}.tmp")
    path.write_bytes(b"partial")
    os.utime(path, (time.time() - age_s,) * 2)
    return path.name


_temp.n = 0


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_save_removes_only_stale_temporary_files_of_its_own(model, tmp_path):
    dead, alive, name = _dead_pid(), os.getpid(), model.name
    gone = {_temp(tmp_path, name, dead, 120),  # its writer died a while ago
            _temp(tmp_path, name, alive, 2 * checkpoint.TEMP_STALE_S),  # untouched for two days
            _temp(tmp_path, name, None, 2 * checkpoint.TEMP_STALE_S)}  # an older version's name
    kept = {_temp(tmp_path, name, dead, 5),  # just written: maybe a writer on another machine
            _temp(tmp_path, name, alive, 120),  # a live writer
            _temp(tmp_path, "other.safetensors", dead, 120),  # another file's
            _temp(tmp_path, name, None, 120)}
    (tmp_path / f".{name}.{dead}.not-ours.tmp").write_text("x")
    os.utime(tmp_path / f".{name}.{dead}.not-ours.tmp", (0, 0))
    kept.add(f".{name}.{dead}.not-ours.tmp")
    assert cli(["train", "--resume", model, "--epochs", "4", "--quiet"])[0] == 0
    left = set(os.listdir(tmp_path))
    assert not gone & left and kept <= left


def test_kill_9_during_a_save_is_cleaned_up_by_the_next(model, tmp_path):
    """A save killed between write and rename leaves its temporary file; the next save of the
    same path removes it once it is stale."""
    script = ("import os, sys, time\nfrom backprop import checkpoint\n"
              "os.fsync = lambda fd: (print('writing', flush=True), time.sleep(60))\n"
              "checkpoint.write_atomic(sys.argv[1], b'x' * 1000)\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(model)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "writing\n"
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert left == [f".{model.name}.{child.pid}.{left[0].split('.')[-2]}.tmp"]
    os.utime(tmp_path / left[0], (time.time() - 2 * checkpoint.TEMP_ORPHAN_S,) * 2)
    assert cli(["train", "--resume", model, "--epochs", "4", "--quiet"])[0] == 0
    assert sorted(os.listdir(tmp_path)) == ["four.csv", model.name]


def test_pictures_replace_only_pictures_of_ours(tmp_path):
    """The rule --plot DIR needs: a PNG drawn by backprop (its Software text) may be redrawn,
    a user's picture or any other file is left alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    ours, theirs, text = tmp_path / "curves.png", tmp_path / "fit.png", tmp_path / "decision_boundary.png"
    fig.savefig(ours, metadata={"Software": checkpoint.PICTURE_SOFTWARE})
    fig.savefig(theirs)  # Matplotlib's own Software text: somebody's picture
    plt.close(fig)
    text.write_text("notes")
    checkpoint.check_writable(str(ours), "picture")
    for path in (theirs, text):
        with pytest.raises(CheckpointError, match="is not a picture drawn by backprop: it is left alone"):
            checkpoint.check_writable(str(path), "picture")


def test_weights_holding_nan_are_not_saved_over_a_good_checkpoint(tmp_path):
    model = bp.mlp([2, 3, 2], seed=0)
    path = tmp_path / "m.safetensors"
    checkpoint.save(model, str(path))
    before = path.read_bytes()
    flat = np.asarray(model.flat_parameters()).copy()
    flat[4] = np.nan  # in 0.W, as a diverged step or a stray set_flat_parameters leaves it
    model.set_flat_parameters(flat)
    with pytest.raises(CheckpointError, match=r"not saved: the weights 0.W hold NaN or infinity"):
        checkpoint.save(model, str(path))
    assert path.read_bytes() == before and checkpoint.load(str(path)).model.n_params == 17


def test_a_file_from_a_newer_format_says_to_upgrade(tmp_path):
    """A newer format is refused by its version alone, before its checksum or its contents."""
    path = tmp_path / "newer.safetensors"
    meta = {"format": "backprop.checkpoint", "format_version": checkpoint.FORMAT_VERSION + 1,
            "backprop_version": "9.0"}
    path.write_bytes(st_save({"param.0.W": np.zeros((1, 1), np.float32)},
                             metadata={"backprop": json.dumps(meta)}))
    with pytest.raises(CheckpointError, match=r"was written by a newer backprop \(9.0\): upgrade backprop"):
        checkpoint.load(str(path))
