"""enduro: soak, stress and chaos tests from one plan file.

Layers, top to bottom; a module imports its own layer and those below it, never above
(tests/unit/test_layers.py checks it from the source, with no cycles anywhere):

    cli, entry                          argument parsing, one error handler
    api, detach, dashboard, suite,      what each command does
      gate, triage, demo, testing
    run                                 one execution and its run directory
    report                              results.json, junit, the terminal and HTML report
    faults                              fault kinds, their schedule and undo journal
    verdict                             rules, trends, checkers: the verdict from figures
    services                            launching, readiness, supervision of services
    engine                              workload kinds: http, flow, sse, burst, python
    observe                             windows, histograms, store, sampler, scrapes
    net                                 HTTP on the wire, TLS, templates and conditions
    documents                           results.json, state.json, events, the undo journal
                                          and worker messages as models (JSON Schemas)
    plan                                typed models, loading with file:line
    base                                errors, units, clock, event loop, atomic files

No module keeps mutable state; time comes from an injectable ``Clock``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from enduro.base.errors import (
    EnduroError,
    Fatal,
    FatalWorkerError,
    Interrupted,
    PlanError,
    RuleSyntaxError,
    RunError,
    TargetUnreachable,
)

if TYPE_CHECKING:
    from enduro.base.clock import Clock, FakeClock, SystemClock
    from enduro.plan import LoadedPlan, Plan, load_plan
    from enduro.run.run import Run, RunOptions, RunOutcome
    from enduro.verdict.rules import Rule, parse_rule

# The heavy parts are imported on first use, so that `import enduro` (and the command's
# entry point, which must catch a Ctrl-C during start-up) stays light.
_LAZY = {
    "LoadedPlan": "enduro.plan", "Plan": "enduro.plan", "load_plan": "enduro.plan",
    "Clock": "enduro.base.clock", "FakeClock": "enduro.base.clock",
    "SystemClock": "enduro.base.clock",
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
    "Fatal",
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
