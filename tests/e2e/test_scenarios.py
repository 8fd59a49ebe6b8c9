"""Scenarios: one plan, services started once, each scenario its own workloads, rules and
verdict line; --only and plan --list."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.helpers.plans import write_plan
from tests.helpers.procs import free_port, wait_for


def scenario_plan(port: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    return {
        "name": "scen", "duration": "2s", "grace": "1s", "seed": 3,
        "services": {"demo": {
            "command": [sys.executable, "-m", "enduro.demo.server", "--port", str(port)],
            "url": base, "ports": [port],
            "ready": {"http": f"{base}/health", "interval": "50ms"}}},
        "rules": ["errors{op=health} == 0"],
        "scenarios": [
            {"name": "first", "duration": "1s", "workloads": {"health": {"http": {
                "service": "demo", "rate": "20/s",
                "requests": [{"name": "health", "path": "/health"}]}}}},
            {"name": "second", "description": "a rule that fails", "workloads": {
                "missing": {"http": {"service": "demo", "rate": "20/s",
                                     "requests": [{"name": "missing", "path": "/nope"}]}}},
             "rules": ["errors{op=missing} == 0"]},
        ]}


@pytest.mark.slow(40)
def test_scenarios_share_services_and_judge_each(tmp_path: Path) -> None:
    path = write_plan(tmp_path, scenario_plan(free_port()))
    proc = run_cli("plan", str(path), "--list")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("first\t1s\thealth")
    assert "second\t2s\tmissing\ta rule that fails" in proc.stdout

    proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"), "--no-live")
    assert proc.returncode == 1, proc.stderr
    assert "scenario first: PASS" in proc.stdout
    assert "scenario second: FAIL" in proc.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == "fail"
    assert [(s["name"], s["verdict"]) for s in results["scenarios"]] == [
        ("first", "pass"), ("second", "fail")]
    assert results["scenarios"][0]["ops"]["health"]["requests"] > 0
    # Started once, by the plan's run, and stopped at its end.
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "service_start" for e in events) == 1, events
    assert events[-1]["event"] == "service_stop"
    junit = (run_dir / "junit.xml").read_text()
    assert 'name="first: errors{op=health} == 0"' in junit
    assert 'failures="1"' in junit and 'name="second: errors{op=missing} == 0"' in junit
    # A run directory like any other: state.json, found by status and runs.
    state = json.loads((run_dir / "state.json").read_text())
    assert state["state"] == "completed" and state["duration_s"] == 3.0
    assert run_cli("status", str(run_dir)).returncode == 0
    assert run_dir.name in run_cli("runs", "--runs", str(tmp_path / "runs")).stdout
    for s in results["scenarios"]:
        assert (run_dir / s["run_dir"] / "results.json").exists()
        assert not (run_dir / s["run_dir"] / "services").exists()

    proc = run_cli("run", str(path), "--out", str(tmp_path / "only"), "--no-live",
                   "--only", "first")
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "only").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert [s["name"] for s in results["scenarios"]] == ["first"]
    assert results["verdict"] == "pass"

    proc = run_cli("run", str(path), "--out", str(tmp_path / "bad"), "--only", "third")
    assert proc.returncode == 2
    assert "--only third: no such scenario (scenarios: first, second)" in proc.stderr


def test_scenario_mistakes_at_their_line(tmp_path: Path) -> None:
    plan = scenario_plan(free_port())
    plan["scenarios"][1]["rules"] = ["errors{op=nothing} == 0"]
    plan["scenarios"].append({"name": "first", "workloads": {}})
    path = write_plan(tmp_path, plan)
    proc = run_cli("validate", str(path))
    assert proc.returncode == 2
    assert "scenario names must be unique: first repeat" in proc.stderr
    plan["scenarios"].pop()
    path = write_plan(tmp_path, plan)
    proc = run_cli("validate", str(path))
    assert proc.returncode == 2
    text = path.read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if "op=nothing" in t)
    assert f"plan.yaml:{line}:" in proc.stderr, proc.stderr
    assert "scenarios[1].rules" in proc.stderr


@pytest.mark.slow(15)
def test_start_detached_runs_the_named_scenarios(tmp_path: Path) -> None:
    path = write_plan(tmp_path, scenario_plan(free_port()))
    proc = run_cli("start", str(path), "--out", str(tmp_path / "runs"), "--only", "nope")
    assert proc.returncode == 2 and "--only nope: no such scenario" in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    proc = run_cli("start", str(path), "--out", str(tmp_path / "runs"), "--only", "first")
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    wait_for(lambda: (run_dir / "results.json").exists(), 60, "the detached run's results")
    results = json.loads((run_dir / "results.json").read_text())
    assert [s["name"] for s in results["scenarios"]] == ["first"]
    assert results["verdict"] == "pass"

