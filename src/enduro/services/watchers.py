"""Watching a running service: a process for its exit, a compose or systemd service through
its tool; a crash is kept and the service restarted by its policy."""

from __future__ import annotations

from collections.abc import Callable

from enduro.base.clock import Clock
from enduro.base.errors import RunError
from enduro.services.crashes import Crashes
from enduro.services.drivers import ToolState
from enduro.services.entry import ServiceEntry
from enduro.services.launch import Launcher
from enduro.services.monitor import Monitor
from enduro.services.process import describe_exit

__all__ = ["TOOL_POLL_S", "Watchers"]

# How often a compose or systemd service's state is asked of its tool.
TOOL_POLL_S = 1.0


def _restarted_by_tool(before: ToolState, now: ToolState) -> bool:
    """Whether the tool restarted the service between two readings (systemd ``Restart=``)."""
    if before.restarts is not None and now.restarts is not None \
            and now.restarts > before.restarts:
        return True
    return before.pid is not None and now.pid is not None and before.pid != now.pid


class Watchers:
    """The watch loops of a run's services; each ends once ``stopping()`` says so."""

    def __init__(self, clock: Clock, monitor: Monitor, launcher: Launcher, crashes: Crashes,
                 stopping: Callable[[], bool]) -> None:
        self.clock = clock
        self.monitor = monitor
        self.launcher = launcher
        self.crashes = crashes
        self.stopping = stopping

    async def process(self, entry: ServiceEntry) -> None:
        """Wait for a process's exit, keep it as a crash and relaunch by the policy."""
        proc = entry.process
        assert proc is not None
        while True:
            code = await proc.wait()
            if self.stopping():
                return
            if entry.intentional:
                # A restart fault: the fault runner relaunches; watch the new process.
                await entry.relaunched.wait()
                entry.relaunched.clear()
                continue
            lines = list(entry.output.tail) if entry.output is not None else []
            delay = self.crashes.crashed(entry, code, describe_exit(code), lines)
            if delay is None:
                return
            await self.clock.sleep(delay)
            if self.stopping():
                return
            try:
                await self.launcher.launch(entry)
            except RunError as exc:
                self.crashes.restart_failed(entry, exc)
                # The process (if any) is watched again; a launch that never got ready is
                # stopped so that the next attempt starts clean.
                if proc.returncode is None:
                    await proc.stop()
                continue
            self.crashes.restarted(entry)

    async def tool(self, entry: ServiceEntry) -> None:
        """Poll a compose or systemd service's state through its tool and treat a crash as
        ``process`` treats a process's: crash log (its last lines from the tool's logs),
        monitor.log, events, the restart policy and its backoff. A restart the tool made
        itself (a changed MainPID or NRestarts) is kept and counted, not repeated."""
        driver = entry.driver
        assert driver is not None
        kind = entry.service.kind
        baseline = await driver.state()
        while not self.stopping():
            await self.clock.sleep(TOOL_POLL_S)
            if self.stopping():
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
            delay = self.crashes.crashed(entry, code, how, lines,
                                         restarted_by=kind if state.running else None)
            baseline = state
            if state.running:
                continue
            if delay is None:
                return
            await self.clock.sleep(delay)
            if self.stopping():
                return
            try:
                self.monitor.note(entry, "start", f"restarting through {kind}")
                await driver.act("restart")
                await self.launcher.ready(entry)
            except RunError as exc:
                self.crashes.restart_failed(entry, exc)
                continue
            self.crashes.restarted(entry)
            baseline = await driver.state()
