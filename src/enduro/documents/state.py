"""``state.json``: where a run is, rewritten every two seconds while it runs and once at its
end; what ``status``, ``stop``, ``runs`` and ``report`` read of a run, live or dead.

Readers must show what they can of a state.json that is half-written, hand-made or
corrupt, so every key is optional to them (``State.salvage`` drops what does not validate);
enduro's runner always writes the keys the exported schema lists as required."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict

from enduro.documents.document import Document, DocumentError, always_written, read_object
from enduro.documents.service import Pid, ServiceRecord
from enduro.documents.tables import ScrapedTable

__all__ = ["FINAL_STATES", "LIVE_STATES", "RUN_STATES", "LiveFigures", "RunState", "State",
           "read_state"]

# starting and running: the runner is at work (or died without a word: see `dead`);
# completed, failed, stopped: how it ended; dead: its runner died and `stop` marked it so.
RunState = Literal["starting", "running", "completed", "failed", "stopped", "dead"]
RUN_STATES: tuple[RunState, ...] = ("starting", "running", "completed", "failed", "stopped",
                                    "dead")
LIVE_STATES: tuple[RunState, ...] = ("starting", "running")
FINAL_STATES: tuple[RunState, ...] = ("completed", "failed", "stopped", "dead")


class LiveFigures(Document):
    """The last ten seconds' figures (empty before the first window is sealed)."""

    rps: float | None = None
    errors: int | None = None
    error_rate: float | None = None
    p95_ms: float | None = None
    requests_total: int | None = None
    """Since the load started."""


class State(Document):
    """``state.json``."""

    model_config = ConfigDict(title="state.json", json_schema_extra=always_written(
        "run_id", "plan", "state", "pid", "started_at", "updated_at", "duration_s", "seed",
        "stop_reason"))

    run_id: str | None = None
    plan: str | None = None
    state: RunState | None = None
    pid: Pid | None = None
    """The runner's process id."""
    started_at: float | None = None
    """Wall-clock seconds."""
    plan_file: str | None = None
    """The plan as given, resolved to an absolute path."""
    services_only: bool | None = None
    """A run of ``enduro supervise`` (services only)."""
    updated_at: float | None = None
    """The runner's last heartbeat, wall-clock seconds."""
    duration_s: float | None = None
    """The planned duration of the load, in seconds."""
    elapsed_s: float | None = None
    """How long the load has run, in seconds."""
    seed: int | None = None
    stop_reason: str | None = None
    live: LiveFigures | None = None
    resources: dict[str, dict[str, float]] | None = None
    """The last sample of each target."""
    services: dict[str, ServiceRecord] | None = None
    tables: dict[str, dict[str, ScrapedTable]] | None = None
    """Per service, its ``scrape.json.tables`` as last scraped."""
    stopped_at: float | None = None
    """When ``enduro stop`` marked a dead run so."""


def read_state(path: Path) -> State | None:
    """What can be read of the state.json at ``path``; None when it is missing, unreadable or
    not a JSON object (one corrupt run must not stop a command over every run)."""
    try:
        return State.salvage(read_object(path))
    except DocumentError:
        return None
