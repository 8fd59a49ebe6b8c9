"""One service as ``state.json`` and ``results.json`` record it (``services.<name>``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from enduro.documents.document import Document, always_written

__all__ = ["Pid", "ServiceRecord"]

# A process id that names one process: never 0 or -1 (process groups), never true or "12".
Pid = Annotated[int, Field(strict=True, gt=0)]


class ServiceRecord(Document):
    """A service's status when it was written. Every key is optional to readers (a state.json
    may be half-written or hand-made); enduro's writer writes them all."""

    model_config = ConfigDict(json_schema_extra=always_written(
        "name", "kind", "state", "pid", "restarts", "last_exit", "last_crash", "ready_s",
        "up_since", "url", "error", "rss_mb"))

    name: str | None = None
    kind: str | None = None
    # pending, building, starting, up, restarting, paused, down, failed, stopped, exited
    state: str | None = None
    pid: Pid | None = None
    restarts: int = 0
    last_exit: str | None = None
    last_crash: str | None = None
    ready_s: float | None = None
    up_since: float | None = None
    """Wall-clock seconds."""
    url: str | None = None
    """An external service's address."""
    error: str | None = None
    rss_mb: float | None = None
    """Of its process tree; null when it is not running."""
