"""A flow's steps compiled once: each step's templates, checks, polls and captures, and its
kind (request, sleep, branch, python or sse)."""

from __future__ import annotations

import random

from enduro.engine.flow_sse import SseStep
from enduro.net.conditions import Condition, JsonPath, ResponseCheck
from enduro.net.templates import Template, compile_value, is_static
from enduro.observe.window import OpCounter
from enduro.plan.flows import Branch, FlowRequest, FlowStep

__all__ = ["BRANCH", "PYTHON", "REQUEST", "SLEEP", "SSE", "Request", "Step", "choose"]


class Request:
    """A step's request compiled once: its templates, ready to fill in per iteration."""

    __slots__ = ("base", "body", "headers", "json", "method", "path", "query", "service",
                 "timeout")

    def __init__(self, req: FlowRequest) -> None:
        self.method = req.method
        self.service = req.service or ""
        self.base = Template(req.base) if req.base is not None else None
        self.path = Template(req.path)
        self.query = compile_value(req.query)
        self.headers = compile_value(req.headers)
        self.json = compile_value(req.json_) if req.json_ is not None else None
        self.body = Template(req.body) if req.body is not None else None
        self.timeout = req.timeout


REQUEST, SLEEP, BRANCH, PYTHON, SSE = range(5)


class Step:
    """A step compiled once: what it sends (for a step without templates, its request's bytes,
    built at its first send), checks, polls and captures, and the op it counts in."""

    __slots__ = ("branches", "captures", "check", "counter", "eventually", "history_key",
                 "history_path", "history_value", "kind", "name", "poll", "request", "sent",
                 "shape", "shaped", "static", "step", "stream", "until")

    def __init__(self, step: FlowStep, forbidden: tuple[bytes, ...]) -> None:
        self.step = step
        self.name = step.name or "?"
        self.kind = (SLEEP if step.sleep is not None else BRANCH if step.branch is not None
                     else PYTHON if step.python is not None else SSE if step.sse is not None
                     else REQUEST)
        self.counter: OpCounter | None = None
        self.stream: SseStep | None = None  # an sse step's, made by its driver
        self.branches: list[tuple[Branch, list[Step]]] = [
            (b, [Step(s, forbidden) for s in b.steps]) for b in step.branch or []]
        self.request = Request(step.request) if step.request is not None else None
        # Canaries are checked on every response of the step, before its expectation.
        self.check = ResponseCheck.of(step.expect, forbidden=forbidden, templated=True)
        ev = step.expect_eventually
        self.eventually = (ResponseCheck.of(ev, forbidden=forbidden, templated=True)
                           if ev is not None else None)
        self.until = (Condition(step.until, templated=True) if step.until is not None
                      else None)
        self.poll = self.until is not None or self.eventually is not None
        self.captures: list[tuple[str, str, JsonPath | str]] = []
        for var, source in step.capture.items():
            if source == "status":
                self.captures.append((var, "status", ""))
            elif source.startswith("header:"):
                self.captures.append((var, "header", source[7:].strip().lower()))
            else:
                self.captures.append((var, "json", JsonPath(source)))
        spec = step.history
        self.history_key = Template(spec.key) if spec is not None else None
        value = spec.value if spec is not None else None
        self.history_path = JsonPath(value) if value is not None and value.startswith("$") \
            else None
        self.history_value = Template(value) if value is not None and \
            self.history_path is None else None
        req = self.request
        # Whether every send of the step is the same bytes (no template anywhere).
        self.static = req is not None and (req.base is None or req.base.static) and \
            req.path.static and is_static(req.query) and is_static(req.headers) and \
            is_static(req.json) and (req.body is None or req.body.static)
        # Whether only the request target (path and query) varies.
        self.shaped = req is not None and not self.static and \
            (req.base is None or req.base.static) and is_static(req.headers) and \
            is_static(req.json) and (req.body is None or req.body.static)
        # (origin, url, bytes) of a static step, once built.
        self.sent: tuple[str, str, bytes] | None = None
        # Of a step whose target alone varies: its origin, the base's path, and the bytes
        # of its request before and after the target.
        self.shape: tuple[str, str, bytes, bytes] | None = None

    def walk(self) -> list[Step]:
        """This step and those of its branches."""
        out = [self]
        for _, steps in self.branches:
            for s in steps:
                out.extend(s.walk())
        return out


def choose(branches: list[tuple[Branch, list[Step]]], rng: random.Random) -> list[Step]:
    """The steps of one branch, drawn by the branches' weights."""
    total = sum(b.weight for b, _ in branches)
    pick = rng.random() * total
    for b, steps in branches:
        pick -= b.weight
        if pick <= 0:
            return steps
    return branches[-1][1]
