"""The engine against servers that misbehave on purpose (tests/helpers/hostile_server.py):
requests they never answer are counted, values they send never reach the wire raw, and the
generator's own limits are charged to the generator, not to the target."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from enduro.net.wire import UnsafeValue, encode_path_value, encode_query_value, request_head
from tests.helpers.hostile_server import INJECTED, hostile_server
from tests.helpers.plans import http_plan, run_plan, write_plan
from tests.helpers.procs import REPO, only_run, wait_for

# Rules that a run with a single unanswered request must fail.
STRICT = ["errors == 0", "availability >= 99.9%", "error_rate < 1%"]


def _failed(results: dict[str, Any]) -> set[str]:
    return {r["rule"] for r in results["rules"] if not r["passed"]}


@pytest.mark.parametrize("model", [{"connections": 3}, {"rate": "20/s"}])
def test_a_server_that_never_answers_fails_instead_of_passing(
        tmp_path: Path, model: dict[str, object]) -> None:
    # Before: 0 requests, 0 errors, verdict pass.
    with hostile_server("silent") as server:
        plan = http_plan(server.url, duration="2s", timeout="60s", rules=STRICT,
                         requests=[{"name": "get", "path": "/x"}], **model)
        plan["grace"] = "1s"
        outcome = run_plan(tmp_path, plan)
        seen = server.snapshot()
    results = outcome.results
    assert results is not None
    assert outcome.exit_code == 1 and results["verdict"] == "fail"
    op = results["ops"]["get"]
    # Every request the server received is counted, and none of them was answered.
    assert seen["answered"] == 0
    assert op["requests"] == seen["received"] > 0
    assert op["errors_by_class"] == {"unfinished": seen["received"]}
    assert results["errors_by_class"] == {"unfinished": seen["received"]}
    assert _failed(results) == set(STRICT)
    # Latency is the time waited so far: the whole load and the grace, at most.
    assert 900 <= op["latency_ms"]["max"] <= 3_500


@pytest.mark.parametrize("model", [{"rate": "50/s"}, {"connections": 4}])
def test_one_request_in_ten_never_answered_is_counted_as_unfinished(
        tmp_path: Path, model: dict[str, object]) -> None:
    # Before: the unanswered tenth vanished and `errors == 0` passed.
    with hostile_server("drop10") as server:
        plan = http_plan(server.url, duration="2s", timeout="60s", rules=STRICT,
                         requests=[{"name": "get", "path": "/x"}], **model)
        plan["grace"] = "1s"
        outcome = run_plan(tmp_path, plan)
        seen = server.snapshot()
    results = outcome.results
    assert results is not None
    assert outcome.exit_code == 1
    unanswered = seen["received"] - seen["answered"]
    op = results["ops"]["get"]
    # Counts equal the server's own.
    assert op["requests"] == seen["received"]
    assert unanswered == seen["received"] // 10 > 0
    assert op["errors_by_class"] == {"unfinished": unanswered}
    assert op["errors"] == unanswered
    assert _failed(results) == set(STRICT)


def test_unanswered_flow_steps_are_counted(tmp_path: Path) -> None:
    with hostile_server("silent") as server:
        plan = {"name": "t", "duration": "2s", "seed": 1, "grace": "1s",
                "workloads": {"f": {"flow": {
                    "base": server.url, "connections": 2, "timeout": "60s",
                    "steps": [{"name": "one", "request": {"path": "/one"}}]}}},
                "rules": ["errors == 0"]}
        outcome = run_plan(tmp_path, plan)
        seen = server.snapshot()
    results = outcome.results
    assert results is not None and outcome.exit_code == 1
    ops = results["ops"]
    assert ops["f.one"]["requests"] == seen["received"] == 2
    assert ops["f.one"]["errors_by_class"] == {"unfinished": 2}
    # The iterations they belonged to are unfinished too.
    assert ops["f"]["errors_by_class"] == {"unfinished": 2}


def test_unanswered_sse_connects_are_counted(tmp_path: Path) -> None:
    with hostile_server("silent") as server:
        plan = {"name": "t", "duration": "2s", "seed": 1, "grace": "1s",
                "workloads": {"s": {"sse": {"base": server.url, "path": "/events",
                                            "clients": 3, "connect_timeout": "60s"}}},
                "rules": ["errors == 0"]}
        outcome = run_plan(tmp_path, plan)
        seen = server.snapshot()
    results = outcome.results
    assert results is not None and outcome.exit_code == 1
    connect = results["ops"]["s:connect"]
    assert connect["requests"] == seen["received"] == 3
    assert connect["errors_by_class"] == {"unfinished": 3}


@pytest.mark.parametrize("model", [{"connections": 2}, {"rate": "10/s"}])
def test_python_ops_still_running_at_the_end_are_counted(tmp_path: Path,
                                                         model: dict[str, object]) -> None:
    (tmp_path / "hang.py").write_text(
        "import asyncio\n\n\nasync def op(ctx):\n    await asyncio.sleep(3600)\n")
    plan = {"name": "t", "duration": "2s", "seed": 1, "grace": "1s",
            "workloads": {"p": {"python": {"function": "hang:op", "timeout": "60s",
                                           **model}}},
            "rules": ["errors == 0"]}
    outcome = run_plan(tmp_path, plan)
    results = outcome.results
    assert results is not None and outcome.exit_code == 1
    op = results["ops"]["p"]
    started = 2 if "connections" in model else 20
    assert op["requests"] == started
    assert op["errors_by_class"] == {"unfinished": started}


def test_a_captured_value_never_reaches_the_wire_raw(tmp_path: Path) -> None:
    """A response's ``id`` carries CR/LF and a whole second request. Used in a path and a
    query it is percent-encoded; used in a header the request is not sent (class
    ``unsafe_value``). Before: 41,669 ``DELETE /admin/everything`` reached the server."""
    with hostile_server("inject") as server:
        plan = {"name": "t", "duration": "2s", "seed": 1, "grace": "1s",
                "workloads": {"f": {"flow": {
                    "base": server.url, "connections": 2, "timeout": "10s",
                    "steps": [
                        {"name": "create", "request": {"method": "POST", "path": "/items"},
                         "capture": {"id": "$.id"}},
                        {"name": "fetch",
                         "request": {"path": "/things/{{id}}/x?of={{id}}&page=2"}},
                        {"name": "tag", "request": {"path": "/tag",
                                                    "headers": {"X-Item": "{{id}}"}}},
                    ]}}},
                "rules": ["errors{op=f.tag} == 0"]}
        outcome = run_plan(tmp_path, plan)
        seen = server.snapshot()
    results = outcome.results
    assert results is not None
    ops = results["ops"]
    assert seen["methods"].get("DELETE") is None, seen["methods"]
    assert "x-forged" not in seen["header_names"]
    assert "x-item" not in seen["header_names"]
    # Only what enduro sent reached the server: create and fetch; no tag at all.
    assert ops["f.tag"]["requests"] > 10
    assert ops["f.tag"]["errors_by_class"] == {"unsafe_value": ops["f.tag"]["requests"]}
    assert seen["received"] == ops["f.create"]["requests"] + ops["f.fetch"]["requests"]
    assert seen["methods"] == {"POST": ops["f.create"]["requests"],
                               "GET": ops["f.fetch"]["requests"]}
    assert ops["f.fetch"]["errors"] == 0
    # The value arrived whole, as one path segment and one query value.
    fetched = [t for t in seen["targets"] if t.startswith("/things/")]
    assert fetched and set(fetched) == {
        f"/things/{encode_path_value(INJECTED)}/x?of={encode_query_value(INJECTED)}&page=2"}
    assert "%0D%0A" in fetched[0] and "/admin" not in fetched[0].split("?")[0][8:]
    assert outcome.exit_code == 1 and _failed(results) == {"errors{op=f.tag} == 0"}


def test_the_serializer_refuses_control_characters_in_headers() -> None:
    head = request_head("GET", "/a b\r\nX: 1", [("Host", "h")])
    assert head == b"GET /a%20b%0D%0AX:%201 HTTP/1.1\r\nHost: h\r\n\r\n"
    for bad in ("1\r\nX-Forged: 1", "a\nb", "nul\x00", "bell\x07", "del\x7f"):
        with pytest.raises(UnsafeValue):
            request_head("GET", "/", [("X-Id", bad)])
    with pytest.raises(UnsafeValue):
        request_head("GET", "/", [("X-Id\r\nX-Forged", "1")])
    with pytest.raises(UnsafeValue):
        request_head("GET / HTTP/1.1\r\n", "/", [])
    # A tab is allowed in a header value (RFC 9110 field-content).
    assert b"X-Id: a\tb\r\n" in request_head("GET", "/", [("X-Id", "a\tb")])


def test_encoders_keep_a_value_in_its_place() -> None:
    assert encode_path_value("a/b?c#d e%") == "a%2Fb%3Fc%23d%20e%25"
    assert encode_path_value("x:y@z;v=1,2") == "x:y@z;v=1,2"
    assert encode_query_value("a&b=c#d e+f") == "a%26b%3Dc%23d%20e%2Bf"
    assert encode_query_value("/p?q") == "/p?q"
    assert encode_path_value("\r\n\x00") == "%0D%0A%00"


def _run_with_nofile(tmp_path: Path, plan: dict[str, Any], soft: int,
                     hard: int) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The real ``enduro run`` in a process whose open-file limit is (soft, hard)."""
    path = write_plan(tmp_path, plan)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    proc = subprocess.run(
        [sys.executable, "-m", "enduro", "run", str(path), "--out", str(tmp_path / "runs"),
         "--no-live"], capture_output=True, text=True, timeout=120, cwd=REPO,
        preexec_fn=limit)
    run_dir = only_run(tmp_path / "runs")
    results = json.loads(wait_for(lambda: (run_dir / "results.json").is_file()
                                  and (run_dir / "results.json").read_text(),
                                  10, "results.json"))
    return proc, results


def test_the_generators_fd_limit_is_its_own_not_the_targets(tmp_path: Path) -> None:
    """More connections than the generator may open files: before, each failure was a
    ``connect`` error charged to the target, and nothing said why."""
    nofile = 64
    with hostile_server("ok") as server:
        plan = http_plan(server.url, connections=150, duration="2s",
                         requests=[{"name": "get", "path": "/x"}], rules=["errors == 0"])
        proc, results = _run_with_nofile(tmp_path, plan, nofile, nofile)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    classes = results["errors_by_class"]
    assert classes.get("generator", 0) > 0, classes
    assert "connect" not in classes and "refused" not in classes, classes
    # Said once, with the limits in force and the fix.
    assert out.count("class 'generator'") == 1, out
    assert "ulimit -n" in out and f"soft limit {nofile}, hard limit {nofile}" in out, out
    assert results["ops"]["get"]["requests"] - classes["generator"] > 0  # the rest worked


def test_the_soft_fd_limit_is_raised_to_the_hard_one(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.fail(f"this test needs a hard limit on open files of 1024 or more, not {hard}")
    with hostile_server("ok") as server:
        plan = http_plan(server.url, connections=150, duration="2s",
                         requests=[{"name": "get", "path": "/x"}], rules=["errors == 0"])
        # The same 64 files as above, but a hard limit that enduro may raise it to.
        proc, results = _run_with_nofile(tmp_path, plan, 64, 1024)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert results["errors_by_class"] == {}
    assert "class 'generator'" not in proc.stdout + proc.stderr
