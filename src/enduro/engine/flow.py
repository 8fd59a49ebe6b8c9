"""Flows: multi-step scenarios with state. Each iteration is the op ``<flow>`` (latency: the
whole flow); each named step is ``<flow>.<step>`` (latency: the request, or for a poll or an
eventual expectation, the time until it held)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from enduro.base.errors import Fatal, fatal_class
from enduro.engine.flow_sse import SseStep
from enduro.engine.http import classify
from enduro.engine.python import load_function
from enduro.engine.schedule import ArrivalSchedule
from enduro.engine.tasks import TaskDriver, closed_loops, open_arrivals
from enduro.net.client import HttpClient, Response, split_url
from enduro.net.conditions import Answer, Condition, JsonPath, ResponseCheck
from enduro.net.templates import (
    MissingVariable,
    Template,
    compile_value,
    is_static,
    render_value,
)
from enduro.net.tls import client_context
from enduro.net.wire import UnsafeValue, request_target
from enduro.observe.window import UNSAFE_VALUE, OpCounter, Recorder
from enduro.plan.flows import Branch, FlowRequest, FlowStep, FlowWorkload
from enduro.plan.tokens import Credentials, Filled, has_token_refs

__all__ = ["FlowContext", "FlowDriver", "FlowFailed", "HistoryLog", "render"]

_monotonic = time.monotonic


class FlowFailed(Exception):
    """A step failed; ``cls`` is the error class recorded for it."""

    def __init__(self, step: str, cls: str, detail: str = "") -> None:
        super().__init__(f"step {step}: {cls}{': ' + detail if detail else ''}")
        self.step = step
        self.cls = cls


class FlowContext:
    """What a flow carries from step to step, and what a ``python`` step receives."""

    def __init__(self, seq: int, vu: int, rng: random.Random, vars_: dict[str, Any],
                 client: HttpClient, urls: dict[str, str]) -> None:
        self.seq = seq
        self.vu = vu
        self.rng = rng
        self.vars = vars_
        self.client = client
        self.urls = urls
        self.last: Response | None = None
        # The last response as checks read it (its JSON parsed once for every reader).
        self.answer: Answer | None = None
        # Requests sent so far in this iteration (a poll sends several per step).
        self.sends = 0
        # The iteration's intended start (counted from here if it is cut off by the end).
        self.intended = 0.0


def render(value: Any, ctx: FlowContext) -> Any:
    """``value`` (a string or JSON-like data) with its placeholders filled in from ``ctx``,
    by the one template engine (compiled on the spot: the engines compile theirs once)."""
    return render_value(compile_value(value), ctx)


class _Request:
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


_REQUEST, _SLEEP, _BRANCH, _PYTHON, _SSE = range(5)


class _Step:
    """A step compiled once: what it sends (for a step without templates, its request's bytes,
    built at its first send), checks, polls and captures, and the op it counts in."""

    __slots__ = ("branches", "captures", "check", "counter", "eventually", "history_key",
                 "history_path", "history_value", "kind", "name", "poll", "request", "sent",
                 "shape", "shaped", "static", "step", "stream", "until")

    def __init__(self, step: FlowStep, forbidden: tuple[bytes, ...]) -> None:
        self.step = step
        self.name = step.name or "?"
        self.kind = (_SLEEP if step.sleep is not None else _BRANCH if step.branch is not None
                     else _PYTHON if step.python is not None else _SSE if step.sse is not None
                     else _REQUEST)
        self.counter: OpCounter | None = None
        self.stream: SseStep | None = None  # an sse step's, made by its driver
        self.branches: list[tuple[Branch, list[_Step]]] = [
            (b, [_Step(s, forbidden) for s in b.steps]) for b in step.branch or []]
        self.request = _Request(step.request) if step.request is not None else None
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

    def walk(self) -> list[_Step]:
        """This step and those of its branches."""
        out = [self]
        for _, steps in self.branches:
            for s in steps:
                out.extend(s.walk())
        return out


class HistoryLog:
    """Appends operations to ``history.jsonl`` (line writes with O_APPEND, so worker
    processes can share the file)."""

    def __init__(self, path: Path, worker: int) -> None:
        self.path = path
        self.worker = worker
        self._fh = path.open("a", encoding="utf-8", buffering=1)
        self.index = 0

    def record(self, process: str, type_: str, f: str, key: Any, value: Any) -> None:
        self.index += 1
        self._fh.write(json.dumps({"index": f"{self.worker}-{self.index}", "process": process,
                                   "type": type_, "f": f, "key": key, "value": value,
                                   "time": time.time()}, default=str) + "\n")

    def close(self) -> None:
        self._fh.close()


class FlowDriver(TaskDriver):
    """Drives one flow workload."""

    def __init__(self, workload: FlowWorkload, name: str, base_url: str, recorder: Recorder,
                 rng: random.Random, *, share: float, connections: int | None,
                 plan_dir: Path | None, service_urls: dict[str, str],
                 history: HistoryLog | None = None, canaries: tuple[str, ...] = (),
                 credentials: Credentials | None = None) -> None:
        self.history = history
        # The current tokens at each request: the workload's headers filled again only when
        # they change; a step naming a token is filled per request.
        self._headers = Filled(workload.headers, credentials)
        self._step_tokens = credentials if credentials is not None and has_token_refs(
            [s.model_dump(mode="json", by_alias=True) for s in workload.steps]) else None
        self.canaries = tuple(c.encode() for c in canaries)
        self.workload = workload
        self.name = name
        self.rng = rng
        self.share = share
        self.connections = connections
        self.flow_op: OpCounter = recorder.counter(name)
        self.steps_ops = {s: recorder.counter(f"{name}.{s}") for s in workload.step_names()}
        self.urls = {**service_urls, "": base_url}
        # One TLS context for the workload, shared by every client and connection.
        self._ssl = client_context(workload.tls) if any(
            u.startswith("https:") for u in self.urls.values()) else None
        self.plan_dir = plan_dir
        self.sending = False
        self.seq = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self._python: dict[str, Any] = {}
        # Every step's templates and checks, compiled once.
        self._top = [_Step(step, ()) for step in workload.steps]
        for plan in (p for top in self._top for p in top.walk()):
            if plan.kind in (_REQUEST, _PYTHON, _SSE) and plan.step.name is not None:
                plan.counter = self.steps_ops[plan.step.name]
            if plan.step.sse is not None:
                plan.stream = SseStep(plan.step.sse, recorder.counter(f"{name}.{plan.name}:event"),
                                      workload.tls, self._ssl)
        # A static step's bytes are built once unless the workload's headers or the steps
        # name a token (refreshed during the run).
        self._cache_sends = self._step_tokens is None and not (
            credentials is not None and has_token_refs(workload.headers))

    # -- iterations ----------------------------------------------------------------------
    async def run(self, duration: float) -> None:
        self.sending = True
        end = _monotonic() + duration
        if self.connections is not None:
            await closed_loops(self.connections, self._vu, end, self.tasks)
            return
        assert self.workload.rate is not None
        client = HttpClient(timeout=self.workload.timeout, tls=self.workload.tls,
                            context=self._ssl)
        try:
            await open_arrivals(
                ArrivalSchedule(rate=self.workload.rate, share=self.share, rng=self.rng),
                end=end, sending=lambda: self.sending, tasks=self.tasks,
                max_concurrency=self.workload.max_concurrency,
                start=lambda intended: self._iteration(0, client, intended),
                on_unstarted=lambda intended: self.flow_op.unfinished(intended, None,
                                                                      _monotonic()))
        finally:
            await client.close()

    async def run_once(self) -> bool:
        """One iteration now, on a client of its own (the final phase's reads); True when
        every step passed. Its figures are counted in ``flow_op`` as any iteration's."""
        self.sending = True
        client = HttpClient(timeout=self.workload.timeout)
        try:
            await self._iteration(0, client, _monotonic())
        finally:
            await client.close()
        return self.flow_op.errors == 0

    async def _vu(self, vu: int, end: float) -> None:
        client = HttpClient(timeout=self.workload.timeout, tls=self.workload.tls,
                            context=self._ssl)
        try:
            while self.sending and _monotonic() < end:
                await self._iteration(vu, client, _monotonic())
                if self.workload.think:
                    await asyncio.sleep(self.workload.think)
        finally:
            await client.close()

    async def _iteration(self, vu: int, client: HttpClient, intended: float) -> None:
        self.seq += 1
        ctx = FlowContext(self.seq, vu, self.rng, dict(self.workload.vars), client, self.urls)
        ctx.intended = intended
        f = self.flow_op
        try:
            # The steps' loop inlined (the hot path: one coroutine less per request).
            for plan in self._top:
                if plan.kind == _REQUEST:
                    await self._request(plan, ctx)
                else:
                    await self._other(plan, ctx)
        except asyncio.CancelledError:
            raise
        except FlowFailed as exc:
            f.requests += 1
            f.error(f"step:{exc.step}")
            return
        now = _monotonic()
        f.requests += 1
        f.lat.append(int((now - intended) * 1_000_000))
        f.svc.append(int((now - intended) * 1_000_000))

    # -- steps ---------------------------------------------------------------------------
    async def _steps(self, steps: list[_Step], ctx: FlowContext) -> None:
        # An iteration under way when the load ends runs on within the grace (its
        # steps still counted); what the grace cuts off is counted ``unfinished``.
        for plan in steps:
            if plan.kind == _REQUEST:
                await self._request(plan, ctx)
            else:
                await self._other(plan, ctx)

    async def _other(self, plan: _Step, ctx: FlowContext) -> None:
        step = plan.step
        if plan.kind == _SLEEP:
            assert step.sleep is not None
            await asyncio.sleep(step.sleep)
        elif plan.kind == _BRANCH:
            await self._steps(self._choose(plan.branches), ctx)
        elif plan.kind == _SSE:
            await self._stream(plan, ctx)
        else:
            await self._timed(plan, ctx, self._python_step(step, ctx))

    def _choose(self, branches: list[tuple[Branch, list[_Step]]]) -> list[_Step]:
        total = sum(b.weight for b, _ in branches)
        pick = self.rng.random() * total
        for b, steps in branches:
            pick -= b.weight
            if pick <= 0:
                return steps
        return branches[-1][1]

    def _history(self, plan: _Step, ctx: FlowContext, type_: str) -> None:
        spec = plan.step.history
        if spec is None or self.history is None:
            return
        assert plan.history_key is not None
        try:
            key = plan.history_key.value(ctx)
            value: Any = None
            if plan.history_path is not None:
                if type_ == "ok" and ctx.answer is not None:
                    value = plan.history_path.get(ctx.answer.doc())
            elif plan.history_value is not None:
                value = plan.history_value.value(ctx)
        except (MissingVariable, ValueError, KeyError, IndexError, TypeError):
            return
        if type_ == "invoke" and spec.f == "read":
            value = None
        self.history.record(f"{self.name}-{ctx.vu}-{ctx.seq}", type_, spec.f, key, value)

    def _failed(self, plan: _Step, ctx: FlowContext, sends: int, started: float,
                exc: BaseException) -> FlowFailed:
        """Count a step that failed with ``exc`` (one error per step, one request per send)
        and note it in the history; the ``FlowFailed`` that ends its iteration."""
        c = plan.counter
        assert c is not None
        name = plan.name
        c.requests += max(1, ctx.sends - sends)
        if isinstance(exc, UnsafeValue):
            c.error(UNSAFE_VALUE)
            self._history(plan, ctx, "fail")  # never sent
            return FlowFailed(name, UNSAFE_VALUE, str(exc))
        if isinstance(exc, FlowFailed):
            c.error(exc.cls)
            if exc.cls in ("until_timeout", "eventually_failed"):
                # Never held: the time it waited is its latency (a lower bound; rules read
                # such cases as "never"), so latency rules cannot drop the worst cases.
                waited = int((_monotonic() - started) * 1_000_000)
                c.lat.append(waited)
                c.svc.append(waited)
            # A definite rejection did not happen; anything else may have.
            self._history(plan, ctx, "fail" if exc.cls == "4xx" else "info")
            return FlowFailed(name, exc.cls, str(exc))
        if isinstance(exc, OSError | TimeoutError | asyncio.IncompleteReadError):
            cls = classify(exc) if isinstance(exc, OSError | TimeoutError) else "reset"
            c.error(cls)
            self._history(plan, ctx, "info")
            return FlowFailed(name, cls)
        c.error("check_failed")
        self._history(plan, ctx, "info")
        return FlowFailed(name, "check_failed", str(exc))

    async def _timed(self, plan: _Step, ctx: FlowContext, work: Any) -> None:
        c = plan.counter
        assert c is not None
        started = _monotonic()
        sends = ctx.sends
        self._history(plan, ctx, "invoke")
        # If the run ends while this step is out, both it and its iteration are counted
        # ``unfinished`` (by close_all, before the last window is sealed).
        token = self.in_flight.begin((c, started, started),
                                     (self.flow_op, ctx.intended, ctx.intended))
        try:
            await work
        except (UnsafeValue, FlowFailed, OSError, TimeoutError, asyncio.IncompleteReadError,
                ValueError, KeyError, TypeError) as exc:
            raise self._failed(plan, ctx, sends, started, exc) from exc
        finally:
            self.in_flight.end(token)
        self._history(plan, ctx, "ok")
        took = int((_monotonic() - started) * 1_000_000)
        # One latency per step (a poll: the time until it held), one request per send.
        c.requests += max(1, ctx.sends - sends)
        c.lat.append(took)
        c.svc.append(took)

    async def _request(self, plan: _Step, ctx: FlowContext) -> None:
        """A request step, timed and counted (``_timed`` and one send inlined: the hot
        path)."""
        c = plan.counter
        assert c is not None
        started = _monotonic()
        sends = ctx.sends
        history = plan.step.history is not None
        if history:
            self._history(plan, ctx, "invoke")
        # If the run ends while this step is out, both it and its iteration are counted
        # ``unfinished`` (by close_all, before the last window is sealed).
        token = self.in_flight.begin((c, started, started),
                                     (self.flow_op, ctx.intended, ctx.intended))
        try:
            if plan.poll:
                answer = await self._poll(plan, ctx)
            else:
                response = await self._send(plan, ctx)
                ctx.last = response
                answer = ctx.answer = Answer(response.status, response.body)
                if self.canaries:
                    self._canaries(plan, answer)
                try:
                    cls = plan.check.answer(answer, ctx)
                except MissingVariable as exc:
                    raise FlowFailed(plan.name, "template", str(exc)) from None
                if cls is not None:
                    raise FlowFailed(plan.name, cls, f"status {answer.status}")
            if plan.captures:
                for var, kind, source in plan.captures:
                    ctx.vars[var] = self._capture(plan.name, kind, source, answer, ctx)
        except (UnsafeValue, FlowFailed, OSError, TimeoutError, asyncio.IncompleteReadError,
                ValueError, KeyError, TypeError) as exc:
            raise self._failed(plan, ctx, sends, started, exc) from exc
        finally:
            self.in_flight.end(token)
        if history:
            self._history(plan, ctx, "ok")
        took = int((_monotonic() - started) * 1_000_000)
        # One latency per step (a poll: the time until it held), one request per send.
        n = ctx.sends - sends
        c.requests += n if n > 1 else 1
        c.lat.append(took)
        c.svc.append(took)

    async def _stream(self, plan: _Step, ctx: FlowContext) -> None:
        """An sse step: one request of its op, whose latency is the time to the first event
        (none when no event came); its events are counted by the step itself."""
        c, stream = plan.counter, plan.stream
        assert c is not None and stream is not None
        started = _monotonic()
        token = self.in_flight.begin((c, started, started),
                                     (self.flow_op, ctx.intended, ctx.intended))
        try:
            outcome = await stream.attach(ctx, ctx.urls, self._headers.get())
        finally:
            self.in_flight.end(token)
        c.requests += 1
        if outcome.ttfe is not None:
            c.lat.append(int(outcome.ttfe * 1_000_000))
            c.svc.append(int(outcome.ttfe * 1_000_000))
        if outcome.cls is not None:
            c.error(outcome.cls)
            raise FlowFailed(plan.name, outcome.cls, outcome.detail)

    def _canaries(self, plan: _Step, answer: Answer) -> None:
        for canary in self.canaries:
            if canary in answer.body:
                raise FlowFailed(plan.name, "canary", "a canary appeared in a response")

    def _send(self, plan: _Step, ctx: FlowContext) -> Awaitable[Response]:
        """Send the step's request (its bytes built once when it has no template); its
        answer, to await."""
        req = plan.request
        assert req is not None
        sent = plan.sent
        if sent is None:
            if plan.shaped and self._cache_sends:
                sent = self._shaped(plan, ctx)
            else:
                sent = self._build(plan, ctx)
                if plan.static and self._cache_sends:
                    plan.sent = sent
        # Counted as sent before it goes: a poll's every attempt is a request the server saw.
        ctx.sends += 1
        origin, url, wire = sent
        return ctx.client.send(origin, req.method, wire, url, req.timeout)

    def _build(self, plan: _Step, ctx: FlowContext) -> tuple[str, str, bytes]:
        req = plan.request
        assert req is not None
        try:
            base = req.base.render(ctx) if req.base is not None else ctx.urls[req.service]
            url = base.rstrip("/") + req.path.render_target(ctx)
            headers = {**self._headers.get(),
                       **{k: v.render(ctx) for k, v in req.headers.items()}}
            json_body = render_value(req.json, ctx) if req.json is not None else None
            body = req.body.render(ctx) if req.body is not None else None
            query = {k: render_value(v, ctx) for k, v in req.query.items()} or None
        except MissingVariable as exc:
            raise FlowFailed(plan.name, "template", str(exc)) from None
        creds = self._step_tokens
        if creds is not None:
            url, headers, json_body, body, query = creds.fill(
                (url, headers, json_body, body, query))
        origin, wire = ctx.client.prepare(req.method, url, headers=headers,
                                          json_body=json_body, body=body, query=query)
        return origin, url, wire

    def _shaped(self, plan: _Step, ctx: FlowContext) -> tuple[str, str, bytes]:
        """As ``_build`` for a step whose target alone varies: the request line's target
        rendered into bytes built once (the same bytes ``_build`` makes)."""
        req = plan.request
        assert req is not None
        try:
            path = req.path.render_target(ctx)
            query = {k: render_value(v, ctx) for k, v in req.query.items()}
        except MissingVariable as exc:
            raise FlowFailed(plan.name, "template", str(exc)) from None
        if not path.startswith("/"):
            return self._build(plan, ctx)  # a whole URL from a capture: parsed in full
        shape = plan.shape
        if shape is None:
            base = req.base.render(ctx) if req.base is not None else ctx.urls[req.service]
            origin, prefix = split_url(base.rstrip("/") + "/")
            _, wire = ctx.client.prepare(
                req.method, origin + "/",
                headers={**self._headers.get(),
                         **{k: v.render(ctx) for k, v in req.headers.items()}},
                json_body=render_value(req.json, ctx) if req.json is not None else None,
                body=req.body.render(ctx) if req.body is not None else None)
            start = f"{req.method} ".encode()
            assert wire.startswith(start + b"/ HTTP/1.1\r\n")
            shape = plan.shape = (origin, prefix[:-1], start, wire[len(start) + 1:])
        origin, prefix, start, rest = shape
        path = prefix + path
        url = origin + path
        if query:
            path += ("&" if "?" in path else "?") + urlencode(query)
        return origin, url, start + request_target(path) + rest

    async def _answer(self, plan: _Step, ctx: FlowContext) -> Answer:
        """One send of a poll: its answer, as checks read it."""
        response = await self._send(plan, ctx)
        ctx.last = response
        answer = ctx.answer = Answer(response.status, response.body)
        if self.canaries:
            self._canaries(plan, answer)
        return answer

    async def _poll(self, plan: _Step, ctx: FlowContext) -> Answer:
        """A step sent until its ``until`` holds or its ``expect_eventually`` passes."""
        step = plan.step
        name = plan.name
        if plan.until is not None:
            deadline = _monotonic() + step.within
            while True:
                answer = await self._answer(plan, ctx)
                if answer.status < 100 or answer.status > 599:
                    raise FlowFailed(name, "protocol", f"status {answer.status}")
                if plan.until.holds(answer, ctx):
                    return answer
                if _monotonic() + step.every > deadline:
                    raise FlowFailed(name, "until_timeout",
                                     f"{step.until} did not hold within {step.within:g}s")
                await asyncio.sleep(step.every)
        ev = step.expect_eventually
        assert ev is not None and plan.eventually is not None
        for attempt in range(ev.attempts):
            answer = await self._answer(plan, ctx)
            cls = plan.eventually.answer(answer, ctx)
            if cls is None:
                return answer
            if cls == "protocol":
                raise FlowFailed(name, cls, f"status {answer.status}")
            if attempt == ev.attempts - 1:
                raise FlowFailed(name, "eventually_failed",
                                 f"not true after {ev.attempts} attempts")
            await asyncio.sleep(ev.delay)
        raise AssertionError("unreachable: attempts > 0")

    @staticmethod
    def _capture(step: str, kind: str, source: JsonPath | str, answer: Answer,
                 ctx: FlowContext) -> Any:
        if kind == "status":
            return answer.status
        if kind == "header":
            assert isinstance(source, str) and ctx.last is not None
            value = ctx.last.headers.get(source)
            if value is None:
                raise FlowFailed(step, "capture_failed", f"no header {source}")
            return value
        assert isinstance(source, JsonPath)
        try:
            return source.get(answer.doc())
        except (ValueError, KeyError, IndexError, TypeError):
            raise FlowFailed(step, "capture_failed", f"{source.text} is not in the response") \
                from None

    async def _python_step(self, step: FlowStep, ctx: FlowContext) -> None:
        assert step.python is not None
        fn = self._python.get(step.python)
        if fn is None:
            fn = self._python[step.python] = load_function(step.python, self.plan_dir)
        try:
            # Every step kind has a timeout: a python step awaiting forever would hold its
            # iteration (and the run's end) forever. The flow's ``timeout`` bounds it.
            await asyncio.wait_for(fn(ctx.client, ctx), self.workload.timeout)
        except (FlowFailed, OSError, TimeoutError, UnsafeValue, asyncio.CancelledError):
            raise
        except Fatal as exc:  # the run stops, as failed (see enduro.Fatal)
            raise FlowFailed(step.name or "?", fatal_class(exc), str(exc)) from exc
        except Exception as exc:  # the user's code may raise anything
            raise FlowFailed(step.name or "?", f"error:{type(exc).__name__}", str(exc)) \
                from exc
