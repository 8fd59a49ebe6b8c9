"""``enduro supervise``: services only, no load, so it never records a pass."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import psutil
import pytest

from enduro.services.identity import processes_inside
from tests.conftest import run_cli
from tests.helpers.plans import write_plan
from tests.helpers.procs import free_port, only_run, wait_for


def _plan(tmp_path: Path, port: int) -> Path:
    return write_plan(tmp_path, {
        "name": "sup", "duration": "1h",
        "services": {"web": {
            "command": [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            "ports": [port],
            "ready": {"http": f"http://127.0.0.1:{port}/", "status": 200, "timeout": "30s"}}},
        # Never judged under supervise: a rule that would pass must not turn into a pass.
        "rules": ["errors == 0"]})


def _state(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((only_run(out) / "state.json").read_text())
    except (ValueError, OSError):
        return None
    return data if isinstance(data, dict) else None


def _web_up(out: Path) -> dict[str, Any] | None:
    st = _state(out)
    if st is None or st.get("state") != "running":
        return None
    web = (st.get("services") or {}).get("web") or {}
    return web if web.get("state") == "up" and web.get("pid") else None


def _assert_never_a_pass(run_dir: Path) -> dict[str, Any]:
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == "incomplete"
    assert results["mode"] == "supervise"
    assert results["complete"] is False
    assert results["rules_passed"] is None  # the plan's rule was never judged
    suite = ET.parse(run_dir / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("failures", "0")) >= 1
    failure = suite.find("testcase/failure")
    assert failure is not None and "no load ran" in (failure.text or "")
    return dict(results)


@pytest.mark.slow(4)
def test_supervise_stopped_by_sigint_records_no_pass(tmp_path: Path) -> None:
    port = free_port()
    plan = _plan(tmp_path, port)
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "enduro", "supervise", str(plan), "--out",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        web = wait_for(lambda: _web_up(out), 60, "the web service up in state.json")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = stdout + stderr
    assert proc.returncode == 0, text  # stopping is how supervision ends
    assert "Traceback" not in text
    # The services' final table, not an ops table of zeros and a verdict word.
    assert "services, supervised for" in text and "web" in text
    assert "no load ran and no rule was judged" in text
    assert "verdict: pass" not in text and "requests" not in text
    run_dir = only_run(out)
    results = _assert_never_a_pass(run_dir)
    assert results["stop_reason"] == "interrupted by SIGINT"
    assert results["state"] == "stopped"
    assert results["services"]["web"]["state"] == "stopped"

    listed = run_cli("runs", "--runs", str(out))
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    assert line.split() == [run_dir.name, "stopped", "supervise", line.split()[-1]]
    rows = json.loads(run_cli("runs", "--runs", str(out), "--json").stdout)
    assert [(r["mode"], r["verdict"]) for r in rows] == [("supervise", "incomplete")]

    assert processes_inside(run_dir) == []
    pid = int(web["pid"])
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    with socket.socket() as s:  # nothing listens on the service's port any more
        # SO_REUSEADDR: the probe's closed connections may sit in TIME_WAIT; a listener
        # still bound would make this bind fail all the same.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_supervise_duration_ends_it_without_a_pass(tmp_path: Path) -> None:
    plan = _plan(tmp_path, free_port())
    out = tmp_path / "runs"
    proc = run_cli("supervise", str(plan), "--out", str(out), "--duration", "2s", timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run(out)
    results = _assert_never_a_pass(run_dir)
    assert results["state"] == "completed"
    assert results["stop_reason"] == "supervised for --duration 2s"
    assert processes_inside(run_dir) == []


def test_supervise_refuses_workers(tmp_path: Path) -> None:
    # No services: were the flag accepted, the run would only wait to be stopped (and time
    # out here) with nothing left behind.
    plan = write_plan(tmp_path, {"name": "sup"})
    out = tmp_path / "runs"
    proc = run_cli("supervise", str(plan), "--out", str(out), "--workers", "4", timeout=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--workers: supervise runs no load" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())  # refused before anything started


@pytest.mark.slow(5)
def test_supervise_heartbeat_names_the_services(tmp_path: Path) -> None:
    """Without a live table (--no-live, or not a terminal) the heartbeat lines tell the
    services' states, not a load's rps of zero."""
    port = free_port()
    plan = write_plan(tmp_path, {
        "name": "sup", "observe": {"heartbeat": "1s"},
        "services": {"web": {
            "command": [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            "ports": [port], "ready": {"tcp": f"127.0.0.1:{port}", "timeout": "30s"}}}})
    out = tmp_path / "runs"
    proc = run_cli("supervise", str(plan), "--out", str(out), "--duration", "3s", "--no-live",
                   timeout=90, env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout + proc.stderr
    assert "web up restarts=0" in text, text
    assert "rps=" not in text
    assert os.path.exists(only_run(out) / "results.json")
