"""A local ``--workers`` process killed mid-run: the same handling as a lost Ray actor
(``test_ray_cluster.py``), over pipes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from enduro.documents.results import Results
from tests.helpers.plans import write_plan
from tests.helpers.procs import wait_for


def _events(run_dir: Path) -> list[dict[str, Any]]:
    try:
        text = (run_dir / "events.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def _under_way(run_dir: Path) -> dict[str, Any] | None:
    """The workers_ready event, once the load is under way."""
    events = _events(run_dir)
    ready = next((e for e in events if e["event"] == "workers_ready"), None)
    started = next((i for i, e in enumerate(events) if e["event"] == "load_started"), None)
    if ready is None or started is None:
        return None
    # Two heartbeats with requests: every worker has sent windows by then (one a second).
    seen = sum(1 for e in events[started:]
               if e["event"] == "heartbeat" and " rps=0 " not in e["line"])
    return ready if seen >= 2 else None


@pytest.mark.slow(12)
@pytest.mark.parametrize("policy", ["continue", "fail"])
def test_a_killed_worker_process_is_lost(tmp_path: Path, nginx_url: str, policy: str) -> None:
    plan = write_plan(tmp_path, {
        "name": "loss", "duration": "5s", "grace": "1s", "on_worker_loss": policy,
        "observe": {"heartbeat": "1s"},
        "workloads": {"w": {"http": {"base": nginx_url, "rate": "60/s",
                                     "requests": [{"name": "root", "path": "/"}]}}},
        "rules": ["errors == 0"]})
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "enduro", "run", str(plan), "--workers", "2",
                             "--no-live", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        run_dir = wait_for(lambda: next(iter(out.iterdir()), None) if out.exists() else None,
                           30, "the run directory")
        ready = wait_for(lambda: _under_way(run_dir), 30, "the load under way")
        os.kill(ready["workers"][1]["pid"], signal.SIGKILL)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    results = Results.read(run_dir / "results.json")
    lost = next(e for e in _events(run_dir) if e["event"] == "worker_lost")
    assert lost["index"] == 1 and "exit code -9" in lost["reason"]
    assert results.workers[1].lost is not None and results.workers[1].requests > 0
    assert results.workers[0].lost is None
    named = next(r for r in results.rules if r.rule == "no load worker is lost")
    if policy == "continue":
        assert proc.returncode == 0 and results.complete and named.passed, output
    else:
        assert proc.returncode == 3 and not named.passed, output
        assert results.stop_reason is not None and "load worker 1" in results.stop_reason


@pytest.mark.slow(10)
def test_busy_workers_hand_over_every_window(tmp_path: Path, nginx_url: str) -> None:
    """Closed-model workers as fast as nginx answers: their windows are large and come
    quickly, and none is cut half-way through the pipe (a worker taken for lost)."""
    plan = write_plan(tmp_path, {
        "name": "busy", "duration": "3s", "grace": "1s",
        "workloads": {"w": {"http": {"base": nginx_url, "connections": 32,
                                     "requests": [{"name": "root", "path": "/"}]}}}})
    proc = subprocess.run([sys.executable, "-m", "enduro", "run", str(plan), "--workers", "2",
                           "--no-live", "--out", str(tmp_path / "runs")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = list((tmp_path / "runs").iterdir())
    results = Results.read(run_dir / "results.json")
    assert results.total is not None and results.total.requests > 1000
    assert all(w.lost is None and w.saturation is not None for w in results.workers)
    assert sum(w.requests for w in results.workers) == results.total.requests
