"""The chaos side of one run: proxies, the seeded fault schedule and its runner, the phase
(baseline, chaos, recovery, final) of every window, and each fault's detection and recovery
measured on the load's clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from enduro.base.clock import Clock
from enduro.faults.journal import Journal
from enduro.faults.proxy import ProxySet
from enduro.faults.runner import FaultRunner, available_kinds
from enduro.faults.timeline import expand
from enduro.observe.hist import percentiles_ms
from enduro.observe.metrics import MetricView
from enduro.observe.window import WindowStats
from enduro.plan.models import Plan
from enduro.services.supervisor import ServiceSet
from enduro.verdict.recovery import PhaseTracker, analyze_fault

__all__ = ["Chaos"]


class Chaos:
    """Proxies, faults and phases of one run of ``plan`` (``duration`` seconds of load, the
    schedule drawn from ``seed``)."""

    def __init__(self, plan: Plan, *, duration: float, seed: int, plan_dir: Path, clock: Clock,
                 event: Callable[..., None], log: Callable[[str], None]) -> None:
        self.plan = plan
        self.duration = duration
        self.seed = seed
        self.plan_dir = plan_dir
        self.clock = clock
        self._event = event
        self._log = log
        self.schedule, self.skipped = expand(plan, duration, seed)
        self.proxies: ProxySet | None = None
        self.runner: FaultRunner | None = None
        self._load_started = False
        policy = plan.fault_policy
        self.phases = PhaseTracker(plan.window, policy.recovery_windows, policy.baseline_band,
                                   self.fault_active, expect_load=bool(plan.workloads))

    async def start(self, services: ServiceSet | None, journal: Path) -> None:
        """Start the plan's proxies and ready the fault runner (after the services), its undo
        records kept in ``journal``."""
        plan = self.plan
        if plan.proxies:
            self.proxies = ProxySet(plan.proxies, self.seed)
            await self.proxies.start()
            self._event("proxies_started",
                        proxies={n: p.listen for n, p in plan.proxies.items()})
        if not self.schedule:
            return
        self.runner = FaultRunner(
            plan, self.schedule, services=services, proxies=self.proxies,
            journal=Journal(journal), clock=self.clock, plan_dir=self.plan_dir,
            event=self._event, log=self._log)
        kinds = available_kinds(plan, services)
        self._event("fault_kinds", kinds=kinds, scheduled=len(self.schedule),
                    skipped=self.skipped)
        usable = ", ".join(k for k, v in kinds.items() if v == "yes")
        self._log(f"faults: {len(self.schedule)} scheduled"
                  + (f" ({self.skipped} skipped by fault_policy)" if self.skipped else "")
                  + f"; kinds available here: {usable}")

    async def run(self, load_start: float) -> None:
        """Apply the schedule, its times counted from ``load_start`` (on the clock's time)."""
        self._load_started = True
        if self.runner is not None:
            await self.runner.run(load_start)

    async def undo(self) -> None:
        """Undo every active fault (journaled, so ``enduro recover`` can finish the job)."""
        if self.runner is not None:
            await self.runner.undo_all()

    async def stop(self) -> None:
        """Undo faults, then stop the proxies."""
        await self.undo()
        if self.proxies is not None:
            await self.proxies.stop()
            self.proxies = None

    def in_force(self) -> list[str]:
        """The faults in force now, as ``kind target`` (what the heartbeat shows)."""
        if self.runner is None or not self._load_started:
            return []
        return [f"{r.fault.kind}" + (f" {','.join(r.fault.targets)}" if r.fault.targets else "")
                for r in self.runner.active(self.runner.now())
                if r.fault.end is not None and not r.undone]

    def fault_active(self, start: float, end: float) -> bool:
        """Whether any fault was active between ``start`` and ``end`` (load seconds)."""
        if self.runner is None:
            return False
        now = self.runner.now() if self._load_started else 0.0
        for r in self.runner.records.values():
            if r.start_s is None or r.start_s >= end:
                continue
            r_end = r.end_s if r.end_s is not None else now
            if r_end >= start:
                return True
        return False

    def phase_of(self, index: int, windows: list[WindowStats]) -> str:
        """The phase label of window ``index``, from its figures."""
        window = self.plan.window
        if index * window >= self.duration - 1e-9:
            return "final"  # the drain after the load's end: in-flight answers only
        requests = sum(w.requests for w in windows)
        errors = sum(w.errors for w in windows)
        p99 = 0.0
        if requests:
            busy = [w for w in windows if w.requests]
            if len(busy) == 1:  # no merge needed (the common case: one op)
                p99 = busy[0].latency.get_value_at_percentile(99.0) / 1000.0
            else:
                view = MetricView(window)
                for w in busy:
                    view.add(w)
                p99 = percentiles_ms(view.latency)["p99"]
        return self.phases.label(index, requests, errors, p99)

    def results(self) -> list[dict[str, Any]]:
        """Per fault: what, when, and (with load) detection and recovery times."""
        if self.runner is None:
            return []
        plan = self.plan
        out = []
        horizon = max(10 * plan.window, 30.0)
        records = self.runner.records.values()
        starts = sorted(r.start_s for r in records if r.start_s is not None)
        for r in records:
            item: dict[str, Any] = {**r.fault.to_json(), "start_s": r.start_s,
                                    "end_s": r.end_s, "error": r.error, **r.extra}
            item["target"] = ",".join(r.fault.targets)
            if r.start_s is None:
                item["skipped"] = "the run ended first"
            elif plan.workloads:
                later = [t for t in starts if t > (r.end_s or r.start_s)]
                item.update(analyze_fault(self.phases, r.start_s, r.end_s, horizon,
                                          later[0] if later else None))
            out.append(item)
        return out

    @staticmethod
    def rule_values(faults: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
        """``detect_s`` and ``recover_s`` per fault kind, for rules such as
        ``max(recover_s) < 5s``; a fault that never recovered counts as infinitely long."""
        values: dict[str, dict[str, list[float]]] = {}
        for f in faults:
            if "detect_s" not in f:
                continue  # not analysed (no load, or the run ended first)
            if f["detect_s"] is not None:
                values.setdefault("detect_s", {}).setdefault(f["kind"], []).append(
                    f["detect_s"])
            recover = f["recover_s"] if f["recover_s"] is not None else float("inf")
            values.setdefault("recover_s", {}).setdefault(f["kind"], []).append(recover)
        return values
