"""Retries of background workers: user errors are never retried, and no backoff outlives a
stop. Time is a fake clock, so a 100 s backoff costs nothing and cannot pass by waiting."""

from __future__ import annotations

import asyncio

import pytest

from enduro.base.clock import FakeClock
from enduro.base.errors import PlanError, RunError
from enduro.run.background import Backoff, supervise


def test_a_plan_error_propagates_at_once_without_retry() -> None:
    clock = FakeClock(autojump=True)
    calls = 0
    reported: list[BaseException] = []

    async def bad_template() -> None:
        nonlocal calls
        calls += 1
        raise PlanError("template '/x/{{nosuch}}': unknown placeholder {{nosuch}}")

    start = clock.now()
    with pytest.raises(PlanError, match="nosuch"):
        asyncio.run(supervise("load", bad_template, clock=clock,
                              on_error=lambda _n, exc, _tb, _a: reported.append(exc)))
    assert calls == 1
    assert reported == []  # never announced as "restarting"
    assert clock.now() == start  # no backoff slept


def test_a_stop_ends_the_backoff_sleep_and_nothing_restarts() -> None:
    clock = FakeClock()  # no autojump: a backoff sleep lasts until the stop
    calls = 0

    async def scenario() -> tuple[float, float]:
        stop = asyncio.Event()
        failed = asyncio.Event()

        async def broken() -> None:
            nonlocal calls
            calls += 1
            raise RunError("connection reset")

        def on_error(_n: str, _exc: BaseException, _tb: str, _a: int) -> None:
            failed.set()

        task = asyncio.create_task(supervise("load", broken, clock=clock, on_error=on_error,
                                             backoff=Backoff(first=100.0, cap=100.0),
                                             stop=stop))
        await asyncio.wait_for(failed.wait(), 5)
        before = clock.now()
        stop.set()
        await asyncio.wait_for(task, 5)  # returns: the 100 s sleep was cut short
        return before, clock.now()

    before, after = asyncio.run(scenario())
    assert calls == 1
    assert after == before


def test_a_failure_after_the_stop_is_not_retried() -> None:
    clock = FakeClock(autojump=True)
    calls = 0

    async def scenario() -> None:
        stop = asyncio.Event()
        stop.set()

        async def failing() -> None:
            nonlocal calls
            calls += 1
            raise OSError("socket closed while stopping")

        await supervise("scrape", failing, clock=clock, on_error=lambda *_: None, stop=stop)

    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert calls == 1


def test_without_a_stop_a_world_error_is_still_retried() -> None:
    clock = FakeClock(autojump=True)
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RunError("target restarting")

    async def scenario() -> None:
        await supervise("load", flaky, clock=clock, on_error=lambda *_: None,
                        stop=asyncio.Event())

    start = clock.now()
    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert calls == 3
    assert clock.now() - start == pytest.approx(0.5 + 1.0)
