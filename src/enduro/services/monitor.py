"""A service's own log of what happened to it (``monitor.log``), each line also an event."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from enduro.base.clock import Clock
from enduro.services.entry import ServiceEntry

__all__ = ["EventSink", "Monitor"]

EventSink = Callable[..., None]


class Monitor:
    """Writes a line to a service's ``monitor.log`` and the matching ``service_*`` event."""

    def __init__(self, clock: Clock, event: EventSink) -> None:
        self.clock = clock
        self._event = event

    def note(self, entry: ServiceEntry, kind: str, text: str, **data: Any) -> None:
        """Keep ``text`` as a ``kind`` line of ``entry``'s monitor.log and as an event."""
        if entry.monitor is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.wall()))
            entry.monitor.write(f"{stamp} {kind}: {text}\n")
            entry.monitor.flush()
        self._event(f"service_{kind}", service=entry.name, message=text, **data)
