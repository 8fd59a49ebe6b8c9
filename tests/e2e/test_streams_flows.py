"""SSE churn and flows against the demo service, end to end from the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enduro.engine.sse import churn_count
from tests.conftest import run_cli
from tests.helpers.plans import write_plan
from tests.helpers.procs import only_run
from tests.helpers.report import embedded


def token(demo: tuple[str, Path]) -> str:
    return (demo[1] / "demo.token").read_text().strip()


def run(tmp_path: Path, plan: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    path = write_plan(tmp_path, plan)
    proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"))
    (run_dir,) = (tmp_path / "runs").iterdir()
    return proc.returncode, json.loads((run_dir / "results.json").read_text()), proc.stderr


@pytest.mark.parametrize(("n", "fraction", "cap", "expected"), [
    (10, 0.2, 0.5, 2), (10, 1.0, 1.0, 9), (1, 1.0, 1.0, 0), (10, 0.9, 0.3, 3), (3, 0.1, 1, 0)])
def test_churn_never_replaces_every_client(n: int, fraction: float, cap: float,
                                           expected: int) -> None:
    assert churn_count(n, fraction, cap) == expected


@pytest.mark.slow(7)
def test_sse_churn_resumes_from_last_event_id(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    auth = {"Authorization": f"Bearer {token(demo)}"}
    code, results, err = run(tmp_path, {
        "name": "sse", "duration": "6s",
        "workloads": {
            "writers": {"http": {"base": url, "rate": "20/s", "headers": auth, "requests": [
                {"name": "create", "method": "POST", "path": "/api/v1/downloads",
                 "json": {"url": "https://x/{{seq}}"}, "expect": {"status": 201}}]}},
            "stream": {"sse": {"base": url, "path": "/api/v1/events", "headers": auth,
                               "clients": 8, "churn": {"every": "1s", "fraction": "50%"},
                               "reconnect_delay": "200ms", "reconnect_jitter": "200ms",
                               "ts_path": "$.ts"}}},
        "rules": ["sse_duplicates == 0", "sse_gaps == 0", "sse_reconnect_success >= 99%",
                  "p50(sse_delivery) < 100ms", "rate(sse_events) > 50/s"]})
    assert code == 0, err
    connects = results["ops"]["stream:connect"]["requests"]
    assert connects >= 8 + 4 * 4  # the first connections plus four churn rounds of four
    events = results["ops"]["stream:event"]
    # Every client sees every event even across reconnects (replayed from Last-Event-ID):
    # 3 events per download (created, started, completed) for 8 clients.
    assert events["requests"] >= 0.8 * 8 * 3 * results["ops"]["create"]["requests"]
    assert events["errors"] == 0
    # Per stream: all eight kept receiving, every reconnect resumed from its Last-Event-ID.
    streams = results["streams"]["stream"]
    assert streams["streams"] == 8 and streams["connects"] == connects
    assert streams["events_per_stream"]["min"] > 0
    assert streams["resumed_with_last_event_id"] >= connects - 8
    # What a client missed while away comes as a replay on resume: counted as events, but its
    # age (the 200-400 ms away) is not delivery latency.
    assert streams["replayed"] > 0
    assert events["latency_ms"]["p99"] < 200, events["latency_ms"]
    assert streams["streams_with"] == {"duplicates": 0, "gaps": 0, "stalls": 0, "failed": 0}
    assert streams["worst_streams"] == []
    rows = (only_run(tmp_path / "runs") / "sse_streams.jsonl").read_text().splitlines()
    assert sorted(json.loads(r)["stream"] for r in rows) == list(range(8))
    shown = embedded(only_run(tmp_path / "runs") / "report.html")["run"]["results"]["streams"]
    assert shown["stream"]["streams"] == 8 and shown["stream"]["connects"] == connects


@pytest.mark.slow(4)
def test_sse_stream_without_auth_counts_failed_connects(tmp_path: Path,
                                                        demo: tuple[str, Path]) -> None:
    url, _ = demo
    code, results, _ = run(tmp_path, {
        "name": "sse-noauth", "duration": "2s",
        "workloads": {"stream": {"sse": {"base": url, "path": "/api/v1/events", "clients": 2,
                                         "reconnect_delay": "100ms"}}},
        "rules": ["sse_reconnect_success >= 99%"]})
    assert code == 1
    assert results["ops"]["stream:connect"]["errors_by_class"] == {
        "4xx": results["ops"]["stream:connect"]["requests"]}
    streams = results["streams"]["stream"]
    assert streams["streams_with"]["failed"] == 2 and streams["streams_without_events"] == 2
    assert {w["stream"] for w in streams["worst_streams"]} == {0, 1}


@pytest.mark.slow(7)
def test_flow_runs_the_downloads_lifecycle(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    code, results, err = run(tmp_path, {
        "name": "lifecycle", "duration": "5s", "seed": 3,
        "workloads": {"life": {"flow": {
            "base": url, "connections": 3,
            "headers": {"Authorization": f"Bearer {token(demo)}"},
            "steps": [
                {"name": "create", "request": {"method": "POST", "path": "/api/v1/downloads",
                                               "json": {"url": "https://x/{{seq}}",
                                                        "parts": 2}},
                 "expect": {"status": 201, "json": {"$.state": "queued"}},
                 "capture": {"id": "$.id", "where": "header:Location"}},
                {"branch": [
                    {"weight": 1, "steps": [
                        {"name": "pause", "request": {
                            "method": "POST", "path": "/api/v1/downloads/{{id}}/pause"},
                         "expect": {"status": [200, 409]}},
                        {"name": "resume", "request": {
                            "method": "POST", "path": "/api/v1/downloads/{{id}}/resume"},
                         "expect": {"status": [200, 409]}}]},
                    {"weight": 1, "steps": [
                        {"name": "cancel", "request": {
                            "method": "POST", "path": "/api/v1/downloads/{{id}}/cancel"},
                         "expect": {"status": [200, 409]}}]}]},
                {"name": "settled", "request": {"path": "{{where}}"},
                 "until": '$.state in ["completed", "cancelled"]', "within": "10s",
                 "every": "50ms"},
                {"name": "listed", "request": {"path": "/api/v1/downloads",
                                               "query": {"limit": 500}},
                 "expect_eventually": {"contains": "{{id}}", "attempts": 5, "delay": "50ms"}},
                {"name": "delete", "request": {"method": "DELETE",
                                               "path": "/api/v1/downloads/{{id}}"},
                 "expect": {"status": 204}},
                {"name": "gone", "request": {"path": "/api/v1/downloads/{{id}}"},
                 "expect": {"status": 404}}]}}},
        "rules": ["availability{op=life} == 100%", "p95(latency{op=life.settled}) < 5s"]})
    assert code == 0, err
    ops = results["ops"]
    flows = ops["life"]["requests"]
    assert flows >= 6
    for step in ("create", "delete", "gone"):
        assert ops[f"life.{step}"]["requests"] == flows and ops[f"life.{step}"]["errors"] == 0
    # A poll counts every request it sent (as the server does), its latency once per step.
    for step in ("settled", "listed"):
        assert ops[f"life.{step}"]["requests"] >= flows and ops[f"life.{step}"]["errors"] == 0
    assert ops["life.settled"]["requests"] > flows  # some downloads took several polls
    assert results["total"]["requests"] == sum(
        o["requests"] for o in ops.values() if o["kind"] == "request")
    assert ops["life"]["kind"] == "iteration"
    # The branches split the flows.
    assert ops["life.pause"]["requests"] + ops["life.cancel"]["requests"] == flows
    assert ops["life.pause"]["requests"] == ops["life.resume"]["requests"]
    assert ops["life.pause"]["requests"] > 0 and ops["life.cancel"]["requests"] > 0
    # A download that was not cancelled takes ~0.4 s to complete: the poll waited for it.
    assert ops["life.settled"]["latency_ms"]["max"] >= 200


def test_a_failing_step_fails_its_flow(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    code, results, _ = run(tmp_path, {
        "name": "failing", "duration": "2s",
        "workloads": {"f": {"flow": {"base": url, "connections": 1, "steps": [
            {"name": "health", "request": {"path": "/health"}},
            {"name": "secret", "request": {"path": "/api/v1/downloads"},
             "expect": {"status": 200}},
            {"name": "never", "request": {"path": "/health"}}]}}},
        "rules": ["availability{op=f} >= 99%"]})
    assert code == 1
    ops = results["ops"]
    assert ops["f"]["errors_by_class"] == {"step:secret": ops["f"]["requests"]}
    assert ops["f.secret"]["errors_by_class"] == {"4xx": ops["f"]["requests"]}
    assert ops["f.never"]["requests"] == 0
