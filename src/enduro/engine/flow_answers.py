"""What a flow step reads of its answers: canaries, a poll until its ``until`` holds or its
``expect_eventually`` passes, and captures into the flow's variables."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from enduro.engine.flow_context import FlowContext, FlowFailed
from enduro.engine.flow_steps import Step
from enduro.net.client import Response
from enduro.net.conditions import Answer, JsonPath

__all__ = ["Answers"]

_monotonic = time.monotonic


class Answers:
    """Reads flow steps' answers; ``send`` sends a step's request once."""

    def __init__(self, send: Callable[[Step, FlowContext], Awaitable[Response]],
                 canaries: tuple[bytes, ...]) -> None:
        self._send = send
        self.canaries = canaries

    def check_canaries(self, plan: Step, answer: Answer) -> None:
        for canary in self.canaries:
            if canary in answer.body:
                raise FlowFailed(plan.name, "canary", "a canary appeared in a response")

    async def answer(self, plan: Step, ctx: FlowContext) -> Answer:
        """One send of a poll: its answer, as checks read it."""
        response = await self._send(plan, ctx)
        ctx.last = response
        answer = ctx.answer = Answer(response.status, response.body)
        if self.canaries:
            self.check_canaries(plan, answer)
        return answer

    async def poll(self, plan: Step, ctx: FlowContext) -> Answer:
        """A step sent until its ``until`` holds or its ``expect_eventually`` passes."""
        step = plan.step
        name = plan.name
        if plan.until is not None:
            deadline = _monotonic() + step.within
            while True:
                answer = await self.answer(plan, ctx)
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
            answer = await self.answer(plan, ctx)
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
    def capture(step: str, kind: str, source: JsonPath | str, answer: Answer,
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
