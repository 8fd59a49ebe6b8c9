"""A plan of ``scenarios``: the services started once, each scenario run after the one before
it as a run of its own (its own run directory under ``scenarios/``, its own verdict line),
the services stopped at the end; ``results.json`` holds each scenario's results and the
worst verdict."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rich.console import Console

from enduro.base.clock import Clock, SystemClock
from enduro.base.errors import (
    EXIT_DEFECT,
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    EXIT_RUN,
    RunError,
)
from enduro.base.eventloop import run_coroutine
from enduro.documents.results import SCHEMA, Results, RuleOutcome, ScenarioResult
from enduro.documents.state import State
from enduro.plan.resolve import LoadedPlan
from enduro.plan.scenarios import scenario_loaded, select_scenarios
from enduro.report.results import write_junit, write_results
from enduro.run.context import RunOptions, RunOutcome
from enduro.run.run import Run
from enduro.run.rundir import RunDir
from enduro.run.runlog import RunLog
from enduro.run.timeline import Timeline
from enduro.services.supervisor import ServiceSet

__all__ = ["ScenarioRun", "worst"]

# Worse verdicts rank higher; so do exit codes (a defect over a world error over a stop).
_VERDICT_RANK = {"pass": 0, "incomplete": 1, "fail": 2}
_EXIT_RANK = {EXIT_PASS: 0, EXIT_FAIL: 1, EXIT_INTERRUPTED: 2, EXIT_RUN: 3, EXIT_DEFECT: 4}


def worst(verdicts: Sequence[str]) -> str:
    """The worst of the scenarios' verdicts (``fail`` over ``incomplete`` over ``pass``);
    ``incomplete`` when none ran."""
    return max(verdicts, key=lambda v: _VERDICT_RANK.get(v, 1)) if verdicts else "incomplete"


def _cases(done: Sequence[ScenarioResult]) -> list[RuleOutcome]:
    """junit's test cases: each scenario's rules under its name, and a failed case for a
    scenario that did not complete or failed with every rule passed (a defect, an abort)."""
    cases: list[RuleOutcome] = []
    for r in done:
        cases += [rule.model_copy(update={"rule": f"{r.name}: {rule.rule}"}) for rule in r.rules]
        if r.verdict != "pass" and all(rule.passed for rule in r.rules):
            cases.append(RuleOutcome(
                rule=f"{r.name}: the scenario passed", observed=None, observed_text=r.verdict,
                passed=False, reason=r.error or r.stop_reason or r.verdict))
    return cases


class ScenarioRun:
    """The run of a plan of scenarios (all of them, or those named in ``only``)."""

    def __init__(self, loaded: LoadedPlan, options: RunOptions | None = None, *,
                 only: Sequence[str] = (), clock: Clock | None = None,
                 console: Console | None = None, summary: Console | None = None) -> None:
        self.loaded = loaded
        self.options = options or RunOptions()
        self.indexes = select_scenarios(loaded.plan, only)
        self.clock = clock or SystemClock()
        self.console = console or Console(stderr=True, markup=False, highlight=False,
                                          emoji=False)
        self.summary = summary or self.console  # verdict lines and summaries
        # A signal between scenarios (each run handles its own): no further scenario starts.
        self.stop_reason: str | None = None

    def main(self) -> RunOutcome:
        """Run to the end on a fresh event loop."""
        return run_coroutine(self.execute())

    async def execute(self) -> RunOutcome:
        """Start the services, run each scenario, stop the services, write results.json."""
        plan, options = self.loaded.plan, self.options
        timeline = Timeline(self.clock)
        timeline.start()
        rundir = (RunDir.adopt(options.run_dir) if options.run_dir is not None else
                  RunDir.create(options.out, plan.name, options.tag, timeline.started_wall))
        runlog = RunLog(timeline, self.console)
        runlog.open(rundir)
        rundir.file("plan.resolved.yaml").write_text(self.loaded.resolved_yaml())
        services = ServiceSet(plan, self.loaded.source.parent.resolve(), rundir.path,
                              rundir.run_id, tag=options.tag, clock=self.clock,
                              event=runlog.event, log=runlog.log) if plan.services else None
        done: list[ScenarioResult] = []
        last: dict[str, Any] = {}
        error: str | None = None
        crash: BaseException | None = None
        self._state(rundir, timeline, "running")
        previous = self._install()
        try:
            if services is not None:
                await services.start_all()
            for i in self.indexes:
                if self.stop_reason is not None:
                    error = f"stopped by {self.stop_reason} between scenarios"
                    break
                result, last = await self._scenario(i, rundir, services)
                done.append(result)
                if result.exit_code in (EXIT_INTERRUPTED, EXIT_DEFECT):
                    break  # stopped, or an enduro defect: the scenarios after it do not run
        except RunError as exc:  # the services would not start
            error = str(exc)
            runlog.log(f"services: {exc}")
        except BaseException as exc:
            crash = exc
            error = repr(exc)
        finally:
            if services is not None:
                with contextlib.suppress(Exception):
                    await services.stop_all()
            runlog.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        results = self._results(rundir, timeline, done, last, error)
        write_results(rundir.file("results.json"), results)
        with contextlib.suppress(OSError):
            write_junit(rundir.file("junit.xml"),
                        results.model_copy(update={"rules": _cases(done)}))
        self._state(rundir, timeline, results.state, results.stop_reason)
        if crash is not None:
            raise crash
        verdict = results.verdict
        exit_code = max((r.exit_code for r in done), key=lambda c: _EXIT_RANK.get(c, 3),
                        default=EXIT_RUN)
        if error is not None:
            exit_code = EXIT_RUN
        self.summary.print(f"scenarios: {verdict} ("
                           + ", ".join(f"{r.name} {r.verdict}" for r in done) + ")"
                           if done else f"scenarios: {verdict} (none ran: {error})")
        return RunOutcome(exit_code, rundir.path, results=results.to_json(), error=error)

    def _install(self) -> dict[signal.Signals, Any]:
        """SIGINT/SIGTERM outside a scenario's run end the run of scenarios after the current
        stretch (the run of a scenario installs its own handlers meanwhile)."""
        if not self.options.handle_signals:
            return {}

        def handler(signum: int, _frame: Any) -> None:
            self.stop_reason = signal.Signals(signum).name

        return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _state(self, rundir: RunDir, timeline: Timeline, state: Any,
               stop_reason: str | None = None) -> None:
        """state.json of the run of scenarios, so that runs, status and stop find it."""
        plan = self.loaded.plan
        now = self.clock.wall()
        rundir.write_state(State(
            run_id=rundir.run_id, plan=plan.name, state=state, pid=os.getpid(),
            started_at=timeline.started_wall, plan_file=str(self.loaded.source),
            updated_at=now, elapsed_s=timeline.elapsed(), seed=plan.seed,
            duration_s=sum(s.duration if s.duration is not None else plan.duration
                           for i, s in enumerate(plan.scenarios) if i in self.indexes),
            stop_reason=stop_reason, stopped_at=now if state != "running" else None))

    async def _scenario(self, index: int, rundir: RunDir,
                        services: ServiceSet | None) -> tuple[ScenarioResult, dict[str, Any]]:
        """Run one scenario against the services; its result and its results.json."""
        name = self.loaded.plan.scenarios[index].name
        where = rundir.path / "scenarios" / f"{index + 1:02d}-{name}"
        self.console.print(f"scenario {name}: starting")
        options = replace(self.options, run_dir=where)
        try:
            outcome = await Run(scenario_loaded(self.loaded, index), options, clock=self.clock,
                                console=self.console, services=services,
                                summary=self.summary).execute()
        finally:
            if services is not None:
                services.on_token = None  # the scenario's run no longer sends requests
        data = outcome.results or {}
        doc = Results.from_json(data, "results.json") if data else None
        verdict = doc.verdict if doc is not None else "incomplete"
        self.summary.print(f"scenario {name}: {verdict.upper()}")
        result = ScenarioResult(
            name=name, verdict=verdict, complete=doc.complete if doc else False,
            rules_passed=doc.rules_passed if doc else None, exit_code=outcome.exit_code,
            run_dir=os.path.relpath(where, rundir.path),
            duration_s=doc.duration_s if doc else 0.0,
            stop_reason=doc.stop_reason if doc else None,
            error=outcome.error or (doc.error if doc else None),
            rules=list(doc.rules) if doc else [], ops=dict(doc.ops) if doc else {},
            bursts=dict(doc.bursts) if doc else {})
        return result, data

    def _results(self, rundir: RunDir, timeline: Timeline, done: list[ScenarioResult],
                 last: dict[str, Any], error: str | None) -> Results:
        plan = self.loaded.plan
        every = len(done) == len(self.indexes) and error is None
        verdict = worst([r.verdict for r in done]) if every else worst(
            [*(r.verdict for r in done if r.verdict == "fail"), "incomplete"])
        errors: dict[str, int] = {}
        for r in done:
            for op in r.ops.values():
                for cls, n in op.errors_by_class.items():
                    errors[cls] = errors.get(cls, 0) + n
        return Results.from_json({
            "schema": SCHEMA, "run_id": rundir.run_id, "plan": plan.name,
            "profile": self.loaded.profile, "verdict": verdict,
            "complete": every and all(r.complete for r in done),
            "rules_passed": (all(r.rules_passed for r in done)
                             if done and all(r.rules_passed is not None for r in done)
                             else None),
            "mode": "run", "state": "completed" if every else "failed",
            "stop_reason": None if every else (error or "a scenario was stopped"),
            "started_at": timeline.started_wall,
            "duration_s": sum(r.duration_s for r in done),
            "seed": last.get("seed", plan.seed or 0), "worker_count": self.options.workers,
            "ops": {}, "errors_by_class": errors, "rules": [], "faults": [],
            "services": last.get("services", {}), "error": error,
            "scenarios": [r.to_json() for r in done]}, "results.json")
