"""The real ``enduro`` command, end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HELPERS, run_cli
from tests.helpers.plans import http_plan, write_plan
from tests.helpers.procs import free_port, only_run, python_server, wait_for


@pytest.mark.slow(7)
def test_demo_end_to_end(tmp_path: Path) -> None:
    proc = run_cli("demo", "--duration", "5s", "--out", str(tmp_path / "runs"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    run_dir = only_run(tmp_path / "runs")
    assert f"run directory: {run_dir}" in proc.stdout
    results = json.loads((run_dir / "results.json").read_text())
    assert results["schema"] == 3 and results["verdict"] == "pass"
    assert results["state"] == "completed"
    assert 4.5 <= results["duration_s"] <= 6
    assert set(results["ops"]) == {"list", "get", "health", "create", "stats", "stream:connect",
                                   "stream:event", "battle", "battle:round",
                                   "battle.created", "battle.replayed"}
    # One create and 49 replays per burst round of 50 with one key.
    rounds = results["ops"]["battle:round"]["requests"]
    assert rounds >= 1 and results["ops"]["battle.created"]["requests"] == rounds
    assert results["total"]["requests"] > 700
    assert all(r["passed"] for r in results["rules"])
    for name in ("state.json", "plan.resolved.yaml", "events.jsonl", "junit.xml"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "logs" / "enduro.log").is_file()
    resolved = (run_dir / "plan.resolved.yaml").read_text()
    assert "${file:demo.token}" in resolved  # the token itself stays out of the run dir
    events = [json.loads(line)["event"] for line in (run_dir / "events.jsonl").open()]
    assert events[0] == "run_started" and events[-1] == "run_finished"
    assert "verdict: pass" in proc.stdout


def test_validate_reports_every_problem_with_exit_2(tmp_path: Path) -> None:
    plan = tmp_path / "bad.yaml"
    plan.write_text("name: x\nduration: soon\nworkloads:\n  a:\n    http:\n"
                    "      base: http://127.0.0.1:1\n      conections: 3\n"
                    "      requests: [{name: r}]\n")
    proc = run_cli("validate", str(plan))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{plan}:2: duration: expected a duration" in proc.stderr
    assert f"{plan}:7: workloads.a.http.conections: unknown key 'conections' (did you mean " \
           "'connections'?)" in proc.stderr


def test_validate_and_plan_on_a_good_plan(tmp_path: Path) -> None:
    path = write_plan(tmp_path, http_plan("http://127.0.0.1:1", rate="10/s",
                                          requests=[{"name": "r"}],
                                          rules=["availability >= 99%"]))
    proc = run_cli("validate", str(path))
    assert proc.returncode == 0 and "valid plan 't'" in proc.stdout
    proc = run_cli("plan", str(path), "--set", "workloads.w.http.rate=25/s")
    assert proc.returncode == 0
    assert "rate: 25/s" in proc.stdout


def test_usage_errors_exit_2() -> None:
    proc = run_cli("run", "plan.yaml", "--duration", "forever")
    assert proc.returncode == 2 and "expected a duration" in proc.stderr
    proc = run_cli("run", "does-not-exist.yaml")
    assert proc.returncode == 2 and "no such plan file" in proc.stderr


def test_help_documents_exit_codes() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for code in ("0 ", "1 ", "2 ", "3 ", "130"):
        assert f"  {code}" in proc.stdout


def test_unreachable_target_exits_3(tmp_path: Path) -> None:
    path = write_plan(tmp_path, http_plan(f"http://127.0.0.1:{free_port()}", rate="10/s",
                                          requests=[{"name": "r"}]))
    proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 3, proc.stderr
    assert "cannot connect" in proc.stderr


@pytest.mark.slow(4)
def test_failed_rule_exits_1_with_junit(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    path = write_plan(tmp_path, http_plan(url, rate="50/s", duration="2s",
                                          requests=[{"name": "health", "path": "/health"}],
                                          rules=["p99(latency) < 1us", "availability >= 99%"]))
    proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 1, proc.stderr
    run_dir = only_run(tmp_path / "runs")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == "fail"
    assert [r["passed"] for r in results["rules"]] == [False, True]
    junit = (run_dir / "junit.xml").read_text()
    assert 'tests="2"' in junit and 'failures="1"' in junit


@pytest.mark.slow(6)
def test_workers_shard_the_load_and_merge(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    path = write_plan(tmp_path, http_plan(url, rate="300/s", duration="3s",
                                          requests=[{"name": "health", "path": "/health"}],
                                          rules=["availability == 100%"]))
    proc = run_cli("run", str(path), "--workers", "2", "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    results = json.loads((only_run(tmp_path / "runs") / "results.json").read_text())
    assert results["worker_count"] == 2
    assert results["total"]["requests"] == pytest.approx(900, abs=4)


def test_a_pinned_workload_runs_whole_in_one_worker(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    (tmp_path / "flip.py").write_text(
        "async def op(ctx):\n"
        f"    with open({str(calls)!r}, 'a') as f:\n"
        "        f.write(f'{ctx.worker}\\n')\n")
    path = write_plan(tmp_path, {
        "name": "pin", "duration": "3s", "workloads": {
            "flip": {"pin": True, "python": {"function": "flip:op", "rate": "10/s"}},
            "rest": {"python": {"function": "flip:op", "rate": "10/s", "op": "rest"}}}})
    proc = run_cli("run", str(path), "--workers", "3", "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    results = json.loads((only_run(tmp_path / "runs") / "results.json").read_text())
    assert results["ops"]["flip"]["requests"] == pytest.approx(30, abs=2)  # whole rate
    workers = calls.read_text().split()
    # the pinned op's 30 calls all come from worker 0; the other op's from all three
    assert workers.count("1") + workers.count("2") == pytest.approx(20, abs=2)
    assert workers.count("0") == pytest.approx(40, abs=3)


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "enduro", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ})


def _state(out: Path, key: str = "state") -> Any:
    try:
        run_dir = only_run(out)
        return json.loads((run_dir / "state.json").read_text())[key]
    except (ValueError, OSError, KeyError):
        return ""


def _requests_so_far(out: Path) -> int:
    live = _state(out, "live")
    return int(live.get("requests_total", 0)) if isinstance(live, dict) else 0


def test_sigint_stops_gracefully_with_valid_results(tmp_path: Path,
                                                    demo: tuple[str, Path]) -> None:
    url, _ = demo
    out = tmp_path / "runs"
    path = write_plan(tmp_path, http_plan(url, rate="100/s", duration="60s",
                                          requests=[{"name": "health", "path": "/health"}]))
    proc = _start(["run", str(path), "--out", str(out)], tmp_path)
    try:
        wait_for(lambda: _requests_so_far(out) > 50, 30, "some load before stopping")
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    run_dir = only_run(out)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["state"] == "stopped" and results["verdict"] == "incomplete"
    assert results["stop_reason"] == "interrupted by SIGINT"
    assert results["total"]["requests"] > 50 and results["total"]["errors"] == 0
    assert results["duration_s"] < 30
    assert json.loads((run_dir / "state.json").read_text())["state"] == "stopped"


def test_second_sigint_forces_the_stop(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    # Every answer stalls for 58 s of each minute: in-flight requests outlast any patience.
    with python_server(HELPERS / "stall_server.py", "0", "60", "58") as url:
        plan = http_plan(url, connections=2, duration="60s", timeout="60s",
                         requests=[{"name": "slow"}])
        plan["grace"] = "50s"
        path = write_plan(tmp_path, plan)
        proc = _start(["run", str(path), "--out", str(out)], tmp_path)
        try:
            wait_for(lambda: _state(out) == "running", 30, "the run to start")
            proc.send_signal(signal.SIGINT)
            wait_for(lambda: "stopping gracefully" in (out / only_run(out).name / "logs"
                                                       / "enduro.log").read_text(),
                     10, "the graceful stop to begin")
            proc.send_signal(signal.SIGINT)
            proc.wait(20)  # far less than the 50 s grace
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130
    results = json.loads((only_run(out) / "results.json").read_text())
    assert results["state"] == "stopped"


@pytest.mark.parametrize(("defect", "rules"), [
    ("sse-duplicates", ["sse_duplicates == 0"]),
    ("idempotency-race", ["errors{op=battle:round} == 0", "checker duplicate_effect"]),
    ("queue-growth", ["errors{op=stats} == 0"]),
])
@pytest.mark.slow(10)
def test_demo_defects_are_caught(tmp_path: Path, defect: str, rules: list[str]) -> None:
    proc = run_cli("demo", "--defect", defect, "--duration", "8s", "--out",
                   str(tmp_path / "runs"), timeout=120)
    assert proc.returncode == 1, proc.stderr
    for rule in rules:
        assert f"FAIL  {rule}" in proc.stdout
    results = json.loads((only_run(tmp_path / "runs") / "results.json").read_text())
    failed = [r["rule"] for r in results["rules"] if not r["passed"]]
    assert failed == rules
    if defect == "sse-duplicates":  # the replays are pinned to the streams that saw them
        worst = results["streams"]["stream"]["worst_streams"]
        assert worst and all(w["duplicates"] > 0 for w in worst)


@pytest.mark.slow(27)
def test_durability_demo_passes(tmp_path: Path) -> None:
    plain = run_cli("demo", "--plan", "durability", "--out", str(tmp_path / "plain"),
                    timeout=120)
    assert plain.returncode == 0, plain.stderr
    results = json.loads((only_run(tmp_path / "plain") / "results.json").read_text())
    assert len(results["faults"]) == 3 and results["checkers"]["lost_writes"] == []
    assert results["services"]["demo"]["restarts"] == 3


@pytest.mark.slow(27)
def test_durability_demo_catches_lost_writes(tmp_path: Path) -> None:
    broken = run_cli("demo", "--defect", "lost-write", "--out", str(tmp_path / "broken"),
                     timeout=120)
    assert broken.returncode == 1
    assert "FAIL  checker lost_writes" in broken.stdout
    results = json.loads((only_run(tmp_path / "broken") / "results.json").read_text())
    violation = results["checkers"]["lost_writes"][0]
    assert violation["ops"][1]["type"] == "ok"  # acknowledged, then gone
