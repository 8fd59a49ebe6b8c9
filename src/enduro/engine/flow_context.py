"""What a flow carries from step to step (``FlowContext``), how a step fails (``FlowFailed``),
and filling in a value's placeholders from it (``render``)."""

from __future__ import annotations

import random
from typing import Any

from enduro.net.client import HttpClient, Response
from enduro.net.conditions import Answer
from enduro.net.templates import compile_value, render_value

__all__ = ["FlowContext", "FlowFailed", "render"]


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
