"""Library functions the command line calls."""

from __future__ import annotations

from enduro.engine.load import op_names
from enduro.engine.request import split_base
from enduro.errors import PlanError, PlanProblem
from enduro.plan.models import Plan
from enduro.plan.resolve import load_plan
from enduro.verdict.evaluate import compile_rules

__all__ = ["check_plan", "load_plan"]


def check_plan(plan: Plan) -> None:
    """Checks across sections that the models alone cannot make: op names unique across
    workloads, base URLs usable, rules parsing and naming existing ops."""
    problems: list[PlanProblem] = []
    seen: dict[str, str] = {}
    for wname, workload in plan.workloads.items():
        for req in workload.http.requests:
            if req.name in seen:
                problems.append(PlanProblem(
                    f"op name {req.name!r} is used by workloads {seen[req.name]!r} and "
                    f"{wname!r}; op names must be unique across the plan",
                    path=f"workloads.{wname}.http.requests"))
            seen[req.name] = wname
        try:
            split_base(plan.base_url(workload.http))
        except PlanError as exc:
            problems.extend(PlanProblem(p.message, path=f"workloads.{wname}.http")
                            for p in exc.problems)
    if problems:
        raise PlanError(problems)
    compile_rules(plan, op_names(plan))


