"""The services of a run: prepared and started in dependency order, watched, restarted by
policy with their crashes captured, and stopped in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from enduro.base.clock import Clock
from enduro.base.errors import PlanError, RunError
from enduro.plan.models import Plan, Service
from enduro.services.drivers import ToolDriver, ToolState
from enduro.services.output import OutputLog
from enduro.services.ports import check_ports
from enduro.services.process import ManagedProcess, describe_exit
from enduro.services.ready import TokenWait, wait_ready
from enduro.services.stage import build, stage

__all__ = ["ServiceSet", "ServiceStatus", "start_order"]

EventSink = Callable[..., None]


def start_order(services: dict[str, Service]) -> list[str]:
    """Names in an order where each service comes after what it depends on."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*trail[trail.index(name):], name])
            raise PlanError(f"services depend on each other in a cycle: {cycle}")
        state[name] = 1
        for dep in services[name].depends_on:
            visit(dep, [*trail, name])
        state[name] = 2
        order.append(name)

    for name in services:
        visit(name, [])
    return order


# How often a compose or systemd service's state is asked of its tool.
TOOL_POLL_S = 1.0


def _restarted_by_tool(before: ToolState, now: ToolState) -> bool:
    """Whether the tool restarted the service between two readings (systemd ``Restart=``)."""
    if before.restarts is not None and now.restarts is not None \
            and now.restarts > before.restarts:
        return True
    return before.pid is not None and now.pid is not None and before.pid != now.pid


@dataclass
class ServiceStatus:
    """What ``status`` and the live table show of one service."""

    name: str
    kind: str
    state: str = "pending"
    pid: int | None = None
    restarts: int = 0
    last_exit: str | None = None
    last_crash: str | None = None
    ready_s: float | None = None
    up_since: float | None = None
    url: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class _Entry:
    name: str
    service: Service
    dir: Path
    status: ServiceStatus
    monitor: Any = None
    output: OutputLog | None = None
    process: ManagedProcess | None = None
    driver: ToolDriver | None = None
    watcher: asyncio.Task[None] | None = None
    crashes: list[float] = field(default_factory=list)
    intentional: bool = False
    relaunched: asyncio.Event = field(default_factory=asyncio.Event)
    fault_note: str | None = None


class ServiceSet:
    """Every service of a plan, for one run."""

    def __init__(self, plan: Plan, plan_dir: Path, run_dir: Path, run_id: str, *,
                 tag: str | None, clock: Clock, event: EventSink,
                 log: Callable[[str], None]) -> None:
        self.plan = plan
        self.plan_dir = plan_dir
        self.run_dir = run_dir
        self.run_id = run_id
        self.tag = tag
        self.clock = clock
        self._event = event
        self._log = log
        self.order = start_order(plan.services)
        self.entries: dict[str, _Entry] = {}
        for name in self.order:
            service = plan.services[name]
            d = run_dir / "services" / name
            self.entries[name] = _Entry(name, service, d,
                                        ServiceStatus(name, service.kind, url=service.url))
        self.tokens: dict[str, str] = {}
        # Called when a restarted service wrote a token other than the one in use.
        self.on_token: Callable[[str, str], None] | None = None
        self.stopping = False
        self._failure: asyncio.Future[str] | None = None

    # -- variables for templates ---------------------------------------------------------
    def variables(self, name: str) -> dict[str, Any]:
        service = self.plan.services[name]
        return {
            **self.plan.vars, "vars": dict(self.plan.vars),
            "run_id": self.run_id, "run_dir": str(self.run_dir), "plan": self.plan.name,
            "tag": self.tag or "", "service": name,
            "service_dir": str(self.run_dir / "services" / name),
            "session": f"{self.run_id}-{name}",
            "port": service.ports[0] if service.ports else None,
            "ports": {n: list(s.ports) for n, s in self.plan.services.items()},
            "python": sys.executable,
        }

    # -- logging -------------------------------------------------------------------------
    def _monitor(self, entry: _Entry, kind: str, text: str, **data: Any) -> None:
        if entry.monitor is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.wall()))
            entry.monitor.write(f"{stamp} {kind}: {text}\n")
            entry.monitor.flush()
        self._event(f"service_{kind}", service=entry.name, message=text, **data)

    # -- start ---------------------------------------------------------------------------
    async def start_all(self) -> None:
        """Build, stage, start and wait for every service, in dependency order. On failure
        everything started so far is stopped before the error propagates."""
        try:
            for name in self.order:
                entry = self.entries[name]
                entry.dir.mkdir(parents=True, exist_ok=True)
                entry.monitor = (entry.dir / "monitor.log").open("a", encoding="utf-8")
                await self._start(entry)
        except BaseException:
            await self.stop_all()
            raise

    async def _start(self, entry: _Entry) -> None:
        service = entry.service
        kind = service.kind
        entry.status.state = "starting"
        if kind == "process":
            if service.build is not None:
                entry.status.state = "building"
                self._monitor(entry, "build", f"running {service.build!r}")
                await build(entry.name, service, self.plan_dir, entry.dir / "build.log")
            stage(entry.name, service, self.plan_dir, entry.dir, self.variables(entry.name))
            entry.output = OutputLog(entry.dir / "output.log", service.log_max,
                                     service.crash_lines)
            entry.process = ManagedProcess(entry.name, service, entry.dir,
                                           self.variables(entry.name), entry.output)
            await self._launch(entry)
            entry.watcher = asyncio.get_running_loop().create_task(self._watch(entry))
        elif kind in ("compose", "systemd"):
            entry.driver = ToolDriver(entry.name, service, self.plan_dir)
            await entry.driver.check()
            self._monitor(entry, "start", f"starting through {kind}")
            await entry.driver.act("start")
            await self._ready(entry)
            entry.watcher = asyncio.get_running_loop().create_task(self._watch_tool(entry))
        else:
            await self._ready(entry)
        entry.status.state = "up"
        entry.status.up_since = self.clock.wall()

    async def _launch(self, entry: _Entry) -> None:
        assert entry.process is not None
        check_ports(entry.name, entry.service.ports)
        wait = None
        if entry.service.token_file is not None:
            # Noted before the process starts: after a restart the previous incarnation's
            # file is still there, and its token would be rejected by the new process.
            ready = entry.service.ready
            wait = TokenWait.before_launch(entry.dir / entry.service.token_file,
                                           fresh=ready is None or ready.fresh_token)
        identity = await entry.process.start()
        entry.status.pid = identity.pid
        self._monitor(entry, "start", f"started pid {identity.pid}", pid=identity.pid)
        await self._ready(entry, wait)
        if wait is not None:
            token = wait.token
            assert token is not None  # wait_ready returns once it was read
            previous = self.tokens.get(entry.name)
            self.tokens[entry.name] = token
            if previous is not None and previous != token and self.on_token is not None:
                self._monitor(entry, "token", "the service wrote a new token")
                self.on_token(entry.name, token)

    async def _ready(self, entry: _Entry, token: TokenWait | None = None) -> None:
        """Wait for ``entry``'s readiness probe (and its token file written since the launch,
        ``token``); with neither a probe nor a token file it is ready at once."""
        service = entry.service
        ready = service.ready
        if ready is None and service.token_file is not None:
            from enduro.plan.models import Ready
            ready = Ready(file=service.token_file)
        if ready is None:
            return
        proc = entry.process

        def exited() -> str | None:
            if proc is None or proc.returncode is None:
                return None
            return describe_exit(proc.returncode)

        took = await wait_ready(entry.name, ready, service_dir=entry.dir, output=entry.output,
                                exited=exited, log_from=proc.start_line if proc else 0,
                                token=token, tokens=self.tokens)
        entry.status.ready_s = round(took, 3)
        self._monitor(entry, "ready", f"ready after {took:.2f}s", took_s=round(took, 3))

    # -- supervision ---------------------------------------------------------------------
    async def _watch(self, entry: _Entry) -> None:
        proc = entry.process
        assert proc is not None
        while True:
            code = await proc.wait()
            if self.stopping:
                return
            if entry.intentional:
                # A restart fault: the fault runner relaunches; watch the new process.
                await entry.relaunched.wait()
                entry.relaunched.clear()
                continue
            lines = list(entry.output.tail) if entry.output is not None else []
            delay = self._crashed(entry, code, describe_exit(code), lines)
            if delay is None:
                return
            await self.clock.sleep(delay)
            if self.stopping:
                return
            try:
                await self._launch(entry)
            except RunError as exc:
                self._restart_failed(entry, exc)
                # The process (if any) is watched again; a launch that never got ready is
                # stopped so that the next attempt starts clean.
                if proc.returncode is None:
                    await proc.stop()
                continue
            self._restarted(entry)

    def _crashed(self, entry: _Entry, code: int | None, how: str, lines: list[str],
                 restarted_by: str | None = None) -> float | None:
        """Keep a crash (crash log, monitor.log, event) and apply the restart policy: the
        delay before the restart, or None when the service stays down. ``restarted_by``:
        the service's own tool already restarted it (systemd ``Restart=``, compose
        ``restart: always``), so enduro only counts and keeps the crash."""
        up_for = self.clock.wall() - (entry.status.up_since or self.clock.wall())
        entry.status.last_exit = how
        crash = self._write_crash(entry, code, how, lines)
        entry.status.last_crash = crash.name
        note = f" ({entry.fault_note})" if entry.fault_note else ""
        entry.fault_note = None
        where = crash.relative_to(self.run_dir)
        self._monitor(entry, "exit", f"pid {entry.status.pid} {how}{note}; crash log {where}",
                      exit_code=code, crash_log=str(where))
        self._log(f"service {entry.name} {how} (crash log {crash})")
        if restarted_by is not None:
            entry.status.restarts += 1
            entry.status.up_since = self.clock.wall()
            self._monitor(entry, "restart", f"restarted by {restarted_by}")
            return None
        entry.status.state = "down"
        policy = entry.service.restart
        if policy == "never" or (policy == "on-failure" and code == 0):
            self._monitor(entry, "down", f"not restarted (restart: {policy})")
            return None
        if up_for > 60:
            entry.crashes.clear()  # it ran well for a while: start the backoff afresh
        entry.crashes.append(self.clock.wall())
        if len(entry.crashes) > entry.service.restart_limit:
            entry.status.state = "failed"
            self._monitor(entry, "failed", f"gave up after {entry.service.restart_limit} "
                          "restarts in a row")
            return None
        delay: float = min(30.0, 0.5 * 2.0 ** (len(entry.crashes) - 1))
        entry.status.state = "restarting"
        self._monitor(entry, "restart", f"restarting in {delay:g}s "
                      f"(restart {entry.status.restarts + 1})", delay_s=delay)
        return delay

    def _restart_failed(self, entry: _Entry, exc: RunError) -> None:
        entry.status.error = str(exc)
        self._monitor(entry, "restart_failed", str(exc))
        self._log(f"service {entry.name}: restart failed: {exc}")

    def _restarted(self, entry: _Entry) -> None:
        entry.status.restarts += 1
        entry.status.state = "up"
        entry.status.up_since = self.clock.wall()

    async def _watch_tool(self, entry: _Entry) -> None:
        """Poll a compose or systemd service's state through its tool and treat a crash as
        ``_watch`` treats a process's: crash log (its last lines from the tool's logs),
        monitor.log, events, the restart policy and its backoff. A restart the tool made
        itself (a changed MainPID or NRestarts) is kept and counted, not repeated."""
        driver = entry.driver
        assert driver is not None
        kind = entry.service.kind
        baseline = await driver.state()
        while not self.stopping:
            await self.clock.sleep(TOOL_POLL_S)
            if self.stopping:
                return
            if entry.intentional:
                baseline = None  # a restart fault is under way: judge from after it
                continue
            state = await driver.state()
            if state is None or entry.intentional:
                continue  # the tool could not say: not a crash
            if baseline is None:
                baseline = state
                continue
            if state.pid is not None:
                entry.status.pid = state.pid
            if state.running and not _restarted_by_tool(baseline, state):
                baseline = state
                continue
            lines = await driver.logs(entry.service.crash_lines)
            code = state.exit_code if not state.running else None
            how = f"{'crashed and was restarted' if state.running else 'is down'} " \
                  f"({kind}: {state.detail})"
            delay = self._crashed(entry, code, how, lines,
                                  restarted_by=kind if state.running else None)
            baseline = state
            if state.running:
                continue
            if delay is None:
                return
            await self.clock.sleep(delay)
            if self.stopping:
                return
            try:
                self._monitor(entry, "start", f"restarting through {kind}")
                await driver.act("restart")
                await self._ready(entry)
            except RunError as exc:
                self._restart_failed(entry, exc)
                continue
            self._restarted(entry)
            baseline = await driver.state()

    def _write_crash(self, entry: _Entry, code: int | None, how: str,
                     lines: list[str]) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.clock.wall()))
        path = entry.dir / f"crash-{stamp}.log"
        n = 1
        while path.exists():
            n += 1
            path = entry.dir / f"crash-{stamp}-{n}.log"
        header = [f"service: {entry.name}", f"pid: {entry.status.pid}",
                  f"exit: {how}", f"exit_code: {code}",
                  f"time: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(self.clock.wall()))}",
                  f"last {len(lines)} lines of output:", "---"]
        path.write_text("\n".join(header + lines) + "\n")
        return path

    # -- faults --------------------------------------------------------------------------
    def _managed(self, name: str) -> _Entry:
        entry = self.entries[name]
        if entry.process is None or entry.process.proc is None:
            raise RunError(f"service {name} is not a managed process enduro started; "
                           "process faults need one")
        return entry

    def fault_signal(self, name: str, sig: int, note: str) -> dict[str, Any] | None:
        """Signal a service's process group for a fault; return its identity."""
        entry = self.entries[name]
        if entry.driver is not None and sig in (signal.SIGKILL, signal.SIGTERM):
            raise RunError(f"service {name} runs under {entry.service.kind}; use restart")
        entry = self._managed(name)
        assert entry.process is not None
        ident = entry.process.identity
        if entry.process.returncode is not None:
            raise RunError(f"service {name} is not running ({entry.status.state})")
        entry.fault_note = note
        entry.process.signal(sig)
        self._monitor(entry, "fault", f"{note}: {signal.Signals(sig).name} to pid "
                      f"{entry.status.pid}")
        return ident.to_json() if ident is not None else None

    async def fault_restart(self, name: str) -> float:
        """Stop and start a service, and wait until it is ready; return the seconds taken."""
        started = self.clock.now()
        entry = self.entries[name]
        if entry.driver is not None:
            entry.intentional = True  # the tool watcher judges from after the restart
            try:
                self._monitor(entry, "fault", "restart fault")
                await entry.driver.act("restart")
                await self._ready(entry)
            finally:
                entry.intentional = False
            return self.clock.now() - started
        entry = self._managed(name)
        assert entry.process is not None
        entry.intentional = True
        try:
            self._monitor(entry, "fault", "restart fault: stopping")
            entry.status.state = "restarting"
            await entry.process.stop()
            await self._launch(entry)
            entry.status.restarts += 1
            entry.status.state = "up"
            entry.status.up_since = self.clock.wall()
        finally:
            entry.intentional = False
            entry.relaunched.set()
        return self.clock.now() - started

    # -- stop ----------------------------------------------------------------------------
    async def stop_all(self) -> None:
        """Stop every service in reverse dependency order, by its stop policy."""
        self.stopping = True
        for name in reversed(self.order):
            entry = self.entries[name]
            if entry.watcher is not None:
                entry.watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await entry.watcher
            try:
                if entry.process is not None and entry.process.proc is not None:
                    code = await entry.process.stop()
                    self._monitor(entry, "stop", f"stopped ({describe_exit(code)})")
                elif entry.driver is not None and entry.status.state == "up":
                    await entry.driver.act("stop")
                    self._monitor(entry, "stop", "stopped")
            except RunError as exc:
                self._monitor(entry, "stop_failed", str(exc))
            if entry.status.state not in ("failed",):
                entry.status.state = "stopped"
            if entry.output is not None:
                entry.output.close()
            if entry.monitor is not None:
                entry.monitor.close()
                entry.monitor = None

    # -- status --------------------------------------------------------------------------
    def statuses(self) -> dict[str, dict[str, Any]]:
        """Each service's status; an ``up`` process that is SIGSTOPped (a pause fault, a
        debugger) is reported ``paused``, since it answers nothing."""
        out = {}
        for name, entry in self.entries.items():
            data = entry.status.to_json()
            data["rss_mb"] = self._rss(entry)
            if data["state"] == "up" and self._stopped(entry):
                data["state"] = "paused"
            out[name] = data
        return out

    @staticmethod
    def _stopped(entry: _Entry) -> bool:
        proc = entry.process
        if proc is None or proc.proc is None or proc.returncode is not None:
            return False
        try:
            status = psutil.Process(proc.proc.pid).status()
        except psutil.Error:
            return False
        return status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)

    @staticmethod
    def _rss(entry: _Entry) -> float | None:
        proc = entry.process
        if proc is None or proc.proc is None or proc.returncode is not None:
            return None
        try:
            root = psutil.Process(proc.proc.pid)
            total = root.memory_info().rss
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            return round(total / 2**20, 1)
        except psutil.Error:
            return None

    def all_pids(self) -> list[int]:
        return [e.status.pid for e in self.entries.values() if e.status.pid]
