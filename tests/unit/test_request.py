from __future__ import annotations

import json
import random

import pytest

from enduro.base.errors import PlanError
from enduro.engine.request import (
    compile_check,
    condition_problem,
    flow_template_problems,
    json_path_problem,
    prepare_requests,
    template_problems,
)
from enduro.net.target import split_base
from enduro.plan.models import Expect, HttpWorkload


def workload(**request: object) -> HttpWorkload:
    return HttpWorkload.model_validate({"base": "http://127.0.0.1:8080/api", "connections": 1,
                                        "headers": {"X-A": "1"}, "requests": [request]})


def test_static_request_bytes_are_built_once() -> None:
    w = workload(name="list", path="/items", query={"limit": 5})
    (req,) = prepare_requests(w, split_base(w.base or ""), random.Random(0))
    assert req.static_bytes is not None
    assert req.bytes_for(1) is req.bytes_for(2)
    head = req.static_bytes.decode()
    assert head.startswith("GET /api/items?limit=5 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert "X-A: 1\r\n" in head and head.endswith("\r\n\r\n")


def test_templates_render_per_request() -> None:
    w = workload(name="create", method="POST", path="/items/{{seq}}",
                 json={"id": "{{uuid}}", "n": "{{randint(1,3)}}"},
                 headers={"Idempotency-Key": "{{uuid}}"})
    (req,) = prepare_requests(w, split_base(w.base or ""), random.Random(0))
    assert req.static_bytes is None
    one, two = req.bytes_for(1).decode(), req.bytes_for(2).decode()
    assert one.startswith("POST /api/items/1 ") and two.startswith("POST /api/items/2 ")
    body = json.loads(one.split("\r\n\r\n", 1)[1])
    # One template engine: a JSON value that is one placeholder keeps its type, as in flows.
    assert len(body["id"]) == 36 and body["n"] in (1, 2, 3)
    length = int(one.split("Content-Length: ")[1].split("\r\n")[0])
    assert length == len(one.split("\r\n\r\n", 1)[1].encode())
    assert "Content-Type: application/json" in one


def test_checks_classify_responses() -> None:
    check, needs_body = compile_check(Expect())
    assert not needs_body
    assert check(200, b"") is None and check(302, b"") is None
    assert check(404, b"") == "4xx" and check(503, b"") == "5xx"
    check, needs_body = compile_check(Expect.model_validate(
        {"status": 200, "json": {"$.state": "done", "$.items.length": 2}, "regex": "d.ne"}))
    assert needs_body
    assert check(200, b'{"state":"done","items":[1,2]}') is None
    assert check(200, b'{"state":"busy","items":[1,2]}') == "check_failed"
    assert check(200, b"not json done") == "check_failed"
    assert check(201, b'{"state":"done","items":[1,2]}') == "status"
    check, _ = compile_check(Expect.model_validate({"status": "2xx", "contains": "ok"}))
    assert check(204, b"ok") is None and check(204, b"no") == "check_failed"


@pytest.mark.parametrize(("path", "problem"), [
    ("$.a.b[0].c", None), ("$.items[*].id", None), ("$", None), ("$.items.length", None),
    ("a.b", "must start with '$'"), ("$.a b", "cannot read ' b'"), ("$..a", "cannot read"),
    ("$.a[x]", "cannot read '[x]'"), ("$[0", "cannot read"),
])
def test_json_paths_are_read_whole(path: str, problem: str | None) -> None:
    found = json_path_problem(path)
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(("condition", "problem"), [
    ('$.state == "done"', None), ("status == 200", None), ("status in [200, 204]", None),
    ('$.s in ["a", "b"]', None), ("$.n >= 3", None),
    ("$.s in done", "'in' takes a list"), ('status == "ok"', "compares with a number"),
    ("state == done", "expected PATH OP VALUE"), ("$.a..b == 1", "cannot read"),
])
def test_conditions_are_compiled(condition: str, problem: str | None) -> None:
    found = condition_problem(condition)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_request_templates_are_compiled_as_the_run_compiles_them() -> None:
    assert template_problems({"a": ["/{{seq}}/{{uuid}}", "{{randint(1,2)}}"]}) == []
    problems = template_problems({"a": ["ok", "/{{nosuch}}"], "b": "{{randint(5,1)}}"})
    assert [(at, "nosuch" in m or "first bound" in m) for at, m in problems] == [
        (("a", 1), True), (("b",), True)]
    # Canaries are filled in before the run compiles; unknown names still fail at run time.
    assert template_problems("{{canary}}", frozenset({"canary"})) == []
    w = workload(name="x", path="/x/{{nosuch}}")
    with pytest.raises(PlanError, match="unknown placeholder"):
        prepare_requests(w, split_base(w.base or ""), random.Random(0))


def test_flow_templates_know_what_is_in_scope() -> None:
    assert flow_template_problems("/x/{{id}}/{{vu}}/{{seq}}", {"id"}) == []
    (problem,) = flow_template_problems("/x/{{idd}}", {"id"})
    assert "no variable 'idd'" in problem and "did you mean 'id'?" in problem
    assert flow_template_problems("/x/{{anything}}", set(), open_scope=True) == []
    (problem,) = flow_template_problems("{{randint(3)}}", set(), open_scope=True)
    assert "two integers" in problem
    (problem,) = flow_template_problems("{{ a b }}", {"a"})
    assert "is not a placeholder" in problem
