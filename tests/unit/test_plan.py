from __future__ import annotations

from pathlib import Path

import pytest

from enduro.api import check_plan
from enduro.base.errors import PlanError
from enduro.plan import load_plan

GOOD = """\
name: shop
duration: 2m
seed: 42
profiles:
  smoke:
    duration: 10s
    workloads: {browse: {http: {rate: 5/s}}}
services:
  api: {url: "http://127.0.0.1:9999"}
workloads:
  browse:
    http:
      service: api
      rate: 50/s
      headers: {Authorization: "Bearer ${file:token.txt}", X-Env: "${env:SHOP_ENV:-staging}"}
      requests:
        - {name: list, path: /items, weight: 3, expect: {status: 200}}
        - {name: get, path: "/items/{{randint(1,9)}}", expect: {status: [200, 404]}}
rules:
  - "availability >= 99.9%"
  - "p95(latency{op=list}) < 300ms"
"""


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    (tmp_path / "token.txt").write_text("s3cret\n")
    return path


def problems(path: Path, **kw: object) -> list[str]:
    with pytest.raises(PlanError) as info:
        loaded = load_plan(path, **kw)  # type: ignore[arg-type]
        check_plan(loaded.plan)
    return [str(p) for p in info.value.problems]


def test_good_plan_loads_with_units_parsed(tmp_path: Path) -> None:
    loaded = load_plan(write(tmp_path, GOOD), env={})
    plan = loaded.plan
    assert plan.duration == 120
    http = plan.workloads["browse"].http
    assert http.rate == 50
    assert http.headers["Authorization"] == "Bearer s3cret"
    assert http.headers["X-Env"] == "staging"
    check_plan(plan)


def test_profile_and_set_override(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    plan = load_plan(path, profile="smoke", env={}).plan
    assert plan.duration == 10
    assert plan.workloads["browse"].http.rate == 5
    plan = load_plan(path, profile="smoke", sets=["workloads.browse.http.rate=20/s",
                                                   "duration=1m"], env={}).plan
    assert plan.workloads["browse"].http.rate == 20
    assert plan.duration == 60


def test_env_substitution_uses_the_environment(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, GOOD), env={"SHOP_ENV": "prod"}).plan
    assert plan.workloads["browse"].http.headers["X-Env"] == "prod"


def test_resolved_plan_keeps_file_secrets_as_references(tmp_path: Path) -> None:
    loaded = load_plan(write(tmp_path, GOOD), env={})
    text = loaded.resolved_yaml()
    assert "s3cret" not in text
    assert "${file:token.txt}" in text
    assert "staging" in text


def test_unknown_key_has_line_and_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("      rate: 50/s", "      rat: 50/s"))
    out = problems(path, env={})
    assert any(f"{path}:14: workloads.browse.http.rat: unknown key 'rat' (did you mean 'rate'?)"
               in p for p in out), out


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    text = GOOD.replace("duration: 2m", "duration: forever").replace("weight: 3", "weight: -1")
    path = write(tmp_path, text)
    out = problems(path, env={})
    assert any(p.startswith(f"{path}:2: duration: expected a duration") for p in out), out
    assert any(p.startswith(f"{path}:17: workloads.browse.http.requests[0].weight") for p in out)


def test_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path, "duration: 1s\nworkloads: {}\n")
    assert problems(path) == [f"{path}:1: name: required key is missing"]


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nworkloads: [\n  a: 1\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:") and "invalid YAML" in problem


def test_unknown_profile_lists_the_known_ones(tmp_path: Path) -> None:
    out = problems(write(tmp_path, GOOD), profile="smok", env={})
    assert out == [f"{tmp_path}/plan.yaml:4: profiles: no profile 'smok' (did you mean "
                   "'smoke'?) (profiles: smoke)"]


def test_missing_env_without_default(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("${env:SHOP_ENV:-staging}", "${env:SHOP_ENV}"))
    (problem,) = problems(path, env={})
    assert problem.startswith(f"{path}:15: workloads.browse.http.headers.X-Env: environment "
                              "variable SHOP_ENV is not set")


def test_missing_secret_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("token.txt", "nope.txt"))
    (problem,) = problems(path, env={})
    assert "cannot read" in problem and "nope.txt" in problem and ":15:" in problem


def test_bad_set_value_names_the_command_line(tmp_path: Path) -> None:
    out = problems(write(tmp_path, GOOD), sets=["workloads.browse.http.rate=lots"], env={})
    assert out == ["--set: workloads.browse.http.rate: expected a rate such as '100/s', "
                   "'3/min' or '5/10s', got 'lots'"]


def test_set_without_equals(tmp_path: Path) -> None:
    out = problems(write(tmp_path, GOOD), sets=["duration"], env={})
    assert "expected path=value" in out[0]


def test_model_choice_is_explained(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("      rate: 50/s", "      rate: 50/s\n"
                                        "      connections: 10"))
    (problem,) = problems(path, env={})
    assert "give exactly one of 'rate'" in problem and "got rate, connections" in problem


def test_unknown_service_reference(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("service: api", "service: apj"))
    (problem,) = problems(path, env={})
    assert "names 'apj', which is not a service (services: api)" in problem


def test_bad_rule_is_a_plan_error(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("op=list", "op=lst"))
    (problem,) = problems(path, env={})
    assert problem == ("rules[1]: rule 'p95(latency{op=lst}) < 300ms': no op named 'lst' "
                       "(did you mean 'list'?); ops: list, get")


def test_bad_template_placeholder(tmp_path: Path) -> None:
    from enduro.engine.request import template_problems
    ((_, message),) = template_problems("/x/{{nope}}")
    assert "unknown placeholder" in message


def test_toml_plans_are_accepted_with_lines(tmp_path: Path) -> None:
    text = """\
name = "t"
duration = "5s"

[workloads.a.http]
base = "http://127.0.0.1:1"
connections = 2
speed = 3

[[workloads.a.http.requests]]
name = "root"
"""
    path = write(tmp_path, text, "plan.toml")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:7: workloads.a.http.speed: unknown key 'speed'")
    good = write(tmp_path, text.replace("speed = 3\n", ""), "good.toml")
    assert load_plan(good).plan.workloads["a"].http.connections == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="no such plan file"):
        load_plan(tmp_path / "absent.yaml")


def test_duplicate_op_names_across_workloads(tmp_path: Path) -> None:
    other = """\
  other:
    http:
      base: http://127.0.0.1:1
      connections: 1
      requests: [{name: list}]
"""
    text = GOOD.replace("rules:\n", other + "rules:\n")
    out = problems(write(tmp_path, text), env={})
    assert any("op name 'list' is used by workloads 'browse' and 'other'" in p for p in out), out


RULES_PLAN = """\
name: pr
duration: 1s
profiles:
  strict:
    add_rules:
      - "p99(latency) < 50ms"
      - {rule: "error_rate < 0.1%", abort_on_fail: true}
    remove_rules: ["availability >= 99%"]
  typo:
    add_rules: ["p99(latncy) < 5ms"]
  gone:
    remove_rules: ["availability >= 98%"]
workloads:
  w: {http: {base: "http://127.0.0.1:9", rate: 1/s, requests: [{name: x, path: /}]}}
rules:
  - availability >= 99%
  - p95(latency) < 1s
"""


def test_profiles_add_and_remove_rules(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(RULES_PLAN)
    loaded = load_plan(path, profile="strict", env={})
    assert [getattr(r, "rule", r) for r in loaded.plan.rules] == [
        "p95(latency) < 1s", "p99(latency) < 50ms", "error_rate < 0.1%"]
    check_plan(loaded.plan, lines=loaded.lines, plan_dir=tmp_path)
    # a mistake in an added rule is reported at the profile's line
    typo = load_plan(path, profile="typo", env={})
    with pytest.raises(PlanError) as info:
        check_plan(typo.plan, lines=typo.lines, plan_dir=tmp_path)
    assert str(info.value.problems[0]).startswith(
        f"{path}:10: rules[2]: rule 'p99(latncy) < 5ms': unknown metric 'latncy'")
    assert problems(path, profile="gone", env={}) == [
        f"{path}:12: profiles.gone.remove_rules[0]: no rule 'availability >= 98%' to remove "
        "(rules: availability >= 99%; p95(latency) < 1s)"]


def test_on_worker_loss_is_continue_or_fail_with_its_line(tmp_path: Path) -> None:
    assert load_plan(write(tmp_path, GOOD), env={}).plan.on_worker_loss == "fail"
    path = write(tmp_path, GOOD.replace("seed: 42", "seed: 42\non_worker_loss: carry_on"))
    out = problems(path, env={})
    assert any(p.startswith(f"{path}:4: on_worker_loss:") and "'continue' or 'fail'" in p
               for p in out), out
