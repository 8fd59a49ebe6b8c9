"""One service of a run as the supervisor holds it: its plan entry, its directory, what runs
it, and what ``status`` shows of it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enduro.plan.models import Service
from enduro.services.drivers import ToolDriver
from enduro.services.output import OutputLog
from enduro.services.process import ManagedProcess

__all__ = ["ServiceEntry", "ServiceStatus"]


@dataclass
class ServiceStatus:
    """What ``status`` and the live table show of one service."""

    name: str
    kind: str
    state: str = "pending"
    pid: int | None = None
    restarts: int = 0
    last_exit: str | None = None
    last_crash: str | None = None
    ready_s: float | None = None
    up_since: float | None = None
    url: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class ServiceEntry:
    """A service's parts for one run: its process or tool driver, its logs and watcher."""

    name: str
    service: Service
    dir: Path
    status: ServiceStatus
    monitor: Any = None
    output: OutputLog | None = None
    process: ManagedProcess | None = None
    driver: ToolDriver | None = None
    watcher: asyncio.Task[None] | None = None
    crashes: list[float] = field(default_factory=list)
    intentional: bool = False
    relaunched: asyncio.Event = field(default_factory=asyncio.Event)
    fault_note: str | None = None
