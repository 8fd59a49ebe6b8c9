"""A plan's ``scenarios`` as plans of their own: each scenario's plan is the plan with the
scenario's workloads, duration, rules, abort rules, final phase and checkers in place of the
plan's, and its lines point at the scenario's fields in the file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from enduro.base.errors import PlanError, PlanProblem
from enduro.plan.models import Plan, Scenario
from enduro.plan.resolve import LoadedPlan
from enduro.plan.source import Lines

__all__ = ["scenario_loaded", "scenario_plan", "select_scenarios"]

# The fields of a scenario that take the place of the plan's.
_OWN = ("workloads", "duration", "rules", "abort_if", "final", "checkers")


def scenario_plan(plan: Plan, scenario: Scenario) -> Plan:
    """The plan a scenario runs: the plan's services, proxies, faults and settings, with the
    scenario's own fields in place of the plan's (a field the scenario leaves out is the
    plan's, except ``workloads``)."""
    update: dict[str, object] = {"workloads": scenario.workloads, "scenarios": []}
    for key in _OWN[1:]:
        value = getattr(scenario, key)
        if value is not None:
            update[key] = value
    if scenario.description is not None:
        update["description"] = scenario.description
    return plan.model_copy(update=update)


def scenario_lines(lines: Lines | None, index: int, scenario: Scenario) -> Lines | None:
    """The plan's lines, with the scenario's fields at the places of the plan's."""
    if lines is None:
        return None
    own = [k for k in _OWN if k == "workloads" or getattr(scenario, k) is not None]
    at = ("scenarios", index)
    by_path = {k: v for k, v in lines.by_path.items() if not (k and k[0] in own)}
    by_path.update({k[2:]: v for k, v in lines.by_path.items()
                    if k[:2] == at and len(k) > 2})
    if ("workloads",) not in by_path:
        by_path[("workloads",)] = lines.line_of(at) or 0
    return Lines(lines.file, by_path)


def scenario_loaded(loaded: LoadedPlan, index: int) -> LoadedPlan:
    """The loaded plan of the plan's scenario ``index``."""
    scenario = loaded.plan.scenarios[index]
    resolved = {k: v for k, v in loaded.resolved.items() if k not in ("scenarios", "workloads")}
    own = loaded.resolved.get("scenarios", [])[index]
    resolved.update({k: v for k, v in own.items() if k in _OWN})
    return replace(loaded, plan=scenario_plan(loaded.plan, scenario), resolved=resolved,
                   lines=scenario_lines(loaded.lines, index, scenario))


def select_scenarios(plan: Plan, only: Sequence[str]) -> list[int]:
    """The indexes of the scenarios to run: all, or those named by ``--only`` in the plan's
    order. A name that is no scenario is a user error naming the plan's scenarios."""
    names = [s.name for s in plan.scenarios]
    if only and not names:
        raise PlanError([PlanProblem(f"--only {only[0]}: the plan {plan.name!r} has no "
                                     "scenarios")])
    unknown = [n for n in only if n not in names]
    if unknown:
        raise PlanError([PlanProblem(
            f"--only {n}: no such scenario (scenarios: {', '.join(names)})") for n in unknown])
    return [i for i, n in enumerate(names) if not only or n in only]
