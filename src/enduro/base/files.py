"""Files a reader never sees half-written, even when the writer is killed: temporary file,
fsync, rename; ``AtomicWriter`` does it from a thread of its own for an event loop."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["AtomicWriter", "json_bytes", "write_json_atomic"]


def json_bytes(data: Any) -> bytes:
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
    _replace_atomic(path, json_bytes(data))


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
