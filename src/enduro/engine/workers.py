"""``--workers N``: the load sharded over N processes whose windows are merged by the parent.

Each worker drives its share (rate / N, connections split) with its own seed, and sends every
sealed window's histograms (HdrHistogram's compressed encoding) over a pipe. Workers start on
a common ``go`` so that their windows line up. The messages are
``enduro.documents.worker_messages``' models, sent as plain dicts and read back through them.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from enduro.base.eventloop import run_coroutine
from enduro.documents.worker_messages import (
    Done,
    Force,
    FromWorker,
    Go,
    Ready,
    Stop,
    Tokens,
    ToWorker,
    Windows,
)
from enduro.engine.load import LoadControl, LoadFiles, LoadShare, run_load
from enduro.observe.window import WindowStats
from enduro.plan.models import Plan

__all__ = ["WorkerPool"]


def _worker_main(plan_data: dict[str, Any], index: int, count: int, seed: int,
                 base_urls: dict[str, str], duration: float, grace: float,
                 conn: Connection, files: LoadFiles) -> None:
    # A Ctrl-C reaches the whole process group; the parent decides how the load stops (and
    # this worker still sends its last windows).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    plan = Plan.model_validate(plan_data)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        control = LoadControl()
        stop = asyncio.Event()
        force = asyncio.Event()
        go: asyncio.Future[float] = loop.create_future()

        def on_message() -> None:
            try:
                message = ToWorker.model_validate(conn.recv()).root
            except (EOFError, OSError):
                stop.set()
                force.set()
                if not go.done():
                    go.cancel()
                return
            if isinstance(message, Go):
                if not go.done():
                    go.set_result(message.start_wall)
            elif isinstance(message, Stop):
                stop.set()
            elif isinstance(message, Force):
                stop.set()
                force.set()
            else:
                control.update_tokens(message.tokens)

        loop.add_reader(conn.fileno(), on_message)
        conn.send(Ready(index=index).to_wire())
        try:
            start_wall = await go
        except asyncio.CancelledError:
            return
        start_mono = time.monotonic() - (time.time() - start_wall)

        def sink(windows: list[WindowStats]) -> None:
            with contextlib.suppress(OSError):
                conn.send(Windows(windows=[w.to_wire() for w in windows]).to_wire())

        await run_load(plan, seed=seed, share=LoadShare(index, count), base_urls=base_urls,
                       sink=sink, duration=duration, start_mono=start_mono, stop=stop,
                       force=force, grace=grace, control=control, files=files)
        loop.remove_reader(conn.fileno())
        conn.send(Done(index=index).to_wire())

    run_coroutine(main())


class WorkerPool:
    """N load processes and the pipes to them."""

    def __init__(self, plan: Plan, count: int, seed: int, base_urls: dict[str, str],
                 duration: float, grace: float,
                 on_windows: Callable[[int, list[WindowStats]], None],
                 files: LoadFiles | None = None) -> None:
        self._files = files or LoadFiles()
        self.count = count
        self._ctx = mp.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._on_windows = on_windows
        self._args = (plan.model_dump(mode="json", by_alias=True), seed, base_urls, duration,
                      grace)
        self._done: asyncio.Future[None] | None = None
        self._finished: set[int] = set()
        self._ready: set[int] = set()
        self._all_ready: asyncio.Future[None] | None = None

    async def start(self, timeout: float = 60.0) -> None:
        """Spawn the workers and wait until each has built its drivers."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._all_ready = loop.create_future()
        plan_data, seed, base_urls, duration, grace = self._args
        for i in range(self.count):
            parent, child = self._ctx.Pipe()
            proc = self._ctx.Process(
                target=_worker_main, name=f"enduro-worker-{i}", daemon=True,
                args=(plan_data, i, self.count, seed, base_urls, duration, grace, child,
                      self._files))
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
            loop.add_reader(parent.fileno(), self._on_message, i)
        await asyncio.wait_for(asyncio.shield(self._all_ready), timeout)

    def go(self, start_wall: float) -> None:
        self.send(Go(start_wall=start_wall))

    def _on_message(self, index: int) -> None:
        conn = self._conns[index]
        try:
            message = FromWorker.model_validate(conn.recv()).root
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(conn.fileno())
            self._finish(index)
            return
        if isinstance(message, Windows):
            self._on_windows(index, [WindowStats.from_wire(w) for w in message.windows])
        elif isinstance(message, Ready):
            self._ready.add(index)
            if len(self._ready) == self.count and self._all_ready and not self._all_ready.done():
                self._all_ready.set_result(None)
        else:
            self._finish(index)

    def _finish(self, index: int) -> None:
        self._finished.add(index)
        if len(self._finished) == self.count and self._done and not self._done.done():
            self._done.set_result(None)

    async def wait(self) -> None:
        assert self._done is not None
        await self._done

    def send(self, message: Go | Stop | Force | Tokens) -> None:
        """Send ``message`` to every worker (one that is gone is skipped)."""
        wire = message.to_wire()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(wire)

    def send_all(self, kind: str, value: Any = None) -> None:
        """``send`` by the message's kind: "stop", "force", or "tokens" with the tokens."""
        message: Go | Stop | Force | Tokens
        if kind == "stop":
            message = Stop()
        elif kind == "force":
            message = Force()
        elif kind == "tokens":
            message = Tokens(tokens=value)
        else:
            raise ValueError(f"no message {kind!r} to workers")
        self.send(message)

    def exit_codes(self) -> list[int | None]:
        return [p.exitcode for p in self._procs]

    def close(self, timeout: float = 5.0) -> None:
        """Join the workers; terminate any that do not exit in time."""
        loop = asyncio.get_event_loop()
        for conn in self._conns:
            with contextlib.suppress(Exception):
                loop.remove_reader(conn.fileno())
        deadline = time.monotonic() + timeout
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
        for conn in self._conns:
            conn.close()
