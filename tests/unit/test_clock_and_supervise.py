from __future__ import annotations

import asyncio

import pytest

from enduro.base.clock import FakeClock
from enduro.base.errors import FatalWorkerError
from enduro.run.background import Backoff, supervise


def test_fake_clock_runs_an_hour_of_sleeps_instantly() -> None:
    clock = FakeClock(autojump=True)
    ticks: list[float] = []

    async def heartbeat() -> None:
        start = clock.now()
        for _ in range(60):
            await clock.sleep(60)
            ticks.append(clock.now() - start)

    asyncio.run(asyncio.wait_for(heartbeat(), timeout=5))
    assert ticks[0] == 60 and ticks[-1] == 3600 and len(ticks) == 60


def test_failing_worker_is_retried_with_exponential_backoff() -> None:
    clock = FakeClock(autojump=True)
    errors: list[tuple[str, int, float]] = []
    attempts = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 4:
            raise RuntimeError(f"boom {attempts}")

    def on_error(name: str, exc: BaseException, tb: str, attempt: int) -> None:
        assert "RuntimeError" in tb
        errors.append((name, attempt, clock.now()))

    asyncio.run(supervise("w", flaky, clock=clock, on_error=on_error,
                          backoff=Backoff(first=0.5, cap=30)))
    assert attempts == 5
    times = [t - errors[0][2] for _, _, t in errors]
    # Delays 0.5, 1, 2 between the failures.
    assert times == [0.0, 0.5, 1.5, 3.5]


def test_fatal_error_is_not_retried() -> None:
    clock = FakeClock(autojump=True)
    calls = 0

    async def fatal() -> None:
        nonlocal calls
        calls += 1
        raise FatalWorkerError("disk full")

    with pytest.raises(FatalWorkerError):
        asyncio.run(supervise("w", fatal, clock=clock, on_error=lambda *a: None))
    assert calls == 1


def test_retry_limit_turns_into_a_fatal_error() -> None:
    clock = FakeClock(autojump=True)

    async def always() -> None:
        raise ValueError("nope")

    with pytest.raises(FatalWorkerError, match="failed 3 times"):
        asyncio.run(supervise("w", always, clock=clock, on_error=lambda *a: None,
                              backoff=Backoff(limit=2)))
