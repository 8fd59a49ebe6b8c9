"""The one condition language and the one template engine: compiled once, read the same way
by every workload kind."""

from __future__ import annotations

import random

import pytest

from enduro.base.errors import PlanError
from enduro.engine.request import compile_check, prepare_requests
from enduro.net.conditions import Answer, Condition, JsonPath, ResponseCheck, json_path
from enduro.net.target import split_base
from enduro.net.templates import SeqScope, Template, compile_value, render_value
from enduro.plan.flows import FlowWorkload, StepExpect
from enduro.plan.models import Expect, HttpWorkload


class Scope:
    def __init__(self, **vars_: object) -> None:
        self.seq = 7
        self.vu = 3
        self.rng = random.Random(0)
        self.vars = dict(vars_)


def test_status_conditions_read_the_status_of_http_responses() -> None:
    # It used to read status 0, so `that: [status == 200]` failed every response.
    check, needs_body = compile_check(Expect.model_validate({"that": ["status == 200"]}))
    assert not needs_body  # a condition on the status alone keeps no body
    assert check(200, b"") is None
    assert check(201, b"") == "check_failed"
    check, _ = compile_check(Expect.model_validate(
        {"status": [200, 404], "that": ["status in [404]", "$.n >= 2"]}))
    assert check(404, b'{"n": 2}') is None
    assert check(200, b'{"n": 2}') == "check_failed"
    assert check(404, b'{"n": 1}') == "check_failed"


def test_a_body_is_parsed_once_for_every_check() -> None:
    check = ResponseCheck(json_={"$.a": 1}, that=["$.b == 2", "$.c.length == 3"])
    # The document handed in is the one read: the body itself is never parsed again.
    assert check.answer(Answer(200, b"not json", doc={"a": 1, "b": 2, "c": [1, 2, 3]})) is None
    answer = Answer(200, b'{"a": 1, "b": 2, "c": "abc"}')
    assert check.answer(answer) is None
    assert answer.doc() is answer.doc()
    assert check(200, b'{"a": 1, "b": 3, "c": "abc"}') == "check_failed"
    assert check(200, b"<html>") == "check_failed"


def test_conditions_are_compiled_once_and_refused_when_bad() -> None:
    with pytest.raises(PlanError, match=r"cannot read 'a\.b'"):
        Condition("$a.b == 1")
    with pytest.raises(PlanError, match="'in' takes a list"):
        Condition("$.a in 3")
    with pytest.raises(PlanError, match="must start with"):
        ResponseCheck(json_={"a": 1})
    with pytest.raises(PlanError, match="regex does not compile"):
        ResponseCheck(regex="(")
    cond = Condition("$.items[*].id == [1, 2]")
    assert cond.holds(Answer(200, b'{"items": [{"id": 1}, {"id": 2}]}'))
    assert not cond.holds(Answer(200, b'{"items": [{"id": 1}]}'))
    assert not Condition("$.n < 3").holds(Answer(200, b'{"n": "x"}'))  # no TypeError


def test_templated_values_are_filled_in_per_response() -> None:
    check = ResponseCheck(json_={"$.id": "{{id}}"}, contains="k-{{id}}",
                          that=['$.owner == "{{who}}"'], templated=True)
    body = b'{"id": 42, "owner": "ann", "key": "k-42"}'
    assert check(200, body, Scope(id=42, who="ann")) is None  # {{id}} keeps its type
    assert check(200, body, Scope(id=43, who="ann")) == "check_failed"
    assert check(200, body, Scope(id=42, who="bob")) == "check_failed"


def test_step_expectations_have_the_keys_of_request_expectations() -> None:
    expect = StepExpect.model_validate({"status": "2xx", "regex": "d.ne",
                                        "that": ["status == 201", "$.state == \"done\""]})
    check = ResponseCheck.of(expect, templated=True)
    assert check(201, b'{"state": "done"}', Scope()) is None
    assert check(200, b'{"state": "done"}', Scope()) == "check_failed"
    assert check(201, b'{"state": "dune"}', Scope()) == "check_failed"
    assert check(302, b"", Scope()) == "status"
    with pytest.raises(ValueError, match="expected PATH OP VALUE"):
        StepExpect.model_validate({"that": ["nonsense"]})


def test_json_paths() -> None:
    doc = {"a": {"b": [10, 20]}, "s": "xyz", "o": {"length": 9}, "p": {"k": 1, "j": 2}}
    assert json_path(doc, "$.a.b[1]") == 20
    assert json_path(doc, "$.a.b.length") == 2 and json_path(doc, "$.s.length") == 3
    assert json_path(doc, "$.o.length") == 9  # a key named length wins
    assert json_path(doc, "$.p.length") == 2
    for path, exc in (("$.a.c", KeyError), ("$.a.b[5]", IndexError), ("$.s.x", TypeError),
                      ("$.a[0]", TypeError)):
        with pytest.raises(exc):
            JsonPath(path).get(doc)


def test_one_template_engine_for_http_and_flows() -> None:
    # The same text renders the same way wherever it stands.
    tpl = Template("/items/{{id}}/{{seq}}?q={{who}}")
    assert tpl.render_target(Scope(id="a/b", who="x&y=1")) == "/items/a%2Fb/7?q=x%26y%3D1"
    assert Template("{{location}}").render_target(Scope(location="/a/b?c=d")) == "/a/b?c=d"
    assert render_value(compile_value({"n": "{{n}}", "s": "n={{n}}"}), Scope(n=5)) == \
        {"n": 5, "s": "n=5"}
    scope = SeqScope(random.Random(0))
    scope.seq = 12
    assert Template("{{seq}}", variables=False).value(scope) == 12
    with pytest.raises(PlanError, match="unknown placeholder"):
        Template("{{id}}", variables=False)
    with pytest.raises(PlanError, match="write \\{\\{seq\\}\\}"):
        Template("{{Seq}}", variables=False, functions=frozenset({"seq"}))
    # An http path template's values are encoded for where they stand, as in flows.
    w = HttpWorkload.model_validate({"base": "http://127.0.0.1:1", "connections": 1,
                                     "requests": [{"name": "r",
                                                   "path": "/x/{{choice(a b|a b)}}"}]})
    (req,) = prepare_requests(w, split_base("http://127.0.0.1:1"), random.Random(0))
    assert req.bytes_for(1).startswith(b"GET /x/a%20b HTTP/1.1\r\n")


def test_flow_driver_compiles_its_steps_when_built() -> None:
    from enduro.engine.flow import FlowDriver
    from enduro.observe.window import Recorder
    bad = FlowWorkload.model_validate({
        "base": "http://127.0.0.1:1", "connections": 1,
        "steps": [{"name": "a", "request": {"path": "/"},
                   "expect": {"json": {"nope": 1}}}]})
    with pytest.raises(PlanError, match="must start with"):
        FlowDriver(bad, "f", "http://127.0.0.1:1", Recorder(["f", "f.a"]), random.Random(0),
                   share=1.0, connections=1, plan_dir=None, service_urls={})
