"""The series the run's page draws, read from a real store: buckets for long runs, gaps (never
0 ms) where no latency was measured, classes summed, and the bucket length chosen for people."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

from enduro.observe.hist import new_histogram
from enduro.observe.store import Store
from enduro.observe.window import WindowStats
from enduro.report.series import MAX_POINTS, choose_step, op_columns, sample_columns


def window(op: str, t: int, requests: int, errors: int, latency_ms: float | None) -> WindowStats:
    hist = None
    if latency_ms is not None:
        hist = new_histogram()
        for _ in range(requests - errors):
            hist.record_value(int(latency_ms * 1000))
    return WindowStats(op=op, index=t, requests=requests, errors=errors,
                       classes={"status:503": errors} if errors else {}, latency=hist)


def store(tmp_path: Path) -> sqlite3.Connection:
    """Ten seconds of op ``a``: 10 requests a second at 5 ms, 50 ms at t=3, every request
    failed at t=6 and t=7; op ``b`` only at t=0."""
    writer = Store(tmp_path / "metrics.sqlite")
    for t in range(10):
        failed = t in (6, 7)
        ws = [window("a", t, 10, 10 if failed else 0, None if failed else
                     50.0 if t == 3 else 5.0)]
        if t == 0:
            ws.append(window("b", t, 4, 1, 2.0))
        writer.add_windows(float(t), 1.0, ws, "load")
        writer.add_samples(float(t), "generator", {"rss_mb": 10.0 + t})
    writer.close()
    return sqlite3.connect(tmp_path / "metrics.sqlite")


def test_the_step_keeps_a_long_run_to_a_few_points_per_series() -> None:
    assert choose_step(30, 1.0) == 1.0 and choose_step(None, 0.5) == 0.5
    assert choose_step(3600, 1.0) == 5.0  # an hour: 720 points
    day = choose_step(86400, 1.0)
    assert day == 120.0 and 86400 / day <= MAX_POINTS


def test_windows_where_every_request_failed_are_gaps_not_zero(tmp_path: Path) -> None:
    db = store(tmp_path)
    a = op_columns(db, -math.inf, math.inf)["a"]
    assert a["t"] == [float(t) for t in range(10)]
    assert a["p95_ms"][6] is None and a["p95_ms"][7] is None
    assert 4.9 < a["p95_ms"][0] < 5.1 and a["errors"][6] == 10
    assert a["classes"][6] == {"status:503": 10} and a["classes"][0] is None


def test_buckets_sum_counts_keep_the_worst_latency_and_leave_failed_ones_out(
        tmp_path: Path) -> None:
    db = store(tmp_path)
    ops = op_columns(db, -math.inf, math.inf, 2.0)
    a = ops["a"]
    assert a["t"] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert a["requests"] == [20] * 5 and a["span"] == [2.0] * 5
    assert 49 < a["p95_ms"][1] < 51  # the spike at t=3 stays visible
    assert a["p95_ms"][3] is None  # both windows of the bucket failed every request
    assert a["errors"][3] == 20 and a["classes"][3] == {"status:503": 20}
    assert ops["b"]["t"] == [0.0] and ops["b"]["requests"] == [4]
    since = op_columns(db, 3.5, 7.0, 2.0)["a"]  # only t=4..7
    assert since["t"] == [4.0, 6.0] and since["requests"] == [20, 20]
    rss = sample_columns(db, -math.inf, math.inf, 5.0)["generator"]["rss_mb"]
    assert rss == {"t": [0.0, 5.0], "value": [12.0, 17.0]}
