"""``--workers N``: the load sharded over N workers whose windows are merged by the runner.

Each worker drives its share (rate / N, connections split) with its own seed, and sends every
sealed window's histograms (HdrHistogram's compressed encoding) back to the runner. Workers
start on a common ``go`` so that their windows line up. The messages are
``enduro.documents.worker_messages``' models, sent as plain dicts and read back through them.

Both ends are written once, apart from what carries the messages: ``WorkerSide`` is a
worker's end and ``WorkerPool`` the runner's; ``ProcessPool`` carries them over pipes to
local processes, ``engine.ray_workers.RayPool`` over actor calls to Ray actors.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from enduro.base.errors import RunError
from enduro.base.eventloop import run_coroutine
from enduro.documents.worker_messages import (
    Done,
    Force,
    FromWorker,
    Go,
    Held,
    InForce,
    Ready,
    Settled,
    Stop,
    Tokens,
    ToWorker,
    Windows,
)
from enduro.engine.load import LoadControl, LoadFiles, LoadShare, run_load
from enduro.engine.quiet import QuietRelay
from enduro.observe.window import WindowStats
from enduro.plan.models import Plan

__all__ = ["ProcessPool", "WorkerArgs", "WorkerInfo", "WorkerPool", "WorkerSide"]

Send = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class WorkerArgs:
    """What one worker is handed: the plan as data, its share and the run's fixed facts."""

    plan_data: dict[str, Any]
    index: int
    count: int
    seed: int
    base_urls: dict[str, str]
    duration: float
    grace: float
    files: LoadFiles = field(default_factory=LoadFiles)


@dataclass
class WorkerInfo:
    """What the runner knows of one worker: where it runs, what it did, whether it was lost."""

    index: int
    node: str = ""
    pid: int = 0
    saturation: float | None = None
    lost: str | None = None  # why, when it ended without saying it was done


class WorkerSide:
    """A worker's end: waits for ``Go``, drives its share, sends its windows and ``Done``
    through ``send``; ``receive`` takes each message from the runner, ``cut`` says the way
    to the runner is gone (the load then stops at once)."""

    def __init__(self, args: WorkerArgs, send: Send, node: str) -> None:
        self.args = args
        self.send = send
        self.node = node
        self.control = LoadControl()
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self._go = asyncio.Event()
        self._start_wall = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self.control.quiet.listeners.append(self._held)

    def _held(self, reason: str, source: str, on: bool) -> None:
        # This process's own churn goes to the runner, which tells every worker.
        if source != "runner":
            with contextlib.suppress(OSError):
                self.send(Held(reason=reason, on=on).to_wire())

    async def _settle(self, reason: str) -> None:
        await self.control.quiet.settled(self.args.grace)
        with contextlib.suppress(OSError):
            self.send(Settled(reason=reason).to_wire())

    def _in_force(self, message: InForce) -> None:
        self.control.quiet.replace(message.reason, "runner", message.on)
        if message.on:  # answered once what was in flight has ended
            task = asyncio.ensure_future(self._settle(message.reason))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def receive(self, wire: dict[str, Any]) -> None:
        message = ToWorker.model_validate(wire).root
        if isinstance(message, Go):
            self._start_wall = message.start_wall
            self._go.set()
        elif isinstance(message, Stop):
            self.stop.set()
        elif isinstance(message, Force):
            self.stop.set()
            self.force.set()
        elif isinstance(message, InForce):
            self._in_force(message)
        else:
            self.control.update_tokens(message.tokens)

    def cut(self) -> None:
        self.stop.set()
        self.force.set()
        self._go.set()

    async def run(self) -> None:
        args = self.args
        self.send(Ready(index=args.index, node=self.node, pid=os.getpid()).to_wire())
        await self._go.wait()
        if self.stop.is_set():
            return
        start_mono = time.monotonic() - (time.time() - self._start_wall)
        cpu0 = time.process_time()

        def sink(windows: list[WindowStats]) -> None:
            with contextlib.suppress(OSError):
                self.send(Windows(windows=[w.to_wire() for w in windows]).to_wire())

        await run_load(Plan.model_validate(args.plan_data), seed=args.seed,
                       share=LoadShare(args.index, args.count), base_urls=args.base_urls,
                       sink=sink, duration=args.duration, start_mono=start_mono,
                       stop=self.stop, force=self.force, grace=args.grace,
                       control=self.control, files=args.files)
        elapsed = time.monotonic() - start_mono
        saturation = round((time.process_time() - cpu0) / elapsed, 3) if elapsed > 0 else None
        self.send(Done(index=args.index, saturation=saturation).to_wire())


def _keep_blocking(conn: Connection) -> None:
    """The event loop's ``add_reader`` made the pipe non-blocking; a message is then read in
    pieces as they arrive, and a large one (a busy window's histograms) fails half-read or
    half-written with EAGAIN. Blocking again, a read starts when the loop sees data and
    waits for the rest of that message, and a write waits for room."""
    os.set_blocking(conn.fileno(), True)


def _process_main(args: WorkerArgs, conn: Connection) -> None:
    # A Ctrl-C reaches the whole process group; the parent decides how the load stops (and
    # this worker still sends its last windows).
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        side = WorkerSide(args, conn.send, socket.gethostname())

        def on_message() -> None:
            try:
                wire = conn.recv()
            except (EOFError, OSError):
                loop.remove_reader(conn.fileno())
                side.cut()
                return
            side.receive(wire)

        loop.add_reader(conn.fileno(), on_message)
        _keep_blocking(conn)
        try:
            await side.run()
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(conn.fileno())

    run_coroutine(main())


class WorkerPool:
    """The runner's end of N workers, whatever carries the messages: a subclass spawns them
    (``_spawn``), sends to one (``_send``), passes what each sends to ``_received`` and tells
    ``_cut`` when one is gone, and ends them all (``close``)."""

    def __init__(self, plan: Plan, count: int, seed: int, base_urls: dict[str, str],
                 duration: float, grace: float,
                 on_windows: Callable[[int, list[WindowStats]], None],
                 files: LoadFiles | None = None,
                 on_lost: Callable[[WorkerInfo], None] | None = None) -> None:
        self.count = count
        plan_data = plan.model_dump(mode="json", by_alias=True)
        self.args = [WorkerArgs(plan_data, i, count, seed, base_urls, duration, grace,
                                files or LoadFiles()) for i in range(count)]
        self.workers = [WorkerInfo(i) for i in range(count)]
        # Each worker's clock minus the runner's, in seconds (measured by a subclass).
        self.offsets = [0.0] * count
        self._on_windows = on_windows
        self._on_lost = on_lost
        self._done: asyncio.Future[None] | None = None
        self._all_ready: asyncio.Future[None] | None = None
        self._finished: set[int] = set()
        self._ready: set[int] = set()
        # Told of each worker's Held and Settled (``engine.quiet.QuietRelay``).
        self.relay: QuietRelay | None = None

    def alive(self) -> set[int]:
        """The workers that have not ended."""
        return set(range(self.count)) - self._finished

    async def start(self, timeout: float = 60.0) -> None:
        """Spawn the workers and wait until each is ready."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._all_ready = loop.create_future()
        deadline = loop.time() + timeout
        try:
            await asyncio.wait_for(self._spawn(), timeout)
            await asyncio.wait_for(asyncio.shield(self._all_ready),
                                   max(0.0, deadline - loop.time()))
        except TimeoutError:
            raise RunError(f"the load workers were not all ready within {timeout:g} s "
                           f"({len(self._ready)} of {self.count})") from None

    async def _spawn(self) -> None:
        raise NotImplementedError

    def _send(self, index: int, wire: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self, timeout: float = 5.0) -> None:
        """End every worker: join them, and end any that do not exit in time."""
        raise NotImplementedError

    def go(self, start_wall: float) -> None:
        """Start every worker at ``start_wall`` on the runner's clock (on each worker's own
        clock, moved by its offset)."""
        for i in range(self.count):
            if i not in self._finished:
                self._send(i, Go(start_wall=start_wall + self.offsets[i]).to_wire())

    def _received(self, index: int, wire: dict[str, Any]) -> None:
        message = FromWorker.model_validate(wire).root
        if isinstance(message, Windows):
            self._on_windows(index, [WindowStats.from_wire(w) for w in message.windows])
        elif isinstance(message, Held | Settled):
            if self.relay is not None and isinstance(message, Held):
                self.relay.held(index, message.reason, message.on)
            elif self.relay is not None:
                self.relay.answered(index, message.reason)
        elif isinstance(message, Ready):
            info = self.workers[index]
            info.node, info.pid = message.node, message.pid
            self._ready.add(index)
            if len(self._ready) == self.count and self._all_ready and not self._all_ready.done():
                self._all_ready.set_result(None)
        else:
            self.workers[index].saturation = message.saturation
            self._finish(index)

    def _cut(self, index: int, why: str) -> None:
        """Worker ``index`` is gone; unless it said it was done, it was lost."""
        if index in self._finished:
            return
        info = self.workers[index]
        info.lost = why
        if self._all_ready is not None and not self._all_ready.done():
            self._all_ready.set_exception(RunError(
                f"load worker {index} ended before it was ready: {why}"))
        elif self._on_lost is not None:
            self._on_lost(info)
        self._finish(index)

    def _finish(self, index: int) -> None:
        self._finished.add(index)
        if len(self._finished) == self.count and self._done and not self._done.done():
            self._done.set_result(None)

    async def wait(self) -> None:
        assert self._done is not None
        await self._done

    def send(self, message: Go | Stop | Force | Tokens | InForce) -> None:
        """Send ``message`` to every worker that is still there."""
        wire = message.to_wire()
        for i in range(self.count):
            if i not in self._finished:
                self._send(i, wire)

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


class ProcessPool(WorkerPool):
    """Workers in local processes, one pipe each."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ctx = mp.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs: list[Any] = []

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        for args in self.args:
            parent, child = self._ctx.Pipe()
            proc = self._ctx.Process(target=_process_main, name=f"enduro-worker-{args.index}",
                                     daemon=True, args=(args, child))
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
            loop.add_reader(parent.fileno(), self._on_readable, args.index)
            _keep_blocking(parent)

    def _on_readable(self, index: int) -> None:
        conn = self._conns[index]
        try:
            wire = conn.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(conn.fileno())
            proc = self._procs[index]
            proc.join(1.0)  # it closed its end: it is exiting, or gone
            self._cut(index, f"its process ended (exit code {proc.exitcode})")
            return
        self._received(index, wire)

    def _send(self, index: int, wire: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self._conns[index].send(wire)

    def exit_codes(self) -> list[int | None]:
        return [p.exitcode for p in self._procs]

    def close(self, timeout: float = 5.0) -> None:
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
