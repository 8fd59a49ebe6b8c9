"""Checks of everything the engines compile at run time, made before the run: request and flow
templates (with the variables in scope at each step), conditions, JSON paths, captures,
python functions, the services steps address. Each problem at the file:line of its field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from enduro.base.errors import PlanError, PlanProblem
from enduro.engine.request import template_problems
from enduro.engine.validate_report import Report
from enduro.engine.validate_services import ServiceChecks
from enduro.engine.validate_steps import StepChecks
from enduro.net.conditions import condition_problem, json_path_problem
from enduro.net.target import split_base
from enduro.plan.bursts import BurstWorkload
from enduro.plan.flows import FlowWorkload
from enduro.plan.models import HttpWorkload, Plan, PythonWorkload, SseWorkload
from enduro.plan.source import Lines, Path_

__all__ = ["workload_problems"]

# The names a burst's templates always have (engine.burst.BurstDriver._ctx).
_BURST_NAMES = frozenset({"prefix", "round", "prefix_like"})


class _Checker:
    """Every check of a plan, by workload kind; the checks of steps (``StepChecks``) and
    services (``ServiceChecks``) in modules of their own, the problems in a ``Report``."""

    def __init__(self, plan: Plan, lines: Lines | None, plan_dir: Path | None) -> None:
        self.plan = plan
        self.lines = lines
        self.plan_dir = plan_dir
        self.report = Report(lines)
        generate = plan.canaries.generate
        # with_canaries fills these in before the engines compile anything.
        self.canaries = frozenset({"canary", *(f"canary{i}" for i in range(1, generate + 1))}
                                  if generate else ())
        self.checks = StepChecks(plan, self.report, plan_dir, self.canaries)

    # -- workloads -----------------------------------------------------------------------
    def run(self) -> list[PlanProblem]:
        for wname, workload in self.plan.workloads.items():
            kind = workload.kind
            # Each kind of engine.kinds.KINDS has its checks here, in a method of its name.
            check: Callable[[Any, Path_], None] = getattr(self, kind)
            check(workload.spec, ("workloads", wname, kind))
        self.final()
        ServiceChecks(self.plan, self.report).scrapes()
        return self.report.problems

    def flow(self, flow: FlowWorkload, at: Path_) -> None:
        self.report.not_templated(flow.headers, (*at, "headers"),
                                  "a flow's own headers are sent as written (put templated "
                                  "headers on the step's request)")
        self.report.not_templated(flow.vars, (*at, "vars"), "flow vars are values, not templates")
        self.checks.steps(flow.steps, (*at, "steps"), set(flow.vars) | self.canaries, False)

    def python(self, w: PythonWorkload, at: Path_) -> None:
        self.checks.function(w.function, (*at, "function"), 1)

    def http(self, w: HttpWorkload, at: Path_) -> None:
        for path, message in template_problems(w.headers, self.canaries):
            self.report.add((*at, "headers", *path), message)
        for i, spec in enumerate(w.requests):
            rat: Path_ = (*at, "requests", i)
            fields: dict[str, Any] = {"path": spec.path, "query": {k: str(v) for k, v in
                                                                   spec.query.items()},
                                      "headers": spec.headers, "json": spec.json_,
                                      "body": spec.body}
            for key, value in fields.items():
                for path, message in template_problems(value, self.canaries):
                    self.report.add((*rat, key, *path), message)
            self.checks.expect(spec.expect, (*rat, "expect"))

    def sse(self, w: SseWorkload, at: Path_) -> None:
        why = "SSE requests are sent as written"
        self.report.not_templated(w.path, (*at, "path"), why)
        self.report.not_templated(w.headers, (*at, "headers"), why)
        if w.ts_path is not None:
            problem = json_path_problem(w.ts_path)
            if problem is not None:
                self.report.add((*at, "ts_path"), problem)

    # -- bursts, final phase, scrapes ----------------------------------------------------
    def burst(self, w: BurstWorkload, at: Path_) -> None:
        names = set(_BURST_NAMES | self.canaries)
        for key, value in w.vars.items():  # rendered in order: later vars see earlier ones
            self.checks.template(value, (*at, "vars", key), names, False)
            names.add(key)
        self.report.not_templated(w.headers, (*at, "headers"),
                                  "a burst's own headers are sent as written (put templated "
                                  "headers on its request)")
        for i, step in enumerate(w.setup):
            if step.http is not None:
                self.checks.request(step.http, (*at, "setup", i, "http"), names, False)
        # Each request of a round is rendered with its index and its sender.
        self.checks.request(w.request, (*at, "request"), names | {"i", "sender"}, False)
        self.checks.history(w.history, (*at, "history"), names, False)
        for i, post in enumerate(w.after):
            pat: Path_ = (*at, "after", i)
            if post.http is not None and post.check is not None:
                self.checks.request(post.http, (*pat, "http"), names, False)
                self.checks.template(post.check, (*pat, "check"), names, False)
                # Compiled once; placeholders in its value are filled in per round.
                problem = condition_problem(post.check)
                if problem is not None:
                    self.report.add((*pat, "check"), problem)

    def final(self) -> None:
        final = self.plan.final
        if final is None:
            return
        at: Path_ = ("final",)
        if final.service is not None:
            self.checks.service(final.service, (*at, "service"))
        if final.base is not None and final.service is not None:
            self.report.add(at, "give one of 'base' or 'service', not both")
        if final.steps and final.base is None and final.service is None:
            self.report.add((*at, "steps"), "the final reads need 'base' (a URL) or 'service'; "
                            "without them they would be skipped")
        if final.base is not None:
            try:
                split_base(final.base)
            except PlanError as exc:
                self.report.add_error((*at, "base"), exc)
        self.report.not_templated(final.headers, (*at, "headers"),
                                  "the final phase's own headers are sent as written")
        self.checks.steps(final.steps, (*at, "steps"), set(self.canaries), False)


def workload_problems(plan: Plan, lines: Lines | None = None,
                      plan_dir: Path | None = None) -> list[PlanProblem]:
    """Every problem the engines would meet compiling ``plan``'s workloads, final phase and
    scrapes, found now. ``plan_dir`` is where plan-side python modules are looked for."""
    return _Checker(plan, lines, plan_dir).run()
