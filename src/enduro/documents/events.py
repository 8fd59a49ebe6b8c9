"""``events.jsonl``: one JSON object per line, appended as the run goes: when (``t``, seconds
since the run started; ``wall``, wall-clock seconds), what (``event``), and the event's own
keys. The kinds that other commands read (``report`` rebuilds faults from them, the page
marks restarts, ``triage`` finds the nearest fault) have models of their own; any other kind
reads as a plain ``Event``. A killed runner may leave a torn last line: readers skip lines
that are not a record."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import ConfigDict, RootModel, ValidationError

from enduro.documents.document import Document

__all__ = ["Abort", "CheckerDone", "Event", "EventLine", "FaultEnd", "FaultError", "FaultStart",
           "FaultUndoFailed", "FaultUndone", "InForce", "LoadStarted", "Phase",
           "RuleStatusChanged", "RunCrashed", "RunFailed", "RunFinished", "RunStarted",
           "ServiceEvent", "Snapshot", "StopRequested", "WriteFailed", "event_from_json",
           "events_in", "make_event", "read_events"]


class Event(Document):
    """One line of events.jsonl."""

    t: float
    """Seconds since the run started."""
    wall: float | None = None
    """Wall-clock seconds; always written by enduro's runner."""
    event: str


class RunStarted(Event):
    event: Literal["run_started"]
    plan: str
    seed: int
    duration_s: float
    workers: int
    pid: int
    profile: str | None


class Phase(Event):
    """The run entered a stretch of its life (prepare, load, final, teardown, finish)."""

    event: Literal["phase"]
    phase: str
    bound_s: float | None
    """The watchdog's bound on it."""


class LoadStarted(Event):
    """Load seconds (``start_s`` of faults, the page's x axis) count from this ``t``."""

    event: Literal["load_started"]
    workers: int


class FaultStart(Event):
    event: Literal["fault_start"]
    id: int
    name: str
    fault_kind: str
    targets: list[str]


class FaultEnd(Event):
    event: Literal["fault_end"]
    id: int
    fault_kind: str
    error: str | None


class FaultError(Event):
    event: Literal["fault_error"]
    id: int
    error: str


class FaultUndone(Event):
    event: Literal["fault_undone"]
    id: int
    fault_kind: str | None
    by: str | None = None
    """``watchdog``: undone from the journal at a forced end."""
    result: str | None = None


class FaultUndoFailed(Event):
    event: Literal["fault_undo_failed"]
    id: int
    fault_kind: str | None
    by: str | None = None
    error: str


class ServiceEvent(Event):
    """Something happened to a service; ``message`` says it for a person."""

    event: Literal["service_build", "service_start", "service_ready", "service_stop",
                   "service_exit", "service_restart", "service_fault", "service_token"]
    service: str
    message: str
    pid: int | None = None
    """Service_start."""
    took_s: float | None = None
    """Service_ready."""
    exit_code: int | None = None
    """Service_exit."""
    crash_log: str | None = None
    """Service_exit."""
    delay_s: float | None = None
    """Service_restart."""


class StopRequested(Event):
    event: Literal["stop_requested", "stop_forced"]
    signal: str
    phase: str


class Abort(Event):
    """An ``abort_if`` rule failed: the run stops."""

    event: Literal["abort"]
    rule: str
    observed: str


class RuleStatusChanged(Event):
    """A rule's live status changed (the first of each rule: its initial status), judged on
    the windows sealed so far, every 2 s at most. ``fail`` is final for a rule over sliding
    windows; a whole-run rule may pass again."""

    event: Literal["rule_status"]
    rule: str
    status: Literal["pass", "fail", "pending"]
    """``pending``: no data yet, a sliding window not full yet, or judged only at the end
    (``reason`` says which)."""
    observed: str
    """The figure for people (a sliding rule's worst window so far)."""
    at_s: float
    """Load seconds: the end of the last window judged."""
    reason: str = ""
    first_failed_s: float | None = None
    """``fail``: load seconds when it first failed (a sliding rule's first failed window may
    be before ``at_s``), as ``first_failed_s`` in results.json."""


class InForce(Event):
    """Churn or faults came into force anywhere in the run (``on``), or ended: the stretches
    in which the workloads with ``not_during`` of that reason pause."""

    event: Literal["in_force"]
    reason: str
    """``churn`` or ``faults``."""
    on: bool


class CheckerDone(Event):
    event: Literal["checker"]
    checker: str
    violations: int


class Snapshot(Event):
    event: Literal["snapshot"]
    path: str
    """Inside the run directory."""


class WriteFailed(Event):
    event: Literal["write_failed"]
    what: str
    error: str


class RunFailed(Event):
    event: Literal["run_failed"]
    error: str


class RunCrashed(Event):
    """An enduro defect; its traceback is in the file named."""

    event: Literal["run_crashed"]
    error: str
    phase: str
    traceback: str


class RunFinished(Event):
    event: Literal["run_finished"]
    verdict: str | None
    state: str
    problems: list[str]
    """Artefacts that could not be written."""
    by: str | None = None
    """``watchdog``: written at a forced end."""


_KINDS: tuple[type[Event], ...] = (
    RunStarted, Phase, LoadStarted, FaultStart, FaultEnd, FaultError, FaultUndone,
    FaultUndoFailed, ServiceEvent, StopRequested, Abort, RuleStatusChanged, InForce,
    CheckerDone, Snapshot, WriteFailed, RunFailed, RunCrashed, RunFinished)


def _by_kind() -> Mapping[str, type[Event]]:
    out: dict[str, type[Event]] = {}
    for model in _KINDS:
        annotation = model.model_fields["event"].annotation
        for kind in getattr(annotation, "__args__", ()):
            out[kind] = model
    return MappingProxyType(out)


MODELS = _by_kind()


class EventLine(RootModel[RunStarted | Phase | LoadStarted | FaultStart | FaultEnd | FaultError
                          | FaultUndone | FaultUndoFailed | ServiceEvent | StopRequested | Abort
                          | RuleStatusChanged | InForce | CheckerDone | Snapshot | WriteFailed
                          | RunFailed | RunCrashed | RunFinished | Event]):
    """One line of events.jsonl, for the exported schema: one of the kinds with a model of
    their own, else any event."""

    model_config = ConfigDict(title="events.jsonl (one line)")


def event_from_json(data: object) -> Event:
    """The record as its kind's model (a plain ``Event`` for kinds without one); raises
    ``pydantic.ValidationError`` when it is not a record of its kind."""
    kind = data.get("event") if isinstance(data, dict) else None
    model = MODELS.get(kind, Event) if isinstance(kind, str) else Event
    return model.model_validate(data)


def make_event(kind: str, t: float, wall: float, data: Mapping[str, Any]) -> Event:
    """A new record, checked against its kind's model."""
    return event_from_json({"t": t, "wall": wall, "event": kind, **data})


def events_in(lines: list[str], *, strict: bool = False) -> Iterator[Event]:
    """The records of ``lines``; those that are not one (a torn last line, a record of another
    shape) are skipped, or with ``strict`` raise ``ValueError`` (tests hold writers to the
    models so)."""
    for number, line in enumerate(lines, start=1):
        try:
            yield event_from_json(json.loads(line))
        except (ValueError, RecursionError) as exc:  # ValidationError is a ValueError
            if strict:
                what = exc if not isinstance(exc, ValidationError) else exc.errors()[0]
                raise ValueError(f"events.jsonl:{number}: {what}") from exc


def read_events(path: Path, *, strict: bool = False) -> list[Event]:
    """Every readable record of the events file at ``path`` (none when it is missing)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return list(events_in(text.splitlines(), strict=strict))
