"""The open model of coroutine workloads sleeps until the next arrival: no polling."""

from __future__ import annotations

import asyncio
import time

from enduro.engine.schedule import ArrivalSchedule
from enduro.engine.tasks import open_arrivals


def test_at_ten_per_second_the_loop_wakes_once_per_arrival() -> None:
    wakes = 0
    started: list[float] = []

    def sending() -> bool:
        nonlocal wakes
        wakes += 1
        return True

    async def start(intended: float) -> None:
        started.append(intended)

    async def run() -> None:
        tasks: set[asyncio.Task[None]] = set()
        end = time.monotonic() + 1.0
        await open_arrivals(ArrivalSchedule(rate=10.0), end=end, sending=sending,
                            tasks=tasks, max_concurrency=100, start=start)
        await asyncio.gather(*tasks)

    asyncio.run(run())
    assert len(started) == 10  # t = 0, 0.1, ... 0.9
    # A wake per arrival, one at the end, and a spare: polling every 2 ms made ~500.
    assert wakes <= len(started) + 3


def test_arrivals_waiting_for_a_slot_start_when_one_frees() -> None:
    release = asyncio.Event()
    order: list[float] = []

    async def start(intended: float) -> None:
        order.append(intended)
        if len(order) == 1:
            await release.wait()

    async def run() -> None:
        tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        loop.call_later(0.35, release.set)
        end = time.monotonic() + 0.5
        await open_arrivals(ArrivalSchedule(rate=10.0), end=end, sending=lambda: True,
                            tasks=tasks, max_concurrency=1, start=start)
        await asyncio.gather(*tasks)

    asyncio.run(run())
    # The first holds the only slot until 0.35 s; the arrivals of 0.1-0.3 s waited, then
    # started as soon as it ended (not at the next arrival), and the last one on time.
    assert len(order) == 5
    assert order == sorted(order)
