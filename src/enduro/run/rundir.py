"""The run directory: where a run keeps its state, events, logs, snapshots and results."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

__all__ = ["STATES", "RunDir", "write_json_atomic"]

STATES = ("starting", "running", "completed", "failed", "stopped")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader never sees half a file, even if the writer is killed."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass
class RunDir:
    """``runs/<plan>-<UTC stamp>[-tag]/`` and the files in it."""

    path: Path

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

    def write_state(self, state: dict[str, Any]) -> None:
        write_json_atomic(self.file("state.json"), state)

    def open_events(self) -> TextIO:
        return self.file("events.jsonl").open("a", encoding="utf-8", buffering=1)

    def open_log(self) -> TextIO:
        return (self.path / "logs" / "enduro.log").open("a", encoding="utf-8", buffering=1)
