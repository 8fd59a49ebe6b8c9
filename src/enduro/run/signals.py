"""SIGINT and SIGTERM for a run that owns its process, heard even while the event loop is
blocked, and the watchdog that holds the run to its deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Any

from enduro.run.stops import Stops
from enduro.run.watchdog import Watchdog

__all__ = ["Signals"]


class Signals:
    """The run's signal handlers and watchdog. ``seen`` names the last signal and ``count``
    how many arrived (the loop may not have answered any: the watchdog's end reads them)."""

    def __init__(self, stops: Stops) -> None:
        self.stops = stops
        self.seen: str | None = None
        self.count = 0
        self._previous: dict[int, Any] = {}

    def install(self, emergency: Callable[[str], int]) -> None:
        """Python-level handlers rather than the loop's: they run in the main thread even
        while the event loop is blocked, so that the watchdog hears every signal. The
        watchdog ends a blocked run with ``emergency``."""
        loop = asyncio.get_running_loop()
        watchdog = self.stops.watchdog = Watchdog(loop, on_overrun=self.stops.overrun,
                                                  emergency=emergency)

        def handler(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            self.seen = name
            self.count += 1
            watchdog.noted_signal()
            with contextlib.suppress(RuntimeError):  # the loop closed: the run is over
                loop.call_soon_threadsafe(self._answer, name)

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: no signals here
                self._previous[sig] = signal.signal(sig, handler)
        watchdog.start()

    def remove(self) -> None:
        """Stand the watchdog down and put the previous handlers back."""
        if self.stops.watchdog is not None:
            self.stops.watchdog.stop()
        for sig, previous in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, previous)
        self._previous.clear()

    def _answer(self, name: str) -> None:
        if self.stops.watchdog is not None:
            self.stops.watchdog.answered_signal()
        self.stops.request_stop(name)
