"""Background workers of a run, each restarted with exponential backoff when it fails
unexpectedly. A ``FatalWorkerError`` stops the run instead; a user error (``PlanError``) is never
retried, because running the same plan again cannot mend it; and no backoff outlives a stop."""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from enduro.base.clock import Clock
from enduro.base.errors import FatalWorkerError, is_user_error

__all__ = ["Backoff", "supervise"]


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts: ``first`` doubling up to ``cap``; ``limit`` restarts at most."""

    first: float = 0.5
    cap: float = 30.0
    limit: int = 20

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.first * 2.0**attempt)


async def _sleep_unless_stopped(clock: Clock, seconds: float, stop: asyncio.Event | None) -> bool:
    """Sleep ``seconds`` on ``clock``; True when ``stop`` was set first (or already)."""
    if stop is None:
        await clock.sleep(seconds)
        return False
    if stop.is_set():
        return True
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([sleeper, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, stopper):
            task.cancel()
        for task in (sleeper, stopper):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return stop.is_set()


async def supervise(name: str, work: Callable[[], Awaitable[None]], *, clock: Clock,
                    on_error: Callable[[str, BaseException, str, int], None],
                    backoff: Backoff = Backoff(),
                    stop: asyncio.Event | None = None) -> None:
    """Run ``work`` until it returns. Unexpected errors are reported with their traceback to
    ``on_error(name, exc, traceback, attempt)`` and ``work`` is started again after a backoff;
    after ``backoff.limit`` restarts, or on ``FatalWorkerError``, the error propagates.

    A user error (see :func:`enduro.base.errors.is_user_error`) propagates at once, unretried. Once
    ``stop`` is set (the run is ending) nothing is restarted: a failure then, or a backoff
    sleep the stop cuts short, makes ``supervise`` return."""
    attempt = 0
    while True:
        try:
            await work()
            return
        except asyncio.CancelledError:
            raise
        except FatalWorkerError as exc:
            on_error(name, exc, traceback.format_exc(), attempt)
            raise
        except Exception as exc:
            if is_user_error(exc):
                raise  # the caller reports it; "restarting" would be a lie
            on_error(name, exc, traceback.format_exc(), attempt)
            if stop is not None and stop.is_set():
                return
            if attempt >= backoff.limit:
                raise FatalWorkerError(
                    f"worker {name!r} failed {attempt + 1} times; last error: {exc!r}") from exc
            if await _sleep_unless_stopped(clock, backoff.delay(attempt), stop):
                return
            attempt += 1
