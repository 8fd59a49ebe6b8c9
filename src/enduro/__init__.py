"""enduro: soak, stress and chaos tests from one plan file.

Layers point one way:
    cli -> api -> run -> engine / observe -> verdict / report (read what observe holds)
with plan/ (typed models) and units/errors used by all. No module keeps mutable state; one
``Run`` object is passed down, and time comes from an injectable ``Clock``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from enduro.errors import (
    EnduroError,
    FatalWorkerError,
    Interrupted,
    PlanError,
    RuleSyntaxError,
    RunError,
    TargetUnreachable,
)

if TYPE_CHECKING:
    from enduro.plan import LoadedPlan, Plan, load_plan
    from enduro.run.clock import Clock, FakeClock, SystemClock
    from enduro.run.run import Run, RunOptions, RunOutcome
    from enduro.verdict.rules import Rule, parse_rule

# The heavy parts are imported on first use, so that `import enduro` (and the command's
# entry point, which must catch a Ctrl-C during start-up) stays light.
_LAZY = {
    "LoadedPlan": "enduro.plan", "Plan": "enduro.plan", "load_plan": "enduro.plan",
    "Clock": "enduro.run.clock", "FakeClock": "enduro.run.clock",
    "SystemClock": "enduro.run.clock",
    "Run": "enduro.run.run", "RunOptions": "enduro.run.run", "RunOutcome": "enduro.run.run",
    "Rule": "enduro.verdict.rules", "parse_rule": "enduro.verdict.rules",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'enduro' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "Clock",
    "EnduroError",
    "FakeClock",
    "FatalWorkerError",
    "Interrupted",
    "LoadedPlan",
    "Plan",
    "PlanError",
    "Rule",
    "RuleSyntaxError",
    "Run",
    "RunError",
    "RunOptions",
    "RunOutcome",
    "SystemClock",
    "TargetUnreachable",
    "__version__",
    "load_plan",
    "parse_rule",
]
