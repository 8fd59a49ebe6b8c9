"""What a run does on a beat while its load runs: heartbeat lines, JSON snapshots, state.json
(and the Prometheus exposition of ``--metrics-port``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from enduro.observe.exposition import Exporter
from enduro.observe.hist import percentiles_ms
from enduro.observe.metrics import Metrics
from enduro.report.terminal import HEARTBEAT_DEFAULT, heartbeat_line, services_line
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
                 view: LiveView, services: ServiceSet | None,
                 faults: Callable[[], list[str]] | None = None) -> None:
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
        self.faults = faults  # the faults in force now, as "kind target"

    async def _after_window(self) -> None:
        # A little after each boundary, so that the window just ended has been sealed.
        await self.timeline.clock.sleep(min(0.2, self.ctx.plan.window / 5))

    def heartbeat_fields(self) -> list[str]:
        """``observe.heartbeat_fields``, or the request figures and, when the plan has them,
        flows, SSE events and faults in force."""
        plan = self.ctx.plan
        if plan.observe.heartbeat_fields is not None:
            return list(plan.observe.heartbeat_fields)
        kinds = {w.kind for w in plan.workloads.values()}
        return [*HEARTBEAT_DEFAULT, *(["flows"] if "flow" in kinds else []),
                *(["events"] if "sse" in kinds else []), *(["faults"] if plan.faults else [])]

    def _extra(self) -> dict[str, str]:
        """What the heartbeat knows beyond the figures: faults in force and services."""
        faults = self.faults() if self.faults is not None else []
        statuses = self.services.statuses() if self.services is not None else {}
        return {"faults": ",".join(faults) or "none",
                "services": f"{sum(1 for s in statuses.values() if s.get('state') == 'up')}"
                            f"/{len(statuses)}",
                "restarts": str(sum(int(s.get("restarts") or 0) for s in statuses.values()))}

    async def heartbeat(self) -> None:
        """A line of figures (or of the services' states) every ``observe.heartbeat``."""
        every = self.ctx.plan.observe.heartbeat
        fields = self.heartbeat_fields()
        await self._after_window()
        while True:
            await self.timeline.clock.sleep(every)
            elapsed = self.timeline.load_elapsed()
            line = (services_line(self.services.statuses() if self.services else {}, elapsed)
                    if self.ctx.options.services_only
                    else heartbeat_line(self.metrics, elapsed, min(every, 60.0), fields,
                                        self._extra()))
            self.runlog.event("heartbeat", line=line)
            self.runlog.log(line, echo=not self.view.is_live())

    async def snapshots(self) -> None:
        """The figures so far, in ``snapshots/`` every ``observe.snapshot``."""
        every = self.ctx.plan.observe.snapshot
        n = 0
        while True:  # the first at t=0: the state the run started from
            elapsed = self.timeline.load_elapsed()
            snap = {"t": round(elapsed, 3), "wall": self.timeline.clock.wall(),
                    "total": self.metrics.view(elapsed_s=elapsed).summary(),
                    "ops": {op: self.metrics.view({op}, elapsed_s=elapsed).summary()
                            for op in self.ctx.ops},
                    "resources": {k: dict(v) for k, v in self.watch.resources.items()},
                    "scraped": {k: dict(v) for k, v in self.watch.scraped.items()},
                    "tables": {s: {n: t.to_json() for n, t in by_name.items()}
                               for s, by_name in self.watch.tables.items()},
                    "faults_in_force": self.faults() if self.faults is not None else [],
                    "services": self.services.statuses() if self.services else {}}
            path = self.rundir.path / "snapshots" / f"snapshot-{n:04d}-t{int(elapsed)}s.json"
            await asyncio.to_thread(path.write_text,
                                    json.dumps(snap, indent=2, default=str) + "\n")
            self.runlog.event("snapshot", path=str(path.relative_to(self.rundir.path)))
            n += 1
            await self.timeline.clock.sleep(every if n > 1 else max(0.0, every - elapsed))

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
