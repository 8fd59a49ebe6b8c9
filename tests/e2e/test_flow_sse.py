"""A flow step that attaches an SSE stream to what the flow created, end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.helpers.plans import write_plan
from tests.helpers.procs import only_run


def flow(url: str, token: str, follow: dict[str, Any]) -> dict[str, Any]:
    return {"flow": {
        "base": url, "connections": 2, "headers": {"Authorization": f"Bearer {token}"},
        "steps": [
            {"name": "create", "request": {"method": "POST", "path": "/api/v1/downloads",
                                           "json": {"url": "https://x/{{seq}}"}},
             "expect": {"status": 201}, "capture": {"id": "$.id"}},
            {"name": "follow", "sse": follow}]}}


@pytest.mark.slow(8)
def test_a_flow_follows_the_stream_of_what_it_created(tmp_path: Path,
                                                      demo: tuple[str, Path]) -> None:
    url, directory = demo
    token = (directory / "demo.token").read_text().strip()
    plan = write_plan(tmp_path, {
        "name": "follow", "duration": "3s",
        "workloads": {"life": flow(url, token, {
            "path": "/api/v1/events", "query": {"download": "{{id}}"}, "for": "5s",
            "until": '$.state == "completed"', "ts_path": "$.ts", "ids": "opaque"})},
        "rules": ["availability{op=life} == 100%", "p95(latency{op=life.follow}) < 3s",
                  "sse_duplicates == 0", "p99(sse_delivery) < 1s"]})
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    results = json.loads((only_run(tmp_path / "runs") / "results.json").read_text())
    ops = results["ops"]
    flows = ops["life"]["requests"]
    assert flows >= 2
    # One attach per flow; its latency is the time to the stream's first event.
    follow = ops["life.follow"]
    assert follow["requests"] == flows and follow["errors"] == 0
    assert 0 < follow["latency_ms"]["p50"] < 3000
    # Each download's own events (started, completed) came on its stream, counted as an
    # sse workload's, with their delivery latency from the server's stamp.
    events = ops["life.follow:event"]
    assert events["kind"] == "event"
    assert events["requests"] >= 2 * flows and events["errors"] == 0
    assert 0 < events["latency_ms"]["p50"] < 1000
    # The flow's whole latency includes waiting for "completed" (the demo takes ~0.4 s).
    assert ops["life"]["latency_ms"]["p50"] >= 200


@pytest.mark.slow(6)
def test_a_stream_that_never_says_done_fails_its_step(tmp_path: Path,
                                                      demo: tuple[str, Path]) -> None:
    url, directory = demo
    token = (directory / "demo.token").read_text().strip()
    plan = write_plan(tmp_path, {
        "name": "never", "duration": "2s",
        "workloads": {"life": flow(url, token, {
            "path": "/api/v1/events?download={{id}}", "for": "600ms",
            "until": '$.state == "exploded"'})},
        "rules": ["availability{op=life} == 100%"]})
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 1, proc.stderr
    ops = json.loads((only_run(tmp_path / "runs") / "results.json").read_text())["ops"]
    flows = ops["life"]["requests"]
    assert ops["life"]["errors_by_class"] == {"step:follow": flows}
    assert ops["life.follow"]["errors_by_class"] == {"until_timeout": flows}
    # Events came, and were counted, even though none said "exploded".
    assert ops["life.follow:event"]["requests"] >= flows


def test_an_sse_step_is_checked_before_the_run(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, {
        "name": "bad", "duration": "1s",
        "workloads": {"life": flow("http://127.0.0.1:9", "t", {
            "path": "/events/{{nope}}", "until": "$.state =="})}})
    proc = run_cli("validate", str(plan))
    assert proc.returncode == 2
    assert "workloads.life.flow.steps[1].sse" in proc.stderr, proc.stderr
    assert "until" in proc.stderr
