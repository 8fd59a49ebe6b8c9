"""Waits a stop cuts short, and the teardown: undo the faults, stop the proxies and the
services, gracefully or (forced) at once; failures are recorded, never raised."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from enduro.base.errors import RunError
from enduro.faults.chaos import Chaos
from enduro.run.stops import Stops
from enduro.services.identity import kill_group
from enduro.services.supervisor import ServiceSet

__all__ = ["Teardown"]


class Teardown:
    """The end of a run's services and faults, and the waits that a stop cuts short."""

    def __init__(self, stops: Stops, chaos: Chaos, services: ServiceSet | None, *,
                 write_state: Callable[[], None], keep_services: bool = False) -> None:
        self.stops = stops
        self.chaos = chaos
        self.services = services
        self._write_state = write_state
        # Services the run was lent (a plan's scenarios share them): left up at the end.
        self._services_down = keep_services

    async def until(self, coro: Awaitable[Any], event: asyncio.Event) -> Any:
        """Run ``coro`` until it ends or ``event`` is set; then cancel it and wait until its
        clean-up has run (so that nothing it started outlives the run)."""
        task = asyncio.ensure_future(coro)
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            return task.result()
        task.cancel()
        await self.settle(task)
        return None

    async def settle(self, task: asyncio.Future[Any]) -> None:
        """Wait for ``task`` to end; a forced stop sends SIGKILL to every service so that
        graceful waits end at once (fault undos still run, bounded by their timeouts)."""
        forcer = asyncio.ensure_future(self.stops.force.wait())
        try:
            await asyncio.wait([task, forcer], return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                self.kill_services()
                await asyncio.wait([task])
        finally:
            forcer.cancel()

    def kill_services(self) -> None:
        """SIGKILL to every service still running; none is restarted."""
        if self.services is None:
            return
        self.stops.runlog.event("services_killed")
        self.services.stopping = True  # a killed service is not restarted
        for entry in self.services.entries.values():
            proc = entry.process.proc if entry.process is not None else None
            if proc is not None and proc.returncode is None:
                kill_group(proc.pid, signal.SIGKILL)

    async def run(self) -> None:
        """Undo faults, stop proxies and services: gracefully, or at once when forced (a
        second signal, the watchdog). A defect here is recorded as the run's crash."""
        stops = self.stops
        stops.enter("teardown", stops.ctx.teardown_bound)
        task = asyncio.ensure_future(self._stop_all())
        await self.settle(task)
        if task.done() and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            stops.runlog.event("teardown_failed", error=repr(exc))
            if isinstance(exc, Exception) and not isinstance(exc, RunError):
                stops.crashed(exc)
            else:
                stops.runlog.log(f"teardown: {exc}", level="ERROR")

    async def _stop_all(self) -> None:
        try:
            await self.chaos.stop()
        finally:
            if self.services is not None and not self._services_down:
                self._services_down = True
                await self.services.stop_all()
                self._write_state()
