"""A run's load, in one of its four modes: a job (``enduro loop``) in a thread, services
only (``enduro supervise``) until stopped, the load in this process, or in ``--workers``
processes that start on a common go; with the run's background tasks around it."""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from enduro.base.errors import FatalWorkerError
from enduro.documents.worker_messages import InForce
from enduro.engine.kinds import LoadFiles, outputs
from enduro.engine.load import LoadControl, LoadShare, run_load
from enduro.engine.quiet import QuietRelay
from enduro.engine.workers import ProcessPool, WorkerInfo, WorkerPool
from enduro.faults.chaos import Chaos
from enduro.run.background import supervise
from enduro.run.context import RunContext
from enduro.run.rundir import RunDir
from enduro.run.stops import Stops
from enduro.run.teardown import Teardown
from enduro.run.tickers import Tickers
from enduro.run.timeline import Timeline
from enduro.run.view import LiveView
from enduro.run.watch import Watch
from enduro.run.windows import WindowSink

__all__ = ["Load"]


class Load:
    """Drives the load of one run; ``job_result`` holds what a job returned."""

    def __init__(self, ctx: RunContext, stops: Stops, timeline: Timeline, *, rundir: RunDir,
                 history: Path | None, sink: WindowSink, chaos: Chaos, control: LoadControl,
                 tickers: Tickers, watch: Watch, view: LiveView, teardown: Teardown) -> None:
        self.ctx = ctx
        self.stops = stops
        self.timeline = timeline
        self.rundir = rundir
        self.history = history
        self.sink = sink
        self.chaos = chaos
        self.control = control
        self.tickers = tickers
        self.watch = watch
        self.view = view
        self.teardown = teardown
        self.pool: WorkerPool | None = None
        self._relay: QuietRelay | None = None
        self.lost: list[WorkerInfo] = []
        self._saturation: float | None = None  # the in-process load's
        self.job_result: Any = None
        self._side: list[asyncio.Task[Any]] = []

    def _supervised(self, name: str, work: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        return asyncio.create_task(supervise(name, work, clock=self.ctx.clock,
                                             on_error=self.stops.runlog.worker_error))

    async def drive(self) -> None:
        """The load in its mode, the run's background tasks around it; a fatal worker error
        fails the run."""
        side = self._side = [
            self._supervised("heartbeat", self.tickers.heartbeat),
            self._supervised("snapshot", self.tickers.snapshots),
            self._supervised("state", self.tickers.state_file),
            self._supervised("sampler", self.watch.sampler),
            asyncio.create_task(self.watch.loop_lag.run()),
        ]
        for name, service in self.ctx.plan.services.items():
            if service.scrape is not None:
                side.append(self._supervised(f"scrape:{name}",
                                             functools.partial(self.watch.scraper, name)))
        live = self.view.start()
        try:
            if live is not None:
                side.append(asyncio.create_task(self.view.updates(live)))
            await self._mode()
        except FatalWorkerError as exc:
            self.stops.status.fatal = exc
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            if live is not None:
                live.stop()

    async def _mode(self) -> None:
        options = self.ctx.options
        if options.job is not None:
            job = options.job
            self._begin(bounded=False)  # the job's own limits bound it
            self.job_result = await asyncio.to_thread(job, self.stops.stop.is_set)
        elif options.services_only:
            self._begin(bounded=False)  # supervision lasts until stopped
            await self._services_only()
        elif options.workers <= 1 and options.cluster is None:
            await self._in_process(self._begin())
        else:
            await self._in_workers()

    def _begin(self, bounded: bool = True) -> float:
        """The load starts now (``Timeline.begin_load``), and the fault schedule with it.
        Returns the start on the engine's clock."""
        start = self.timeline.begin_load()
        self.stops.runlog.event("load_started", workers=self.ctx.options.workers)
        if any(w.not_during for w in self.ctx.plan.workloads.values()):
            self.control.quiet.listeners.append(self._in_force_event())
        if self.chaos.runner is not None:
            quiet = self.control.quiet
            self.chaos.runner.on_force = functools.partial(quiet.set, "faults", "runner")
            self.chaos.runner.settle = self._settle
            self._side.append(asyncio.create_task(self.chaos.run(self.timeline.load_start)))
        self.stops.arm_load(bounded)
        return start

    def _in_force_event(self) -> Callable[[str, str, bool], None]:
        """A listener that records in events.jsonl when churn or faults come into force
        anywhere in the run and when they end (``in_force``: reason, on), the stretches in
        which the workloads with ``not_during`` pause."""
        quiet, event = self.control.quiet, self.stops.runlog.event
        last: dict[str, bool] = {}

        def heard(reason: str, _source: str, _on: bool) -> None:
            on = quiet.in_force((reason,)) is not None
            if last.get(reason, False) != on:
                last[reason] = on
                event("in_force", reason=reason, on=on)
        return heard

    async def _settle(self) -> None:
        """Before a fault is applied: the workloads that stay clear of faults, here and in
        every worker, have stopped and have nothing in flight (within the grace)."""
        await self.control.quiet.settled(self.ctx.plan.grace)
        if self._relay is not None:
            await self._relay.settled("faults", self.ctx.plan.grace)

    async def _services_only(self) -> None:
        """Keep the services up, supervised, until stopped or the duration passes."""
        stop, duration = self.stops.stop, self.ctx.duration
        stopper = asyncio.ensure_future(stop.wait())
        timer = asyncio.ensure_future(self.ctx.clock.sleep(duration))
        try:
            await asyncio.wait([stopper, timer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            timer.cancel()
        if not stop.is_set():
            self.stops.status.stop_reason = f"supervised for --duration {duration:g}s"

    def files(self) -> LoadFiles:
        """Where the load reads and writes files."""
        return LoadFiles(plan_dir=self.ctx.plan_dir, history=self.history,
                         outputs=tuple((o.file, self.rundir.file(o.file))
                                       for o in outputs(self.ctx.plan)))

    def worker_summaries(self) -> list[dict[str, Any]]:
        """Each load worker for results.json (``documents.results.Worker``): none for a job
        or services only, this process for an in-process load."""
        options, requests = self.ctx.options, self.sink.requests
        if self.pool is not None:
            return [{"index": w.index, "node": w.node, "share": round(1 / self.pool.count, 6),
                     "requests": requests.get(w.index, 0), "saturation": w.saturation,
                     **({"lost": w.lost} if w.lost else {})} for w in self.pool.workers]
        if options.job is not None or options.services_only or self._saturation is None:
            return []
        return [{"index": 0, "node": socket.gethostname(), "share": 1.0,
                 "requests": requests.get(0, 0), "saturation": self._saturation}]

    async def _in_process(self, start_mono: float) -> None:
        ctx, stops = self.ctx, self.stops
        cpu0, wall0 = time.process_time(), time.monotonic()

        async def work() -> None:
            await run_load(ctx.plan, seed=ctx.seed, share=LoadShare(),
                           base_urls=ctx.base_urls(), sink=lambda ws: self.sink.add(0, ws),
                           duration=ctx.duration, start_mono=start_mono, stop=stops.stop,
                           force=stops.force, grace=ctx.plan.grace, control=self.control,
                           files=self.files())
        try:
            await supervise("load", work, clock=ctx.clock, on_error=stops.runlog.worker_error,
                            stop=stops.stop)
        finally:
            elapsed = time.monotonic() - wall0
            self._saturation = (round((time.process_time() - cpu0) / elapsed, 3)
                                if elapsed > 0 else None)

    def _pool(self) -> WorkerPool:
        """The workers: local processes, or Ray actors with ``--cluster``."""
        ctx = self.ctx
        args = (ctx.plan, ctx.options.workers, ctx.seed, ctx.base_urls(), ctx.duration,
                ctx.plan.grace, self.sink.add)
        files, on_lost = self.files(), self._lost
        if ctx.options.cluster is not None:
            # Imported here: ray is an optional extra, loaded only for --cluster.
            from enduro.engine.ray_workers import RayPool
            return RayPool(*args, files=files, on_lost=on_lost, address=ctx.options.cluster)
        return ProcessPool(*args, files=files, on_lost=on_lost)

    async def _in_workers(self) -> None:
        ctx, stops = self.ctx, self.stops
        pool = self.pool = self._pool()
        # Faults and churn in force anywhere reach the workloads of every worker.
        relay = self._relay = pool.relay = QuietRelay(
            self.control.quiet, lambda reason, on: pool.send(InForce(reason=reason, on=on)),
            pool.alive)
        try:
            await self.teardown.until(pool.start(), stops.stop)
            if stops.stop.is_set():
                return
            stops.runlog.event("workers_ready", cluster=ctx.options.cluster, workers=[
                {"index": w.index, "node": w.node, "pid": w.pid,
                 "clock_offset_ms": round(pool.offsets[w.index] * 1000, 3)}
                for w in pool.workers])
            pool.send_all("tokens", dict(self.control.credentials.tokens))
            # Faults, phases and windows count from the workers' common go.
            self._begin()
            pool.go(ctx.clock.wall())
            await self._join(pool)
        finally:
            relay.close()
            pool.close()

    def _lost(self, worker: WorkerInfo) -> None:
        """A worker ended without finishing its load (its process or actor died): its
        windows so far are kept; the run goes on without it, or fails, per the plan's
        ``on_worker_loss``."""
        stops, policy = self.stops, self.ctx.plan.on_worker_loss
        self.sink.lost(worker.index)
        self.lost.append(worker)
        stops.runlog.event("worker_lost", index=worker.index, node=worker.node,
                           reason=worker.lost or "", on_worker_loss=policy)
        what = f"load worker {worker.index} (node {worker.node or '?'}) was lost: {worker.lost}"
        if policy == "continue":
            stops.runlog.log(f"warning: {what}; the load goes on without it "
                             "(on_worker_loss: continue)")
        elif not stops.status.interrupted and stops.status.fatal is None:
            stops.failed(FatalWorkerError(f"{what} (on_worker_loss: fail)"), echo=True)
            stops.stop.set()

    async def _join(self, pool: WorkerPool) -> None:
        """Wait for the workers to end; on a stop, tell them, and force them after
        ``grace`` + 10 s (or at once on a forced stop)."""
        stops = self.stops
        waiter = asyncio.ensure_future(pool.wait())
        stopper = asyncio.ensure_future(stops.stop.wait())
        await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            pool.send_all("stop")
            forcer = asyncio.ensure_future(stops.force.wait())
            await asyncio.wait([waiter, forcer], timeout=self.ctx.plan.grace + 10,
                               return_when=asyncio.FIRST_COMPLETED)
            forcer.cancel()
            if not waiter.done():
                pool.send_all("force")
                await asyncio.wait([waiter], timeout=5)
                waiter.cancel()
        stopper.cancel()

    def on_token(self, tokens: dict[str, str]) -> None:
        """A restarted service wrote a new token: requests use it from now on."""
        self.control.update_tokens(tokens)
        if self.pool is not None:
            self.pool.send_all("tokens", dict(tokens))
