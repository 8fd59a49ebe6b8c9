"""Background workers of a run, each restarted with exponential backoff when it fails
unexpectedly; a ``FatalWorkerError`` stops the run instead."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from enduro.errors import FatalWorkerError
from enduro.run.clock import Clock

__all__ = ["Backoff", "supervise"]


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts: ``first`` doubling up to ``cap``; ``limit`` restarts at most."""

    first: float = 0.5
    cap: float = 30.0
    limit: int = 20

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.first * 2.0**attempt)


async def supervise(name: str, work: Callable[[], Awaitable[None]], *, clock: Clock,
                    on_error: Callable[[str, BaseException, str, int], None],
                    backoff: Backoff = Backoff()) -> None:
    """Run ``work`` until it returns. Unexpected errors are reported with their traceback to
    ``on_error(name, exc, traceback, attempt)`` and ``work`` is started again after a backoff;
    after ``backoff.limit`` restarts, or on ``FatalWorkerError``, the error propagates."""
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
            on_error(name, exc, traceback.format_exc(), attempt)
            if attempt >= backoff.limit:
                raise FatalWorkerError(
                    f"worker {name!r} failed {attempt + 1} times; last error: {exc!r}") from exc
            await clock.sleep(backoff.delay(attempt))
            attempt += 1
