"""A run's watch beyond its own requests: resources of the services' process trees and of
the generator (with its saturation), and the figures scraped from services."""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any

from enduro.documents.tables import ScrapedTable
from enduro.observe.sampler import CpuRate, LoopLag, sample_tree
from enduro.observe.scrape import scrape_client, scrape_service
from enduro.observe.store import Store
from enduro.plan.tokens import Credentials, Filled
from enduro.run.context import RunContext
from enduro.run.runlog import RunLog
from enduro.run.timeline import Timeline
from enduro.services.supervisor import ServiceSet

__all__ = ["Watch"]


class Watch:
    """Samples and scrapes of one run, stored in ``store`` and kept latest-first for the
    live view, state.json and the exposition."""

    def __init__(self, ctx: RunContext, timeline: Timeline, runlog: RunLog, *,
                 store: Store | None, services: ServiceSet | None,
                 credentials: Credentials) -> None:
        self.ctx = ctx
        self.timeline = timeline
        self.runlog = runlog
        self.store = store
        self.services = services
        self.credentials = credentials
        self.resources: dict[str, dict[str, float]] = {}
        self.loop_lag = LoopLag()
        self.saturated_samples = 0
        self.samples_taken = 0
        self.scraped: dict[str, dict[str, float]] = {}
        # Per service, its tables as last scraped (``scrape.json.tables``).
        self.tables: dict[str, dict[str, ScrapedTable]] = {}

    def generator_summary(self) -> dict[str, Any]:
        """The generator section of results.json: whether its figures may be suspect."""
        return {"saturated": self.saturated_samples > 0,
                "saturated_samples": self.saturated_samples, "samples": self.samples_taken,
                "loop_lag_worst_ms": round(self.loop_lag.worst * 1000, 2)}

    async def sampler(self) -> None:
        """Resources of every managed service's process tree and of the generator."""
        every = self.ctx.plan.observe.sample
        rates = CpuRate()
        while True:
            t = round(self.timeline.load_elapsed(), 3)
            targets: dict[str, int] = {"generator": os.getpid()}
            if self.services is not None:
                for name, entry in self.services.entries.items():
                    proc = entry.process
                    if proc is not None and proc.proc is not None and proc.returncode is None:
                        targets[f"service:{name}"] = proc.proc.pid
            for target, pid in targets.items():
                # The generator is this process and its load workers, not the services or
                # the demo it may have started.
                values = await asyncio.to_thread(
                    functools.partial(sample_tree, pid, children="multiprocessing"
                                      if target == "generator" else None))
                if values is None:
                    continue
                pct = rates.percent(target, values.pop("cpu_s"))
                if pct is not None:
                    values["cpu_pct"] = pct
                if target == "generator":
                    values["loop_lag_ms"] = self.loop_lag.take()
                    self._check_saturation(values)
                self.resources[target] = values
                if self.store is not None:
                    self.store.add_samples(t, target, values)
            if self.store is not None and not self.ctx.plan.workloads:
                # Without load no window triggers the roll-up (``enduro supervise``).
                self.store.roll_up(t)
            await self.timeline.clock.sleep(every)

    def _check_saturation(self, values: dict[str, float]) -> None:
        obs = self.ctx.plan.observe
        self.samples_taken += 1
        # Local load workers are this process's children; Ray actors (--cluster) are not.
        local = 0 if self.ctx.options.cluster is not None else self.ctx.options.workers
        busy = values.get("cpu_pct", 0.0) / max(1, local + (1 if local > 1 else 0))
        if busy >= obs.saturation_cpu * 100 or values["loop_lag_ms"] >= obs.saturation_lag * 1e3:
            self.saturated_samples += 1
            if self.saturated_samples == 1:
                self.runlog.event("generator_saturated", cpu_pct=values.get("cpu_pct"),
                                  loop_lag_ms=values["loop_lag_ms"])
                self.runlog.log("the load generator is saturated (CPU or event-loop lag); "
                                "latency figures may be inflated by the generator itself; "
                                "try --workers")

    async def scraper(self, name: str) -> None:
        """Scrape service ``name`` every ``scrape.every`` until cancelled."""
        spec = self.ctx.plan.services[name].scrape
        assert spec is not None
        # One client and one TLS context (the scrape's ``tls``) for all its scrapes.
        client = scrape_client(spec)
        # The current token at each scrape (a restarted service wrote a new one).
        headers = Filled(dict(spec.headers), self.credentials)
        try:
            while True:
                t = round(self.timeline.load_elapsed(), 3)
                scraped = await scrape_service(client, spec, headers.get(), t)
                values = scraped.values
                if scraped.tables:
                    self.tables.setdefault(name, {}).update(scraped.tables)
                if self.store is not None:
                    self.store.add_scrapes(t, name, values)
                latest = self.scraped.setdefault(name, {})
                for metric, labels, value in values:
                    if not labels:
                        latest[metric] = value
                await self.timeline.clock.sleep(spec.every)
        finally:
            await client.close()
