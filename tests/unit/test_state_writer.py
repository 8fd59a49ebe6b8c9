"""state.json written from a thread of its own: atomically, newest content last, no fsync on
the caller's thread for the periodic write."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from enduro.run.rundir import RunDir


def test_the_periodic_write_fsyncs_off_the_calling_thread(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    caller = threading.get_ident()
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(threading.get_ident())
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    rundir = RunDir.adopt(tmp_path / "run")
    for n in range(20):
        rundir.write_state({"n": n}, background=True)
    assert rundir.flush(10.0)
    assert synced and caller not in synced
    assert json.loads(rundir.file("state.json").read_text()) == {"n": 19}
    assert not list(rundir.path.glob(".state.json.tmp"))


def test_a_write_now_is_never_overwritten_by_an_older_post(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    gate = threading.Event()
    real = os.replace

    def slow_replace(src: Any, dst: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            gate.wait(5.0)  # the background write stalls (a slow disk)
        real(src, dst)

    monkeypatch.setattr(os, "replace", slow_replace)
    rundir = RunDir.adopt(tmp_path / "run")
    rundir.write_state({"state": "running"}, background=True)
    rundir.write_state({"state": "running", "later": True}, background=True)
    threading.Timer(0.2, gate.set).start()
    rundir.write_state({"state": "completed"})  # the final word, written now
    assert rundir.flush(10.0)
    assert json.loads(rundir.file("state.json").read_text()) == {"state": "completed"}
