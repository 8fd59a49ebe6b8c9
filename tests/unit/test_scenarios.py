"""A plan's scenarios as plans of their own: fields, lines and the --only selection."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from enduro.base.errors import PlanError
from enduro.plan.resolve import load_plan
from enduro.plan.scenarios import scenario_loaded, select_scenarios
from enduro.run.scenarios import worst


def _plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({
        "name": "p", "duration": "5s", "rules": ["errors == 0"],
        "scenarios": [
            {"name": "a", "workloads": {"w": {"http": {
                "base": "http://127.0.0.1:9", "rate": "1/s",
                "requests": [{"name": "r", "path": "/"}]}}}},
            {"name": "b", "duration": "2s", "rules": ["errors{op=x} == 0"],
             "workloads": {"x": {"http": {"base": "http://127.0.0.1:9", "rate": "1/s",
                                           "requests": [{"name": "x", "path": "/"}]}}}}]},
        sort_keys=False))
    return path


def test_each_scenario_is_the_plan_with_its_own_fields(tmp_path: Path) -> None:
    loaded = load_plan(_plan(tmp_path))
    a, b = scenario_loaded(loaded, 0), scenario_loaded(loaded, 1)
    assert list(a.plan.workloads) == ["w"] and a.plan.duration == 5.0
    assert a.plan.rules == ["errors == 0"]  # the plan's, as the scenario gives none
    assert list(b.plan.workloads) == ["x"] and b.plan.duration == 2.0
    assert b.plan.rules == ["errors{op=x} == 0"]
    assert a.plan.scenarios == [] and "scenarios" not in a.resolved
    # The scenario's fields are found at their lines in the file.
    assert b.lines is not None and loaded.lines is not None
    assert b.lines.line_of(("rules", 0)) == loaded.lines.line_of(("scenarios", 1, "rules", 0))
    assert b.lines.line_of(("workloads", "x")) == \
        loaded.lines.line_of(("scenarios", 1, "workloads", "x"))


def test_only_selects_in_plan_order_and_names_the_scenarios(tmp_path: Path) -> None:
    plan = load_plan(_plan(tmp_path)).plan
    assert select_scenarios(plan, []) == [0, 1]
    assert select_scenarios(plan, ["b", "a"]) == [0, 1]
    assert select_scenarios(plan, ["b"]) == [1]
    with pytest.raises(PlanError, match=r"--only c: no such scenario \(scenarios: a, b\)"):
        select_scenarios(plan, ["c"])


def test_top_level_workloads_beside_scenarios_are_refused(tmp_path: Path) -> None:
    path = _plan(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["workloads"] = data["scenarios"][0]["workloads"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(PlanError, match="gives its workloads in each scenario"):
        load_plan(path)


@pytest.mark.parametrize(("verdicts", "expected"), [
    (["pass", "pass"], "pass"), (["pass", "incomplete"], "incomplete"),
    (["incomplete", "fail", "pass"], "fail"), ([], "incomplete")])
def test_the_worst_verdict(verdicts: list[str], expected: str) -> None:
    assert worst(verdicts) == expected
