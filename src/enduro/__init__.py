"""enduro: soak, stress and chaos tests from one plan file.

Layers point one way:
    cli -> api -> run -> engine / observe -> verdict / report (read what observe holds)
with plan/ (typed models) and units/errors used by all. No module keeps mutable state; one
``Run`` object is passed down, and time comes from an injectable ``Clock``.
"""

from enduro.errors import (
    EnduroError,
    FatalWorkerError,
    Interrupted,
    PlanError,
    RuleSyntaxError,
    RunError,
    TargetUnreachable,
)
from enduro.plan import LoadedPlan, Plan, load_plan
from enduro.run.clock import Clock, FakeClock, SystemClock
from enduro.run.run import Run, RunOptions, RunOutcome
from enduro.verdict.rules import Rule, parse_rule

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
