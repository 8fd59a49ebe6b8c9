"""Flow steps' request bytes: built once for a step without templates, and for a step whose
target alone varies, the target rendered into bytes built once; both exactly the bytes of the
general path (``FlowDriver._build``)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from enduro.engine.flow import FlowContext, FlowDriver
from enduro.net.client import HttpClient
from enduro.observe.window import Recorder
from enduro.plan.flows import FlowWorkload


def _driver(step: dict[str, Any], base: str = "http://127.0.0.1:9/api/") -> FlowDriver:
    workload = FlowWorkload.model_validate({
        "base": base, "connections": 1, "headers": {"X-Run": "r1", "content-type": "text/x"},
        "steps": [{"name": "s", **step}]})
    return FlowDriver(workload, "f", base, Recorder(["f", "f.s"]), random.Random(0),
                      share=1.0, connections=1, plan_dir=None, service_urls={})


def _ctx(driver: FlowDriver, vars_: dict[str, Any]) -> FlowContext:
    return FlowContext(7, 3, random.Random(0), vars_, HttpClient(), driver.urls)


@pytest.mark.parametrize("request_", [
    {"method": "POST", "path": "/items/{{id}}", "query": {"state": "{{state}}", "n": 2},
     "json": {"a": [1, "x"]}, "headers": {"X-Trace": "t"}},
    {"path": "/q?fixed=1", "query": {"s": "{{state}}"}},
    {"method": "PUT", "path": "/v/{{id}}", "body": "raw body"},
    {"method": "DELETE", "path": "/{{id}}/{{seq}}"},
    {"path": "/x", "query": {"empty": "{{nothing}}"}},
])
def test_a_step_whose_target_varies_sends_the_bytes_of_the_general_path(
        request_: dict[str, Any]) -> None:
    driver = _driver({"request": request_})
    (plan,) = driver._top
    assert plan.shaped and not plan.static
    for values in ({"id": "a b/c", "state": "x&y=z #é", "nothing": ""},
                   {"id": 42, "state": "\r\nHost: evil", "nothing": None}):
        ctx = _ctx(driver, values)
        assert driver._shaped(plan, ctx) == driver._build(plan, ctx)
    assert plan.shape is not None  # built once, kept


class _Recording(HttpClient):
    """A client that records what it would send (nothing listens)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []

    def send(self, origin: str, method: str, wire: bytes, url: str = "",
             timeout: float | None = None) -> Any:
        self.sent.append(wire)
        return None


def test_a_step_without_templates_is_built_once() -> None:
    driver = _driver({"request": {"method": "POST", "path": "/p", "json": {"k": 1}}})
    (plan,) = driver._top
    assert plan.static
    client = _Recording()
    ctx = FlowContext(1, 0, random.Random(0), {}, client, driver.urls)
    driver._send(plan, ctx)
    driver._send(plan, ctx)
    first, second = client.sent
    assert first is second  # the same bytes object: built once
    assert first == driver._build(plan, ctx)[2]
    assert first.startswith(b"POST /api/p HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
    assert ctx.sends == 2


def test_a_whole_url_from_a_capture_takes_the_general_path() -> None:
    driver = _driver({"request": {"path": "{{location}}"}})
    (plan,) = driver._top
    ctx = _ctx(driver, {"location": "/next/1?x=2"})
    assert driver._shaped(plan, ctx) == driver._build(plan, ctx)
    ctx = _ctx(driver, {"location": "elsewhere"})
    assert driver._shaped(plan, ctx) == driver._build(plan, ctx)
