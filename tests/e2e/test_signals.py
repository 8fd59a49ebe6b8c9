"""Every run ends: SIGINT, SIGTERM and a double signal in each state of the real ``enduro run``
(build, readiness wait, load, an active fault, the final phase), and the watchdog that ends a
run whose event loop is blocked. Each case asserts the exit code, results written with the
verdict ``incomplete``, state.json not left at ``running``, the fault undone and no process
left behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import HELPERS
from tests.helpers.plans import write_plan
from tests.helpers.procs import free_port, wait_for

CHATTY = [sys.executable, str(HELPERS / "chatty_service.py")]
STATES = ("build", "ready", "load", "fault", "final")

BLOCKER = '''
import time
from pathlib import Path


async def op(ctx):
    Path(ctx.params["marker"]).touch()
    time.sleep(3600)  # blocks the event loop: only the watchdog can end this run
'''


@dataclass
class Case:
    """One ``enduro run`` in a subprocess, and the files that tell what it did."""

    name: str
    dir: Path
    proc: subprocess.Popen[str]

    @property
    def runs(self) -> Path:
        return self.dir / "runs"

    @property
    def applied(self) -> Path:
        return self.dir / "fault-applied"

    @property
    def undone(self) -> Path:
        return self.dir / "fault-undone"

    def run_dir(self) -> Path | None:
        found = [p for p in self.runs.iterdir() if p.is_dir()] if self.runs.exists() else []
        return found[0] if len(found) == 1 else None

    def events(self) -> list[dict[str, Any]]:
        run_dir = self.run_dir()
        if run_dir is None or not (run_dir / "events.jsonl").exists():
            return []
        out = []
        for line in (run_dir / "events.jsonl").read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line being written
        return out

    def has_event(self, kind: str) -> bool:
        return any(e.get("event") == kind for e in self.events())

    def state(self) -> str:
        run_dir = self.run_dir()
        try:
            return str(json.loads((run_dir / "state.json").read_text())["state"]) \
                if run_dir is not None else ""
        except (OSError, ValueError, KeyError):
            return ""


def _fault(at: str) -> dict[str, Any]:
    return {"at": at, "for": "100s",
            "command": {"run": "touch fault-applied", "undo": "touch fault-undone"}}


def _plan(state: str, directory: Path, *, stubborn: bool = False) -> dict[str, Any]:
    """A small plan whose run sits in ``state`` for a minute. A ``stubborn`` service ignores
    SIGTERM, so that only a forced stop (SIGKILL) ends it before its 60 s stop grace."""
    port = free_port()
    command: list[str] | str = [*CHATTY, "--port", str(port)]
    if stubborn:
        command = f"trap '' TERM; exec {' '.join(command)}"
    service: dict[str, Any] = {"command": command,
                               "ready": {"http": f"http://127.0.0.1:{port}/health",
                                         "timeout": "30s"},
                               "stop": {"grace": "60s" if stubborn else "5s"}}
    plan: dict[str, Any] = {
        "name": f"sig-{state}", "duration": "60s", "seed": 1, "grace": "1s",
        "services": {"api": service},
        "workloads": {"w": {"http": {"base": f"http://127.0.0.1:{port}", "rate": "20/s",
                                     "requests": [{"name": "health", "path": "/health"}]}}},
        "faults": [_fault("50s")],
        "rules": ["availability >= 99%"]}
    if state == "build":
        service["build"] = f"echo $$ > {directory / 'build.pid'}; exec sleep 60"
    elif state == "ready":
        service["ready"] = {"tcp": f"127.0.0.1:{free_port()}", "timeout": "60s"}
    elif state == "fault":
        plan["faults"] = [_fault("0s")]
    elif state == "final":
        plan["duration"] = "1.5s"
        plan["faults"] = [_fault("0s")]
        plan["final"] = {"quiesce": "60s"}
    return plan


def _start(state: str, directory: Path, plan: dict[str, Any] | None = None, *,
           stubborn: bool = False) -> Case:
    path = write_plan(directory, plan or _plan(state, directory, stubborn=stubborn))
    proc = subprocess.Popen([sys.executable, "-m", "enduro", "run", str(path), "--out",
                             str(directory / "runs"), "--no-live"], cwd=directory,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ})
    return Case(state, directory, proc)


def _in_state(case: Case) -> bool:
    """Whether the run has reached the state its case is about."""
    if case.proc.poll() is not None:
        raise AssertionError(f"{case.name}: enduro ended early: {case.proc.communicate()[0]}")
    if case.name == "build":
        return (case.dir / "build.pid").exists()
    if case.name == "ready":
        return case.has_event("service_start")
    if case.name == "load":
        return case.state() == "running" and case.has_event("load_started")
    if case.name == "fault":
        return case.applied.exists() and case.has_event("fault_start")
    if case.name == "final":
        return case.has_event("final_phase")
    raise AssertionError(case.name)


def _signal(case: Case, how: str) -> None:
    if how == "double":
        case.proc.send_signal(signal.SIGINT)
        wait_for(lambda: case.has_event("stop_requested"), 10, f"{case.name}: the first signal")
        case.proc.send_signal(signal.SIGINT)
    else:
        case.proc.send_signal(getattr(signal, how))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _service_pids(case: Case) -> list[int]:
    return [int(e["pid"]) for e in case.events()
            if e.get("event") == "service_start" and e.get("pid")]


def _kill_left(case: Case) -> None:
    """Clean up after a failed assertion: only what this case started."""
    if case.proc.poll() is None:
        case.proc.kill()
        case.proc.wait()
    pids = _service_pids(case)
    if (case.dir / "build.pid").exists():
        pids.append(int((case.dir / "build.pid").read_text()))
    for pid in pids:
        if not _gone(pid):
            os.killpg(pid, signal.SIGKILL)


def _check_ended(case: Case, *, code: int, verdict: str, state: str) -> dict[str, Any]:
    output = case.proc.stdout.read() if case.proc.stdout is not None else ""
    assert case.proc.returncode == code, f"{case.name}: exit {case.proc.returncode}\n{output}"
    run_dir = case.run_dir()
    assert run_dir is not None
    results: dict[str, Any] = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == verdict and results["state"] == state, case.name
    assert results["schema"] == 3 and results["complete"] is False
    assert (run_dir / "junit.xml").exists()
    assert json.loads((run_dir / "state.json").read_text())["state"] == state
    if case.applied.exists():
        assert case.undone.exists(), f"{case.name}: the fault was not undone: {case.events()}"
    pids = _service_pids(case)
    if case.name != "build":
        assert pids, f"{case.name}: no service was started"
    if (case.dir / "build.pid").exists():
        pids.append(int((case.dir / "build.pid").read_text()))
    left = [pid for pid in pids if not _gone(pid)]
    assert not left, f"{case.name}: processes left behind: {left}"
    return results


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "double"])
@pytest.mark.slow(5)
def test_a_signal_in_every_state_ends_the_run_incomplete(tmp_path: Path, how: str) -> None:
    # The states run side by side, each in its own enduro process.
    cases = [_start(state, tmp_path / state, stubborn=how == "double") for state in STATES]
    try:
        for case in cases:
            wait_for(lambda c=case: _in_state(c), 45, f"{case.name}: its state")
            began = time.monotonic()
            _signal(case, how)
            case.proc.wait(30)
            # Graceful: up to the grace (1 s) plus the service's stop; forced: at once.
            assert time.monotonic() - began < 20, f"{case.name}: took too long to stop"
        for case in cases:
            results = _check_ended(case, code=130, verdict="incomplete", state="stopped")
            assert results["stop_reason"].startswith("interrupted by SIG"), case.name
            if how == "double" and case.name != "build":  # a build is killed at once
                # The service ignores SIGTERM: without the second signal's SIGKILL the run
                # would wait out its 60 s stop grace.
                assert case.has_event("stop_forced") and case.has_event("services_killed"), \
                    case.name
            if case.name in ("fault", "final"):
                assert case.applied.exists(), case.name
            if case.name in ("build", "ready"):
                assert results["total"]["requests"] == 0
    finally:
        for case in cases:
            _kill_left(case)


def _blocked_plan(directory: Path, duration: str, *, stubborn: bool = False) -> dict[str, Any]:
    """A run whose python op blocks the event loop; a ``stubborn`` service ignores SIGTERM."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "blocker.py").write_text(BLOCKER)
    port = free_port()
    command: list[str] | str = [*CHATTY, "--port", str(port)]
    if stubborn:
        command = f"trap '' TERM; exec {' '.join(command)}"
    return {
        "name": "blocked", "duration": duration, "seed": 1, "grace": "1s",
        "services": {"api": {"command": command,
                             "ready": {"http": f"http://127.0.0.1:{port}/health",
                                       "timeout": "30s"}}},
        "workloads": {"w": {"python": {"function": "blocker:op", "rate": "1/s",
                                       "params": {"marker": str(directory / "blocked")}}}},
        "faults": [_fault("0s")]}


# What the watchdog's end may take once it decided (README, "Runs"): each fault's undo (at most
# 10 s; here a `touch`), the processes' stop (5 s, then SIGKILL and 2 s; none after a second
# signal) and the results (10 s, then written bare).
WATCHDOG_END_S = 10 + 7 + 10


def _watchdog_end(case: Case) -> dict[str, Any]:
    ends = [e for e in case.events() if e.get("event") == "watchdog_end"]
    assert len(ends) == 1, case.events()
    return ends[0]


@pytest.mark.slow(11)
def test_the_watchdog_ends_a_run_whose_event_loop_is_blocked(tmp_path: Path) -> None:
    case = _start("watchdog", tmp_path, _blocked_plan(tmp_path, "1s"))
    try:
        wait_for(lambda: (tmp_path / "blocked").exists(), 45, "the op to block the loop")
        began = time.monotonic()
        # The load's bound: duration 1 s + grace 1 s + 5 s; then 3 s for the loop to answer.
        case.proc.wait(1 + 1 + 5 + 3 + WATCHDOG_END_S + 10)
        assert time.monotonic() - began < 1 + 1 + 5 + 3 + WATCHDOG_END_S
        assert "overran its deadline" in _watchdog_end(case)["why"]
        results = _check_ended(case, code=3, verdict="incomplete", state="failed")
        assert "the watchdog ended the run" in results["stop_reason"]
        assert "blocked" in results["stop_reason"]
        assert case.applied.exists()
    finally:
        _kill_left(case)


def _signal_until_ended(case: Case, sig: signal.Signals, timeout: float) -> None:
    """Send ``sig`` again and again until the run ends: two signals sent at once reach the
    Python handler as one (CPython keeps one pending flag per signal), so a second signal must
    come after the handler took the first, which nothing outside the process can see."""
    deadline = time.monotonic() + timeout
    while case.proc.poll() is None and time.monotonic() < deadline:
        case.proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            case.proc.wait(0.25)


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "double"])
@pytest.mark.slow(4)
def test_a_signal_ends_a_run_whose_event_loop_is_blocked(tmp_path: Path, how: str) -> None:
    sig = signal.SIGINT if how == "SIGINT" else signal.SIGTERM
    # A service that ignores SIGTERM: after a second signal it gets SIGKILL at once.
    case = _start("blocked", tmp_path,
                  _blocked_plan(tmp_path, "60s", stubborn=how == "double"))
    try:
        wait_for(lambda: (tmp_path / "blocked").exists() and case.applied.exists(), 45,
                 "the op to block the loop")
        began = time.monotonic()
        # The loop never answers: 3 s for one signal, at once for a second; then the end.
        if how == "double":
            _signal_until_ended(case, sig, 3 + WATCHDOG_END_S + 10)
        else:
            case.proc.send_signal(sig)
        case.proc.wait(3 + WATCHDOG_END_S + 10)
        assert time.monotonic() - began < 3 + WATCHDOG_END_S
        results = _check_ended(case, code=130, verdict="incomplete", state="stopped")
        assert results["stop_reason"].startswith(f"interrupted by {sig.name}")
        why = _watchdog_end(case)["why"]
        ended = [e for e in case.events() if e.get("event") == "processes_ended"]
        assert len(ended) == 1 and _service_pids(case)[0] in ended[0]["pids"]
        if how == "double":
            assert why.startswith("a second signal") and ended[0]["grace_s"] == 0, why
        else:
            assert "did not answer within 3s" in why and ended[0]["grace_s"] == 5, why
    finally:
        _kill_left(case)


@pytest.mark.slow(6)
def test_ctrl_c_to_the_process_group_with_workers_keeps_every_window(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches every process of its group: the load workers must leave
    the stop to the runner, and still hand over their last windows."""
    plan = _plan("load", tmp_path)
    path = write_plan(tmp_path, plan)
    proc = subprocess.Popen([sys.executable, "-m", "enduro", "run", str(path), "--out",
                             str(tmp_path / "runs"), "--no-live", "--workers", "2"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    case = Case("load", tmp_path, proc)
    try:
        wait_for(lambda: case.state() == "running" and case.has_event("load_started"), 60,
                 "the workers to start")
        wait_for(lambda: case.has_event("heartbeat") or _live_requests(case) > 20, 30,
                 "some load")
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)
        results = _check_ended(case, code=130, verdict="incomplete", state="stopped")
        assert not case.has_event("worker_lost"), "a worker died of the Ctrl-C"
        assert results["total"]["requests"] > 20 and results["worker_count"] == 2
    finally:
        _kill_left(case)


def _live_requests(case: Case) -> int:
    run_dir = case.run_dir()
    try:
        live = json.loads((run_dir / "state.json").read_text())["live"] if run_dir else {}
        return int(live.get("requests_total", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return 0
