"""The run's time series in SQLite (``metrics.sqlite``, WAL mode): per-window op stats,
resource samples, scraped series and events. Readable while the run is live and after the
runner was killed; rows are committed every window.

Durability: WAL with ``synchronous=NORMAL`` keeps every committed transaction when the process
is killed (SIGKILL, OOM killer); only a power loss or kernel crash can take the last
transactions since a checkpoint. So a killed runner loses only the window it had not yet sealed
(``enduro report`` rebuilds results from the rest). Each roll-up is one transaction: a kill in
the middle of it leaves the raw rows, never a gap.

Size: one row per op per window (with its compressed histogram, ~1.5-3 KB), one per figure
per sampled process per sample, one per scraped series per scrape. Data older than an hour is
rolled up to one row per minute: windows per op (histograms merged), samples and scrapes per
series (their median). ``benchmarks/store_bench.py`` measures the size per hour.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import statistics
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from enduro.observe.hist import decode, encode, percentiles_ms
from enduro.observe.window import WindowStats

__all__ = ["Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    t REAL NOT NULL, span REAL NOT NULL, op TEXT NOT NULL, phase TEXT,
    requests INTEGER, errors INTEGER, late INTEGER, dropped INTEGER, classes TEXT,
    p50_ms REAL, p95_ms REAL, p99_ms REAL, max_ms REAL, svc_p95_ms REAL,
    latency_hist TEXT, service_hist TEXT);
CREATE INDEX IF NOT EXISTS windows_t ON windows(t);
CREATE TABLE IF NOT EXISTS samples (
    t REAL NOT NULL, target TEXT NOT NULL, metric TEXT NOT NULL, value REAL);
CREATE INDEX IF NOT EXISTS samples_tm ON samples(target, metric, t);
CREATE TABLE IF NOT EXISTS scrapes (
    t REAL NOT NULL, service TEXT NOT NULL, metric TEXT NOT NULL, labels TEXT, value REAL);
CREATE INDEX IF NOT EXISTS scrapes_sm ON scrapes(service, metric, t);
CREATE TABLE IF NOT EXISTS events (t REAL NOT NULL, kind TEXT, data TEXT);
"""


class Store:
    """One writer per run; any number of readers (``enduro report``, ``status``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._rolled_until = 0.0

    def add_windows(self, t: float, span: float, windows: Iterable[WindowStats],
                    phase: str | None = None) -> None:
        rows = []
        for w in windows:
            if not w.requests and not w.errors:
                continue
            lat = percentiles_ms(w.latency)
            svc = percentiles_ms(w.service)
            rows.append((t, span, w.op, phase, w.requests, w.errors, w.late, w.dropped,
                         json.dumps(w.classes) if w.classes else None, lat["p50"],
                         lat["p95"], lat["p99"], lat["max"], svc["p95"],
                         encode(w.latency) if w.latency.get_total_count() else None,
                         encode(w.service) if w.service.get_total_count() else None))
        if rows:
            self.db.executemany("INSERT INTO windows VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                rows)

    def add_samples(self, t: float, target: str, values: dict[str, float]) -> None:
        self.db.executemany("INSERT INTO samples VALUES (?,?,?,?)",
                            [(t, target, k, v) for k, v in values.items()])

    def add_scrapes(self, t: float, service: str,
                    values: list[tuple[str, str, float]]) -> None:
        self.db.executemany("INSERT INTO scrapes VALUES (?,?,?,?,?)",
                            [(t, service, m, labels, v) for m, labels, v in values])

    def add_event(self, t: float, kind: str, data: str) -> None:
        self.db.execute("INSERT INTO events VALUES (?,?,?)", (t, kind, data))

    def roll_up(self, now: float, older_than: float = 3600.0, bucket: float = 60.0) -> None:
        """Merge windows older than ``older_than`` into ``bucket``-second rows."""
        until = (now - older_than) // bucket * bucket
        if until <= self._rolled_until:
            return
        rows = self.db.execute(
            "SELECT t, op, phase, requests, errors, late, dropped, latency_hist, service_hist, "
            "classes FROM windows WHERE t >= ? AND t < ? AND span < ? ORDER BY t",
            (self._rolled_until, until, bucket)).fetchall()
        merged: dict[tuple[float, str], dict[str, Any]] = {}
        for t, op, phase, req, err, late, dropped, lat, svc, classes in rows:
            key = (t // bucket * bucket, op)
            m = merged.setdefault(key, {"phase": phase, "requests": 0, "errors": 0, "late": 0,
                                        "dropped": 0, "lat": None, "svc": None, "classes": {}})
            m["requests"] += req
            m["errors"] += err
            m["late"] += late
            m["dropped"] += dropped
            # Error classes survive the roll-up: ``errors{class=...}`` rules and rebuilt
            # results read them.
            for cls, n in (json.loads(classes) if classes else {}).items():
                m["classes"][cls] = m["classes"].get(cls, 0) + n
            for field, blob in (("lat", lat), ("svc", svc)):
                if blob:
                    h = decode(blob)
                    if m[field] is None:
                        m[field] = h
                    else:
                        m[field].add(h)
        with self._transaction():
            self.db.execute("DELETE FROM windows WHERE t >= ? AND t < ? AND span < ?",
                            (self._rolled_until, until, bucket))
            for (t, op), m in merged.items():
                lat = percentiles_ms(m["lat"]) if m["lat"] is not None else {}
                svc = percentiles_ms(m["svc"]) if m["svc"] is not None else {}
                self.db.execute(
                    "INSERT INTO windows VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (t, bucket, op, m["phase"], m["requests"], m["errors"], m["late"],
                     m["dropped"], json.dumps(m["classes"]) if m["classes"] else None,
                     lat.get("p50"), lat.get("p95"), lat.get("p99"),
                     lat.get("max"), svc.get("p95"),
                     encode(m["lat"]) if m["lat"] is not None else None,
                     encode(m["svc"]) if m["svc"] is not None else None))
            self._roll_up_gauges("samples", ("target", "metric"), until, bucket)
            self._roll_up_gauges("scrapes", ("service", "metric", "labels"), until, bucket)
        self._rolled_until = until

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction (the connection is in autocommit mode, where ``with db`` alone
        commits nothing and each statement stands alone)."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _roll_up_gauges(self, table: str, keys: tuple[str, ...], until: float,
                        bucket: float) -> None:
        """One row per series per bucket, its median: spikes do not move it, and trend
        tests bucket by time, so the mixed density (old rolled, recent raw) does not skew
        them."""
        cols = ", ".join(keys)
        rows = self.db.execute(
            f"SELECT t, {cols}, value FROM {table} WHERE t >= ? AND t < ?",
            (self._rolled_until, until)).fetchall()
        if not rows:
            return
        groups: dict[tuple[Any, ...], list[float]] = {}
        for row in rows:
            key = (row[0] // bucket * bucket, *row[1:-1])
            groups.setdefault(key, []).append(row[-1])
        self.db.execute(f"DELETE FROM {table} WHERE t >= ? AND t < ?",
                        (self._rolled_until, until))
        marks = ",".join("?" * (len(keys) + 2))
        self.db.executemany(f"INSERT INTO {table} (t, {cols}, value) VALUES ({marks})",
                            [(*key, statistics.median(v)) for key, v in groups.items()])

    def series(self, target: str, metric: str) -> list[tuple[float, float]]:
        return [(t, v) for t, v in self.db.execute(
            "SELECT t, value FROM samples WHERE target = ? AND metric = ? ORDER BY t",
            (target, metric))]

    def scrape_series(self, service: str, metric: str,
                      labels: str | None = None) -> list[tuple[float, float]]:
        if labels is None:
            q = ("SELECT t, SUM(value) FROM scrapes WHERE service = ? AND metric = ? "
                 "GROUP BY t ORDER BY t")
            return list(self.db.execute(q, (service, metric)))
        return list(self.db.execute(
            "SELECT t, value FROM scrapes WHERE service = ? AND metric = ? AND labels = ? "
            "ORDER BY t", (service, metric, labels)))

    def op_series(self, column: str, op: str | None = None) -> list[tuple[float, float]]:
        assert column in ("p50_ms", "p95_ms", "p99_ms", "requests", "errors")
        if op is None:
            agg = "MAX" if column.endswith("_ms") else "SUM"
            return list(self.db.execute(
                f"SELECT t, {agg}({column}) FROM windows GROUP BY t ORDER BY t"))
        return list(self.db.execute(f"SELECT t, {column} FROM windows WHERE op = ? ORDER BY t",
                                    (op,)))

    def close(self) -> None:
        self.db.close()


