"""The open and closed models for workloads whose operations are coroutines (python ops,
flows): N loops, or arrivals on a schedule started as tasks up to a concurrency cap; and the
bookkeeping that counts operations still out when the run ends (class ``unfinished``)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from enduro.engine.schedule import ArrivalSchedule
from enduro.observe.window import OpCounter

__all__ = ["InFlight", "TaskDriver", "closed_loops", "open_arrivals"]

_monotonic = time.monotonic
# The shortest wait between two passes over the schedule: the loop's timers have millisecond
# resolution and uvloop runs a shorter timer at once, which made the loop spin at high rates;
# arrivals due within it start together at the next pass.
_MIN_WAKE_S = 0.001

# One op an operation counts in: its counter, intended time and send time (None: unsent).
Pending = tuple[OpCounter, float, float | None]


class InFlight:
    """Operations begun and not yet ended. Those still out when the driver closes are
    counted at once (synchronously, before the last window is sealed) as ``unfinished``."""

    __slots__ = ("_next", "_ops")

    def __init__(self) -> None:
        self._ops: dict[int, tuple[Pending, ...]] = {}
        self._next = 0

    def begin(self, *ops: Pending) -> int:
        """Note one operation out, as ``(counter, intended, sent)`` for each op it counts in
        (a flow step and its iteration); a token for ``end``."""
        self._next += 1
        self._ops[self._next] = ops
        return self._next

    def end(self, token: int) -> bool:
        """The operation ended; False when it was already counted as unfinished."""
        return self._ops.pop(token, None) is not None

    def close(self, now: float) -> int:
        """Count every operation still out as ``unfinished``; how many there were."""
        out = list(self._ops.values())
        self._ops.clear()
        for ops in out:
            for counter, intended, sent in ops:
                counter.unfinished(intended, sent, now)
        return len(out)

    def __len__(self) -> int:
        return len(self._ops)


async def closed_loops(connections: int, loop: Callable[[int, float], Awaitable[None]],
                       end: float, tasks: set[asyncio.Task[None]] | None = None) -> None:
    """Start ``loop(vu, end)`` on each of ``connections`` virtual users and return at
    ``end``. The loops join ``tasks``, so a drain gives their last iteration the grace and
    a close cancels them; a loop that failed before ``end`` raises here. Without ``tasks``,
    wait for every loop to end instead."""
    loops = [asyncio.ensure_future(loop(i, end)) for i in range(connections)]
    if tasks is None:
        try:
            await asyncio.gather(*loops)
        finally:
            for t in loops:
                t.cancel()
        return
    for task in loops:
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if not loops:
        return
    done, _ = await asyncio.wait(loops, timeout=max(0.0, end - _monotonic()))
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def _start_waiting(backlog: deque[float], tasks: set[asyncio.Task[None]], max_concurrency: int,
                   now: float, start: Callable[[float], Awaitable[None]],
                   ended: Callable[[asyncio.Task[None]], None], *,
                   expire_after: float | None, on_drop: Callable[[], None] | None) -> None:
    """Start the waiting arrivals the free slots allow, oldest first; drop those that waited
    longer than ``expire_after``."""
    while backlog and len(tasks) < max_concurrency:
        intended = backlog.popleft()
        if expire_after is not None and now - intended > expire_after:
            if on_drop is not None:
                on_drop()
            continue
        task = asyncio.ensure_future(start(intended))
        tasks.add(task)
        task.add_done_callback(ended)


async def open_arrivals(schedule: ArrivalSchedule, *, end: float,
                        sending: Callable[[], bool], tasks: set[asyncio.Task[None]],
                        max_concurrency: int, start: Callable[[float], Awaitable[None]],
                        expire_after: float | None = None,
                        on_drop: Callable[[], None] | None = None,
                        on_unstarted: Callable[[float], None] | None = None) -> None:
    """Start ``start(intended)`` for every arrival of ``schedule``, at most
    ``max_concurrency`` at once; arrivals that waited longer than ``expire_after`` are
    dropped (``on_drop``). Latency counts from the intended time, so waiting shows.
    Arrivals due but still waiting for a free slot at the end go to ``on_unstarted``."""
    loop = asyncio.get_running_loop()
    begin = _monotonic()
    next_at = begin + schedule.next()
    backlog: deque[float] = deque()
    # The loop sleeps until the next arrival is due, or until a task ends while arrivals wait
    # for a free slot: no polling, whatever the rate.
    waiter: list[asyncio.Future[None]] = []

    def wake(_: object = None) -> None:
        if waiter and not waiter[0].done():
            waiter[0].set_result(None)

    def ended(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if backlog:
            wake()

    try:
        while sending():
            now = _monotonic()
            while next_at <= now and next_at < end:  # none after the end, however late
                backlog.append(next_at)
                next_at = begin + schedule.next()
            _start_waiting(backlog, tasks, max_concurrency, now, start, ended,
                           expire_after=expire_after, on_drop=on_drop)
            if now >= end:
                break  # after a last pass, so every arrival due before the end is seen
            future: asyncio.Future[None] = loop.create_future()
            waiter[:] = [future]
            timer = loop.call_later(max(_MIN_WAKE_S, min(next_at, end) - _monotonic()), wake)
            try:
                await future
            finally:
                timer.cancel()
                waiter.clear()
    finally:
        if on_unstarted is not None:
            for intended in backlog:
                on_unstarted(intended)


class TaskDriver:
    """Stopping for drivers whose operations run as tasks: ``drain`` lets in-flight ones
    finish within the grace, ``close_all`` counts those still out (``in_flight``) as
    ``unfinished`` and cancels them."""

    sending: bool
    tasks: set[asyncio.Task[None]]
    _in_flight: InFlight | None = None

    @property
    def in_flight(self) -> InFlight:
        """The operations of this driver now out."""
        if self._in_flight is None:
            self._in_flight = InFlight()
        return self._in_flight

    async def drain(self, grace: float) -> None:
        self.sending = False
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=grace)
        self.close_all()

    def close_all(self) -> None:
        self.sending = False
        # Counted before cancelling: a cancelled task runs its handlers only after the
        # last window is sealed, and must not count twice (InFlight.end says so).
        self.in_flight.close(_monotonic())
        for task in list(self.tasks):
            task.cancel()
