"""A run's observation: the window store, resource sampling, scraping, saturation, the
live exposition snapshot and the resource summary of results.json."""

from __future__ import annotations

import asyncio
import functools
import os
from typing import TYPE_CHECKING, Any

from enduro.observe.hist import percentiles_ms
from enduro.observe.sampler import CpuRate, LoopLag, sample_tree
from enduro.observe.scrape import scrape_client, scrape_once
from enduro.observe.window import WindowStats
from enduro.plan.tokens import Filled

if TYPE_CHECKING:
    from enduro.run.run import Run

__all__ = ["Watch"]


class Watch:
    """Everything a run observes beyond its own requests; owned by the ``Run``."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.resources: dict[str, dict[str, float]] = {}
        self.loop_lag = LoopLag()
        self.saturated_samples = 0
        self.samples_taken = 0
        self.scraped: dict[str, dict[str, float]] = {}

    def generator_summary(self) -> dict[str, Any]:
        return {"saturated": self.saturated_samples > 0,
                "saturated_samples": self.saturated_samples, "samples": self.samples_taken,
                "loop_lag_worst_ms": round(self.loop_lag.worst * 1000, 2)}

    def store_window(self, index: int, windows: list[WindowStats], phase: str | None) -> None:
        store, window = self.run.store, self.run.plan.window
        if store is not None:
            store.add_windows(index * window, window, windows, phase)
            if index % 60 == 59:
                store.roll_up(index * window)

    async def sampler(self) -> None:
        """Resources of every managed service's process tree and of the generator."""
        every = self.run.plan.observe.sample
        rates = CpuRate()
        while True:
            t = round(self.run.load_elapsed(), 3)
            targets: dict[str, int] = {"generator": os.getpid()}
            if self.run.services is not None:
                for name, entry in self.run.services.entries.items():
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
                if self.run.store is not None:
                    self.run.store.add_samples(t, target, values)
            if self.run.store is not None and not self.run.plan.workloads:
                # Without load no window triggers the roll-up (``enduro supervise``).
                self.run.store.roll_up(t)
            await self.run.clock.sleep(every)

    def _check_saturation(self, values: dict[str, float]) -> None:
        obs = self.run.plan.observe
        self.samples_taken += 1
        busy = values.get("cpu_pct", 0.0) / max(1, self.run.options.workers + (
            1 if self.run.options.workers > 1 else 0))
        if busy >= obs.saturation_cpu * 100 or values["loop_lag_ms"] >= obs.saturation_lag * 1e3:
            self.saturated_samples += 1
            if self.saturated_samples == 1:
                self.run.event("generator_saturated", cpu_pct=values.get("cpu_pct"),
                           loop_lag_ms=values["loop_lag_ms"])
                self.run.log("the load generator is saturated (CPU or event-loop lag); latency "
                         "figures may be inflated by the generator itself; try --workers")

    async def scraper(self, name: str) -> None:
        spec = self.run.plan.services[name].scrape
        assert spec is not None
        # One client and one TLS context (the scrape's ``tls``) for all its scrapes.
        client = scrape_client(spec)
        # The current token at each scrape (a restarted service wrote a new one).
        headers = Filled(dict(spec.headers), self.run.credentials)
        try:
            while True:
                values = await scrape_once(client, spec, headers.get())
                t = round(self.run.load_elapsed(), 3)
                if self.run.store is not None:
                    self.run.store.add_scrapes(t, name, values)
                latest = self.scraped.setdefault(name, {})
                for metric, labels, value in values:
                    if not labels:
                        latest[metric] = value
                await self.run.clock.sleep(spec.every)
        finally:
            await client.close()

    def exposition(self) -> dict[str, Any]:
        ops = {}
        for op in self.run.ops:
            total = self.run.metrics.view({op}, elapsed_s=max(self.run.load_elapsed(), 1e-3))
            recent = self.run.metrics.view({op}, last_s=10)
            pct = percentiles_ms(recent.latency)
            ops[op] = {"requests": total.requests, "errors_by_class": dict(total.classes),
                       "rps_10s": recent.rps,
                       "latency_10s_ms": {"0.5": pct["p50"], "0.95": pct["p95"],
                                          "0.99": pct["p99"]}}
        run = self.run
        return {"plan": run.plan.name, "run_id": run.rundir.run_id if run.rundir else "",
                "state": run.status.state, "elapsed_s": run.load_elapsed(), "ops": ops,
                "resources": dict(self.resources)}

    def resource_results(self) -> dict[str, Any]:
        """Per target: the last sample, peaks, and a leak analysis of RSS and fds (per
        incarnation of a restarted service)."""
        out: dict[str, Any] = {}
        if self.run.store is None:
            return out
        for target, last in self.resources.items():
            entry: dict[str, Any] = {"last": {k: round(v, 3) for k, v in last.items()}}
            marks = self.run.store.series(target, "pid")
            for series, integer, min_abs in (("rss_mb", False, 1.0), ("fds", True, 2.0)):
                rows = self.run.store.series(target, series)
                if rows:
                    entry[f"{series}_max"] = round(max(v for _, v in rows), 3)
                    if rows[-1][0] - rows[0][0] < 120:
                        # A leak verdict on less than two minutes would judge warm-up.
                        entry[f"{series}_trend"] = {"leak": None, "reasons": [
                            "shorter than 2 minutes: not judged (leak() rules still are)"]}
                    else:
                        # Imported here: scipy takes seconds to load under load, and a short
                        # run (or the watchdog's end of one) needs no trend.
                        from enduro.verdict.trends import incarnations, leak_by_incarnation
                        times = [r[0] for r in rows]
                        entry[f"{series}_trend"] = leak_by_incarnation(
                            times, [r[1] for r in rows], incarnations(times, marks),
                            min_abs=min_abs, integer=integer,
                            min_rel=0.0 if integer else 0.01).to_json()
            out[target] = entry
        return out

