"""A run's record as it goes: ``events.jsonl`` (one JSON object per line) and
``logs/enduro.log`` (also echoed to the terminal): one line per message, ``<UTC time> <LEVEL>
<message>``, rotated by size (``observe.log_max``, ``observe.log_keep``)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Literal, TextIO

from rich.console import Console

from enduro.base.errors import FatalWorkerError
from enduro.run.rundir import EventLog, RunDir
from enduro.run.timeline import Timeline

__all__ = ["Level", "RotatingLog", "RunLog", "level_of"]

Level = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


def level_of(line: str) -> Level:
    """The level of a line whose writer gave none (the services' and faults' callbacks): a
    warning, a crash or a failure is a WARNING, anything else INFO."""
    lowered = line.lower()
    if lowered.startswith("warning") or " crashed" in lowered or " failed" in lowered:
        return "WARNING"
    return "INFO"


class RotatingLog:
    """A text file appended line by line that is rotated once it passes ``max_bytes``:
    ``path`` becomes ``path.1``, ``path.1`` becomes ``path.2``..., and ``path.<keep>`` is
    dropped. A line is never split across two files."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._fh: TextIO = path.open("a", encoding="utf-8", buffering=1)
        self._size = path.stat().st_size

    def write(self, line: str) -> None:
        data = line if line.endswith("\n") else line + "\n"
        size = len(data.encode("utf-8", "replace"))
        if self._size and self._size + size > self.max_bytes:
            self._rotate()
        self._fh.write(data)
        self._size += size

    def _rotate(self) -> None:
        self._fh.close()
        for n in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._fh = self.path.open("a", encoding="utf-8", buffering=1)
        self._size = 0

    def close(self) -> None:
        self._fh.close()


class RunLog:
    """Events and log lines of one run; both are dropped until ``open`` and after
    ``close``, and a full disk never ends the run."""

    def __init__(self, timeline: Timeline, console: Console) -> None:
        self.timeline = timeline
        self.console = console
        self.logs_dir: Path | None = None
        self._events: EventLog | None = None
        self._log: RotatingLog | None = None

    def open(self, rundir: RunDir, *, max_bytes: int = 10_000_000, keep: int = 3) -> None:
        """Start writing to ``rundir``; ``enduro.log`` is rotated past ``max_bytes``, with
        ``keep`` files kept before it."""
        self.logs_dir = rundir.path / "logs"
        self._events = rundir.open_event_log()
        self._log = RotatingLog(self.logs_dir / "enduro.log", max_bytes, keep)

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

    def log(self, line: str, *, echo: bool = True, level: Level | None = None) -> None:
        """A line for ``enduro.log`` at ``level`` (by default ``level_of`` the line) and
        (``echo``) the terminal, printed as it is."""
        if self._log is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                  time.gmtime(self.timeline.clock.wall()))
            with contextlib.suppress(OSError, ValueError):
                self._log.write(f"{stamp} {level or level_of(line):<7} {line}")
        if echo:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def worker_error(self, name: str, exc: BaseException, tb: str, attempt: int) -> None:
        """A background task of the run failed (``supervise``'s report): it is restarted,
        or the run stops."""
        self.event("worker_error", worker=name, error=repr(exc), attempt=attempt, traceback=tb)
        self.log(f"worker {name} failed ({exc!r}); "
                 + ("stopping the run" if isinstance(exc, FatalWorkerError)
                    else f"restart {attempt + 1}"), echo=True, level="ERROR")
