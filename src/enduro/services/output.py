"""A service's output: a size-bounded log file plus the last lines kept in memory."""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from pathlib import Path

__all__ = ["OutputLog"]


class OutputLog:
    """Writes lines to ``path``, rolling it to ``path.1`` past ``max_bytes`` (so the pair stays
    under twice that), and keeps the last ``keep`` lines for crash logs and readiness."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max(4096, max_bytes)
        self.tail: deque[str] = deque(maxlen=keep)
        self._fh = path.open("ab")
        self._size = self._fh.tell()
        self.lines_seen = 0
        self._changed = asyncio.Event()

    def write_line(self, raw: bytes) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime()).encode()
        data = stamp + b" " + raw if raw.endswith(b"\n") else stamp + b" " + raw + b"\n"
        if self._size + len(data) > self.max_bytes:
            self._fh.close()
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self._fh = self.path.open("ab")
            self._size = 0
        self._fh.write(data)
        self._fh.flush()
        self._size += len(data)
        self.tail.append(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines_seen += 1
        self._changed.set()

    def mark(self, text: str) -> None:
        """A line of enduro's own in the service log (start, exit, restart)."""
        self.write_line(f"[enduro] {text}".encode())

    async def pump(self, stream: asyncio.StreamReader) -> None:
        """Copy a process's output until it closes."""
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the reader's limit
                line = await stream.read(65536)
            if not line:
                return
            self.write_line(line)

    async def changed(self) -> None:
        await self._changed.wait()
        self._changed.clear()

    def close(self) -> None:
        self._fh.close()
