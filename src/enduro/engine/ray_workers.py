"""``--workers N --cluster ADDRESS``: the load's workers as Ray actors on an existing cluster.

Only the transport differs from local workers (``engine.workers``): each actor holds a
``WorkerSide``; the runner calls ``deliver`` with each message to it, and keeps one ``take``
call in flight per actor, which returns what the worker sent since (windows, ``Done``) or
after a second of nothing. An actor that dies (its node lost, out of memory, killed) fails its
``take``: the worker is lost (``WorkerPool._cut``).

Actors are spread over the cluster's alive nodes that have CPUs, in turn, one CPU each (a
cluster with fewer CPUs than workers is refused). Before the load the runner reads each
actor's wall clock a few times and keeps the reading of the shortest round trip: the
difference, less half that trip, is the node's offset, by which its ``go`` is moved. A node
whose offset is above ``MAX_CLOCK_OFFSET_S`` (round-trip uncertainty included) is refused: its
timestamps (``history.jsonl``, faults) would not line up with the runner's.

This module imports ``ray``: it is imported only when ``--cluster`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from enduro.base.errors import RunError
from enduro.engine.load import LoadFiles
from enduro.engine.workers import WorkerArgs, WorkerPool, WorkerSide

__all__ = ["MAX_CLOCK_OFFSET_S", "ClockOffsetError", "LoadActor", "RayPool", "clock_offset",
           "max_clock_offset", "unseen_dirs"]

# The largest clock offset (seconds) a node may have from the runner's, uncertainty included;
# ENDURO_MAX_CLOCK_OFFSET_S overrides it.
MAX_CLOCK_OFFSET_S = 0.1
CONNECT_TIMEOUT_S = 60.0  # joining the cluster (ray.init; a Ray Client proxy may take a while)
_CLOCK_READS = 7
_TAKE_WAIT_S = 1.0
_CLIENT_TRIES = 3
T = TypeVar("T")


class ClockOffsetError(RunError):
    """A node's clock is too far from the runner's for its windows to line up."""


def max_clock_offset() -> float:
    """The bound in force: ``ENDURO_MAX_CLOCK_OFFSET_S`` or ``MAX_CLOCK_OFFSET_S``."""
    text = os.environ.get("ENDURO_MAX_CLOCK_OFFSET_S", "")
    try:
        return float(text) if text else MAX_CLOCK_OFFSET_S
    except ValueError:
        return MAX_CLOCK_OFFSET_S


@dataclass(frozen=True)
class ClockReading:
    """One node's clock against the runner's: ``offset`` (theirs minus ours) to within
    ``uncertainty`` (half the round trip of the reading)."""

    offset: float
    uncertainty: float


def clock_offset(reads: list[tuple[float, float, float]]) -> ClockReading:
    """The offset from ``(sent, their_clock, received)`` readings (``sent`` and ``received``
    on the runner's clock): the reading of the shortest round trip, taken at its middle."""
    sent, theirs, received = min(reads, key=lambda r: r[2] - r[0])
    return ClockReading(theirs - (sent + received) / 2, (received - sent) / 2)


def unseen_dirs(files: LoadFiles) -> list[Path]:
    """The folders this node lacks of those the load writes into (``history.jsonl``, the
    workloads' outputs): on a node of another machine, the runner's run directory."""
    wanted = [files.history, *(path for _, path in files.outputs)]
    return sorted({p.parent for p in wanted if p is not None and not p.parent.is_dir()})


class LoadActor:
    """One worker inside a Ray actor (made remote by ``RayPool``; async, so that ``take``
    waits while the load runs on the actor's event loop)."""

    def __init__(self, args: WorkerArgs) -> None:
        self._args = args
        self._outbox: list[dict[str, Any]] = []
        self._news = asyncio.Event()
        self._side: WorkerSide | None = None
        self._task: asyncio.Task[None] | None = None

    def _send(self, wire: dict[str, Any]) -> None:
        self._outbox.append(wire)
        self._news.set()

    async def clock(self) -> float:
        return time.time()

    async def start(self) -> str | None:
        """Start the worker; what stops it from starting on this node, if anything."""
        node = ray.get_runtime_context().get_node_id()
        unseen = unseen_dirs(self._args.files)
        if unseen:
            return (f"node {node} has no {', '.join(map(str, unseen))}: the run directory "
                    "must be on a path every node shares (history.jsonl and the workloads' "
                    "own outputs are written there)")
        side = self._side = WorkerSide(self._args, self._send, node)
        self._task = asyncio.create_task(side.run())
        return None

    async def deliver(self, wire: dict[str, Any]) -> None:
        assert self._side is not None
        self._side.receive(wire)

    async def take(self, wait: float) -> list[dict[str, Any]]:
        """What the worker sent since the last call: at once if anything, else after
        ``wait`` seconds or the next message. A failed load raises here."""
        if not self._outbox:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), wait)
        self._news.clear()
        out, self._outbox = self._outbox, []
        task = self._task
        if not out and task is not None and task.done() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
        return out


class RayPool(WorkerPool):
    """Workers as Ray actors on the cluster at ``address`` (``auto``: ``RAY_ADDRESS``, or the
    cluster this machine belongs to)."""

    def __init__(self, *args: Any, address: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.address = address
        self._actors: list[Any] = []
        self._pumps: list[asyncio.Task[None]] = []
        self._joined = False  # ray.init returned: there is a connection to close

    async def start(self, timeout: float = 180.0) -> None:
        """As ``WorkerPool.start``, with longer to wait: a node may have to start a worker
        process (and import enduro) for each actor before it answers."""
        await super().start(timeout)

    def _connect(self) -> list[str]:
        """Join the cluster; its alive nodes with CPUs, in a stable order."""
        # A Ray Client server (ray://) starts a server process per connection, which may
        # fail to come up on a busy head ("Initialization failure from server"): tried again.
        tries = _CLIENT_TRIES if self.address.startswith("ray://") else 1
        for attempt in range(1, tries + 1):
            try:
                # Off the main thread: there, ray.init would put a handler of its own on
                # SIGTERM, which the run handles itself.
                ray.init(address=self.address, log_to_driver=False,
                         logging_level=logging.ERROR, ignore_reinit_error=True)
                break
            except (ConnectionError, RuntimeError, ValueError) as exc:
                if attempt == tries:
                    raise RunError(f"--cluster {self.address}: cannot join the Ray cluster "
                                   f"({str(exc).splitlines()[0] if str(exc) else exc!r})"
                                   ) from None
                time.sleep(1.0)
        self._joined = True
        # Nodes without CPUs (a KubeRay head often has none) take no worker.
        nodes = sorted(n["NodeID"] for n in ray.nodes()
                       if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0)
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < self.count or not nodes:
            raise RunError(f"--workers {self.count}: the Ray cluster has {cpus:g} CPUs; each "
                           f"worker takes one")
        return nodes

    async def _spawn(self) -> None:
        nodes = await _off_the_loop(self._connect, CONNECT_TIMEOUT_S,
                                    f"--cluster {self.address}: the Ray cluster did not "
                                    f"answer within {CONNECT_TIMEOUT_S:g} s")
        remote = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(LoadActor)
        for args in self.args:
            strategy = NodeAffinitySchedulingStrategy(nodes[args.index % len(nodes)],
                                                      soft=True)
            self._actors.append(remote.options(
                name=None, scheduling_strategy=strategy).remote(args))
        await asyncio.gather(*(self._measure(i) for i in range(self.count)))
        for i, actor in enumerate(self._actors):
            problem = await actor.start.remote()
            if problem is not None:
                raise RunError(f"load worker {i} cannot start: {problem}")
            self._pumps.append(asyncio.create_task(self._pump(i)))

    async def _measure(self, index: int) -> None:
        """The node's clock offset: refused above the bound."""
        actor = self._actors[index]
        await actor.clock.remote()  # the first call waits for the actor to be placed
        reads = []
        for _ in range(_CLOCK_READS):
            sent = time.time()
            theirs = await actor.clock.remote()
            reads.append((sent, theirs, time.time()))
        reading = clock_offset(reads)
        bound = max_clock_offset()
        worst = abs(reading.offset) + reading.uncertainty
        if worst > bound:
            raise ClockOffsetError(
                f"load worker {index}'s node clock is {reading.offset * 1000:+.1f} ms from "
                f"this machine's (± {reading.uncertainty * 1000:.1f} ms), above the bound of "
                f"{bound * 1000:g} ms: synchronise the nodes' clocks (NTP, chrony)")
        self.offsets[index] = reading.offset

    async def _pump(self, index: int) -> None:
        """Bring back what worker ``index`` sends, until it is done or lost."""
        actor = self._actors[index]
        while index not in self._finished:
            try:
                wires = await actor.take.remote(_TAKE_WAIT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the actor died, or its load failed
                self._cut(index, _why(exc))
                return
            for wire in wires:
                self._received(index, wire)

    def _send(self, index: int, wire: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # a dead actor: its pump tells
            self._actors[index].deliver.remote(wire)

    def close(self, timeout: float = 5.0) -> None:
        """Stop bringing windows back and kill every actor: nothing is left in the cluster."""
        for pump in self._pumps:
            pump.cancel()
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        if self._joined:  # not while ray.init still waits on its thread
            with contextlib.suppress(Exception):
                ray.shutdown()


async def _off_the_loop(work: Callable[[], T], timeout: float, late: str) -> T:
    """``work()`` on a thread of its own, bounded by ``timeout`` (then ``RunError(late)``).
    A daemon thread: ``ray.init`` may wait on an unreachable address for many minutes, and
    must not keep the process from exiting once the run has given up on it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = work(), None
        except BaseException as exc:  # handed to the loop, raised there
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="enduro-ray-connect", daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(done), timeout)
    except TimeoutError:
        raise RunError(late) from None


def _why(exc: BaseException) -> str:
    name = type(exc).__name__
    if "ActorDied" in name or "ActorUnavailable" in name or "ActorError" in name:
        return f"its Ray actor died ({name})"
    return f"{name}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
