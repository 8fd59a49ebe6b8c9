"""Checks of flow steps (and of the requests bursts and the final phase send): templates with
the variables in scope at each step, expectations, conditions, captures, histories, sse
steps, python functions and the services requests address."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from enduro.base.errors import PlanError
from enduro.engine.python import load_function
from enduro.engine.request import flow_template_problems
from enduro.engine.validate_report import Report
from enduro.net.conditions import ResponseCheck, condition_problem, json_path_problem
from enduro.net.target import split_base
from enduro.plan.flows import FlowRequest, FlowSse, FlowStep, StepExpect
from enduro.plan.models import Expect, Plan
from enduro.plan.source import Path_

__all__ = ["StepChecks"]


class StepChecks:
    """Checks steps and requests of ``plan``, with ``canaries`` always in scope."""

    def __init__(self, plan: Plan, report: Report, plan_dir: Path | None,
                 canaries: frozenset[str]) -> None:
        self.plan = plan
        self.report = report
        self.plan_dir = plan_dir
        self.canaries = canaries

    def expect(self, expect: Expect | StepExpect, at: Path_, *, templated: bool = False
               ) -> None:
        """The keys every expectation has (engine.conditions), each at its own line; then the
        whole compiled as the run compiles it."""
        before = len(self.report.problems)
        if expect.regex is not None:
            try:
                re.compile(expect.regex.encode())
            except re.error as exc:
                self.report.add((*at, "regex"), f"regex does not compile: {exc}")
        for key in expect.json_ or {}:
            problem = json_path_problem(key)
            if problem is not None:
                self.report.add((*at, "json", key), problem)
        for j, condition in enumerate(expect.that):
            problem = condition_problem(condition)
            if problem is not None:
                self.report.add((*at, "that", j), problem)
        if len(self.report.problems) == before:
            try:
                ResponseCheck.of(expect, templated=templated)
            except PlanError as exc:
                self.report.add_error(at, exc)
        if not templated:
            self.report.not_templated(expect.model_dump(by_alias=True, exclude_none=True), at,
                                      "expectations of http requests are compared as written")

    def template(self, value: Any, path: Path_, names: set[str] | frozenset[str],
                 open_scope: bool) -> None:
        def check(text: str, at: Path_) -> None:
            for message in flow_template_problems(text, names, open_scope=open_scope):
                self.report.add(at, message)
        self.report.strings(value, path, check)

    def request(self, req: FlowRequest, at: Path_, names: set[str] | frozenset[str],
                open_scope: bool) -> None:
        for key in ("base", "path", "query", "headers", "json_", "body"):
            value = getattr(req, key)
            if value is not None:
                self.template(value, (*at, key.rstrip("_")), names, open_scope)
        if req.service is not None:
            self.service(req.service, (*at, "service"))
        if req.base is not None and "{{" not in req.base:
            try:
                split_base(req.base)
            except PlanError as exc:
                self.report.add_error((*at, "base"), exc)

    def service(self, name: str, at: Path_) -> None:
        """A service requests are sent to: defined, with a ``url``."""
        service = self.plan.services.get(name)
        if service is None:
            known = ", ".join(sorted(self.plan.services)) or "none defined"
            self.report.add(at, f"no service {name!r} (services: {known})")
        elif service.url is None:
            self.report.add(at, f"service {name!r} has no 'url' to send to")

    def step_expect(self, expect: StepExpect | None, at: Path_,
                    names: set[str] | frozenset[str], open_scope: bool) -> None:
        if expect is None:
            return
        self.expect(expect, at, templated=True)
        # Filled in per response: json values, contains and the values of 'that'; a regex is
        # matched as written.
        dump = expect.model_dump(by_alias=True, exclude_none=True)
        regex = dump.pop("regex", None)
        if regex is not None:
            self.report.not_templated(regex, (*at, "regex"), "a regex is matched as written")
        self.template(dump, at, names, open_scope)

    def history(self, step_history: Any, at: Path_, names: set[str] | frozenset[str],
                open_scope: bool) -> None:
        if step_history is None:
            return
        self.template(step_history.key, (*at, "key"), names, open_scope)
        value = step_history.value
        if value is not None and value.startswith("$"):
            problem = json_path_problem(value)
            if problem is not None:
                self.report.add((*at, "value"), problem)
        elif value is not None:
            self.template(value, (*at, "value"), names, open_scope)

    def stream(self, sse: FlowSse, at: Path_, names: set[str] | frozenset[str],
               open_scope: bool) -> None:
        """An sse step: its request as a request step's (templates, service, base), its
        ``until`` and ``ts_path``."""
        self.request(FlowRequest(path=sse.path, service=sse.service, base=sse.base,
                                 query=sse.query, headers=sse.headers), at, names, open_scope)
        if sse.until is not None:
            problem = condition_problem(sse.until)
            if problem is not None:
                self.report.add((*at, "until"), problem)
            self.template(sse.until, (*at, "until"), names, open_scope)
        if sse.ts_path is not None:
            problem = json_path_problem(sse.ts_path)
            if problem is not None:
                self.report.add((*at, "ts_path"), problem)

    def steps(self, steps: list[FlowStep], at: Path_, names: set[str],
              open_scope: bool) -> tuple[set[str], bool]:
        """Check ``steps`` in order; the names in scope and whether a python step may have
        set others, after them."""
        names = set(names)
        for i, step in enumerate(steps):
            sat: Path_ = (*at, i)
            if step.request is not None:
                self.request(step.request, (*sat, "request"), names, open_scope)
                self.step_expect(step.expect, (*sat, "expect"), names, open_scope)
                self.step_expect(step.expect_eventually, (*sat, "expect_eventually"), names,
                                 open_scope)
                if step.until is not None:
                    problem = condition_problem(step.until)
                    if problem is not None:
                        self.report.add((*sat, "until"), problem)
                    self.template(step.until, (*sat, "until"), names, open_scope)
                for var, source in step.capture.items():
                    problem = _capture_problem(source)
                    if problem is not None:
                        self.report.add((*sat, "capture", var), problem)
                # A step's history is recorded after its captures too.
                self.history(step.history, (*sat, "history"), names | set(step.capture),
                             open_scope)
                names |= set(step.capture)
            elif step.sse is not None:
                self.stream(step.sse, (*sat, "sse"), names, open_scope)
            elif step.python is not None:
                self.function(step.python, (*sat, "python"), 2)
                self.history(step.history, (*sat, "history"), names, True)
                open_scope = True  # it may set any variable on ctx.vars
            elif step.branch is not None:
                after: list[set[str]] = []
                for j, branch in enumerate(step.branch):
                    got, opened = self.steps(branch.steps, (*sat, "branch", j, "steps"),
                                             names, open_scope)
                    after.append(got)
                    open_scope = open_scope or opened
                # After a branch only what every alternative captured is surely there.
                names = set.intersection(*after) if after else names
        return names, open_scope

    def function(self, spec: str, at: Path_, arity: int) -> None:
        try:
            load_function(spec, self.plan_dir, arity=arity)
        except PlanError as exc:
            self.report.add_error(at, exc)


def _capture_problem(source: str) -> str | None:
    """What engine.flow_answers.Answers.capture reads: status, header:NAME or a JSON path."""
    if source == "status":
        return None
    if source.startswith("header:"):
        return None if source[7:].strip() else "header: needs a name, such as header:Location"
    if not source.startswith("$"):
        return (f"capture {source!r}: expected status, header:NAME or a JSON path such as "
                "$.id")
    return json_path_problem(source)
