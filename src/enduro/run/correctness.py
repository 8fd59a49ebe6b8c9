"""The end of a run that checks correctness: heal the faults, quiesce, the final reads (HTTP
calls after the load, through the flow driver), then the history checkers."""

from __future__ import annotations

import random
from pathlib import Path

from enduro.engine.flow import FlowDriver, HistoryLog
from enduro.faults.chaos import Chaos
from enduro.observe.window import Recorder
from enduro.plan.flows import FinalPhase, FlowWorkload
from enduro.plan.tokens import with_tokens_flow
from enduro.run.context import RunContext
from enduro.run.runlog import RunLog
from enduro.services.supervisor import ServiceSet
from enduro.verdict.correctness import CheckerFindings, run_checkers

__all__ = ["Correctness"]


class Correctness:
    """The final phase of one run; ``findings`` holds what its checkers found (None until
    they ran)."""

    def __init__(self, ctx: RunContext, runlog: RunLog, chaos: Chaos,
                 services: ServiceSet | None, history: Path | None) -> None:
        self.ctx = ctx
        self.runlog = runlog
        self.chaos = chaos
        self.services = services
        self.history = history
        self.findings: CheckerFindings | None = None

    async def final_phase(self) -> None:
        """Heal faults, quiesce, run the final reads, then the history checkers."""
        plan = self.ctx.plan
        final = plan.final
        if self.chaos.runner is not None and (final is not None or plan.checkers):
            await self.chaos.undo()
        if final is not None:
            self.runlog.event("final_phase", quiesce_s=final.quiesce)
            await self.ctx.clock.sleep(final.quiesce)
            await self._final_reads(final)
        if plan.checkers:
            self._run_checkers()

    async def _final_reads(self, final: FinalPhase) -> None:
        plan = self.ctx.plan
        if not final.steps:
            return
        base = final.base or (plan.services[final.service].url if final.service else None)
        if base is None:
            return
        workload = FlowWorkload(base=base, connections=1, headers=final.headers,
                                steps=final.steps)
        workload = with_tokens_flow(workload, self.services.tokens if self.services else {})
        history = HistoryLog(self.history, 999) if self.history is not None else None
        urls = {n: s.url for n, s in plan.services.items() if s.url}
        driver = FlowDriver(workload, "final", base, Recorder(["final", *(
            f"final.{n}" for n in workload.step_names())]), random.Random(self.ctx.seed),
            share=1.0, connections=1, plan_dir=self.ctx.plan_dir, service_urls=urls,
            history=history)
        try:
            ok = await driver.run_once()
        finally:
            if history is not None:
                history.close()
        self.runlog.event("final_reads", ok=ok, errors=dict(driver.flow_op.classes))
        if not ok:
            self.runlog.log(f"final reads failed: {dict(driver.flow_op.classes)}")

    def _run_checkers(self) -> None:
        findings = self.findings = run_checkers(self.history, self.ctx.plan.checkers)
        for name, count in findings.counts.items():
            self.runlog.event("checker", checker=name, violations=count)
            first = findings.first.get(name)
            if first is not None:
                self.runlog.log(f"checker {name}: {count} violation(s); first: {first.message}")
