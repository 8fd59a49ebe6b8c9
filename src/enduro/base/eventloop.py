"""Running a coroutine to completion on a fresh event loop (uvloop where available) without
waiting forever on tasks that ignore cancellation, such as a client library's reconnect loop
left behind by a python workload."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from enduro.base.errors import save_traceback
from enduro.base.memory import pin_malloc_thresholds

__all__ = ["report_loop_error", "run_coroutine"]

T = TypeVar("T")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()


def report_loop_error(context: dict[str, Any], say: Callable[[str], None] | None = None) -> str:
    """What the loop reports on its own (a task's exception nobody retrieved, a failing
    callback) as one line: its traceback goes to a file (see
    :func:`enduro.base.errors.save_traceback`), never to the terminal. Returns the line."""
    message = str(context.get("message") or "error in the event loop")
    exc = context.get("exception")
    line = f"enduro: {message}"
    if isinstance(exc, BaseException):
        try:
            line += f" ({type(exc).__name__}: {exc}); traceback in {save_traceback(exc)}"
        except OSError:
            line += f" ({exc!r})"
    (say or (lambda text: print(text, file=sys.stderr)))(line)
    return line


def run_coroutine(coro: Coroutine[Any, Any, T], shutdown_timeout: float = 5.0) -> T:
    """Like ``asyncio.run``, but leftover tasks get ``shutdown_timeout`` to end once
    cancelled; then the loop is closed regardless. Errors the loop reports by itself are
    one line each (:func:`report_loop_error`), never a traceback on the terminal."""
    pin_malloc_thresholds()
    loop = _new_loop()
    loop.set_exception_handler(lambda _loop, context: report_loop_error(context))
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=shutdown_timeout))
            loop.run_until_complete(
                asyncio.wait_for(loop.shutdown_asyncgens(), shutdown_timeout))
        except (TimeoutError, RuntimeError):
            pass
        finally:
            # Tasks that ignored cancellation are abandoned here on purpose.
            loop.set_exception_handler(lambda _loop, _ctx: None)
            asyncio.set_event_loop(None)
            loop.close()
