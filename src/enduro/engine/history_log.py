"""The operations' history (``history.jsonl``) that the checkers read."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

__all__ = ["HistoryLog"]



class HistoryLog:
    """Appends operations to ``history.jsonl`` (line writes with O_APPEND, so worker
    processes can share the file)."""

    def __init__(self, path: Path, worker: int) -> None:
        self.path = path
        self.worker = worker
        self._fh = path.open("a", encoding="utf-8", buffering=1)
        self.index = 0

    def record(self, process: str, type_: str, f: str, key: Any, value: Any) -> None:
        self.index += 1
        self._fh.write(json.dumps({"index": f"{self.worker}-{self.index}", "process": process,
                                   "type": type_, "f": f, "key": key, "value": value,
                                   "time": time.time()}, default=str) + "\n")

    def close(self) -> None:
        self._fh.close()

