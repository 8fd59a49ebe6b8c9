"""What the page shows of a run beyond its time series: the events as timeline entries, the
kind of every op, and the tables only a finished run has (faults with detection and recovery,
SSE streams, bursts, checkers, errors by class). The live dashboard's ``/api/run`` and
``/api/events`` and the data embedded in ``report.html`` are built here, in one shape."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from enduro.documents.events import (
    Abort,
    Event,
    FaultEnd,
    FaultError,
    FaultStart,
    FaultUndoFailed,
    FaultUndone,
    InForce,
    Phase,
    RuleStatusChanged,
    RunFinished,
    ServiceEvent,
)
from enduro.documents.results import Results
from enduro.documents.tables import ScrapedTable
from enduro.observe.metrics import REQUEST, op_kinds
from enduro.plan.models import Plan

__all__ = ["QUIET_EVENTS", "describe", "event_rows", "finite", "finite_object", "kinds_of",
           "live_rule_rows", "pausing", "results_tables", "rule_rows", "run_from_results",
           "scraped_tables"]

QUIET_EVENTS = frozenset({"heartbeat", "snapshot"})
"""Events no timeline needs: one a minute, or one per snapshot file."""


def finite(value: Any) -> Any:
    """``value`` with every float that is not finite (NaN, infinities) made None, in dicts
    and lists at any depth: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def finite_object(data: dict[str, Any]) -> dict[str, Any]:
    """``finite`` of a JSON object."""
    return {k: finite(v) for k, v in data.items()}


def _resolved_plan(run_dir: Path) -> Plan | None:
    """The plan the run resolved (``plan.resolved.yaml``), or None when it is not readable."""
    try:
        return Plan.model_validate(yaml.safe_load((run_dir / "plan.resolved.yaml").read_text()))
    except (OSError, yaml.YAMLError, ValueError):
        return None


def kinds_of(run_dir: Path, results: Results | None) -> dict[str, str]:
    """The kind of every op (``request``, ``iteration`` for a flow, ``event`` for SSE
    delivery, ``round`` and ``split`` for bursts): from results.json when there is one, else
    from the plan the run resolved (``plan.resolved.yaml``); {} when neither is readable."""
    if results is not None:
        return {op: figures.kind for op, figures in results.ops.items()}
    plan = _resolved_plan(run_dir)
    if plan is None:
        return {}
    special = op_kinds(plan)
    return {op: special.get(op, REQUEST) for name, w in plan.workloads.items()
            for op in w.op_names(name)}


def pausing(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The ops of the workloads kept clear of churn or faults (``not_during``): per op, its
    ``workload`` and the ``reasons`` it pauses for; {} when the plan is not readable."""
    plan = _resolved_plan(run_dir)
    if plan is None:
        return {}
    return {op: {"workload": name, "reasons": list(w.not_during)}
            for name, w in plan.workloads.items() if w.not_during for op in w.op_names(name)}


def scraped_tables(tables: dict[str, dict[str, ScrapedTable]] | None) -> dict[str, Any]:
    """Per service, its scraped tables (``scrape.json.tables``) as plain data."""
    return {s: {n: finite(t.to_json()) for n, t in by_name.items()}
            for s, by_name in (tables or {}).items()}


def describe(event: Event, fault_names: dict[int, str]) -> tuple[str, str]:
    """The event's category (fault, service, phase, rule, pause, abort, stop, run, other) and a
    label for people."""
    kind = event.event
    if isinstance(event, FaultStart):
        return "fault", (f"fault {event.name}: {event.fault_kind} on "
                         f"{', '.join(event.targets) or '-'}")
    if isinstance(event, FaultEnd | FaultError | FaultUndone | FaultUndoFailed):
        return "fault", _fault_label(event, fault_names.get(event.id, f"#{event.id}"))
    if isinstance(event, ServiceEvent):
        return "service", event.message
    if isinstance(event, Phase):
        return "phase", f"phase {event.phase}"
    if isinstance(event, RuleStatusChanged):
        return "rule", (f"rule {event.rule}: {event.status} ({event.observed}"
                        + (f"; {event.reason})" if event.reason else ")"))
    if isinstance(event, Abort):
        return "abort", f"abort: {event.rule} ({event.observed})"
    if isinstance(event, InForce):
        return "pause", (f"{event.reason} in force: workloads kept clear of it pause"
                         if event.on else f"{event.reason} over: paused workloads resume")
    if isinstance(event, RunFinished):
        return "run", f"run {event.state}" + (f", verdict {event.verdict}"
                                              if event.verdict else "")
    if kind in ("stop_requested", "stop_forced"):
        return "stop", kind.replace("_", " ") + (f" ({getattr(event, 'signal', '')})"
                                                 if getattr(event, "signal", None) else "")
    if kind.startswith("run_") or kind == "load_started":
        return "run", kind.replace("_", " ")
    return "other", kind.replace("_", " ")


def _fault_label(event: FaultEnd | FaultError | FaultUndone | FaultUndoFailed,
                 name: str) -> str:
    if isinstance(event, FaultEnd):
        return f"fault {name} ended" + (f": {event.error}" if event.error else "")
    if isinstance(event, FaultError):
        return f"fault {name} failed: {event.error}"
    if isinstance(event, FaultUndone):
        return f"fault {name} undone" + (f" by the {event.by}" if event.by else "")
    return f"fault {name}: undo failed: {event.error}"


def event_rows(records: list[tuple[int, Event]], since: float | None = None,
               after: int | None = None) -> dict[str, Any]:
    """The run's events (all but heartbeats and snapshots), each with ``t`` in load seconds
    (null before the load started), ``seq`` (its line in events.jsonl), a ``category``, a
    ``label`` for people and its ``data``. ``since``: only those with ``t > since``;
    ``after``: only those with ``seq > after``."""
    load_t = next((e.t for _, e in records if e.event == "load_started"), None)
    names = {e.id: e.name for _, e in records if isinstance(e, FaultStart)}
    out = []
    for seq, event in records:
        if event.event in QUIET_EVENTS or (after is not None and seq <= after):
            continue
        t = None if load_t is None else round(event.t - load_t, 3)
        if since is not None and (t is None or not t > since):
            continue
        data = event.to_json()
        for key in ("t", "wall", "event"):
            data.pop(key, None)
        category, label = describe(event, names)
        out.append({"seq": seq, "t": t, "t_run": event.t, "wall": event.wall,
                    "event": event.event, "category": category, "label": label,
                    "data": data})
    return finite_object({"load_started": load_t is not None, "events": out,
                   "last_seq": records[-1][0] if records else 0})


def results_tables(results: Results) -> dict[str, Any]:
    """What only a finished run has, for the page's tables: faults with their detection and
    recovery, errors by class, SSE streams, bursts, checkers, the generator's own limits."""
    counts = results.checker_counts  # "checkers" holds the first examples only
    return finite_object({
        "faults": [f.to_json() for f in results.faults],
        "errors_by_class": dict(results.errors_by_class),
        "streams": {name: s.to_json() for name, s in results.streams.items()},
        "bursts": {name: b.to_json() for name, b in results.bursts.items()},
        "checkers": {name: {"violations": counts.get(name, len(vs)),
                            "first": vs[0].message if vs else None}
                     for name, vs in results.checkers.items()},
        "generator": results.generator.to_json() if results.generator else None,
        "canaries": [c.to_json() for c in results.canaries],
        "paused": {name: p.to_json() for name, p in results.paused.items()},
        "complete": results.complete, "error": getattr(results, "error", None),
    })


def run_from_results(results: Results, step_s: float) -> dict[str, Any]:
    """``/api/run``'s shape for a finished run, from its results alone: the figures of each
    op are over the whole run (``last_s`` null)."""
    ops = {}
    for name, op in results.ops.items():
        lat = op.latency_ms
        measured = op.requests > op.errors or lat.p50 > 0
        ops[name] = {
            "kind": op.kind, "rps": op.rps, "requests": op.requests, "errors": op.errors,
            "error_rate": op.error_rate if op.requests else None,
            "p50_ms": lat.p50 if measured else None, "p95_ms": lat.p95 if measured else None,
            "p99_ms": lat.p99 if measured else None, "requests_total": op.requests,
            "errors_total": op.errors}
    return finite_object({
        "run_id": results.run_id, "plan": results.plan, "state": results.state,
        "mode": results.mode, "live": False, "elapsed_s": results.duration_s,
        "remaining_s": 0.0, "duration_s": results.duration_s,
        "stop_reason": results.stop_reason, "verdict": results.verdict,
        "seed": results.seed, "started_at": results.started_at,
        "rules": rule_rows(results), "phase": None, "faults_in_force": [],
        "last_s": None, "ops": ops, "kinds": {n: o.kind for n, o in results.ops.items()},
        "step_s": step_s, "results": results_tables(results),
        "tables": scraped_tables(results.tables)})


def rule_rows(results: Results) -> list[dict[str, Any]]:
    """The rules as the page lists them, judged at the end: ``status`` (pass, fail, n/a) and,
    for a failed rule, when it first failed (``first_failed_s``, load seconds; null when not
    known)."""
    return [{"rule": r.rule, "status": "n/a" if not r.applicable else
             "pass" if r.passed else "fail", "passed": r.passed, "observed": r.observed_text,
             "reason": r.reason, "applicable": r.applicable, "insufficient": r.insufficient,
             "first_failed_s": r.first_failed_s, "live": False} for r in results.rules]


def live_rule_rows(records: list[tuple[int, Event]]) -> list[dict[str, Any]]:
    """The rules of a run without results yet, as their last ``rule_status`` events told
    them (``status`` pass, fail or pending), with when each first failed."""
    rows: dict[str, dict[str, Any]] = {}
    for _, event in records:
        if not isinstance(event, RuleStatusChanged):
            continue
        row = rows.setdefault(event.rule, {"rule": event.rule, "first_failed_s": None,
                                           "live": True})
        row.update(status=event.status, passed=event.status == "pass",
                   observed=event.observed, reason=event.reason)
        if event.status == "fail" and row["first_failed_s"] is None:
            row["first_failed_s"] = (event.first_failed_s if event.first_failed_s is not None
                                     else event.at_s)
    return list(rows.values())
