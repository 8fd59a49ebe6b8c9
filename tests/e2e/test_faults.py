"""Faults end to end with real servers: redis killed under load, a NATS cluster restarted,
recovery after the runner is killed, abort conditions, reproducible schedules."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import HELPERS, run_cli
from tests.e2e.test_services import start, status
from tests.helpers.plans import write_plan
from tests.helpers.procs import free_port, only_run, wait_for

CHATTY = [sys.executable, str(HELPERS / "chatty_service.py")]


def needs(binary: str) -> Any:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}"
                                    if os.path.exists(f"/usr/sbin/{binary}") else None)
    return pytest.mark.skipif(path is None and not os.environ.get("CI"),
                              reason=f"{binary} is not installed")


def events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").open()]



@needs("redis-server")
@pytest.mark.slow(14)
def test_redis_killed_under_load_detection_and_recovery(tmp_path: Path) -> None:
    shutil.copy(HELPERS / "ops.py", tmp_path / "ops.py")
    port = free_port()
    plan = write_plan(tmp_path, {
        "name": "redis-kill", "duration": "12s", "seed": 5,
        "services": {"redis": {
            "command": ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save",
                        "", "--appendonly", "no"],
            "ports": [port], "ready": {"tcp": f"127.0.0.1:{port}"}, "restart": "always"}},
        "workloads": {"pings": {"python": {"function": "ops:redis_ping", "connections": 4,
                                           "think": "10ms", "timeout": "1s",
                                           "params": {"port": port}}}},
        "faults": [{"at": "4s", "kill": "redis"}],
        # Recovery judged on errors, which stop once the restarted redis is ready: the p99 of
        # a window on a shared 2-core machine swings past a 50% band on its own (baseline
        # windows included), which would move recovery by whole windows.
        "fault_policy": {"baseline_band": "100000%"},
        "rules": ["max(recover_s) < 5s", "error_rate{phase=baseline} == 0%"]})
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    run_dir = only_run(tmp_path / "runs")
    results = json.loads((run_dir / "results.json").read_text())
    (fault,) = results["faults"]
    assert fault["kind"] == "kill" and fault["target"] == "redis"
    assert 3.9 <= fault["start_s"] <= 4.3
    assert fault["errors"] > 0 and results["errors_by_class"]
    evs = events(run_dir)
    load_t = next(e["t"] for e in evs if e["event"] == "load_started")
    killed = next(e["t"] for e in evs if e["event"] == "fault_start") - load_t
    ready = [e["t"] - load_t for e in evs if e["event"] == "service_ready"][-1]
    # Errors start in the window of the kill; recovery lands within a window of the
    # restarted redis being ready.
    assert fault["detect_s"] <= 1.0
    assert ready - killed - 1.0 <= fault["recover_s"] <= ready - killed + 1.0, (fault, ready)
    assert results["phases"]["chaos"] >= 1 and results["phases"]["recovery"] >= 3
    assert "faults" in proc.stdout and "recover" in proc.stdout  # the terminal fault table


@needs("nats-server")
@pytest.mark.slow(27)
def test_nats_cluster_restarted_every_few_seconds(tmp_path: Path) -> None:
    pytest.importorskip("nats")
    shutil.copy(HELPERS / "ops.py", tmp_path / "ops.py")
    clients = [free_port() for _ in range(3)]
    routes = [free_port() for _ in range(3)]
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    services = {}
    for i in range(3):
        others = ",".join(f"nats://127.0.0.1:{routes[j]}" for j in range(3) if j != i)
        services[f"n{i}"] = {
            "command": [binary, "-a", "127.0.0.1", "-p", str(clients[i]), "--cluster_name",
                        "enduro", "--cluster", f"nats://127.0.0.1:{routes[i]}", "--routes",
                        others],
            "ports": [clients[i], routes[i]],
            "ready": {"log": "Server is ready", "timeout": "20s"},
            "stop": {"grace": "3s"}}
    plan = write_plan(tmp_path, {
        "name": "nats", "duration": "20s", "seed": 11,
        "services": services, "groups": {"cluster": list(services)},
        "workloads": {"pubsub": {"python": {
            "function": "ops:nats_roundtrip", "connections": 3, "think": "20ms",
            "timeout": "2s",
            "params": {"servers": [f"nats://127.0.0.1:{p}" for p in clients]}}}},
        "faults": [{"every": "5s", "restart": {"target": "cluster", "choose": "random"}}],
        # A restart costs this load a few roundtrips at most (clients reconnect in ~0.1 s and
        # may not even use the restarted node), so detection is not asserted: a restart with no
        # bad window has detect_s null. Recovery is judged on errors and stalls (empty
        # windows); a window's p99 on a shared 2-core machine crosses a 50% band on its own.
        "fault_policy": {"baseline_band": "100000%"},
        "rules": ["max(recover_s) < 8s"]})
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"), timeout=180)
    run_dir = only_run(tmp_path / "runs")
    results = json.loads((run_dir / "results.json").read_text())
    restarts = [f for f in results["faults"] if f["kind"] == "restart"]
    assert len(restarts) == 3, results["faults"]  # at 5, 10 and 15 s
    for f in restarts:
        assert f["error"] is None
        assert f["recover_s"] is not None, f
        assert list(f["ready_s"]) == [f["target"]]
    assert results["ops"]["pubsub"]["requests"] > 200
    assert sum(s["restarts"] for s in results["services"].values()) == 3
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow(7)
def test_recover_undoes_what_a_killed_runner_left(tmp_path: Path) -> None:
    marker = tmp_path / "fault-marker"
    plan = write_plan(tmp_path, {
        "name": "leftover", "duration": "120s", "seed": 1,
        "services": {"svc": {"command": [*CHATTY]}},
        "faults": [
            {"at": "1s", "for": "100s", "command": {"run": f"touch {marker}",
                                                    "undo": f"rm -f {marker}"}},
            {"at": "1s", "for": "100s", "pause": "svc"}]})
    runs = tmp_path / "runs"
    run_dir = start(plan, runs)
    wait_for(lambda: marker.exists() and sum(
        1 for e in events(run_dir) if e["event"] == "fault_start") == 2, 30, "both faults")
    s = status(runs)
    service = psutil.Process(s["services"]["svc"]["pid"])
    wait_for(lambda: service.status() == psutil.STATUS_STOPPED, 10, "the pause")
    os.kill(s["runner"]["pid"], signal.SIGKILL)
    wait_for(lambda: status(runs)["state"] == "dead", 10, "the runner to be dead")
    assert marker.exists() and service.status() == psutil.STATUS_STOPPED
    proc = run_cli("recover", "--runs", str(runs))
    assert proc.returncode == 0, proc.stderr
    assert "command" in proc.stdout and "pause" in proc.stdout
    assert not marker.exists()
    assert service.status() != psutil.STATUS_STOPPED
    again = run_cli("recover", "--runs", str(runs))
    assert "no fault left to undo" in again.stdout
    assert run_cli("stop", "--runs", str(runs)).returncode == 0
    assert not service.is_running() or service.status() == psutil.STATUS_ZOMBIE


def test_faults_are_undone_on_sigint(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    plan = write_plan(tmp_path, {
        "name": "undo-on-stop", "duration": "120s",
        "services": {"svc": {"command": [*CHATTY]}},
        "faults": [{"at": "0.5s", "for": "100s", "command": {"run": f"touch {marker}",
                                                             "undo": f"rm -f {marker}"}}]})
    runs = tmp_path / "runs"
    start(plan, runs)
    wait_for(marker.exists, 30, "the fault")
    assert run_cli("stop", "--runs", str(runs)).returncode == 0
    assert not marker.exists()
    journal = (only_run(runs) / "faults.journal.jsonl").read_text()
    assert '"op": "undone"' in journal


@pytest.mark.slow(4)
def test_plan_faults_is_reproducible_from_the_cli(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, {
        "name": "sched", "duration": "10m",
        "services": {"a": {"command": "sleep 1"}, "b": {"command": "sleep 1"}},
        "groups": {"g": ["a", "b"]},
        "faults": [{"every": "40s", "jitter": "5s", "kill": {"target": "g"}},
                   {"random": "2m", "restart": "a"}]})
    one = run_cli("plan", str(plan), "--faults", "--seed", "9")
    two = run_cli("plan", str(plan), "--faults", "--seed", "9")
    other = run_cli("plan", str(plan), "--faults", "--seed", "10")
    assert one.returncode == 0 and one.stdout == two.stdout != other.stdout
    assert one.stdout.startswith("seed 9: ")
    assert "kill" in one.stdout and "restart" in one.stdout


@pytest.mark.slow(6)
def test_abort_if_stops_a_run_that_has_gone_down(tmp_path: Path,
                                                 demo: tuple[str, Path]) -> None:
    url, _ = demo
    front = free_port()
    upstream = url.split("//")[1]
    plan = write_plan(tmp_path, {
        "name": "abort", "duration": "60s",
        "proxies": {"front": {"listen": f"127.0.0.1:{front}", "upstream": upstream}},
        "workloads": {"w": {"http": {"base": f"http://127.0.0.1:{front}", "rate": "50/s",
                                     "timeout": "1s",
                                     "requests": [{"name": "health", "path": "/health"}]}}},
        "faults": [{"at": "2s", "down": {"proxy": "front"}}],
        "abort_if": ["availability < 50% for 2s"]})
    began = time.monotonic()
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - began < 30
    results = json.loads((only_run(tmp_path / "runs") / "results.json").read_text())
    assert results["stop_reason"].startswith("aborted: rule 'abort_if availability < 50%")
    assert results["errors_by_class"].get("reset", 0) > 0
