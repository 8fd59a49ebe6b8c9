"""Flows: multi-step scenarios with state. Each iteration is the op ``<flow>`` (latency: the
whole flow); each named step is ``<flow>.<step>`` (latency: the request, or for a poll or an
eventual expectation, the time until it held)."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from pathlib import Path
from typing import Any

from enduro.engine.client import HttpClient, Response
from enduro.engine.http import classify
from enduro.engine.python import load_function
from enduro.engine.request import _json_path
from enduro.engine.schedule import ArrivalSchedule
from enduro.engine.tasks import TaskDriver, closed_loops, open_arrivals
from enduro.engine.tls import client_context
from enduro.engine.wire import (
    UnsafeValue,
    encode_path,
    encode_path_value,
    encode_query_value,
)
from enduro.observe.window import UNSAFE_VALUE, OpCounter, Recorder
from enduro.plan.flows import CONDITION, Branch, FlowStep, FlowWorkload, StepExpect
from enduro.plan.tokens import Credentials, Filled, has_token_refs

__all__ = ["FlowContext", "FlowDriver", "FlowFailed", "HistoryLog", "check_condition",
           "condition_holds", "render", "render_target"]

_monotonic = time.monotonic
_VAR = re.compile(r"\{\{\s*([A-Za-z_][\w]*)(?:\(([^)]*)\))?\s*\}\}")
_MISSING = object()


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
        # The iteration's intended start (counted from here if it is cut off by the end).
        self.intended = 0.0


def render(value: Any, ctx: FlowContext) -> Any:
    """Fill ``{{var}}``, ``{{seq}}``, ``{{uuid}}``, ``{{randint(a,b)}}``, ``{{choice(a|b)}}``.
    A string that is exactly one placeholder keeps the captured value's type."""
    if isinstance(value, dict):
        return {k: render(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, ctx) for v in value]
    if not isinstance(value, str) or "{{" not in value:
        return value
    whole = _VAR.fullmatch(value.strip())
    if whole:
        return _lookup(whole.group(1), whole.group(2), ctx)
    return _VAR.sub(lambda m: str(_lookup(m.group(1), m.group(2), ctx)), value)


def render_target(template: str, ctx: FlowContext) -> str:
    """A path template (``/items/{{id}}?after={{cursor}}``) rendered for the request line:
    every substituted value is percent-encoded, as one path segment before the ``?`` and as
    a query value after it, so a value from a response can neither add a path segment or a
    query parameter nor reach the wire with CR/LF. A placeholder that begins the template
    (``{{location}}``) stands for a whole path: its slashes and query are kept, and only
    what cannot stand in a request target (controls, spaces, ``#``) is encoded."""
    if "{{" not in template:
        return template
    query_at = template.find("?")

    def one(m: re.Match[str]) -> str:
        value = _lookup(m.group(1), m.group(2), ctx)
        if m.start() == 0:
            return encode_path(value)
        if 0 <= query_at < m.start():
            return encode_query_value(value)
        return encode_path_value(value)

    return _VAR.sub(one, template)


def _lookup(name: str, args: str | None, ctx: FlowContext) -> Any:
    if name in ctx.vars:
        return ctx.vars[name]
    if name == "seq":
        return ctx.seq
    if name == "vu":
        return ctx.vu
    if name == "uuid":
        return str(uuid.uuid4())  # unique across runs (see engine.request)
    if name == "randint" and args:
        lo, hi = (int(a) for a in args.split(","))
        return ctx.rng.randint(lo, hi)
    if name == "choice" and args:
        return ctx.rng.choice(args.split("|"))
    raise FlowFailed("?", "template", f"no variable {name!r} (captured: "
                     f"{', '.join(ctx.vars) or 'none'})")


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.strip("'\"")


def check_condition(condition: str, response: Response) -> bool:
    """``$.state == "completed"``, ``status == 200``, ``$.items.length >= 3``,
    ``$.state in ["done", "failed"]``."""
    try:
        doc = response.json() if not condition.lstrip().startswith("status") else None
    except ValueError:
        return False
    return condition_holds(condition, doc, response.status)


def condition_holds(condition: str, doc: Any, status: int) -> bool:
    """A condition over a parsed JSON document (and the status code)."""
    match = CONDITION.match(condition)
    assert match is not None
    path, op, raw = match.groups()
    try:
        actual = status if path == "status" else _json_path(doc, path)
    except (KeyError, IndexError, TypeError):
        return False
    expected = _literal(raw)
    try:
        return bool({"==": actual == expected, "!=": actual != expected,
                     "in": actual in expected if isinstance(expected, list) else False,
                     "<": op == "<" and actual < expected, "<=": op == "<=" and actual <= expected,
                     ">": op == ">" and actual > expected,
                     ">=": op == ">=" and actual >= expected}[op])
    except TypeError:
        return False


def _expect_ok(expect: StepExpect | None, r: Response) -> str | None:
    """None when the response passes; else the error class."""
    if expect is None:
        return None if r.status < 400 else ("5xx" if r.status >= 500 else "4xx")
    if expect.status is not None:
        allowed = expect.status if isinstance(expect.status, list) else [expect.status]
        if r.status not in allowed:
            return "5xx" if r.status >= 500 else "4xx" if r.status >= 400 else "status"
    elif r.status >= 400:
        return "5xx" if r.status >= 500 else "4xx"
    if expect.contains is not None and expect.contains.encode() not in r.body:
        return "check_failed"
    if expect.json_:
        try:
            doc = r.json()
            if not all(_json_path(doc, k) == v for k, v in expect.json_.items()):
                return "check_failed"
        except (ValueError, KeyError, IndexError, TypeError):
            return "check_failed"
    return None


def _rendered(expect: Any, ctx: FlowContext) -> Any:
    """An expectation with ``{{var}}`` filled in (captured ids in checks)."""
    if expect is None:
        return None
    return type(expect).model_validate(render(expect.model_dump(by_alias=True), ctx))


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
            await self._steps(self.workload.steps, ctx)
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
    async def _steps(self, steps: list[FlowStep], ctx: FlowContext) -> None:
        # An iteration under way when the load ends runs on within the grace (its
        # steps still counted); what the grace cuts off is counted ``unfinished``.
        for step in steps:
            if step.sleep is not None:
                await asyncio.sleep(step.sleep)
            elif step.branch is not None:
                await self._steps(self._choose(step.branch).steps, ctx)
            elif step.python is not None:
                await self._timed(step, ctx, self._python_step(step, ctx))
            else:
                await self._timed(step, ctx, self._request_step(step, ctx))

    def _choose(self, branches: list[Branch]) -> Branch:
        total = sum(b.weight for b in branches)
        pick = self.rng.random() * total
        for b in branches:
            pick -= b.weight
            if pick <= 0:
                return b
        return branches[-1]

    def _history(self, step: FlowStep, ctx: FlowContext, type_: str) -> None:
        spec = step.history
        if spec is None or self.history is None:
            return
        try:
            key = render(spec.key, ctx)
            value: Any = None
            if spec.value is not None:
                if spec.value.startswith("$"):
                    if type_ == "ok" and ctx.last is not None:
                        value = _json_path(ctx.last.json(), spec.value)
                else:
                    value = render(spec.value, ctx)
        except (FlowFailed, ValueError, KeyError, IndexError, TypeError):
            return
        if type_ == "invoke" and spec.f == "read":
            value = None
        self.history.record(f"{self.name}-{ctx.vu}-{ctx.seq}", type_, spec.f, key, value)

    async def _timed(self, step: FlowStep, ctx: FlowContext, work: Any) -> None:
        assert step.name is not None
        c = self.steps_ops[step.name]
        started = _monotonic()
        self._history(step, ctx, "invoke")
        # If the run ends while this step is out, both it and its iteration are counted
        # ``unfinished`` (by close_all, before the last window is sealed).
        token = self.in_flight.begin((c, started, started),
                                     (self.flow_op, ctx.intended, ctx.intended))
        try:
            await work
        except UnsafeValue as exc:
            c.requests += 1
            c.error(UNSAFE_VALUE)
            self._history(step, ctx, "fail")  # never sent
            raise FlowFailed(step.name, UNSAFE_VALUE, str(exc)) from exc
        except FlowFailed as exc:
            c.requests += 1
            c.error(exc.cls)
            if exc.cls in ("until_timeout", "eventually_failed"):
                # Never held: the time it waited is its latency (a lower bound; rules read
                # such cases as "never"), so latency rules cannot drop the worst cases.
                waited = int((_monotonic() - started) * 1_000_000)
                c.lat.append(waited)
                c.svc.append(waited)
            # A definite rejection did not happen; anything else may have.
            self._history(step, ctx, "fail" if exc.cls == "4xx" else "info")
            raise FlowFailed(step.name, exc.cls, str(exc)) from exc
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            c.requests += 1
            cls = classify(exc) if isinstance(exc, OSError | TimeoutError) else "reset"
            c.error(cls)
            self._history(step, ctx, "info")
            raise FlowFailed(step.name, cls) from exc
        except (ValueError, KeyError, TypeError) as exc:
            c.requests += 1
            c.error("check_failed")
            self._history(step, ctx, "info")
            raise FlowFailed(step.name, "check_failed", str(exc)) from exc
        finally:
            self.in_flight.end(token)
        self._history(step, ctx, "ok")
        took = _monotonic() - started
        c.requests += 1
        c.lat.append(int(took * 1_000_000))
        c.svc.append(int(took * 1_000_000))

    async def _send(self, step: FlowStep, ctx: FlowContext) -> Response:
        req = step.request
        assert req is not None
        if req.base is not None:
            base = render(req.base, ctx)
        else:
            base = ctx.urls[req.service or ""]
        url = base.rstrip("/") + render_target(req.path, ctx)
        headers = {**self._headers.get(), **render(req.headers, ctx)}
        json_body = render(req.json_, ctx) if req.json_ is not None else None
        body = render(req.body, ctx) if req.body is not None else None
        query = render(req.query, ctx) or None
        creds = self._step_tokens
        if creds is not None:
            url, headers, json_body, body, query = creds.fill(
                (url, headers, json_body, body, query))
        response = await ctx.client.request(
            req.method, url, headers=headers, json_body=json_body, body=body, query=query,
            timeout=req.timeout)
        ctx.last = response
        for canary in self.canaries:
            if canary in response.body:
                raise FlowFailed(step.name or "?", "canary", "a canary appeared in a response")
        return response

    async def _request_step(self, step: FlowStep, ctx: FlowContext) -> None:
        name = step.name or "?"
        if step.until is not None:
            deadline = _monotonic() + step.within
            while True:
                response = await self._send(step, ctx)
                if check_condition(step.until, response):
                    break
                if _monotonic() + step.every > deadline:
                    raise FlowFailed(name, "until_timeout",
                                     f"{step.until} did not hold within {step.within:g}s")
                await asyncio.sleep(step.every)
        elif step.expect_eventually is not None:
            ev = _rendered(step.expect_eventually, ctx)
            for attempt in range(ev.attempts):
                response = await self._send(step, ctx)
                if _expect_ok(ev, response) is None:
                    break
                if attempt == ev.attempts - 1:
                    raise FlowFailed(name, "eventually_failed",
                                     f"not true after {ev.attempts} attempts")
                await asyncio.sleep(ev.delay)
        else:
            response = await self._send(step, ctx)
            cls = _expect_ok(_rendered(step.expect, ctx), response)
            if cls is not None:
                raise FlowFailed(name, cls, f"status {response.status}")
        for var, source in step.capture.items():
            ctx.vars[var] = self._capture(name, source, response)

    @staticmethod
    def _capture(step: str, source: str, r: Response) -> Any:
        if source == "status":
            return r.status
        if source.startswith("header:"):
            value = r.headers.get(source[7:].strip().lower())
            if value is None:
                raise FlowFailed(step, "capture_failed", f"no header {source[7:]}")
            return value
        try:
            return _json_path(r.json(), source)
        except (ValueError, KeyError, IndexError, TypeError):
            raise FlowFailed(step, "capture_failed", f"{source} is not in the response") \
                from None

    async def _python_step(self, step: FlowStep, ctx: FlowContext) -> None:
        assert step.python is not None
        fn = self._python.get(step.python)
        if fn is None:
            fn = self._python[step.python] = load_function(step.python, self.plan_dir)
        try:
            await fn(ctx.client, ctx)
        except (FlowFailed, OSError, TimeoutError, UnsafeValue, asyncio.CancelledError):
            raise
        except Exception as exc:  # the user's code may raise anything
            raise FlowFailed(step.name or "?", f"error:{type(exc).__name__}", str(exc)) \
                from exc
