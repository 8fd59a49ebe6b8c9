"""The end of a run that checks correctness: heal faults, quiesce, final reads, history
checkers, and where leak canaries appeared."""

from __future__ import annotations

import contextlib
import json
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enduro.engine.flow import FlowDriver, HistoryLog
from enduro.observe.window import Recorder
from enduro.plan.flows import FinalPhase, FlowWorkload
from enduro.plan.tokens import with_tokens_flow
from enduro.verdict.checkers import check_history

if TYPE_CHECKING:
    from enduro.run.run import Run

__all__ = ["Correctness"]


class Correctness:
    """Final phase, checkers and canaries of one run; owned by the ``Run``."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.violations: dict[str, list[dict[str, Any]]] = {}  # the first 20 of each checker
        self.counts: dict[str, int] = {}  # how many each checker found

    def history_path(self) -> Path | None:
        if self.run.rundir is None:
            return None
        uses = self.run.plan.checkers or any(
            w.flow is not None or (w.burst is not None and w.burst.history is not None)
            for w in self.run.plan.workloads.values())
        return self.run.rundir.file("history.jsonl") if uses else None

    async def final_phase(self) -> None:
        """Heal faults, quiesce, run the final reads, then the history checkers."""
        final = self.run.plan.final
        if self.run.chaos.runner is not None and (final is not None or self.run.plan.checkers):
            await self.run.chaos.undo()
        if final is not None:
            self.run.event("final_phase", quiesce_s=final.quiesce)
            await self.run.clock.sleep(final.quiesce)
            await self._final_reads(final)
        if self.run.plan.checkers:
            self.violations = self._run_checkers()

    async def _final_reads(self, final: FinalPhase) -> None:
        if not final.steps:
            return
        base = final.base or (self.run.plan.services[final.service].url if final.service else None)
        if base is None:
            return
        workload = FlowWorkload(base=base, connections=1, headers=final.headers,
                                steps=final.steps)
        workload = with_tokens_flow(workload, self.run.services.tokens if self.run.services else {})
        path = self.history_path()
        history = HistoryLog(path, 999) if path is not None else None
        urls = {n: s.url for n, s in self.run.plan.services.items() if s.url}
        driver = FlowDriver(workload, "final", base, Recorder(["final", *(
            f"final.{n}" for n in workload.step_names())]), random.Random(self.run.seed),
            share=1.0, connections=1, plan_dir=self.run.loaded.source.parent.resolve(),
            service_urls=urls, history=history)
        driver.sending = True
        from enduro.net.client import HttpClient
        client = HttpClient(timeout=workload.timeout)
        try:
            await driver._iteration(0, client, time.monotonic())
        finally:
            await client.close()
            if history is not None:
                history.close()
        ok = driver.flow_op.errors == 0
        self.run.event("final_reads", ok=ok, errors=dict(driver.flow_op.classes))
        if not ok:
            self.run.log(f"final reads failed: {dict(driver.flow_op.classes)}")

    def canary_hits(self) -> list[dict[str, Any]]:
        """Where a canary appeared: responses (ops with errors of class canary) and service
        logs (file:line). The canaries themselves are never written out."""
        values = self.run.plan.canaries.values
        if not values:
            return []
        hits: list[dict[str, Any]] = []
        for op, w in self.run.metrics.totals.items():
            if w.classes.get("canary"):
                hits.append({"where": f"responses of op {op}", "count": w.classes["canary"]})
        if self.run.rundir is not None:
            for log in sorted(self.run.rundir.path.glob("services/*/output.log*")):
                with log.open("rb") as fh:
                    for number, line in enumerate(fh, start=1):
                        for i, value in enumerate(values):
                            if value.encode() in line:
                                hits.append({"where": f"{log.relative_to(self.run.rundir.path)}"
                                                      f":{number}", "canary": f"canary#{i}"})
        return hits

    def _run_checkers(self) -> dict[str, list[dict[str, Any]]]:
        path = self.history_path()
        records: list[dict[str, Any]] = []
        if path is not None and path.exists():
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        found = check_history(records, self.run.plan.checkers)
        out = {name: [v.to_json() for v in vs[:20]] for name, vs in found.items()}
        self.counts = {name: len(vs) for name, vs in found.items()}
        for name, vs in found.items():
            self.run.event("checker", checker=name, violations=len(vs))
            if vs:
                self.run.log(f"checker {name}: {len(vs)} violation(s); first: {vs[0].message}")
        return out

