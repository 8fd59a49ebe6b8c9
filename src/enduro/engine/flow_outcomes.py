"""How a flow step ends: noted in the history (invoke, then ok, fail or info), and a failed
step counted in its op with its error class."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from enduro.engine.flow_context import FlowContext, FlowFailed
from enduro.engine.flow_steps import Step
from enduro.engine.history_log import HistoryLog
from enduro.engine.http import classify
from enduro.net.templates import MissingVariable
from enduro.net.wire import UnsafeValue
from enduro.observe.window import UNSAFE_VALUE

__all__ = ["StepOutcomes"]

_monotonic = time.monotonic


class StepOutcomes:
    """Notes the steps of flow ``name`` in ``history`` (when there is one) and counts their
    failures."""

    def __init__(self, name: str, history: HistoryLog | None) -> None:
        self.name = name
        self.history = history

    def note(self, plan: Step, ctx: FlowContext, type_: str) -> None:
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

    def failed(self, plan: Step, ctx: FlowContext, sends: int, started: float,
                exc: BaseException) -> FlowFailed:
        """Count a step that failed with ``exc`` (one error per step, one request per send)
        and note it in the history; the ``FlowFailed`` that ends its iteration."""
        c = plan.counter
        assert c is not None
        name = plan.name
        c.requests += max(1, ctx.sends - sends)
        if isinstance(exc, UnsafeValue):
            c.error(UNSAFE_VALUE)
            self.note(plan, ctx, "fail")  # never sent
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
            self.note(plan, ctx, "fail" if exc.cls == "4xx" else "info")
            return FlowFailed(name, exc.cls, str(exc))
        if isinstance(exc, OSError | TimeoutError | asyncio.IncompleteReadError):
            cls = classify(exc) if isinstance(exc, OSError | TimeoutError) else "reset"
            c.error(cls)
            self.note(plan, ctx, "info")
            return FlowFailed(name, cls)
        c.error("check_failed")
        self.note(plan, ctx, "info")
        return FlowFailed(name, "check_failed", str(exc))
