"""Trend rules judged by the real evaluation code (RuleBook, Rule, the SQLite store) on
injected series: recorded from real demo runs (tests/data/trends, each file names the command
that made it) or built to the shape a restart or a short run gives."""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Any

import numpy as np

from enduro.observe.hist import fold
from enduro.observe.metrics import Metrics
from enduro.observe.store import Store
from enduro.observe.window import WindowStats
from enduro.verdict.evaluate import RuleBook
from enduro.verdict.rules import RuleResult, parse_rule

DATA = Path(__file__).parent.parent / "data" / "trends"
OPS = {"list": "browse", "create": "writers"}


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return data


def store_of(tmp_path: Path, samples: dict[str, list[list[float]]],
             windows: list[list[Any]] = ()) -> Store:  # type: ignore[assignment]
    """A run's store holding ``samples`` of service:demo ({metric: [[t, value]]}) and
    ``windows`` ([t, span, op, requests, errors, p50, p95, p99])."""
    store = Store(tmp_path / "metrics.sqlite")
    by_t: dict[float, dict[str, float]] = {}
    for metric, rows in samples.items():
        for t, v in rows:
            by_t.setdefault(t, {})[metric] = v
    for t in sorted(by_t):
        store.add_samples(t, "service:demo", by_t[t])
    for t, span, op, requests, errors, _p50, p95, _p99 in windows:
        lat = fold(array("q", [int(p95 * 1000)] * requests))
        store.add_windows(t, span, [WindowStats(op=op, index=int(t), requests=requests,
                                                errors=errors, latency=lat, service=lat)])
    return store


def judge(store: Store, text: str) -> tuple[RuleResult, dict[str, Any]]:
    book = RuleBook([parse_rule(text, ops=OPS)], OPS)
    book.store = store
    (result,) = book.final(Metrics(window_s=1.0), elapsed_s=60).results
    return result, book.trend_details.get(text, {})


def test_the_fd_leak_demo_is_caught_from_its_recorded_series(tmp_path: Path) -> None:
    data = recorded("demo_fd_leak_60s")
    store = store_of(tmp_path, data["samples"])
    result, details = judge(store, "leak(fds{service=demo}) == false")
    assert not result.passed and result.observed_text == "true"
    assert details["leak"] and details["slope_ci_per_h"][0] > 0
    assert details["p_value"] < 0.001  # far from the edge: no timing luck involved
    assert [p["pid"] for p in details["incarnations"]] == [int(data["samples"]["pid"][0][1])]


def test_a_healthy_soak_does_not_drift(tmp_path: Path) -> None:
    data = recorded("demo_soak_25s")
    store = store_of(tmp_path, data["samples"], data["windows"])
    result, details = judge(store, "drift(p95(latency{op=list})) < 100%")
    assert result.passed and not result.insufficient
    assert result.observed is not None and abs(result.observed) < 0.5
    # The last window (a few requests after the load stopped) is partial: left out.
    assert data["windows"][-1][3] < 10 and details["points"] == len(data["windows"]) - 1
    assert details["span_points"] == 5


def test_a_10s_soak_has_too_little_data_for_its_trend_rules(tmp_path: Path) -> None:
    data = recorded("demo_soak_10s")
    store = store_of(tmp_path, data["samples"], data["windows"])
    drift, _ = judge(store, "drift(p95(latency{op=list})) < 100%")
    assert not drift.passed and drift.insufficient
    assert drift.observed_text == "not enough data"
    assert drift.reason == "not enough data (10 points, needs 20)"
    assert drift.to_json()["insufficient"] is True
    leak, details = judge(store, "leak(fds{service=demo}) == false")
    assert not leak.passed and leak.insufficient
    points = len(data["samples"]["fds"])
    assert leak.reason == f"not enough data ({points} points, needs 12)"
    assert details["leak"] is None


def sawtooth(leak_mb_per_h: float, restarts: int, seconds: int = 1800) -> dict[str, Any]:
    """RSS sampled every 2 s of a service restarted ``restarts`` times (the pid changes)."""
    rng = np.random.default_rng(3)
    per = seconds // (restarts + 1)
    rss, pid = [], []
    for t in range(0, seconds, 2):
        age = t % per
        rss.append([float(t), 80 + leak_mb_per_h * age / 3600 + float(rng.normal(0, 0.5))])
        pid.append([float(t), float(4000 + t // per)])
    return {"rss_mb": rss, "pid": pid}


def test_a_leak_across_a_restart_fault_is_a_leak(tmp_path: Path) -> None:
    store = store_of(tmp_path, sawtooth(2900, restarts=1))
    rule = "leak(rss{service=demo}) == false"
    result, details = judge(store, rule)
    assert not result.passed and details["mode"] == "per_incarnation"
    assert [p["pid"] for p in details["incarnations"]] == [4000, 4001]
    assert all(p["leak"] for p in details["incarnations"])
    pooled, pooled_details = judge(store, "leak(rss{service=demo, incarnations=pooled}) == false")
    assert pooled.passed and pooled_details["mode"] == "pooled"  # the old blind spot, on demand


def test_a_flat_service_restarted_has_no_leak(tmp_path: Path) -> None:
    store = store_of(tmp_path, sawtooth(0, restarts=3))
    result, details = judge(store, "leak(rss{service=demo}) == false")
    assert result.passed and len(details["incarnations"]) == 4
