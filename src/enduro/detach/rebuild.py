"""``enduro report``: results rebuilt from the store of a run whose runner died.

A killed runner leaves ``metrics.sqlite`` (every sealed window, with its histograms),
``events.jsonl``, ``state.json`` and ``plan.resolved.yaml``. From them this module rebuilds
``results.json``, ``junit.xml`` and ``report.html``: the ops' counts and latency percentiles
(histograms merged losslessly, as the runner would have), the faults from the events, and every
rule the stored data can judge. The verdict is ``incomplete`` whatever the rules say: the run
never reached its end, and what it did not see cannot pass.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from enduro.base.errors import EnduroError, RunError
from enduro.detach.liveness import runner_alive
from enduro.documents.document import DocumentError, NewerDocument
from enduro.documents.events import (
    Event,
    FaultEnd,
    FaultError,
    FaultStart,
    FaultUndone,
    RuleStatusChanged,
    RunStarted,
    read_events,
)
from enduro.documents.results import Results
from enduro.documents.state import LIVE_STATES, State, read_state
from enduro.faults.journal import Journal
from enduro.observe.hist import decode
from enduro.observe.metrics import Metrics, op_kinds
from enduro.observe.store import Store
from enduro.observe.window import WindowStats
from enduro.plan.models import Plan
from enduro.report.html import write_report
from enduro.report.results import results_document, write_junit, write_results
from enduro.verdict.evaluate import RuleBook, Verdict, compile_abort_if, compile_rules
from enduro.verdict.rules import FAULT_METRICS, Rule, RuleResult

__all__ = ["ReportOutcome", "rebuild_document", "rebuild_results", "report_run"]

# The state a rebuilt results.json records for a run whose runner died.
DEAD = "dead"


@dataclass(frozen=True)
class ReportOutcome:
    """What ``enduro report`` did: the page written, and whether results were rebuilt."""

    report: Path
    rebuilt: bool
    document: Results
    notes: list[str] = field(default_factory=list)

    @property
    def results(self) -> dict[str, Any]:
        """The results as plain data."""
        return self.document.to_json()


def report_run(run_dir: Path) -> ReportOutcome:
    """Regenerate ``report.html``; when ``results.json`` is missing or unreadable and the
    runner is gone (killed, crashed), rebuild the results from the run's store first.

    A corrupt ``results.json`` is kept beside the new one (``results.json.corrupt``); one
    written by a newer enduro is not corrupt, and is left alone (``NewerDocument``)."""
    state = read_state(run_dir / "state.json") or State()
    results_path = run_dir / "results.json"
    try:
        existing: Results | None = Results.read(results_path)
    except NewerDocument:
        raise
    except DocumentError:
        existing = None  # missing or corrupt: rebuilt below, once the runner is gone
    if existing is not None:
        return ReportOutcome(write_report(run_dir), False, existing)
    if runner_alive(state):
        raise RunError(f"{run_dir.name} is still running (runner pid {state.pid}); "
                       "its results are written when it ends ('enduro stop' ends it now)")
    if results_path.exists():
        results_path.replace(results_path.with_name("results.json.corrupt"))
    results = rebuild_document(run_dir)
    write_results(results_path, results)
    write_junit(run_dir / "junit.xml", results)
    report = write_report(run_dir)
    notes = list(results.rebuilt.notes) if results.rebuilt is not None else []
    return ReportOutcome(report, True, results, notes)


def _load_plan(run_dir: Path) -> Plan:
    """The plan as the run resolved it (profile, --set, files already applied)."""
    path = run_dir / "plan.resolved.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RunError(f"{run_dir.name}: cannot read {path.name}: {exc}") from exc
    try:
        return Plan.model_validate(data)
    except ValueError as exc:
        raise RunError(f"{run_dir.name}: {path.name} is not a plan: "
                       f"{str(exc).splitlines()[0]}") from exc


@dataclass
class _Row:
    t: float
    span: float
    op: str
    phase: str | None
    stats: WindowStats


def _windows(db: sqlite3.Connection, window_s: float) -> Iterator[_Row]:
    query = ("SELECT t, span, op, phase, requests, errors, late, dropped, classes, "
             "latency_hist, service_hist FROM windows ORDER BY t, op")
    for t, span, op, phase, req, err, late, dropped, classes, lat, svc in db.execute(query):
        index = round(t / window_s)
        stats = WindowStats(op, index, req or 0, err or 0, late or 0, dropped or 0,
                            json.loads(classes) if classes else {},
                            decode(lat) if lat else decode(""),
                            decode(svc) if svc else decode(""))
        yield _Row(t, span, op, phase, stats)


def _faults(events: list[Event], load_t: float, pending: set[int]) -> list[dict[str, Any]]:
    """Per fault: what and when (load seconds), from the events the runner wrote."""
    faults: dict[int, dict[str, Any]] = {}
    for e in events:
        at = round(e.t - load_t, 3)
        if isinstance(e, FaultStart):
            faults[e.id] = {"id": e.id, "name": e.name, "kind": e.fault_kind,
                            "target": ",".join(e.targets), "start_s": at,
                            "end_s": None, "error": None, "undone": False}
        elif isinstance(e, FaultError | FaultEnd | FaultUndone) and e.id in faults:
            f = faults[e.id]
            if isinstance(e, FaultError):
                f["error"] = e.error
                f["end_s"] = at
            elif isinstance(e, FaultEnd):
                f["end_s"] = at
            else:
                f["undone"] = True
                f["end_s"] = f["end_s"] if f["end_s"] is not None else at
    for fid, f in faults.items():
        if f["end_s"] is None:
            # Still in force when the runner died: its undo is the journal's to run.
            f["in_force_at_end"] = True
            f["undo_pending"] = fid in pending
    return [faults[k] for k in sorted(faults)]


def _unreadable_store(run_dir: Path, exc: sqlite3.DatabaseError) -> RunError:
    return RunError(f"{run_dir.name}: metrics.sqlite cannot be read ({exc}), so no results can "
                    "be rebuilt from it; events.jsonl and logs/ still hold what the run saw")


def _not_judged(text: str, why: str) -> RuleResult:
    return RuleResult(text, None, "not evaluated", False, f"not evaluated: {why}")


def _first_failures(events: list[Event]) -> dict[str, float]:
    """Per rule, when it first failed as the runner judged it live (its earliest ``fail``
    in ``rule_status`` events, load seconds)."""
    out: dict[str, float] = {}
    for e in events:
        if isinstance(e, RuleStatusChanged) and e.status == "fail":
            at = e.first_failed_s if e.first_failed_s is not None else e.at_s
            out[e.rule] = min(at, out.get(e.rule, at))
    return out


def _with_first_failures(judged: list[RuleResult], firsts: dict[str, float]) -> list[RuleResult]:
    """A replay does not judge the rules' live status, so a failed whole-run rule would say it
    first failed at the end: the runner's own live judgement, in events.jsonl, says when."""
    out = []
    for r in judged:
        seen = firsts.get(r.rule)
        if not r.passed and seen is not None:
            known = r.first_failed_s
            r = replace(r, first_failed_s=round(seen if known is None else min(seen, known), 3))
        out.append(r)
    return out


def rebuild_results(run_dir: Path) -> dict[str, Any]:
    """``rebuild_document`` as plain data."""
    return rebuild_document(run_dir).to_json()


@dataclass
class _Replayed:
    """What a replay of the store saw: its rows, how far they reach, and how many windows
    its rolled-up rows stand for."""

    rows: int = 0
    extent: float = 0.0
    rolled: int = 0


def _replay(store: Store, metrics: Metrics, rulebook: RuleBook, window: float,
            duration: float) -> _Replayed:
    """Feed the stored windows to ``metrics`` in order, each sealed batch to the rules' live
    checks as the runner did."""
    seen = _Replayed()
    phases: dict[int, str] = {}
    metrics.phase_of = lambda index, _ws: phases.get(index, "unlabelled")
    batch: list[WindowStats] = []
    batch_index = -1
    spans: dict[int, tuple[float, str]] = {}

    def seal() -> None:
        if not batch:
            return
        metrics.add(batch)
        metrics.seal(batch_index)
        elapsed = min((batch_index + 1) * window, duration)
        rulebook.live(metrics, elapsed)  # sliding rules see the windows in order
        batch.clear()

    for row in _windows(store.db, window):
        seen.rows += 1
        seen.extent = max(seen.extent, row.t + row.span)
        if row.stats.index != batch_index:
            seal()
            batch_index = row.stats.index
        if row.phase is not None:
            phases[row.stats.index] = row.phase
        if row.span > window * 1.5:
            spans[row.stats.index] = (row.span, row.phase or "unlabelled")
        batch.append(row.stats)
    seal()
    for span, phase in spans.values():
        # A rolled-up row stands for span/window windows of its phase, not one.
        seen.rolled += round(span / window)
        metrics.phase_windows[phase] = (metrics.phase_windows.get(phase, 0)
                                        + round(span / window) - 1)
    return seen


def _judge(rules: list[Rule], verdict: Verdict, rules_error: str | None,
           notes: list[str]) -> tuple[list[RuleResult], list[str]]:
    """The rules' results as the store can judge them, and the rules it cannot (fault
    detection and recovery, or every rule if they no longer compile), noted in ``notes``."""
    judged: list[RuleResult] = []
    not_judged: list[str] = []
    for rule, result in zip(rules, verdict.results, strict=True):
        if rule.metric in FAULT_METRICS:
            result = _not_judged(rule.text, "fault detection and recovery are measured "
                                 "by the runner, which died first")
        if result.reason.startswith("not evaluated"):
            not_judged.append(rule.text)
        judged.append(result)
    if rules_error is not None:
        judged.append(_not_judged("rules", f"they no longer compile: {rules_error}"))
        not_judged.append("rules")
        notes.append(f"rules not evaluated: {rules_error}")
    if not_judged:
        notes.append("not evaluated from the store: " + "; ".join(not_judged))
    return judged, not_judged


def rebuild_document(run_dir: Path) -> Results:
    """The results document of a run that never wrote one, from its store. Its verdict is
    ``incomplete`` whatever the rules say: the run never reached its end."""
    state = read_state(run_dir / "state.json") or State()
    plan = _load_plan(run_dir)
    from enduro.engine.load import op_names  # the engine is heavy; only a rebuild needs it
    from enduro.plan.tokens import with_canaries
    ops = op_names(with_canaries(plan))
    db_path = run_dir / "metrics.sqlite"
    if not db_path.exists():
        raise RunError(f"{run_dir.name}: no metrics.sqlite to rebuild results from")
    notes: list[str] = []
    # A torn last line (a killed runner) or a record of another shape is skipped.
    events = read_events(run_dir / "events.jsonl")
    load_t = next((e.t for e in events if e.event == "load_started"), 0.0)
    window = plan.window
    duration = state.duration_s if state.duration_s is not None else plan.duration
    try:
        rules = compile_rules(plan, ops)
        abort_if = compile_abort_if(plan, ops)
        rules_error = None
    except EnduroError as exc:
        rules, abort_if, rules_error = [], [], str(exc).splitlines()[0]
    keep = max([60.0, *(r.over_s or 0.0 for r in rules)])
    metrics = Metrics(window, keep_s=keep, kinds=op_kinds(plan))
    rulebook = RuleBook(rules, ops, abort_if, has_faults=bool(plan.faults))
    # The store is opened read-write: a WAL left by a killed writer is replayed on open.
    try:
        store = Store(db_path)
    except sqlite3.DatabaseError as exc:
        raise _unreadable_store(run_dir, exc) from exc
    try:
        seen = _replay(store, metrics, rulebook, window, duration)
        elapsed = max(min(seen.extent, duration), 1e-3)
        rulebook.store = store
        judged, not_judged = _judge(rules, rulebook.final(metrics, elapsed), rules_error, notes)
        judged = _with_first_failures(judged, _first_failures(events))
        notes.append("not rebuilt: checkers, canaries and the final phase (the runner ran "
                     "them at its end)")
        if not seen.rows:
            notes.append("the store holds no window: the runner died before the first "
                         "window was sealed")
        recorded = state.state
        run_state = DEAD if recorded is None or recorded in (*LIVE_STATES, DEAD) else recorded
        pending = {p.record.id for p in
                   Journal(run_dir / "faults.journal.jsonl").pending_records()}
        faults = _faults(events, load_t, pending)
        stop_reason = state.stop_reason or (
            "the runner died (no results were written); rebuilt from the store")
        started = next((e for e in events if isinstance(e, RunStarted)), None)
        results = results_document(
            run_id=run_dir.name, plan_name=plan.name,
            verdict=Verdict(all(r.passed for r in judged), judged),
            metrics=metrics, ops=ops, elapsed_s=elapsed,
            seed=state.seed if state.seed is not None else (plan.seed or 0), state=run_state,
            started_wall=state.started_at or 0.0, stop_reason=stop_reason,
            worker_count=started.workers if started is not None else 1,
            profile=started.profile if started is not None else None,
            incomplete=True,
            extra={"services": {name: svc.to_json()
                                for name, svc in (state.services or {}).items()},
                   "faults": faults,
                   # Scraped tables as state.json last held them (at most 2 s old).
                   "tables": state.tables or {},
                   "phases": {p: round(n * window, 3)
                              for p, n in metrics.phase_windows.items()},
                   "rebuilt": {"at": time.time(), "from": ["metrics.sqlite", "events.jsonl",
                                                           "state.json", "plan.resolved.yaml"],
                               "windows": seen.rows, "rolled_up_windows": seen.rolled,
                               "stored_until_s": round(seen.extent, 3),
                               "last_heartbeat": state.updated_at,
                               "rules_not_evaluated": not_judged, "notes": notes}})
    except sqlite3.DatabaseError as exc:  # corrupt pages found while reading
        raise _unreadable_store(run_dir, exc) from exc
    finally:
        store.close()
    for rule_result in results.rules:
        rule_result.evaluated = rule_result.rule not in not_judged
    return results
