"""Time, injected: the real clock for runs, a fake one so hour-long logic is tested in ms."""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """What enduro asks of time. ``now`` is monotonic seconds; ``wall`` is the UNIX epoch."""

    def now(self) -> float: ...

    def wall(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to, or when every sleeper waits on it.

    ``sleep`` parks the caller until ``advance`` moves time past its deadline. With
    ``autojump=True`` time jumps straight to the next deadline whenever sleepers wait, so a
    schedule of hours runs as fast as the code can go.
    """

    def __init__(self, start: float = 1000.0, wall_start: float = 1_800_000_000.0,
                 autojump: bool = False) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0
        self.autojump = autojump

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), self._seq, fut))
        if self.autojump:
            asyncio.get_running_loop().call_soon(self._jump)
        await fut

    def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose deadline has passed."""
        self._now += seconds
        self._wake()

    def _wake(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def _jump(self) -> None:
        self._sleepers = [s for s in self._sleepers if not s[2].done()]
        heapq.heapify(self._sleepers)
        if self._sleepers:
            self._now = max(self._now, self._sleepers[0][0])
            self._wake()
