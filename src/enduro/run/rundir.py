"""The run directory: where a run keeps its state, events, logs, snapshots and results."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from enduro.base.files import AtomicWriter, json_bytes, write_json_atomic

__all__ = ["STATES", "AtomicWriter", "RunDir", "write_json_atomic"]

STATES = ("starting", "running", "completed", "failed", "stopped")


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
        payload = json_bytes(state)
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
