"""A service's crashes: each kept (crash log, monitor.log, event) and judged by the
service's restart policy and its backoff."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from enduro.base.clock import Clock
from enduro.base.errors import RunError
from enduro.services.entry import ServiceEntry
from enduro.services.monitor import Monitor

__all__ = ["Crashes"]


class Crashes:
    """Keeps the crashes of a run's services and says whether and when each restarts."""

    def __init__(self, run_dir: Path, clock: Clock, monitor: Monitor,
                 log: Callable[[str], None]) -> None:
        self.run_dir = run_dir
        self.clock = clock
        self.monitor = monitor
        self._log = log

    def crashed(self, entry: ServiceEntry, code: int | None, how: str, lines: list[str],
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
        self.monitor.note(entry, "exit", f"pid {entry.status.pid} {how}{note}; crash log "
                          f"{where}", exit_code=code, crash_log=str(where))
        self._log(f"service {entry.name} {how} (crash log {crash})")
        if restarted_by is not None:
            entry.status.restarts += 1
            entry.status.up_since = self.clock.wall()
            self.monitor.note(entry, "restart", f"restarted by {restarted_by}")
            return None
        entry.status.state = "down"
        return self._backoff(entry, code, up_for)

    def _backoff(self, entry: ServiceEntry, code: int | None, up_for: float) -> float | None:
        """The restart policy for a service that is down: the delay, or None to stay down."""
        policy = entry.service.restart
        if policy == "never" or (policy == "on-failure" and code == 0):
            self.monitor.note(entry, "down", f"not restarted (restart: {policy})")
            return None
        if up_for > 60:
            entry.crashes.clear()  # it ran well for a while: start the backoff afresh
        entry.crashes.append(self.clock.wall())
        if len(entry.crashes) > entry.service.restart_limit:
            entry.status.state = "failed"
            self.monitor.note(entry, "failed", f"gave up after "
                              f"{entry.service.restart_limit} restarts in a row")
            return None
        delay: float = min(30.0, 0.5 * 2.0 ** (len(entry.crashes) - 1))
        entry.status.state = "restarting"
        self.monitor.note(entry, "restart", f"restarting in {delay:g}s "
                          f"(restart {entry.status.restarts + 1})", delay_s=delay)
        return delay

    def restart_failed(self, entry: ServiceEntry, exc: RunError) -> None:
        """Keep a restart that did not bring the service back."""
        entry.status.error = str(exc)
        self.monitor.note(entry, "restart_failed", str(exc))
        self._log(f"service {entry.name}: restart failed: {exc}")

    def restarted(self, entry: ServiceEntry) -> None:
        """Count a restart that brought the service back up."""
        entry.status.restarts += 1
        entry.status.state = "up"
        entry.status.up_since = self.clock.wall()

    def _write_crash(self, entry: ServiceEntry, code: int | None, how: str,
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
