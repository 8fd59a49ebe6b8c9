"""A dead runner leaves nothing in force: ``enduro stop`` runs the undo of every fault the
journal holds (command faults too) and stops the services; ``recover`` keeps a failed undo
pending and says so in its exit code; ``status`` tells a paused service from an up one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import HELPERS, run_cli
from tests.helpers.plans import write_plan
from tests.helpers.procs import free_port, wait_for

CHATTY = [sys.executable, str(HELPERS / "chatty_service.py")]


def status(runs: Path) -> dict[str, Any]:
    proc = run_cli("status", "--json", "--runs", str(runs))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def start(plan: Path, runs: Path) -> Path:
    proc = run_cli("start", str(plan), "--out", str(runs))
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.split("run directory: ")[1].strip()).resolve()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def journal(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "faults.journal.jsonl").open()]


def fault_started(run_dir: Path, n: int) -> bool:
    try:
        lines = (run_dir / "events.jsonl").read_text().splitlines()
    except OSError:
        return False
    return sum(1 for line in lines if '"fault_start"' in line) >= n


@pytest.fixture()
def runs(tmp_path: Path) -> Iterator[Path]:
    """The runs directory; whatever a failing test left there is continued and stopped."""
    out = tmp_path / "runs"
    paused: list[int] = []
    yield out
    for pid in paused:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    if out.is_dir():
        for run_dir in out.iterdir():
            run_cli("stop", str(run_dir), "--grace", "5s")


def kill_runner(runs: Path) -> dict[str, Any]:
    s = status(runs)
    os.kill(s["runner"]["pid"], signal.SIGKILL)  # the runner alone, by its pid
    return wait_for(lambda: (d := status(runs))["state"] == "dead" and d, 15, "a dead runner")


@pytest.mark.slow(10)
def test_stop_of_a_dead_runner_undoes_its_faults_and_stops_its_services(
        tmp_path: Path, runs: Path) -> None:
    applied, undone = tmp_path / "applied", tmp_path / "undone"
    plan = write_plan(tmp_path, {
        "name": "dead-runner", "duration": "120s", "seed": 1,
        "services": {"svc": {"command": [*CHATTY]}},
        "faults": [
            {"at": "1s", "for": "100s", "command": {"run": f"touch {applied}",
                                                    "undo": f"touch {undone}"}},
            {"at": "1s", "for": "100s", "pause": "svc"}]})
    run_dir = start(plan, runs)
    wait_for(lambda: applied.exists() and fault_started(run_dir, 2), 30, "both faults")
    pid = status(runs)["services"]["svc"]["pid"]
    service = psutil.Process(pid)
    wait_for(lambda: service.status() == psutil.STATUS_STOPPED, 10, "the pause")
    # A paused service is not "up", neither as the runner records it nor as status sees it.
    wait_for(lambda: json.loads((run_dir / "state.json").read_text())["services"]["svc"]
             ["state"] == "paused", 10, "the runner to record the pause")
    assert status(runs)["services"]["svc"]["state"] == "paused"

    dead = kill_runner(runs)
    assert dead["runner"]["alive"] is False and dead["runner"]["last_heartbeat"]
    assert "last heartbeat at" in dead["note"]
    assert dead["services"]["svc"]["state"] == "paused"
    assert not undone.exists() and service.status() == psutil.STATUS_STOPPED

    stop = run_cli("stop", "--runs", str(runs), "--grace", "5s")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert undone.exists(), stop.stdout  # the command fault's undo ran
    assert "command" in stop.stdout and "SIGCONT" in stop.stdout
    wait_for(lambda: gone(pid), 15, "the service to be gone")
    state = json.loads((run_dir / "state.json").read_text())
    assert state["state"] == "dead" and "runner died" in state["stop_reason"]
    assert status(runs)["state"] == "dead"
    ops = [r["op"] for r in journal(run_dir)]
    assert ops == ["apply", "apply", "recovered", "recovered"]  # the command and the pause
    assert run_cli("recover", "--runs", str(runs)).stdout.strip().endswith(
        "no fault left to undo")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == "incomplete" and results["state"] == "dead"
    assert {f["kind"] for f in results["faults"]} == {"command", "pause"}


@pytest.mark.slow(7)
def test_a_failed_undo_stays_pending_and_recover_exits_3(tmp_path: Path, runs: Path) -> None:
    applied, undone, allow = tmp_path / "applied", tmp_path / "undone", tmp_path / "allow"
    plan = write_plan(tmp_path, {
        "name": "bad-undo", "duration": "120s", "seed": 1,
        "services": {"svc": {"command": [*CHATTY]}},
        "faults": [{"at": "0.5s", "for": "100s", "command": {
            "run": f"touch {applied}",
            "undo": f"test -e {allow} && touch {undone} || (echo cannot undo >&2; exit 7)"}}]})
    run_dir = start(plan, runs)
    wait_for(lambda: applied.exists() and fault_started(run_dir, 1), 30, "the fault")
    kill_runner(runs)

    first = run_cli("recover", "--runs", str(runs))
    assert first.returncode == 3, first.stdout + first.stderr
    assert "FAILED" in first.stdout and "exited with 7" in first.stdout
    assert "cannot undo" in first.stdout and "Traceback" not in first.stderr
    assert not undone.exists()
    records = journal(run_dir)
    assert [r["op"] for r in records] == ["apply", "undo_failed"]
    # stop tries again, fails again, says so in its exit code, and still ends the rest.
    stop = run_cli("stop", "--runs", str(runs), "--grace", "5s")
    assert stop.returncode == 3, stop.stdout + stop.stderr
    assert json.loads((run_dir / "state.json").read_text())["state"] == "dead"
    allow.touch()
    fixed = run_cli("recover", "--runs", str(runs))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert undone.exists()
    assert "no fault left to undo" in run_cli("recover", "--runs", str(runs)).stdout


@pytest.mark.slow(5)
def test_status_calls_a_sigstopped_service_paused(tmp_path: Path, runs: Path) -> None:
    plan = write_plan(tmp_path, {"name": "paused", "duration": "120s",
                                 "services": {"svc": {"command": [*CHATTY]}}})
    start(plan, runs)
    s = wait_for(lambda: (d := status(runs))["services"].get("svc", {}).get("state") == "up"
                 and d, 30, "the service to be up")
    pid = s["services"]["svc"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, 10, "the stop")
        paused = status(runs)["services"]["svc"]
        assert paused["state"] == "paused" and paused["process_state"] == "stopped (T)"
        text = run_cli("status", "--runs", str(runs)).stdout
        assert "service svc: paused (process stopped (T))" in text
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: status(runs)["services"]["svc"]["state"] == "up", 10, "up again")
    assert run_cli("stop", "--runs", str(runs), "--grace", "10s").returncode == 0
    wait_for(lambda: gone(pid), 15, "the service to be gone")


@pytest.mark.slow(6)
def test_an_undo_that_fails_in_a_live_run_stays_pending(tmp_path: Path, runs: Path) -> None:
    undone, allow = tmp_path / "undone", tmp_path / "allow"
    plan = write_plan(tmp_path, {
        "name": "live-bad-undo", "duration": "3s", "seed": 1,
        "faults": [{"at": "0.5s", "for": "1s", "command": {
            "run": "true", "undo": f"test -e {allow} && touch {undone} || exit 5"}}]})
    proc = run_cli("run", str(plan), "--out", str(runs))
    assert "Traceback" not in proc.stderr, proc.stderr
    (run_dir,) = list(runs.iterdir())
    assert [r["op"] for r in journal(run_dir)] == ["apply", "undo_failed"]
    (fault,) = json.loads((run_dir / "results.json").read_text())["faults"]
    assert "undo failed" in fault["error"] and "exited with 5" in fault["error"]
    again = run_cli("recover", str(run_dir))
    assert again.returncode == 3 and "exited with 5" in again.stdout, again.stdout
    allow.touch()
    assert run_cli("recover", str(run_dir)).returncode == 0 and undone.exists()


@pytest.mark.slow(5)
def test_stop_of_a_dead_runner_accounts_for_its_proxy_faults(
        tmp_path: Path, runs: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    front = free_port()
    plan = write_plan(tmp_path, {
        "name": "dead-proxy", "duration": "120s", "seed": 1,
        "proxies": {"front": {"listen": f"127.0.0.1:{front}", "upstream": url.split("//")[1]}},
        "workloads": {"w": {"http": {"base": f"http://127.0.0.1:{front}", "rate": "20/s",
                                     "requests": [{"name": "health", "path": "/health"}]}}},
        "faults": [{"at": "1s", "for": "100s", "latency": {"proxy": "front", "add": "50ms"}}]})
    run_dir = start(plan, runs)
    wait_for(lambda: fault_started(run_dir, 1), 30, "the latency fault")
    kill_runner(runs)
    stop = run_cli("stop", "--runs", str(runs), "--grace", "5s")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "latency" in stop.stdout and "ended with the runner's proxy" in stop.stdout
    assert [r["op"] for r in journal(run_dir)] == ["apply", "recovered"]
    with socket.socket() as s:  # the proxy (and so its fault) is gone with the runner
        assert s.connect_ex(("127.0.0.1", front)) != 0
    results = json.loads((run_dir / "results.json").read_text())
    (fault,) = results["faults"]
    assert fault["kind"] == "latency" and fault["in_force_at_end"] is True
    assert results["ops"]["health"]["requests"] > 0
