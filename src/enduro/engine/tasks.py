"""The open and closed models for workloads whose operations are coroutines (python ops,
flows): N loops, or arrivals on a schedule started as tasks up to a concurrency cap."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from enduro.engine.schedule import ArrivalSchedule

__all__ = ["TaskDriver", "closed_loops", "open_arrivals"]

_monotonic = time.monotonic


async def closed_loops(connections: int, loop: Callable[[int, float], Awaitable[None]],
                       end: float) -> None:
    """Run ``loop(vu, end)`` on each of ``connections`` virtual users."""
    loops = [asyncio.ensure_future(loop(i, end)) for i in range(connections)]
    try:
        await asyncio.gather(*loops)
    finally:
        for t in loops:
            t.cancel()


async def open_arrivals(schedule: ArrivalSchedule, *, end: float,
                        sending: Callable[[], bool], tasks: set[asyncio.Task[None]],
                        max_concurrency: int, start: Callable[[float], Awaitable[None]],
                        expire_after: float | None = None,
                        on_drop: Callable[[], None] | None = None) -> None:
    """Start ``start(intended)`` for every arrival of ``schedule``, at most
    ``max_concurrency`` at once; arrivals that waited longer than ``expire_after`` are
    dropped (``on_drop``). Latency counts from the intended time, so waiting shows."""
    begin = _monotonic()
    next_at = begin + schedule.next()
    backlog: deque[float] = deque()
    while sending() and _monotonic() < end:
        now = _monotonic()
        while next_at <= now:
            backlog.append(next_at)
            next_at = begin + schedule.next()
        while backlog and len(tasks) < max_concurrency:
            intended = backlog.popleft()
            if expire_after is not None and now - intended > expire_after:
                if on_drop is not None:
                    on_drop()
                continue
            task = asyncio.ensure_future(start(intended))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(0.002)


class TaskDriver:
    """Stopping for drivers whose operations run as tasks: ``drain`` lets in-flight ones
    finish within the grace, ``close_all`` cancels them."""

    sending: bool
    tasks: set[asyncio.Task[None]]

    async def drain(self, grace: float) -> None:
        self.sending = False
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=grace)
        self.close_all()

    def close_all(self) -> None:
        self.sending = False
        for task in list(self.tasks):
            task.cancel()
