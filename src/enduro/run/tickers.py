"""What a run does on a beat while its load runs: heartbeat lines, JSON snapshots, state.json
(and the Prometheus exposition of ``--metrics-port``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from enduro.observe.exposition import Exporter
from enduro.observe.hist import percentiles_ms
from enduro.observe.metrics import Metrics
from enduro.report.terminal import heartbeat_line, services_line
from enduro.run.context import RunContext
from enduro.run.rundir import RunDir
from enduro.run.runlog import RunLog
from enduro.run.state import StateFile
from enduro.run.stops import RunStatus
from enduro.run.timeline import Timeline
from enduro.run.view import LiveView
from enduro.run.watch import Watch
from enduro.services.supervisor import ServiceSet

__all__ = ["Tickers"]


class Tickers:
    """The periodic tasks of a run, each an endless coroutine its caller cancels."""

    def __init__(self, ctx: RunContext, runlog: RunLog, timeline: Timeline, rundir: RunDir,
                 metrics: Metrics, *, status: RunStatus, state: StateFile, watch: Watch,
                 view: LiveView, services: ServiceSet | None) -> None:
        self.ctx = ctx
        self.runlog = runlog
        self.timeline = timeline
        self.rundir = rundir
        self.metrics = metrics
        self.status = status
        self.state = state
        self.watch = watch
        self.view = view
        self.services = services

    async def _after_window(self) -> None:
        # A little after each boundary, so that the window just ended has been sealed.
        await self.timeline.clock.sleep(min(0.2, self.ctx.plan.window / 5))

    async def heartbeat(self) -> None:
        """A line of figures (or of the services' states) every ``observe.heartbeat``."""
        every = self.ctx.plan.observe.heartbeat
        await self._after_window()
        while True:
            await self.timeline.clock.sleep(every)
            elapsed = self.timeline.load_elapsed()
            line = (services_line(self.services.statuses() if self.services else {}, elapsed)
                    if self.ctx.options.services_only
                    else heartbeat_line(self.metrics, elapsed, min(every, 60.0)))
            self.runlog.event("heartbeat", line=line)
            self.runlog.log(line, echo=not self.view.is_live())

    async def snapshots(self) -> None:
        """The figures so far, in ``snapshots/`` every ``observe.snapshot``."""
        every = self.ctx.plan.observe.snapshot
        n = 0
        await self._after_window()
        while True:
            await self.timeline.clock.sleep(every)
            n += 1
            elapsed = self.timeline.load_elapsed()
            snap = {"t": round(elapsed, 3), "wall": self.timeline.clock.wall(),
                    "total": self.metrics.view(elapsed_s=elapsed).summary(),
                    "ops": {op: self.metrics.view({op}, elapsed_s=elapsed).summary()
                            for op in self.ctx.ops}}
            path = self.rundir.path / "snapshots" / f"snapshot-{n:04d}-t{int(elapsed)}s.json"
            await asyncio.to_thread(path.write_text, json.dumps(snap, indent=2) + "\n")
            self.runlog.event("snapshot", path=str(path.relative_to(self.rundir.path)))

    async def state_file(self) -> None:
        """state.json every two seconds, and the exposition on ``--metrics-port``."""
        exporter = None
        port = self.ctx.options.metrics_port
        if port is not None:
            exporter = Exporter()
            exporter.start(port)
            self.runlog.log(f"metrics: http://127.0.0.1:{port}/metrics")
        while True:
            if exporter is not None:
                exporter.update(self.exposition())
            await self.timeline.clock.sleep(2.0)
            self.state.write(background=True)

    def exposition(self) -> dict[str, Any]:
        """The live figures of ``--metrics-port``: per op, totals and the last ten seconds."""
        ops = {}
        elapsed = self.timeline.load_elapsed()
        for op in self.ctx.ops:
            total = self.metrics.view({op}, elapsed_s=max(elapsed, 1e-3))
            recent = self.metrics.view({op}, last_s=10)
            pct = percentiles_ms(recent.latency)
            ops[op] = {"requests": total.requests, "errors_by_class": dict(total.classes),
                       "rps_10s": recent.rps,
                       "latency_10s_ms": {"0.5": pct["p50"], "0.95": pct["p95"],
                                          "0.99": pct["p99"]}}
        return {"plan": self.ctx.plan.name, "run_id": self.rundir.run_id,
                "state": self.status.state, "elapsed_s": elapsed, "ops": ops,
                "resources": dict(self.watch.resources)}
