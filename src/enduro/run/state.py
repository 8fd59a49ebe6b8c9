"""``state.json`` of a running run: where it is, its live figures, resources and services;
rewritten every two seconds (on a writer thread) and at each turn of the run."""

from __future__ import annotations

import os
from typing import cast

from enduro.documents.service import ServiceRecord
from enduro.documents.state import LiveFigures, RunState, State
from enduro.observe.hist import percentiles_ms
from enduro.observe.metrics import Metrics
from enduro.run.context import RunContext
from enduro.run.rundir import RunDir
from enduro.run.stops import RunStatus
from enduro.run.timeline import Timeline
from enduro.run.watch import Watch
from enduro.services.supervisor import ServiceSet

__all__ = ["StateFile"]


class StateFile:
    """Writes one run's ``state.json``."""

    def __init__(self, ctx: RunContext, rundir: RunDir, timeline: Timeline, status: RunStatus,
                 metrics: Metrics, watch: Watch, services: ServiceSet | None) -> None:
        self.ctx = ctx
        self.rundir = rundir
        self.timeline = timeline
        self.status = status
        self.metrics = metrics
        self.watch = watch
        self.services = services

    def write(self, background: bool = False) -> None:
        """``state.json`` now, or (``background``, the periodic write) on a writer thread:
        the fsync never blocks the event loop."""
        services = self.services.statuses() if self.services is not None else {}
        # One constructor, not assignments: every value is checked (and a count coerced to
        # the float its field holds) as a reader of the file will see it.
        state = State(
            **self._core().to_json(),
            plan_file=str(self.ctx.loaded.source.resolve()),
            services_only=self.ctx.options.services_only,
            elapsed_s=round(self.timeline.load_elapsed(), 3),
            live=self._live_figures(),
            resources={k: {m: round(v, 2) for m, v in vals.items()}
                       for k, vals in self.watch.resources.items()},
            services={name: ServiceRecord.model_validate(data)
                      for name, data in services.items()},
            tables={s: dict(t) for s, t in self.watch.tables.items()} or None)
        self.rundir.write_state(state, background=background)

    def write_bare(self) -> None:
        """``state.json`` from the watchdog, which cannot rely on the live figures (another
        thread may be reading the metrics): the full state if it can be had, else the core."""
        try:
            self.write()
        except Exception:
            self.rundir.write_state(self._core())

    def _core(self) -> State:
        """The keys every state.json has (the exported schema lists them as required)."""
        return State(run_id=self.rundir.run_id, plan=self.ctx.plan.name,
                     # Checked by the model: the cast only tells the type checker so.
                     state=cast("RunState", self.status.state), pid=os.getpid(),
                     started_at=self.timeline.started_wall,
                     updated_at=self.timeline.clock.wall(), duration_s=self.ctx.duration,
                     seed=self.ctx.seed, stop_reason=self.status.stop_reason)

    def _live_figures(self) -> LiveFigures:
        if self.metrics.sealed < 0:
            return LiveFigures()
        view = self.metrics.view(last_s=10)
        return LiveFigures(rps=round(view.rps, 1), errors=view.errors,
                           error_rate=round(view.error_rate, 6),
                           p95_ms=percentiles_ms(view.latency)["p95"],
                           requests_total=self.metrics.view(elapsed_s=1).requests)
