"""start, status, stop and runs: controlling runs that keep going after the terminal closes."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from enduro.base.errors import EnduroError, RunError
from enduro.base.units import format_duration
from enduro.detach.liveness import runner_alive, runner_state
from enduro.detach.locate import list_runs, read_json
from enduro.documents.document import DocumentError
from enduro.documents.results import Results
from enduro.documents.service import ServiceRecord
from enduro.documents.state import LIVE_STATES, State, read_state
from enduro.faults.journal import Recovery, recover
from enduro.run.rundir import RunDir, write_json_atomic
from enduro.services.identity import ProcessIdentity, kill_group, processes_inside
from enduro.services.ports import port_holder

__all__ = ["Started", "Stopped", "recover_run", "run_status", "runs_table", "start_detached",
           "stop_run"]

# Service states in which its process should be running.
_RUNNING_SERVICE = ("up", "starting", "restarting", "building", "paused")


@dataclass(frozen=True)
class Started:
    run_id: str
    run_dir: Path
    pid: int


def start_detached(plan: Path, *, out: Path, plan_name: str, profile: str | None,
                   sets: list[str], duration: float | None, tag: str | None,
                   workers: int, seed: int | None, timeout: float = 60.0,
                   metrics_port: int | None = None, only: Sequence[str] = (),
                   cluster: str | None = None) -> Started:
    """Start ``enduro run`` in a new session, detached from the terminal; return once it has
    written its state, or raise with what it said if it ended first."""
    run_dir = out / RunDir.name_for(plan_name, tag, time.time())
    n = 1
    base = run_dir
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    RunDir.adopt(run_dir)
    args = [sys.executable, "-m", "enduro", "run", str(plan.resolve()), "--run-dir",
            str(run_dir.resolve()), "--no-live", "--workers", str(workers)]
    if profile:
        args += ["--profile", profile]
    for item in sets:
        args += ["--set", item]
    for name in only:
        args += ["--only", name]
    # Each option given passes on as it is.
    for flag, value in (("--duration", None if duration is None else f"{duration}s"),
                        ("--tag", tag or None),
                        ("--seed", None if seed is None else str(seed)),
                        ("--metrics-port", None if metrics_port is None else str(metrics_port)),
                        ("--cluster", cluster)):
        if value is not None:
            args += [flag, value]
    log = (run_dir / "logs" / "runner.out").open("ab")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, cwd=Path.cwd())
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(run_dir / "state.json")
        if state is not None and state.pid == proc.pid:
            return Started(run_dir.name, run_dir, proc.pid)
        if proc.poll() is not None:
            said = (run_dir / "logs" / "runner.out").read_text(errors="replace").strip()
            raise RunError(f"the run ended at once (exit {proc.returncode}): {said[-2000:]}")
        time.sleep(0.05)
    raise RunError(f"the detached run did not report within {timeout:g}s; see "
                   f"{run_dir / 'logs' / 'runner.out'}")


def _stamp(wall: float | None) -> str | None:
    if wall is None:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))
    except (OverflowError, ValueError, OSError):  # a corrupt state.json: 1e308, nan
        return None


def _seconds(value: float | None) -> float:
    """A figure of state.json as seconds; 0 for what is not a finite number."""
    return float(value) if value is not None and math.isfinite(value) else 0.0


def _observed_service(run_dir: Path, name: str, svc: ServiceRecord) -> dict[str, Any]:
    """A service as state.json recorded it, corrected by what its process is now: a
    SIGSTOPped process is ``paused``, not ``up``; one that is gone is ``gone``. The runner
    may be dead (state.json then is as old as its last heartbeat), so this looks for itself."""
    out = svc.to_json()
    pid, recorded = svc.pid, svc.state
    if pid is None or recorded not in _RUNNING_SERVICE:
        return out
    ident_data = read_json(run_dir / "services" / name / "pid.json")
    try:
        if ident_data is not None and ident_data.get("pid") == pid and \
                not ProcessIdentity.from_json(ident_data).alive():
            raise psutil.NoSuchProcess(pid)  # the pid now names another process
        status = psutil.Process(pid).status()
    except (psutil.Error, KeyError, ValueError, TypeError):
        out.update(state="gone", process_state="not running", recorded_state=recorded)
        return out
    out["process_state"] = status
    if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
        out.update(state="paused", process_state=f"{status} (T)", recorded_state=recorded)
    elif status == psutil.STATUS_ZOMBIE:
        out.update(state="exited", recorded_state=recorded)
    elif recorded == "paused":
        out.update(state="up", recorded_state=recorded)
    return out


def run_status(run_dir: Path) -> dict[str, Any]:
    """Everything ``enduro status`` shows, as data. Service and runner states are checked
    against the processes themselves, not only read from state.json."""
    read = read_state(run_dir / "state.json")
    state = read if read is not None else State()
    runner = runner_state(state)
    results, results_problem = _results(run_dir)
    word: str = state.state or "unknown"
    note = None
    if read is None:
        note = ("state.json cannot be read (not a JSON object enduro wrote); 'enduro report' "
                "rebuilds the results from the store")
    elif results_problem is not None:
        note = results_problem
    beat = _stamp(state.updated_at)
    if word in LIVE_STATES and not runner.alive:
        heard = (f"last heartbeat at {beat} ({runner.heartbeat_age_s}s ago)" if beat
                 else "no heartbeat recorded")
        note = (f"the runner (pid {runner.pid or 'unknown'}) is not running; {heard}. "
                "'enduro stop' undoes its faults and stops "
                "what it left; 'enduro report' rebuilds its results")
        word = "dead"
    elapsed = _seconds(state.elapsed_s)
    duration = _seconds(state.duration_s)
    return {
        "run_id": run_dir.name, "run_dir": str(run_dir),
        "plan": state.plan,
        "state": word, "recorded_state": state.state,
        "runner": {"pid": runner.pid, "alive": runner.alive,
                   "heartbeat_age_s": runner.heartbeat_age_s, "last_heartbeat": beat},
        "elapsed_s": elapsed, "remaining_s": max(0.0, duration - elapsed),
        "duration_s": duration, "live": state.live.to_json() if state.live else {},
        "services": {name: _observed_service(run_dir, name, svc)
                     for name, svc in (state.services or {}).items()},
        "verdict": results.verdict if results else None,
        # `enduro supervise`: services only, nothing judged (its verdict is never a pass).
        "mode": "supervise" if state.services_only is True else "run",
        "stop_reason": state.stop_reason, "note": note,
    }


def _results(run_dir: Path) -> tuple[Results | None, str | None]:
    """The run's results, or None and, when a results.json is there but cannot be read,
    why (a run still going has none yet: nothing to say)."""
    path = run_dir / "results.json"
    try:
        return Results.read(path), None
    except DocumentError as exc:
        if not path.exists():
            return None, None
        return None, (f"{exc}; 'enduro report' rebuilds it from the store if the runner "
                      "died")


def format_status(s: dict[str, Any]) -> str:
    supervise = s.get("mode") == "supervise"
    lines = [f"run {s['run_id']}  plan {s['plan']}  state {s['state']}"
             + ("  supervise (services only, nothing judged)" if supervise else "")
             + (f"  verdict {s['verdict']}" if s["verdict"] else "")]
    age = s["runner"]["heartbeat_age_s"]
    # Unbounded supervision is recorded as a duration of years: say what it means.
    left = ("until stopped" if supervise and s["remaining_s"] > 365 * 86400
            else format_duration(s["remaining_s"]))
    lines.append(f"  elapsed {format_duration(s['elapsed_s'])}  remaining "
                 f"{left}  heartbeat "
                 f"{'unknown' if age is None else f'{age}s ago'}  runner pid "
                 f"{s['runner']['pid'] or 'unknown'} "
                 f"({'alive' if s['runner']['alive'] else 'not running'})")
    live = s["live"]
    if live:
        lines.append(f"  rps {_seconds(live.get('rps')):,.1f}  errors (10s) "
                     f"{live.get('errors') or 0}  p95 {live.get('p95_ms') or 0}ms  requests "
                     f"{_seconds(live.get('requests_total')):,.0f}")
    for name, svc in s["services"].items():
        rss = f"  rss {svc['rss_mb']}MB" if svc.get("rss_mb") is not None else ""
        crash = f"  last crash {svc['last_crash']}" if svc.get("last_crash") else ""
        proc = (f" (process {svc['process_state']})"
                if svc.get("recorded_state") and svc.get("process_state") else "")
        # A service enduro did not start (a URL, or one its tool runs) may have no pid.
        pid = f"  pid {svc['pid']}" if svc.get("pid") else f"  ({svc.get('kind') or 'external'})"
        lines.append(f"  service {name}: {svc.get('state')}{proc}{pid}  "
                     f"restarts {svc.get('restarts', 0)}{rss}{crash}")
    if s["stop_reason"]:
        lines.append(f"  reason: {s['stop_reason']}")
    if s["note"]:
        lines.append(f"  note: {s['note']}")
    return "\n".join(lines)


def _plan_ports(run_dir: Path) -> list[int]:
    from enduro.base.errors import PlanError
    from enduro.plan.source import read_source
    try:  # bounded in size, depth and aliases: the file may be anything by now
        plan = read_source(run_dir / "plan.resolved.yaml").data
    except PlanError:
        return []
    services = plan.get("services")
    ports: list[int] = []
    for svc in (services.values() if isinstance(services, dict) else []):
        if isinstance(svc, dict):
            ports += [p for p in svc.get("ports") or [] if isinstance(p, int)]
    return ports


def _end(proc: psutil.Process, grace: float) -> None:
    try:
        proc.terminate()
        proc.resume()  # a paused (SIGSTOPped) process would never act on the SIGTERM
        proc.wait(grace)
    except psutil.TimeoutExpired:
        try:
            proc.kill()
            proc.wait(5)
        except psutil.Error:
            pass
    except psutil.Error:
        pass


@dataclass
class Stopped:
    """What ``stop_run`` did, and the undos that failed (their faults are still in force)."""

    actions: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    state: str | None = None

    def __iter__(self) -> Iterator[str]:  # callers that printed the former list of actions
        return iter(self.actions)

    def __bool__(self) -> bool:
        return bool(self.actions)


def recover_run(run_dir: Path) -> Recovery:
    """Undo the faults a dead runner left in force (``enduro recover``). A live runner
    undoes its own: this refuses to race it."""
    state = read_state(run_dir / "state.json") or State()
    if runner_alive(state):
        raise RunError(f"the runner of {run_dir.name} (pid {state.pid}) is alive and "
                       "undoes its own faults; 'enduro stop' stops it")
    return recover(run_dir)


def _stop_service(ident: ProcessIdentity, name: str) -> str:
    kill_group(ident.pid, signal.SIGTERM)
    kill_group(ident.pid, signal.SIGCONT)  # a paused service must run to act on SIGTERM
    try:
        psutil.Process(ident.pid).wait(10)
    except psutil.TimeoutExpired:
        kill_group(ident.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            psutil.Process(ident.pid).wait(5)
    except psutil.Error:
        pass
    return f"stopped service process {ident.pid} ({name})"


def _stop_runner(state: State, pid: int, grace: float, actions: list[str]) -> bool:
    """SIGTERM the runner and wait up to ``grace``; SIGKILL it if it is still alive.
    True if it had to be killed."""
    os.kill(pid, signal.SIGTERM)
    actions.append(f"sent SIGTERM to the runner (pid {pid})")
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and runner_alive(state):
        time.sleep(0.1)
    if not runner_alive(state):
        return False
    os.kill(pid, signal.SIGKILL)
    actions.append(f"the runner did not stop within {grace:g}s: SIGKILL")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and runner_alive(state):
        time.sleep(0.05)
    return True


def _stop_recorded_services(run_dir: Path, actions: list[str]) -> None:
    """Service processes whose runner died: their pid files name them."""
    for pid_file in sorted(run_dir.glob("services/*/pid.json")):
        data = read_json(pid_file)
        if data is not None:
            try:
                ident = ProcessIdentity.from_json(data)
            except (KeyError, ValueError, TypeError):
                ident = None
            if ident is not None and ident.alive():
                actions.append(_stop_service(ident, pid_file.parent.name))
        pid_file.unlink(missing_ok=True)


def _stop_port_holders(run_dir: Path, actions: list[str]) -> None:
    """Processes still holding the plan's ports, if they belong to this run."""
    for port in _plan_ports(run_dir):
        for proc in processes_inside(run_dir):
            try:
                if any(c.laddr and c.laddr.port == port for c in proc.net_connections()):
                    _end(proc, 5)
                    actions.append(f"stopped pid {proc.pid}, which held port {port}")
            except psutil.Error:
                continue
        if (holder := port_holder(port)) is not None:
            actions.append(f"port {port} is still held by {holder}, which is not part of "
                           "this run; left alone")


def _stop_inside(run_dir: Path, actions: list[str]) -> None:
    """Whatever else still runs inside the run directory."""
    for proc in processes_inside(run_dir):
        try:
            desc = " ".join(proc.cmdline())[:80]
        except psutil.Error:
            desc = ""
        _end(proc, 5)
        actions.append(f"stopped pid {proc.pid} ({desc}), which ran inside the run directory")


def _mark_dead(run_dir: Path, died: bool, actions: list[str]) -> str | None:
    """Mark a run whose runner is gone ``dead`` (unless it ended on its own); its state."""
    state = read_state(run_dir / "state.json") or State()
    if state.state in LIVE_STATES or (died and state.state != "dead"):
        beat = _stamp(state.updated_at)
        heard = f"last heartbeat at {beat}" if beat else "no heartbeat recorded"
        state.state = "dead"
        state.stop_reason = state.stop_reason or (
            f"the runner died ({heard}); 'enduro stop' undid its faults "
            "and stopped what it left")
        state.stopped_at = time.time()
        write_json_atomic(run_dir / "state.json", state.to_json())
        actions.append(f"marked the run dead ({heard})")
    return state.state


def _rebuild_results(run_dir: Path, actions: list[str]) -> None:
    """A dead run's results.json, junit.xml and report.html, from its store."""
    from enduro.detach.rebuild import report_run  # the report page and the engine: only here
    try:
        done = report_run(run_dir)
        actions.append(f"rebuilt results.json, junit.xml and report.html from the store "
                       f"(verdict {done.document.verdict})")
    except (EnduroError, OSError, ValueError) as exc:
        actions.append(f"could not rebuild the results: {exc} (see 'enduro report')")


def stop_run(run_dir: Path, *, grace: float = 30.0) -> Stopped:
    """Stop a run: the runner gracefully, then forcefully. If the runner died (or had to be
    killed), undo every fault its journal still holds, stop the service processes it
    recorded and whatever else belongs to the run (the plan's ports, processes inside the
    run directory), mark the run ``dead`` and rebuild its results from the store."""
    out = Stopped()
    actions = out.actions
    state = read_state(run_dir / "state.json") or State()
    pid = state.pid
    died = state.state in LIVE_STATES and not runner_alive(state)
    if pid is not None and runner_alive(state) and _stop_runner(state, pid, grace, actions):
        died = True
    # Faults a dead runner left in force, before its services stop (a paused service is
    # continued first; a command fault's undo may need the service). A runner that stopped
    # gracefully undid its own: whatever is still pending failed there, and is tried again.
    recovery = recover(run_dir)
    actions.extend(recovery.undone)
    out.failed.extend(recovery.failed)
    _stop_recorded_services(run_dir, actions)
    _stop_port_holders(run_dir, actions)
    _stop_inside(run_dir, actions)
    out.state = _mark_dead(run_dir, died, actions)
    if out.state == "dead" and _results(run_dir)[0] is None:
        _rebuild_results(run_dir, actions)
    for line in out.failed:
        actions.append(line)
    return out


def runs_table(runs_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for run_dir in list_runs(runs_dir):
        s = run_status(run_dir)
        rows.append({"run_id": s["run_id"], "plan": s["plan"], "state": s["state"],
                     "verdict": s["verdict"], "mode": s["mode"], "elapsed_s": s["elapsed_s"]})
    return rows


