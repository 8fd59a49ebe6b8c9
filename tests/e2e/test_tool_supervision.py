"""Crash supervision of services run by docker compose and systemd, through stand-ins of
``docker``, ``systemctl`` and ``journalctl`` that run real servers and report state and logs
as the real tools do (tests/helpers/fake_tool.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HELPERS, run_cli
from tests.helpers.fake_tool import end_all
from tests.helpers.plans import write_plan
from tests.helpers.procs import free_port, only_run

COMPOSE = {"compose": {"file": "compose.yaml", "project": "shop", "service": "web"}}
SYSTEMD = {"systemd": {"unit": "web", "user": True}}


def _tools(tmp_path: Path) -> tuple[Path, Path]:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for tool in ("docker", "systemctl", "journalctl"):
        shim = bin_dir / tool
        shim.write_text(f"#!/bin/sh\nexec {sys.executable} {HELPERS / 'fake_tool.py'} "
                        f"{tool} \"$@\"\n")
        shim.chmod(0o755)
    return bin_dir, state


def _run(tmp_path: Path, driver: dict[str, Any], *, restart: str = "on-failure",
         self_restart: bool = False) -> tuple[Any, Path, list[str]]:
    """A run of 9 s at 20 req/s whose service is SIGKILLed at 3 s (a crash, not a fault
    enduro makes: the kill comes from a command)."""
    bin_dir, state = _tools(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    plan = write_plan(tmp_path, {
        "name": "crash", "duration": "9s",
        "services": {"web": {**driver, "url": url, "restart": restart,
                             "ready": {"http": f"{url}/", "status": 200, "timeout": "15s"}}},
        "workloads": {"get": {"http": {"service": "web", "rate": "20/s",
                                       "requests": [{"name": "index", "path": "/"}]}}},
        "faults": [{"at": "3s", "command": {"run": f"kill -9 $(cat {state}/web.pid)"}}]})
    (plan.parent / "compose.yaml").write_text("services: {}\n")  # validation wants it
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_TOOL_STATE": str(state),
           "FAKE_TOOL_PORT": str(port), "FAKE_TOOL_SELF_RESTART": "1" if self_restart else "0"}
    try:
        proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"), env=env)
    finally:
        end_all(state)
    calls = (state / "calls.log").read_text().splitlines()
    return proc, only_run(tmp_path / "runs"), calls


def _crash_log(run_dir: Path) -> str:
    (crash,) = (run_dir / "services" / "web").glob("crash-*.log")
    return crash.read_text()


@pytest.mark.slow(12)
@pytest.mark.parametrize("driver", [COMPOSE, SYSTEMD], ids=["compose", "systemd"])
def test_a_crashed_tool_service_is_kept_and_restarted(tmp_path: Path,
                                                      driver: dict[str, Any]) -> None:
    proc, run_dir, calls = _run(tmp_path, driver)
    assert proc.returncode == 0, proc.stderr
    crash = _crash_log(run_dir)
    assert "exit_code: 137" in crash, crash
    assert '"GET / HTTP/1.1" 200' in crash  # the service's own last lines, from its tool
    monitor = (run_dir / "services" / "web" / "monitor.log").read_text()
    assert " exit: " in monitor and "restarting in 0.5s (restart 1)" in monitor, monitor
    restarts = [c for c in calls if " restart web" in c]
    assert len(restarts) == 1, calls  # enduro restarted it, once, through the tool
    results = json.loads((run_dir / "results.json").read_text())
    assert results["services"]["web"]["restarts"] == 1
    assert results["services"]["web"]["state"] == "stopped"
    assert results["ops"]["index"]["requests"] > 100  # the load went on after the restart
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "service_exit" and e.get("service") == "web" for e in events)


@pytest.mark.slow(12)
def test_a_unit_systemd_restarted_itself_is_counted_not_restarted_again(tmp_path: Path) -> None:
    proc, run_dir, calls = _run(tmp_path, SYSTEMD, self_restart=True)
    assert proc.returncode == 0, proc.stderr
    assert "crashed and was restarted" in _crash_log(run_dir)
    monitor = (run_dir / "services" / "web" / "monitor.log").read_text()
    assert "restarted by systemd" in monitor, monitor
    assert not [c for c in calls if " restart web" in c], calls
    results = json.loads((run_dir / "results.json").read_text())
    assert results["services"]["web"]["restarts"] == 1


@pytest.mark.slow(12)
def test_restart_never_leaves_a_crashed_tool_service_down(tmp_path: Path) -> None:
    _, run_dir, calls = _run(tmp_path, COMPOSE, restart="never")
    assert "exit_code: 137" in _crash_log(run_dir)
    monitor = (run_dir / "services" / "web" / "monitor.log").read_text()
    assert "not restarted (restart: never)" in monitor, monitor
    assert not [c for c in calls if " restart web" in c], calls
    results = json.loads((run_dir / "results.json").read_text())
    assert results["services"]["web"]["restarts"] == 0
    assert results["ops"]["index"]["errors"] > 0  # the service stayed down under load
