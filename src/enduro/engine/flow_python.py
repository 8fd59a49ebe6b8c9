"""A flow's ``python`` steps: the plan's functions, imported once, each awaited within the
flow's timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from enduro.base.errors import Fatal, fatal_class
from enduro.engine.flow_context import FlowContext, FlowFailed
from enduro.engine.python import load_function
from enduro.net.wire import UnsafeValue
from enduro.plan.flows import FlowStep

__all__ = ["PythonSteps"]


class PythonSteps:
    """Runs ``python`` steps, their functions imported from ``plan_dir`` at first use."""

    def __init__(self, plan_dir: Path | None, timeout: float) -> None:
        self.plan_dir = plan_dir
        self.timeout = timeout
        self._python: dict[str, Any] = {}

    async def run(self, step: FlowStep, ctx: FlowContext) -> None:
        assert step.python is not None
        fn = self._python.get(step.python)
        if fn is None:
            fn = self._python[step.python] = load_function(step.python, self.plan_dir)
        try:
            # Every step kind has a timeout: a python step awaiting forever would hold its
            # iteration (and the run's end) forever. The flow's ``timeout`` bounds it.
            await asyncio.wait_for(fn(ctx.client, ctx), self.timeout)
        except (FlowFailed, OSError, TimeoutError, UnsafeValue, asyncio.CancelledError):
            raise
        except Fatal as exc:  # the run stops, as failed (see enduro.Fatal)
            raise FlowFailed(step.name or "?", fatal_class(exc), str(exc)) from exc
        except Exception as exc:  # the user's code may raise anything
            raise FlowFailed(step.name or "?", f"error:{type(exc).__name__}", str(exc)) \
                from exc
