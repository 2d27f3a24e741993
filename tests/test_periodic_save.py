"""A training run with ``save`` refreshes its checkpoint on the way (``runner.PeriodicSave``), so a
run killed mid-way keeps what it had reached, at most ``SAVE_EVERY_S`` seconds old."""

from __future__ import annotations

import backprop as bp
from backprop.apps import runner


def _seen_on_disk(path):
    """A user callback that records, at each epoch's end, what the checkpoint file holds then."""
    seen = []

    def look(record, _model):
        try:
            header = bp.checkpoint.read_header(path)
        except bp.CheckpointError:
            seen.append(None)
        else:
            seen.append((header["epoch"], header["extra"]["train"]["status"]))
    return seen, look


def test_every_due_epoch_refreshes_the_checkpoint_after_the_users_callbacks(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "SAVE_EVERY_S", 0.0)  # due after every epoch
    path = str(tmp_path / "m.safetensors")
    seen, look = _seen_on_disk(path)
    summary = bp.run("xor", epochs=4, save=path, callbacks=[look])
    # The user's callback runs first: at epoch e's end the file holds epoch e - 1.
    assert seen == [None, (1, "training"), (2, "training"), (3, "training")]
    assert bp.checkpoint.read_header(path)["extra"]["train"]["status"] == summary["status"] == "completed"


def test_nothing_is_written_on_the_way_before_it_is_due(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "SAVE_EVERY_S", 3600.0)
    path = str(tmp_path / "m.safetensors")
    seen, look = _seen_on_disk(path)
    bp.run("xor", epochs=3, save=path, callbacks=[look])
    assert seen == [None, None, None]
    assert bp.checkpoint.read_header(path)["epoch"] == 3
