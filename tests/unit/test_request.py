from __future__ import annotations

import json
import random

from enduro.engine.request import compile_check, prepare_requests, split_base
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
    assert len(body["id"]) == 36 and body["n"] in ("1", "2", "3")
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
