"""The run directory: where a run keeps its state, events, logs, snapshots and results."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from enduro.base.files import AtomicWriter, json_bytes, write_json_atomic
from enduro.documents.events import Event, make_event
from enduro.documents.state import State

__all__ = ["STATES", "AtomicWriter", "EventLog", "RunDir", "write_json_atomic"]

# The states a runner writes (``dead`` is written by ``enduro stop`` of a dead runner).
STATES = ("starting", "running", "completed", "failed", "stopped")


class EventLog:
    """``events.jsonl``, one record per line (line-buffered: a killed runner leaves at most a
    torn last line, which readers skip). Each record is made through its kind's model."""

    def __init__(self, fh: TextIO) -> None:
        self._fh = fh

    def append(self, kind: str, t: float, wall: float, /, **data: Any) -> Event | None:
        """Write one record; return it, or None when it does not fit its kind's model: it is
        written as given all the same (a record is never lost to a typing slip; tests read
        events through the models strictly)."""
        try:
            event: Event | None = make_event(kind, round(t, 3), round(wall, 3), data)
        except ValidationError:
            event = None
        record = event.to_json() if event is not None else \
            {"t": round(t, 3), "wall": round(wall, 3), "event": kind, **data}
        self._fh.write(json.dumps(record, default=str) + "\n")
        return event

    def close(self) -> None:
        self._fh.close()


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

    def write_state(self, state: State | Mapping[str, Any], *, background: bool = False) -> None:
        """Rewrite ``state.json`` atomically, from the ``State`` model (a mapping is read
        through it first): now (errors raised), or with ``background`` on the writer thread,
        so that the periodic write never blocks the event loop on the disk (fsync). The
        content is serialised here: later changes to ``state`` are not seen."""
        if self._state is None:
            self._state = AtomicWriter(self.file("state.json"))
        document = state if isinstance(state, State) else State.model_validate(dict(state))
        payload = json_bytes(document.to_json())
        if background:
            self._state.post(payload)
        else:
            self._state.write(payload)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait for background writes (``state.json``) to reach the disk."""
        return self._state.flush(timeout) if self._state is not None else True

    def open_events(self) -> TextIO:
        """``events.jsonl`` to append lines to (``open_event_log`` writes records through
        their models)."""
        return self.file("events.jsonl").open("a", encoding="utf-8", buffering=1)

    def open_event_log(self) -> EventLog:
        return EventLog(self.open_events())
