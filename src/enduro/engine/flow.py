"""Flows: multi-step scenarios with state. Each iteration is the op ``<flow>`` (latency: the
whole flow); each named step is ``<flow>.<step>`` (latency: the request, or for a poll or an
eventual expectation, the time until it held)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

from enduro.engine.flow_answers import Answers
from enduro.engine.flow_context import FlowContext, FlowFailed, render
from enduro.engine.flow_outcomes import StepOutcomes
from enduro.engine.flow_python import PythonSteps
from enduro.engine.flow_send import StepSender
from enduro.engine.flow_sse import SseStep
from enduro.engine.flow_steps import BRANCH, PYTHON, REQUEST, SLEEP, SSE, Step, choose
from enduro.engine.history_log import HistoryLog
from enduro.engine.schedule import ArrivalSchedule
from enduro.engine.tasks import TaskDriver, closed_loops, open_arrivals
from enduro.net.client import HttpClient
from enduro.net.conditions import Answer
from enduro.net.templates import MissingVariable
from enduro.net.tls import client_context
from enduro.net.wire import UnsafeValue
from enduro.observe.window import OpCounter, Recorder
from enduro.plan.flows import FlowWorkload
from enduro.plan.tokens import Credentials, Filled, has_token_refs

__all__ = ["FlowContext", "FlowDriver", "FlowFailed", "HistoryLog", "render"]

_monotonic = time.monotonic


class FlowDriver(TaskDriver):
    """Drives one flow workload. Its parts: the compiled steps (``flow_steps``), the
    request bytes (``StepSender``), the answers' canaries, polls and captures (``Answers``),
    the history and failures (``StepOutcomes``) and python steps (``PythonSteps``)."""

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
        self._python = PythonSteps(plan_dir, workload.timeout)
        # Every step's templates and checks, compiled once.
        self._top = [Step(step, ()) for step in workload.steps]
        for plan in (p for top in self._top for p in top.walk()):
            if plan.kind in (REQUEST, PYTHON, SSE) and plan.step.name is not None:
                plan.counter = self.steps_ops[plan.step.name]
            if plan.step.sse is not None:
                plan.stream = SseStep(plan.step.sse, recorder.counter(f"{name}.{plan.name}:event"),
                                      workload.tls, self._ssl)
        # A static step's bytes are built once unless the workload's headers or the steps
        # name a token (refreshed during the run).
        self._cache_sends = self._step_tokens is None and not (
            credentials is not None and has_token_refs(workload.headers))
        sender = StepSender(self._headers, self._step_tokens, self._cache_sends)
        # Bound here once: one attribute read per send on the hot path.
        self._send = sender.send
        self._build = sender.build
        self._shaped = sender.shaped
        self._answers = Answers(self._send, self.canaries)
        self._outcomes = StepOutcomes(name, history)

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
                if plan.kind == REQUEST:
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
    async def _steps(self, steps: list[Step], ctx: FlowContext) -> None:
        # An iteration under way when the load ends runs on within the grace (its
        # steps still counted); what the grace cuts off is counted ``unfinished``.
        for plan in steps:
            if plan.kind == REQUEST:
                await self._request(plan, ctx)
            else:
                await self._other(plan, ctx)

    async def _other(self, plan: Step, ctx: FlowContext) -> None:
        step = plan.step
        if plan.kind == SLEEP:
            assert step.sleep is not None
            await asyncio.sleep(step.sleep)
        elif plan.kind == BRANCH:
            await self._steps(choose(plan.branches, self.rng), ctx)
        elif plan.kind == SSE:
            await self._stream(plan, ctx)
        else:
            await self._timed(plan, ctx, self._python.run(step, ctx))

    async def _timed(self, plan: Step, ctx: FlowContext, work: Any) -> None:
        c = plan.counter
        assert c is not None
        started = _monotonic()
        sends = ctx.sends
        self._outcomes.note(plan, ctx, "invoke")
        # If the run ends while this step is out, both it and its iteration are counted
        # ``unfinished`` (by close_all, before the last window is sealed).
        token = self.in_flight.begin((c, started, started),
                                     (self.flow_op, ctx.intended, ctx.intended))
        try:
            await work
        except (UnsafeValue, FlowFailed, OSError, TimeoutError, asyncio.IncompleteReadError,
                ValueError, KeyError, TypeError) as exc:
            raise self._outcomes.failed(plan, ctx, sends, started, exc) from exc
        finally:
            self.in_flight.end(token)
        self._outcomes.note(plan, ctx, "ok")
        took = int((_monotonic() - started) * 1_000_000)
        # One latency per step (a poll: the time until it held), one request per send.
        c.requests += max(1, ctx.sends - sends)
        c.lat.append(took)
        c.svc.append(took)

    async def _request(self, plan: Step, ctx: FlowContext) -> None:
        """A request step, timed and counted (``_timed`` and one send inlined: the hot
        path)."""
        c = plan.counter
        assert c is not None
        started = _monotonic()
        sends = ctx.sends
        history = plan.step.history is not None
        if history:
            self._outcomes.note(plan, ctx, "invoke")
        # If the run ends while this step is out, both it and its iteration are counted
        # ``unfinished`` (by close_all, before the last window is sealed).
        token = self.in_flight.begin((c, started, started),
                                     (self.flow_op, ctx.intended, ctx.intended))
        try:
            if plan.poll:
                answer = await self._answers.poll(plan, ctx)
            else:
                response = await self._send(plan, ctx)
                ctx.last = response
                answer = ctx.answer = Answer(response.status, response.body)
                if self.canaries:
                    self._answers.check_canaries(plan, answer)
                try:
                    cls = plan.check.answer(answer, ctx)
                except MissingVariable as exc:
                    raise FlowFailed(plan.name, "template", str(exc)) from None
                if cls is not None:
                    raise FlowFailed(plan.name, cls, f"status {answer.status}")
            if plan.captures:
                for var, kind, source in plan.captures:
                    ctx.vars[var] = Answers.capture(plan.name, kind, source, answer, ctx)
        except (UnsafeValue, FlowFailed, OSError, TimeoutError, asyncio.IncompleteReadError,
                ValueError, KeyError, TypeError) as exc:
            raise self._outcomes.failed(plan, ctx, sends, started, exc) from exc
        finally:
            self.in_flight.end(token)
        if history:
            self._outcomes.note(plan, ctx, "ok")
        took = int((_monotonic() - started) * 1_000_000)
        # One latency per step (a poll: the time until it held), one request per send.
        n = ctx.sends - sends
        c.requests += n if n > 1 else 1
        c.lat.append(took)
        c.svc.append(took)

    async def _stream(self, plan: Step, ctx: FlowContext) -> None:
        """An sse step: one request of its op, whose latency is the time to the first event
        (none when no event came); its events are counted by the step itself."""
        c, stream = plan.counter, plan.stream
        assert c is not None and stream is not None
        started = _monotonic()
        token = self.in_flight.begin((c, started, started),
                                     (self.flow_op, ctx.intended, ctx.intended))
        try:
            outcome = await stream.attach(ctx, ctx.urls, self._headers.get(), self._step_tokens)
        finally:
            self.in_flight.end(token)
        c.requests += 1
        if outcome.ttfe is not None:
            c.lat.append(int(outcome.ttfe * 1_000_000))
            c.svc.append(int(outcome.ttfe * 1_000_000))
        if outcome.cls is not None:
            c.error(outcome.cls)
            raise FlowFailed(plan.name, outcome.cls, outcome.detail)
