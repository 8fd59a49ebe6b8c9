"""The run directory: where a run keeps its state, events, logs, snapshots and results."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = ["STATES", "AtomicWriter", "RunDir", "write_json_atomic"]

STATES = ("starting", "running", "completed", "failed", "stopped")


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False, default=str) + "\n").encode()


def _replace_atomic(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader never sees half a file, even if the writer is killed."""
    _replace_atomic(path, _json_bytes(data))


class AtomicWriter:
    """Rewrites one file atomically (temporary file, fsync, rename), from a thread of its own
    when asked with ``post``: an event loop hands over the bytes and never waits for the disk.
    Only the newest content matters: posts not yet written are replaced by newer ones, and
    an older content never lands after a newer one (``write`` included)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cv = threading.Condition()
        self._io = threading.Lock()  # one write to the disk at a time, in order
        self._seq = 0  # contents handed in
        self._written = 0  # the newest content on disk
        self._next: tuple[int, bytes] | None = None
        self._thread: threading.Thread | None = None
        self._busy = False
        self.error: OSError | None = None  # the last background write's failure

    def post(self, payload: bytes) -> None:
        """Write ``payload`` soon, on the writer thread."""
        with self._cv:
            self._seq += 1
            self._next = (self._seq, payload)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, daemon=True,
                                                name=f"enduro-write-{self.path.name}")
                self._thread.start()
            self._cv.notify_all()

    def write(self, payload: bytes) -> None:
        """Write ``payload`` now, in the calling thread (errors raised); a post not yet
        written is dropped, being older."""
        with self._cv:
            self._seq += 1
            seq = self._seq
            self._next = None
        self._land(seq, payload)

    def _land(self, seq: int, payload: bytes) -> None:
        with self._io:
            if seq > self._written:
                _replace_atomic(self.path, payload)
                self._written = seq

    def _work(self) -> None:
        while True:
            with self._cv:
                self._busy = False
                self._cv.notify_all()
                while self._next is None:
                    self._cv.wait()
                seq, payload = self._next
                self._next = None
                self._busy = True
            try:
                self._land(seq, payload)
                self.error = None
            except OSError as exc:  # a full disk: the next write tries again
                self.error = exc

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every post is on disk (or ``timeout``)."""
        with self._cv:
            return self._cv.wait_for(lambda: self._next is None and not self._busy, timeout)


@dataclass
class RunDir:
    """``runs/<plan>-<UTC stamp>[-tag]/`` and the files in it."""

    path: Path
    _state: AtomicWriter | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def create(cls, out: Path, plan_name: str, tag: str | None, wall: float) -> RunDir:
        name = cls.name_for(plan_name, tag, wall)
        path = out / name
        n = 1
        while True:
            try:
                path.mkdir(parents=True)
                break
            except FileExistsError:
                n += 1
                path = out / f"{name}-{n}"
        for sub in ("logs", "snapshots"):
            (path / sub).mkdir()
        return cls(path)

    @classmethod
    def adopt(cls, path: Path) -> RunDir:
        """A run directory named beforehand (by ``enduro start``)."""
        path.mkdir(parents=True, exist_ok=True)
        for sub in ("logs", "snapshots"):
            (path / sub).mkdir(exist_ok=True)
        return cls(path)

    @staticmethod
    def name_for(plan_name: str, tag: str | None, wall: float) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(wall))
        name = f"{plan_name}-{stamp}"
        if tag:
            name += "-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", tag)
        return name

    @property
    def run_id(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    def write_state(self, state: dict[str, Any], *, background: bool = False) -> None:
        """Rewrite ``state.json`` atomically: now (errors raised), or with ``background`` on
        the writer thread, so that the periodic write never blocks the event loop on the
        disk (fsync). The content is serialised here: later changes to ``state`` are not
        seen."""
        if self._state is None:
            self._state = AtomicWriter(self.file("state.json"))
        payload = _json_bytes(state)
        if background:
            self._state.post(payload)
        else:
            self._state.write(payload)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait for background writes (``state.json``) to reach the disk."""
        return self._state.flush(timeout) if self._state is not None else True

    def open_events(self) -> TextIO:
        return self.file("events.jsonl").open("a", encoding="utf-8", buffering=1)

    def open_log(self) -> TextIO:
        return (self.path / "logs" / "enduro.log").open("a", encoding="utf-8", buffering=1)
