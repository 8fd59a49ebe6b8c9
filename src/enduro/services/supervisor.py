"""The services of a run: prepared and started in dependency order, watched, restarted by
policy with their crashes captured, and stopped in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from enduro.base.clock import Clock
from enduro.base.errors import PlanError, RunError
from enduro.plan.models import Plan, Service
from enduro.services.crashes import Crashes
from enduro.services.drivers import ToolDriver
from enduro.services.entry import ServiceEntry, ServiceStatus
from enduro.services.launch import Launcher
from enduro.services.monitor import EventSink, Monitor
from enduro.services.output import OutputLog
from enduro.services.process import ManagedProcess, describe_exit
from enduro.services.stage import build, stage
from enduro.services.usage import is_stopped, rss_mb
from enduro.services.watchers import Watchers

__all__ = ["ServiceSet", "ServiceStatus", "start_order"]


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


class ServiceSet:
    """Every service of a plan, for one run. Its parts: ``Monitor`` (monitor.log and
    events), ``Launcher`` (launch, readiness, tokens), ``Crashes`` (crash logs and the
    restart policy) and ``Watchers`` (the watch loops)."""

    def __init__(self, plan: Plan, plan_dir: Path, run_dir: Path, run_id: str, *,
                 tag: str | None, clock: Clock, event: EventSink,
                 log: Callable[[str], None]) -> None:
        self.plan = plan
        self.plan_dir = plan_dir
        self.run_dir = run_dir
        self.run_id = run_id
        self.tag = tag
        self.clock = clock
        self.order = start_order(plan.services)
        self.entries: dict[str, ServiceEntry] = {}
        for name in self.order:
            service = plan.services[name]
            d = run_dir / "services" / name
            self.entries[name] = ServiceEntry(
                name, service, d, ServiceStatus(name, service.kind, url=service.url))
        self.stopping = False
        self._monitor = Monitor(clock, event)
        self._launcher = Launcher(self._monitor)
        self.tokens: dict[str, str] = self._launcher.tokens
        self._watchers = Watchers(clock, self._monitor, self._launcher,
                                  Crashes(run_dir, clock, self._monitor, log),
                                  lambda: self.stopping)

    @property
    def on_token(self) -> Callable[[str, str], None] | None:
        """Called when a restarted service wrote a token other than the one in use."""
        return self._launcher.on_token

    @on_token.setter
    def on_token(self, call: Callable[[str, str], None] | None) -> None:
        self._launcher.on_token = call

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

    async def _start(self, entry: ServiceEntry) -> None:
        service = entry.service
        kind = service.kind
        entry.status.state = "starting"
        if kind == "process":
            if service.build is not None:
                entry.status.state = "building"
                self._monitor.note(entry, "build", f"running {service.build!r}")
                await build(entry.name, service, self.plan_dir, entry.dir / "build.log")
            stage(entry.name, service, self.plan_dir, entry.dir, self.variables(entry.name))
            entry.output = OutputLog(entry.dir / "output.log", service.log_max,
                                     service.crash_lines)
            entry.process = ManagedProcess(entry.name, service, entry.dir,
                                           self.variables(entry.name), entry.output)
            await self._launcher.launch(entry)
            entry.watcher = asyncio.get_running_loop().create_task(self._watchers.process(entry))
        elif kind in ("compose", "systemd"):
            entry.driver = ToolDriver(entry.name, service, self.plan_dir)
            await entry.driver.check()
            self._monitor.note(entry, "start", f"starting through {kind}")
            await entry.driver.act("start")
            await self._launcher.ready(entry)
            entry.watcher = asyncio.get_running_loop().create_task(self._watchers.tool(entry))
        else:
            await self._launcher.ready(entry)
        entry.status.state = "up"
        entry.status.up_since = self.clock.wall()

    # -- faults --------------------------------------------------------------------------
    def _managed(self, name: str) -> ServiceEntry:
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
        self._monitor.note(entry, "fault", f"{note}: {signal.Signals(sig).name} to pid "
                           f"{entry.status.pid}")
        return ident.to_json() if ident is not None else None

    async def fault_restart(self, name: str) -> float:
        """Stop and start a service, and wait until it is ready; return the seconds taken."""
        started = self.clock.now()
        entry = self.entries[name]
        if entry.driver is not None:
            entry.intentional = True  # the tool watcher judges from after the restart
            try:
                self._monitor.note(entry, "fault", "restart fault")
                await entry.driver.act("restart")
                await self._launcher.ready(entry)
            finally:
                entry.intentional = False
            return self.clock.now() - started
        entry = self._managed(name)
        assert entry.process is not None
        entry.intentional = True
        try:
            self._monitor.note(entry, "fault", "restart fault: stopping")
            entry.status.state = "restarting"
            await entry.process.stop()
            await self._launcher.launch(entry)
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
                    self._monitor.note(entry, "stop", f"stopped ({describe_exit(code)})")
                elif entry.driver is not None and entry.status.state == "up":
                    await entry.driver.act("stop")
                    self._monitor.note(entry, "stop", "stopped")
            except RunError as exc:
                self._monitor.note(entry, "stop_failed", str(exc))
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
            data["rss_mb"] = rss_mb(entry.process)
            if data["state"] == "up" and is_stopped(entry.process):
                data["state"] = "paused"
            out[name] = data
        return out

    def all_pids(self) -> list[int]:
        return [e.status.pid for e in self.entries.values() if e.status.pid]
