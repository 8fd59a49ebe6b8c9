"""The demo service's downloads kept on disk (``--data-dir``): each create and delete appended
to ``downloads.jsonl`` and synced before the answer (after it, with the lost-write defect)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from enduro.demo.downloads import Downloads

__all__ = ["DownloadJournal"]


class DownloadJournal:
    """``data_dir``'s downloads.jsonl; without a ``data_dir`` nothing is kept."""

    def __init__(self, data_dir: Path | None, *, lost_write: bool) -> None:
        self.data_dir = data_dir
        self.lost_write = lost_write
        self._file: Any = None
        self._pending: list[str] = []

    def load(self, downloads: Downloads) -> None:
        """Restore downloads written by an earlier run of the service."""
        if self.data_dir is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "downloads.jsonl"
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a torn last line
                downloads.restore(rec)
        self._file = path.open("a", encoding="utf-8")

    def persist(self, record: dict[str, Any]) -> None:
        """Append ``record`` and sync it (with the lost-write defect: buffer it)."""
        if self._file is None:
            return
        line = json.dumps(record) + "\n"
        if self.lost_write:
            self._pending.append(line)  # acknowledged now, on disk later (the bug)
            return
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())

    async def flusher(self) -> None:
        """The write-behind buffer of the lost-write defect."""
        while True:
            await asyncio.sleep(2.0)
            if self._pending and self._file is not None:
                self._file.write("".join(self._pending))
                self._file.flush()
                os.fsync(self._file.fileno())
                self._pending.clear()
