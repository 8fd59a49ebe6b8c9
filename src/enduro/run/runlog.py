"""A run's record as it goes: ``events.jsonl`` (one JSON object per line) and
``logs/enduro.log`` (also echoed to the terminal)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from enduro.base.errors import FatalWorkerError
from enduro.run.rundir import EventLog, RunDir
from enduro.run.timeline import Timeline

__all__ = ["RunLog"]


class RunLog:
    """Events and log lines of one run; both are dropped until ``open`` and after
    ``close``, and a full disk never ends the run."""

    def __init__(self, timeline: Timeline, console: Console) -> None:
        self.timeline = timeline
        self.console = console
        self.logs_dir: Path | None = None
        self._events: EventLog | None = None
        self._log: TextIO | None = None

    def open(self, rundir: RunDir) -> None:
        self.logs_dir = rundir.path / "logs"
        self._events = rundir.open_event_log()
        self._log = rundir.open_log()

    def close(self) -> None:
        files = (self._events, self._log)
        self._events = None
        self._log = None
        for fh in files:
            if fh is not None:
                with contextlib.suppress(OSError, ValueError):
                    fh.close()

    def event(self, kind: str, **data: Any) -> None:
        """Append one event to ``events.jsonl``, made through its kind's model (a record
        that does not fit it is written as given all the same: ``EventLog.append``)."""
        if self._events is None:
            return
        clock = self.timeline.clock
        with contextlib.suppress(OSError, ValueError):  # a full disk must not end the run
            self._events.append(kind, self.timeline.elapsed(), clock.wall(), **data)

    def log(self, line: str, *, echo: bool = True) -> None:
        """A line for ``enduro.log`` and (``echo``) the terminal, printed as it is."""
        if self._log is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                  time.gmtime(self.timeline.clock.wall()))
            with contextlib.suppress(OSError, ValueError):
                self._log.write(f"{stamp} {line}\n")
        if echo:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def worker_error(self, name: str, exc: BaseException, tb: str, attempt: int) -> None:
        """A background task of the run failed (``supervise``'s report): it is restarted,
        or the run stops."""
        self.event("worker_error", worker=name, error=repr(exc), attempt=attempt, traceback=tb)
        self.log(f"worker {name} failed ({exc!r}); "
                 + ("stopping the run" if isinstance(exc, FatalWorkerError)
                    else f"restart {attempt + 1}"), echo=True)
