"""The live terminal view of a run: the load's figures, or the services' table when only
services run; redrawn every second while the load runs."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.live import Live

from enduro.observe.metrics import Metrics
from enduro.report.terminal import live_view, services_view
from enduro.run.context import RunContext
from enduro.run.stops import RunStatus
from enduro.run.timeline import Timeline
from enduro.run.watch import Watch
from enduro.services.supervisor import ServiceSet

__all__ = ["LiveView"]


class LiveView:
    """What the terminal shows while a run goes."""

    def __init__(self, ctx: RunContext, console: Console, timeline: Timeline,
                 status: RunStatus, metrics: Metrics, watch: Watch,
                 services: ServiceSet | None) -> None:
        self.ctx = ctx
        self.console = console
        self.timeline = timeline
        self.status = status
        self.metrics = metrics
        self.watch = watch
        self.services = services

    def is_live(self) -> bool:
        """A live view, by option or (unset) when both the console and stdout are terminals;
        heartbeat lines are printed only without one."""
        if self.ctx.options.live is not None:
            return self.ctx.options.live
        return self.console.is_terminal and sys.stdout.isatty()

    def start(self) -> Live | None:
        """The live display, started; None without a live view."""
        if not self.is_live():
            return None
        live = Live(self.render(), console=self.console, refresh_per_second=2, transient=True)
        live.start()
        return live

    def render(self) -> Any:
        statuses = self.services.statuses() if self.services else {}
        elapsed = self.timeline.load_elapsed()
        if self.ctx.options.services_only:
            return services_view(statuses, plan=self.ctx.plan.name, elapsed_s=elapsed)
        return live_view(self.metrics, self.ctx.ops, plan=self.ctx.plan.name,
                         elapsed_s=elapsed, duration_s=self.ctx.duration,
                         state=self.status.state, resources=self.watch.resources,
                         scraped=self.watch.scraped, tables=self.watch.tables)

    async def updates(self, live: Live) -> None:
        """Redraw ``live`` every second, until cancelled."""
        while True:
            await self.timeline.clock.sleep(1.0)
            live.update(self.render())
