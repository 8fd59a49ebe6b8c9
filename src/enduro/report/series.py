"""The time series of a run's store (``metrics.sqlite``) as the page draws them: windows per
op, resource samples per target, scraped series per service, as columns. The live dashboard
and ``report.html`` read them through these functions alone, so the two never drift apart.

A ``step`` longer than the store's windows folds them into buckets of ``step`` seconds
(``t`` a multiple of ``step``): counts summed, each latency percentile the highest of the
bucket's windows that measured one (a spike stays visible; a window where every request
failed adds none, so it is a gap, never 0 ms), resources and scrapes averaged. A day of
one-second windows is drawn as about ``MAX_POINTS`` points per series.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

__all__ = ["BUCKETS_PER_ANSWER", "MAX_POINTS", "MAX_SCRAPED", "choose_step", "complete_until",
           "has_table", "op_columns", "sample_columns", "scrape_columns"]

MAX_POINTS = 1200
"""Points per series the page is given at most for a run of its planned length."""
BUCKETS_PER_ANSWER = 300
"""Buckets of one answer of the live page's series; ``more`` says when there are more (so
no answer reads more than a few hundred thousand windows)."""
MAX_SCRAPED = 40
"""Scraped series drawn at most (those whose value changed, by name); the rest are counted."""
_NICE_STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600)
_OP_COLUMNS = ("t", "span", "phase", "requests", "errors", "p50_ms", "p95_ms", "p99_ms",
               "classes")


def choose_step(duration_s: float | None, window_s: float) -> float:
    """The bucket length for a run of ``duration_s``: its windows' length when they are few
    enough, else the shortest round length giving at most ``MAX_POINTS`` buckets."""
    if duration_s is None or not math.isfinite(duration_s) or duration_s <= 0:
        return window_s
    wanted = duration_s / MAX_POINTS
    if wanted <= window_s:
        return window_s
    return float(next((s for s in _NICE_STEPS if s >= wanted), _NICE_STEPS[-1]))


def has_table(db: sqlite3.Connection, table: str) -> bool:
    """Whether the table exists (the runner creates them just after the file)."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                      (table,)).fetchone() is not None


def complete_until(db: sqlite3.Connection, table: str, live: bool) -> float | None:
    """The newest ``t`` whose rows are all written. The runner writes the rows of one time
    one by one, so while it runs the newest time may be half written: it is left out."""
    newest = db.execute(f"SELECT MAX(t) FROM {table}").fetchone()[0]
    if newest is None or not live:
        return newest  # type: ignore[no-any-return]
    return db.execute(f"SELECT MAX(t) FROM {table} WHERE t < ?",  # type: ignore[no-any-return]
                      (newest,)).fetchone()[0]


def _ms(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 3)


def _classes(text: str | None) -> dict[str, int] | None:
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def op_columns(db: sqlite3.Connection, since: float, until: float,
               step: float | None = None) -> dict[str, dict[str, list[Any]]]:
    """Per op, the windows with ``since < t <= until`` as columns (``t``, ``span``,
    ``phase``, ``requests``, ``errors``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``classes``),
    folded into buckets of ``step`` seconds when given."""
    ops: dict[str, dict[str, list[Any]]] = {}
    if step:
        # max_ms > 0: the window measured a latency (read without its histogram, which
        # would make the query read every row's largest column).
        rows = db.execute(
            "SELECT CAST(t / :step AS INTEGER) * :step AS b, op, MAX(phase), SUM(requests), "
            "SUM(errors), MAX(IIF(max_ms > 0, p50_ms, NULL)), "
            "MAX(IIF(max_ms > 0, p95_ms, NULL)), MAX(IIF(max_ms > 0, p99_ms, NULL)), "
            "MAX(t + span) - CAST(t / :step AS INTEGER) * :step, "
            "COALESCE(MAX(max_ms), 0) <= 0 FROM windows WHERE t > :since AND t <= :until "
            "GROUP BY b, op ORDER BY b, op", {"step": step, "since": since, "until": until})
        classes = _bucket_classes(db, since, until, step)
        for b, op, phase, req, err, p50, p95, p99, reach, no_latency in rows:
            _append(ops, op, (b, max(step, reach or 0.0), phase, req, err, p50, p95, p99,
                              classes.get((b, op)), no_latency))
        return ops
    for t, span, op, phase, req, err, text, p50, p95, p99, no_latency in db.execute(
            "SELECT t, span, op, phase, requests, errors, classes, p50_ms, p95_ms, p99_ms, "
            "latency_hist IS NULL FROM windows WHERE t > ? AND t <= ? ORDER BY t, op",
            (since, until)):
        _append(ops, op, (t, span, phase, req, err, p50, p95, p99, _classes(text), no_latency))
    return ops


def _append(ops: dict[str, dict[str, list[Any]]], op: str, row: tuple[Any, ...]) -> None:
    t, span, phase, req, err, p50, p95, p99, classes, no_latency = row
    cols = ops.setdefault(op, {k: [] for k in _OP_COLUMNS})
    cols["t"].append(t)
    cols["span"].append(span)
    cols["phase"].append(phase)
    cols["requests"].append(req or 0)
    cols["errors"].append(err or 0)
    # No latency measured (every request failed): a gap, never "0 ms".
    for name, value in (("p50_ms", p50), ("p95_ms", p95), ("p99_ms", p99)):
        cols[name].append(None if no_latency else _ms(value))
    cols["classes"].append(classes)


def _bucket_classes(db: sqlite3.Connection, since: float, until: float,
                    step: float) -> dict[tuple[float, str], dict[str, int]]:
    out: dict[tuple[float, str], dict[str, int]] = {}
    for b, op, name, n in db.execute(
            "SELECT CAST(t / :step AS INTEGER) * :step AS b, op, j.key, SUM(j.value) "
            "FROM windows, json_each(windows.classes) AS j WHERE classes IS NOT NULL AND "
            "json_valid(classes) AND t > :since AND t <= :until GROUP BY b, op, j.key",
            {"step": step, "since": since, "until": until}):
        if isinstance(n, int | float):
            out.setdefault((b, op), {})[str(name)] = int(n)
    return out


def sample_columns(db: sqlite3.Connection, since: float, until: float,
                   step: float | None = None) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per target (``generator``, ``service:NAME``) and figure (``rss_mb``, ``cpu_pct``,
    ``fds``, ...), the samples with ``since < t <= until`` as ``{t, value}``, averaged over
    buckets of ``step`` seconds when given."""
    if step:
        rows = db.execute(
            "SELECT CAST(t / :step AS INTEGER) * :step AS b, target, metric, AVG(value) "
            "FROM samples WHERE t > :since AND t <= :until GROUP BY b, target, metric "
            "ORDER BY b", {"step": step, "since": since, "until": until})
    else:
        rows = db.execute("SELECT t, target, metric, value FROM samples "
                          "WHERE t > ? AND t <= ? ORDER BY t", (since, until))
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for t, target, metric, value in rows:
        points = out.setdefault(target, {}).setdefault(metric, {"t": [], "value": []})
        points["t"].append(t)
        points["value"].append(value)
    return out


def scrape_columns(db: sqlite3.Connection, since: float, until: float,
                   step: float | None = None) -> dict[str, Any]:
    """Scraped series (summed over their labels) with ``since < t <= until``, per service and
    metric as ``{t, value}``, averaged over buckets of ``step`` seconds when given. Only
    series whose value changed over the whole run are given, ``MAX_SCRAPED`` at most;
    ``unchanged`` and ``left_out`` count the others."""
    if not has_table(db, "scrapes"):
        return {"series": {}, "unchanged": 0, "left_out": 0}
    changed: list[tuple[str, str]] = []
    unchanged = 0
    # A series changed when one of its labelled series did (read along the index, without
    # summing every scrape first).
    spans: dict[tuple[str, str], bool] = {}
    for service, metric, low, high in db.execute(
            "SELECT service, metric, MIN(value), MAX(value) FROM scrapes "
            "WHERE metric != 'scrape_up' GROUP BY service, metric, labels"):
        key = (service, metric)
        spans[key] = spans.get(key, False) or (low is not None and high != low)
    for key in sorted(spans):
        if spans[key]:
            changed.append(key)
        else:
            unchanged += 1
    shown = changed[:MAX_SCRAPED]
    series: dict[str, dict[str, dict[str, list[float]]]] = {}
    bucket = "CAST(t / :step AS INTEGER) * :step" if step else "t"
    for service, metric in shown:
        points = series.setdefault(service, {}).setdefault(metric, {"t": [], "value": []})
        # the mean over the bucket's scrapes of the sum over labels
        for t, value in db.execute(
                f"SELECT {bucket} AS b, SUM(value) * 1.0 / COUNT(DISTINCT t) FROM scrapes "
                "WHERE service = :service AND metric = :metric AND t > :since AND "
                "t <= :until GROUP BY b ORDER BY b",
                {"step": step, "service": service, "metric": metric, "since": since,
                 "until": until}):
            points["t"].append(t)
            points["value"].append(value)
    return {"series": series, "unchanged": unchanged, "left_out": len(changed) - len(shown)}
