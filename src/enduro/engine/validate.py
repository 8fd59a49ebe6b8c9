"""Checks of everything the engines compile at run time, made before the run: request and flow
templates (with the variables in scope at each step), conditions, JSON paths, captures,
python functions, the services steps address. Each problem at the file:line of its field."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from enduro.base.errors import PlanError, PlanProblem
from enduro.engine.python import load_function
from enduro.engine.request import flow_template_problems, template_problems
from enduro.net.conditions import ResponseCheck, condition_problem, json_path_problem
from enduro.net.target import split_base
from enduro.plan.bursts import BurstWorkload
from enduro.plan.flows import FlowRequest, FlowSse, FlowStep, FlowWorkload, StepExpect
from enduro.plan.models import Expect, HttpWorkload, Plan, PythonWorkload, SseWorkload
from enduro.plan.source import Lines, Path_, dotted
from enduro.plan.tokens import TOKEN_REF

__all__ = ["workload_problems"]

_ANY = re.compile(r"\{\{.*?\}\}", re.DOTALL)
# The names a burst's templates always have (engine.burst.BurstDriver._ctx).
_BURST_NAMES = frozenset({"prefix", "round", "prefix_like"})


class _Checker:
    def __init__(self, plan: Plan, lines: Lines | None, plan_dir: Path | None) -> None:
        self.plan = plan
        self.lines = lines
        self.plan_dir = plan_dir
        self.problems: list[PlanProblem] = []
        generate = plan.canaries.generate
        # with_canaries fills these in before the engines compile anything.
        self.canaries = frozenset({"canary", *(f"canary{i}" for i in range(1, generate + 1))}
                                  if generate else ())

    # -- reporting -----------------------------------------------------------------------
    def add(self, path: Path_, message: str) -> None:
        lines = self.lines
        if lines is None:
            self.problems.append(PlanProblem(message, path=dotted(path)))
        elif lines.line_of(path) == 0:  # the value came from --set
            self.problems.append(PlanProblem(message, "--set", None, dotted(path)))
        else:
            self.problems.append(lines.problem(path, message))

    def add_error(self, path: Path_, exc: PlanError) -> None:
        for p in exc.problems:
            if p.file is not None:  # inside a plan-side module: its own file and line
                self.problems.append(PlanProblem(p.message, p.file, p.line, dotted(path)))
            else:
                self.add(path, p.message)

    def strings(self, value: Any, path: Path_, check: Callable[[str, Path_], None]) -> None:
        """Call ``check`` on every string inside ``value`` (JSON-like data)."""
        if isinstance(value, str):
            check(value, path)
        elif isinstance(value, dict):
            for k, v in value.items():
                self.strings(v, (*path, k), check)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.strings(v, (*path, i), check)

    def not_templated(self, value: Any, path: Path_, why: str) -> None:
        """Fields sent as written: a ``{{...}}`` there would reach the server as it is."""
        def check(text: str, at: Path_) -> None:
            m = _ANY.search(text)
            if m is not None:
                self.add(at, f"{m.group(0)} is not filled in here: {why}")
        self.strings(value, path, check)

    # -- workloads -----------------------------------------------------------------------
    def run(self) -> list[PlanProblem]:
        for wname, workload in self.plan.workloads.items():
            kind = workload.kind
            # Each kind of engine.kinds.KINDS has its checks here, in a method of its name.
            check: Callable[[Any, Path_], None] = getattr(self, kind)
            check(workload.spec, ("workloads", wname, kind))
        self.final()
        self.scrapes()
        return self.problems

    def flow(self, flow: FlowWorkload, at: Path_) -> None:
        self.not_templated(flow.headers, (*at, "headers"),
                           "a flow's own headers are sent as written (put templated "
                           "headers on the step's request)")
        self.not_templated(flow.vars, (*at, "vars"), "flow vars are values, not templates")
        self.steps(flow.steps, (*at, "steps"), set(flow.vars) | self.canaries, False)

    def python(self, w: PythonWorkload, at: Path_) -> None:
        self.function(w.function, (*at, "function"), 1)

    def http(self, w: HttpWorkload, at: Path_) -> None:
        for path, message in template_problems(w.headers, self.canaries):
            self.add((*at, "headers", *path), message)
        for i, spec in enumerate(w.requests):
            rat: Path_ = (*at, "requests", i)
            fields: dict[str, Any] = {"path": spec.path, "query": {k: str(v) for k, v in
                                                                   spec.query.items()},
                                      "headers": spec.headers, "json": spec.json_,
                                      "body": spec.body}
            for key, value in fields.items():
                for path, message in template_problems(value, self.canaries):
                    self.add((*rat, key, *path), message)
            self.expect(spec.expect, (*rat, "expect"))

    def expect(self, expect: Expect | StepExpect, at: Path_, *, templated: bool = False
               ) -> None:
        """The keys every expectation has (engine.conditions), each at its own line; then the
        whole compiled as the run compiles it."""
        before = len(self.problems)
        if expect.regex is not None:
            try:
                re.compile(expect.regex.encode())
            except re.error as exc:
                self.add((*at, "regex"), f"regex does not compile: {exc}")
        for key in expect.json_ or {}:
            problem = json_path_problem(key)
            if problem is not None:
                self.add((*at, "json", key), problem)
        for j, condition in enumerate(expect.that):
            problem = condition_problem(condition)
            if problem is not None:
                self.add((*at, "that", j), problem)
        if len(self.problems) == before:
            try:
                ResponseCheck.of(expect, templated=templated)
            except PlanError as exc:
                self.add_error(at, exc)
        if not templated:
            self.not_templated(expect.model_dump(by_alias=True, exclude_none=True), at,
                               "expectations of http requests are compared as written")

    def sse(self, w: SseWorkload, at: Path_) -> None:
        why = "SSE requests are sent as written"
        self.not_templated(w.path, (*at, "path"), why)
        self.not_templated(w.headers, (*at, "headers"), why)
        if w.ts_path is not None:
            problem = json_path_problem(w.ts_path)
            if problem is not None:
                self.add((*at, "ts_path"), problem)

    # -- flows ---------------------------------------------------------------------------
    def template(self, value: Any, path: Path_, names: set[str] | frozenset[str],
                 open_scope: bool) -> None:
        def check(text: str, at: Path_) -> None:
            for message in flow_template_problems(text, names, open_scope=open_scope):
                self.add(at, message)
        self.strings(value, path, check)

    def request(self, req: FlowRequest, at: Path_, names: set[str] | frozenset[str],
                open_scope: bool) -> None:
        for key in ("base", "path", "query", "headers", "json_", "body"):
            value = getattr(req, key)
            if value is not None:
                self.template(value, (*at, key.rstrip("_")), names, open_scope)
        if req.service is not None:
            service = self.plan.services.get(req.service)
            if service is None:
                known = ", ".join(sorted(self.plan.services)) or "none defined"
                self.add((*at, "service"), f"no service {req.service!r} (services: {known})")
            elif service.url is None:
                self.add((*at, "service"), f"service {req.service!r} has no 'url' to send to")
        if req.base is not None and "{{" not in req.base:
            try:
                split_base(req.base)
            except PlanError as exc:
                self.add_error((*at, "base"), exc)

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
            self.not_templated(regex, (*at, "regex"), "a regex is matched as written")
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
                self.add((*at, "value"), problem)
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
                self.add((*at, "until"), problem)
            self.template(sse.until, (*at, "until"), names, open_scope)
        if sse.ts_path is not None:
            problem = json_path_problem(sse.ts_path)
            if problem is not None:
                self.add((*at, "ts_path"), problem)

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
                        self.add((*sat, "until"), problem)
                    self.template(step.until, (*sat, "until"), names, open_scope)
                for var, source in step.capture.items():
                    problem = _capture_problem(source)
                    if problem is not None:
                        self.add((*sat, "capture", var), problem)
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
            self.add_error(at, exc)

    # -- bursts, final phase, scrapes ----------------------------------------------------
    def burst(self, w: BurstWorkload, at: Path_) -> None:
        names = set(_BURST_NAMES | self.canaries)
        for key, value in w.vars.items():  # rendered in order: later vars see earlier ones
            self.template(value, (*at, "vars", key), names, False)
            names.add(key)
        self.not_templated(w.headers, (*at, "headers"),
                           "a burst's own headers are sent as written (put templated headers "
                           "on its request)")
        for i, step in enumerate(w.setup):
            if step.http is not None:
                self.request(step.http, (*at, "setup", i, "http"), names, False)
        # Each request of a round is rendered with its index and its sender.
        self.request(w.request, (*at, "request"), names | {"i", "sender"}, False)
        self.history(w.history, (*at, "history"), names, False)
        for i, post in enumerate(w.after):
            pat: Path_ = (*at, "after", i)
            if post.http is not None and post.check is not None:
                self.request(post.http, (*pat, "http"), names, False)
                self.template(post.check, (*pat, "check"), names, False)
                # Compiled once; placeholders in its value are filled in per round.
                problem = condition_problem(post.check)
                if problem is not None:
                    self.add((*pat, "check"), problem)

    def final(self) -> None:
        final = self.plan.final
        if final is None:
            return
        at: Path_ = ("final",)
        if final.service is not None:
            service = self.plan.services.get(final.service)
            if service is None:
                known = ", ".join(sorted(self.plan.services)) or "none defined"
                self.add((*at, "service"), f"no service {final.service!r} (services: {known})")
            elif service.url is None:
                self.add((*at, "service"),
                         f"service {final.service!r} has no 'url' to send to")
        if final.base is not None and final.service is not None:
            self.add(at, "give one of 'base' or 'service', not both")
        if final.steps and final.base is None and final.service is None:
            self.add((*at, "steps"), "the final reads need 'base' (a URL) or 'service'; "
                     "without them they would be skipped")
        if final.base is not None:
            try:
                split_base(final.base)
            except PlanError as exc:
                self.add_error((*at, "base"), exc)
        self.not_templated(final.headers, (*at, "headers"),
                           "the final phase's own headers are sent as written")
        self.steps(final.steps, (*at, "steps"), set(self.canaries), False)

    def token_refs(self, headers: dict[str, str], at: Path_,
                   reachable: set[str] | None) -> None:
        """``${token:name}`` in a readiness probe's or a scrape's headers names a service with
        a token file that is read before they are sent: ``reachable`` (None: any service)."""
        services = self.plan.services
        for key, value in headers.items():
            for ref in dict.fromkeys(TOKEN_REF.findall(value)):
                service = services.get(ref)
                if service is None or service.token_file is None:
                    self.add((*at, key), f"${{token:{ref}}} names a service without a "
                             "token_file" + ("" if service is not None
                                             else f" (no service {ref!r})"))
                elif reachable is not None and ref not in reachable:
                    self.add((*at, key), f"${{token:{ref}}}: service {ref!r} is not started "
                             "before this probe; add it to depends_on")

    def scrapes(self) -> None:
        for name, service in self.plan.services.items():
            if service.ready is not None:
                rat: Path_ = ("services", name, "ready", "headers")
                self.not_templated(service.ready.headers, rat,
                                   "readiness probe headers are sent as written")
                self.token_refs(service.ready.headers, rat,
                                {name, *_dependencies(self.plan, name)})
            scrape = service.scrape
            if scrape is None:
                continue
            at: Path_ = ("services", name, "scrape")
            self.not_templated(scrape.headers, (*at, "headers"),
                               "scrape headers are sent as written")
            # Scrapes begin once every service is up: any token file will have been read.
            self.token_refs(scrape.headers, (*at, "headers"), None)
            if scrape.json_ is not None:
                for figure, path in scrape.json_.paths.items():
                    problem = json_path_problem(path)
                    if problem is not None:
                        self.add((*at, "json", "paths", figure), problem)
                for table, spec in scrape.json_.tables.items():
                    tat: Path_ = (*at, "json", "tables", table)
                    paths: list[tuple[Path_, str]] = [
                        ((*tat, "rows"), spec.rows), ((*tat, "name"), spec.name),
                        *(((*tat, "fields", f), p) for f, p in spec.fields.items())]
                    for where, path in paths:
                        problem = json_path_problem(path)
                        if problem is not None:
                            self.add(where, problem)


def _dependencies(plan: Plan, name: str) -> set[str]:
    """The services ``name`` depends on, directly or not (started before it)."""
    found: set[str] = set()
    todo = list(plan.services[name].depends_on)
    while todo:  # bounded: each service is added once
        dep = todo.pop()
        if dep not in found and dep in plan.services:
            found.add(dep)
            todo.extend(plan.services[dep].depends_on)
    return found


def _capture_problem(source: str) -> str | None:
    """What engine.flow.FlowDriver._capture reads: status, header:NAME or a JSON path."""
    if source == "status":
        return None
    if source.startswith("header:"):
        return None if source[7:].strip() else "header: needs a name, such as header:Location"
    if not source.startswith("$"):
        return (f"capture {source!r}: expected status, header:NAME or a JSON path such as "
                "$.id")
    return json_path_problem(source)


def workload_problems(plan: Plan, lines: Lines | None = None,
                      plan_dir: Path | None = None) -> list[PlanProblem]:
    """Every problem the engines would meet compiling ``plan``'s workloads, final phase and
    scrapes, found now. ``plan_dir`` is where plan-side python modules are looked for."""
    return _Checker(plan, lines, plan_dir).run()
