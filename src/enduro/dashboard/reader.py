"""What the dashboard shows of a run, read from the run's own files: ``state.json`` (through
its model), ``metrics.sqlite`` opened read-only, ``events.jsonl`` and ``results.json`` when
there is one. Nothing here talks to the runner, so a page left open adds no work to its event
loop; a run that is running, detached, dead or finished reads the same way.

Times are load seconds (the ``t`` of the store's windows and samples, and ``start_s`` of
faults): seconds since the load started. Every number is finite (``finite``): what is not a
number is null.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enduro.detach.control import run_status
from enduro.detach.liveness import runner_alive
from enduro.documents.document import DocumentError
from enduro.documents.events import (
    Event,
    FaultEnd,
    FaultError,
    FaultStart,
    FaultUndone,
    Phase,
    events_in,
)
from enduro.documents.results import Results
from enduro.documents.state import LIVE_STATES, read_state
from enduro.observe.hist import decode, new_histogram, percentiles_ms
from enduro.report.pagedata import (
    event_rows,
    finite,
    kinds_of,
    live_rule_rows,
    pausing,
    results_tables,
    rule_rows,
    scraped_tables,
)
from enduro.report.series import (
    BUCKETS_PER_ANSWER,
    choose_step,
    complete_until,
    has_table,
    op_columns,
    sample_columns,
    scrape_columns,
)

__all__ = ["LAST_S", "MAX_ROWS", "QUERY_BUDGET_S", "RunReader", "StoreUnavailable", "finite"]

LAST_S = 10.0
"""The live figures of ``/api/run`` are over the last this many seconds of stored windows."""
MAX_ROWS = 20_000
"""Rows of one table in one answer of ``/api/series``; ``more`` says when there are more."""
QUERY_BUDGET_S = 5.0
"""No query of the store may take longer (it is interrupted, and the request answered 503)."""
MAX_EVENTS_READ = 8 << 20
"""Bytes of events.jsonl read per request at most; the rest comes with the next ones."""
class StoreUnavailable(Exception):
    """``metrics.sqlite`` cannot be read now (locked past the budget, corrupt, unreadable)."""


def _finite_object(data: dict[str, Any]) -> dict[str, Any]:
    """``finite`` of a JSON object."""
    return {k: finite(v) for k, v in data.items()}


def _ms(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 3)


@dataclass
class _EventLog:
    """events.jsonl as read so far: its records (with their line number) and where the next
    read starts. A torn last line is left for the next read."""

    offset: int = 0
    records: list[tuple[int, Event]] = field(default_factory=list)
    lines: int = 0
    identity: tuple[int, int] | None = None  # (device, inode): a new file starts over


class RunReader:
    """One run directory, read for the dashboard; safe to use from several threads."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._lock = threading.Lock()
        self._events = _EventLog()
        self._results: tuple[tuple[int, int], Results | None] | None = None
        self._figures: tuple[tuple[float | None, int], dict[str, Any]] | None = None

    # -- /api/run ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """The run: state, time, verdict when finished, and per op its figures over the last
        ``LAST_S`` seconds of stored windows and since the start."""
        status = run_status(self.run_dir)
        state = read_state(self.run_dir / "state.json")
        live = status["state"] in LIVE_STATES
        results = self._read_results()
        events = self._read_events()
        with self._store() as db:
            ops = self._op_figures(db, live) if db is not None else {}
            window = _window_s(db)
        kinds = kinds_of(self.run_dir, results)
        for name, kind in kinds.items():  # every op of the plan, even one that never ran
            ops.setdefault(name, _empty_op())["kind"] = kind
        return _finite_object({
            "run_id": status["run_id"], "plan": status["plan"], "state": status["state"],
            "recorded_state": status["recorded_state"], "mode": status["mode"], "live": live,
            "runner": status["runner"],
            "elapsed_s": status["elapsed_s"], "remaining_s": status["remaining_s"],
            "duration_s": status["duration_s"], "stop_reason": status["stop_reason"],
            "note": status["note"],
            "verdict": results.verdict if results is not None else None,
            "rules": rule_rows(results) if results is not None else live_rule_rows(events),
            "phase": _current_phase(events),
            "faults_in_force": _in_force(events),
            "last_s": LAST_S, "ops": ops, "kinds": kinds,
            "step_s": choose_step(status["duration_s"], window),
            "results": results_tables(results) if results is not None else None,
            "tables": scraped_tables(results.tables if results is not None
                                     else state.tables if state is not None else None),
            "pausing": pausing(self.run_dir),
            "services": status["services"],
            "resources": (state.resources or {}) if state is not None else {},
        })

    def _op_figures(self, db: sqlite3.Connection, live: bool) -> dict[str, Any]:
        """Per op: rps, errors and latency percentiles over the last ``LAST_S`` seconds of
        complete windows (histograms merged, not percentiles averaged), and totals. Computed
        once per new window, whoever asks."""
        if not has_table(db, "windows"):
            return {}
        newest = complete_until(db, "windows", live)
        count = db.execute("SELECT COUNT(*) FROM windows").fetchone()[0]
        key = (newest, count)
        with self._lock:
            if self._figures is not None and self._figures[0] == key:
                return {op: dict(v) for op, v in self._figures[1].items()}
        ops: dict[str, Any] = {}
        if newest is not None:
            first, span = db.execute(
                "SELECT MIN(t), (SELECT span FROM windows WHERE t = ? LIMIT 1) FROM windows",
                (newest,)).fetchone()
            end = newest + (span or 0.0)
            covered = max(min(LAST_S, end - first), 1e-9)
            for op, requests, errors in db.execute(
                    "SELECT op, SUM(requests), SUM(errors) FROM windows WHERE t <= ? "
                    "GROUP BY op ORDER BY op", (newest,)):
                ops[op] = {**_empty_op(), "requests_total": requests or 0,
                           "errors_total": errors or 0}
            recent: dict[str, list[Any]] = {}
            for op, requests, errors, hist in db.execute(
                    "SELECT op, requests, errors, latency_hist FROM windows "
                    "WHERE t > ? AND t <= ?", (end - LAST_S - 1e-9, newest)):
                acc = recent.setdefault(op, [0, 0, None])
                acc[0] += requests or 0
                acc[1] += errors or 0
                if hist:
                    if acc[2] is None:
                        acc[2] = new_histogram()
                    acc[2].add(decode(hist))
            for op, (requests, errors, hist) in recent.items():
                figures = ops.setdefault(op, _empty_op())
                pct = percentiles_ms(hist) if hist is not None else {}
                figures.update(
                    rps=round(requests / covered, 3), requests=requests, errors=errors,
                    error_rate=round(errors / requests, 6) if requests else None,
                    p50_ms=_ms(pct.get("p50")), p95_ms=_ms(pct.get("p95")),
                    p99_ms=_ms(pct.get("p99")))
            for figures in ops.values():
                figures["until_s"] = round(end, 3)
        with self._lock:
            self._figures = (key, ops)
        return {op: dict(v) for op, v in ops.items()}

    # -- /api/series -----------------------------------------------------------------------
    def series(self, since: float | None, samples_since: float | None,
               step: float | None = None) -> dict[str, Any]:
        """Windows with ``t > since`` (every one without ``since``) per op, and resource
        samples with ``t > samples_since`` (default ``since``) per target and figure, up to
        the last complete ones; with ``step``, folded into buckets of ``step`` seconds, the
        last bucket given once it is complete. ``windows_until`` and ``samples_until`` are
        the next request's ``since`` and ``samples_since``; ``more``: the answer was cut at
        ``MAX_ROWS`` rows, ask again at once."""
        live = self._live()
        w_since = -math.inf if since is None else since
        s_since = w_since if samples_since is None else samples_since
        out: dict[str, Any] = {"ops": {}, "resources": {}, "windows_until": since,
                               "samples_until": s_since if samples_since is not None
                               or since is not None else None, "more": False}
        with self._store() as db:
            if db is None:
                return _finite_object(out)
            for table, start, key in (("windows", w_since, "windows_until"),
                                      ("samples", s_since, "samples_until")):
                if not has_table(db, table):
                    continue
                until, more = _page(db, table, start, live, step)
                if until is None:
                    continue
                out[key] = until
                out["more"] |= more
                if table == "windows":
                    out["ops"] = op_columns(db, start, until, step)
                else:
                    out["resources"] = sample_columns(db, start, until, step)
        return _finite_object(out)

    def scrapes(self, step: float | None) -> dict[str, Any]:
        """The scraped series that changed, whole, per service and metric (``step``: in
        buckets of that many seconds), and how many are not given."""
        with self._store() as db:
            if db is None:
                return {"series": {}, "unchanged": 0, "left_out": 0}
            return _finite_object(scrape_columns(db, -math.inf, math.inf, step))

    # -- /api/events -----------------------------------------------------------------------
    def events(self, since: float | None, after: int | None) -> dict[str, Any]:
        """The run's events (all but heartbeats and snapshots), each with ``t`` in load
        seconds (null before the load started), ``seq`` (its line number in events.jsonl),
        a ``category`` and a ``label`` for people. ``since``: only those with ``t > since``;
        ``after``: only those with ``seq > after`` (``last_seq`` is the next request's)."""
        return event_rows(self._read_events(), since, after)

    # -- the files -------------------------------------------------------------------------
    def _live(self) -> bool:
        """Whether the runner is at work: its rows may still be half written."""
        state = read_state(self.run_dir / "state.json")
        return state is not None and state.state in LIVE_STATES and runner_alive(state)

    def _read_results(self) -> Results | None:
        path = self.run_dir / "results.json"
        try:
            st = path.stat()
        except OSError:
            return None
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if self._results is not None and self._results[0] == key:
                return self._results[1]
        try:
            results: Results | None = Results.read(path)
        except DocumentError:
            results = None  # half written, or not one: `status` says why
        with self._lock:
            self._results = (key, results)
        return results

    def _read_events(self) -> list[tuple[int, Event]]:
        """Every record of events.jsonl so far; each call reads only what was appended."""
        path = self.run_dir / "events.jsonl"
        with self._lock:
            log = self._events
            try:
                with path.open("rb") as f:
                    st = os.fstat(f.fileno())
                    identity = (st.st_dev, st.st_ino)
                    if log.identity != identity or st.st_size < log.offset:
                        log = self._events = _EventLog(identity=identity)
                    f.seek(log.offset)
                    chunk = f.read(MAX_EVENTS_READ)
            except OSError:
                return list(log.records)
            complete = chunk[:chunk.rfind(b"\n") + 1]
            for line in complete.decode("utf-8", errors="replace").splitlines():
                log.lines += 1
                for event in events_in([line]):
                    log.records.append((log.lines, event))
            log.offset += len(complete)
            return list(log.records)

    @contextlib.contextmanager
    def _store(self) -> Iterator[sqlite3.Connection | None]:
        """``metrics.sqlite`` opened read-only for one request (None before the runner made
        it); a query that runs past ``QUERY_BUDGET_S`` is interrupted."""
        path = self.run_dir / "metrics.sqlite"
        if not path.is_file():
            yield None
            return
        deadline = time.monotonic() + QUERY_BUDGET_S
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                 timeout=QUERY_BUDGET_S, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"metrics.sqlite cannot be opened ({exc})") from exc
        db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            yield db
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"metrics.sqlite cannot be read now ({exc})") from exc
        finally:
            db.close()


def _empty_op() -> dict[str, Any]:
    return {"rps": 0.0, "requests": 0, "errors": 0, "error_rate": None, "p50_ms": None,
            "p95_ms": None, "p99_ms": None, "requests_total": 0, "errors_total": 0}


def _window_s(db: sqlite3.Connection | None) -> float:
    """The store's window length (1 s before the first window is stored)."""
    if db is None or not has_table(db, "windows"):
        return 1.0
    span = db.execute("SELECT MIN(span) FROM windows").fetchone()[0]
    return float(span) if span else 1.0


def _page(db: sqlite3.Connection, table: str, since: float, live: bool,
          step: float | None) -> tuple[float | None, bool]:
    """Up to which ``t`` one answer goes from ``since``, and whether rows are left after it:
    the complete rows, at most about ``MAX_ROWS`` of them (``BUCKETS_PER_ANSWER`` buckets of
    ``step``), never cutting a time (or, live, a bucket) in two."""
    until = complete_until(db, table, live)
    if until is None or not until > since:
        return None, False
    if step:
        return _bucket_page(db, table, since, until, live, step)
    cut = db.execute(f"SELECT t FROM {table} WHERE t > ? ORDER BY t LIMIT 1 OFFSET ?",
                     (since, MAX_ROWS)).fetchone()
    if cut is None or cut[0] > until:
        return until, False
    before = db.execute(f"SELECT MAX(t) FROM {table} WHERE t > ? AND t < ?",
                        (since, cut[0])).fetchone()[0]
    # One time holding more rows than a page: it goes whole.
    return (before if before is not None else cut[0]), True


def _bucket_page(db: sqlite3.Connection, table: str, since: float, until: float, live: bool,
                 step: float) -> tuple[float | None, bool]:
    """``_page`` in buckets of ``step`` seconds: while the run is live, only whole buckets
    (a bucket ends where the newest complete time begins the next one)."""
    first = db.execute(f"SELECT MIN(t) FROM {table} WHERE t > ?", (since,)).fetchone()[0]
    if first is None:
        return None, False
    limit = (math.floor(first / step) + BUCKETS_PER_ANSWER) * step
    more = until >= limit
    end = min(until, limit - 1e-9)
    if live and not more:
        # The newest complete time's bucket may still be filling: it waits for the next one.
        end = min(end, math.floor(until / step) * step - 1e-9)
    cut = db.execute(f"SELECT MAX(t) FROM {table} WHERE t > ? AND t <= ?",
                     (since, end)).fetchone()[0]
    return cut, more and cut is not None


def _current_phase(records: list[tuple[int, Event]]) -> str | None:
    return next((e.phase for _, e in reversed(records) if isinstance(e, Phase)), None)


def _in_force(records: list[tuple[int, Event]]) -> list[dict[str, Any]]:
    """The faults started and not yet ended, undone or failed."""
    started: dict[int, FaultStart] = {}
    for _, e in records:
        if isinstance(e, FaultStart):
            started[e.id] = e
        elif isinstance(e, FaultEnd | FaultError | FaultUndone):
            started.pop(e.id, None)
    return [{"id": f.id, "name": f.name, "kind": f.fault_kind, "targets": f.targets}
            for f in started.values()]
