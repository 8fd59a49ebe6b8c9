"""Counts that match the server's own: a flow's iterations are a figure of their own, never
added to the request totals; every step kind has a timeout."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.helpers.plans import write_plan
from tests.helpers.procs import REPO, only_run, python_server
from tests.helpers.report import embedded

SERVER = REPO / "tests" / "helpers" / "counting_server.py"


@pytest.fixture
def counting_url() -> Iterator[str]:
    with python_server(SERVER) as url:
        yield url


def server_counts(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_counts", timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def run(tmp_path: Path, plan: dict[str, Any]) -> tuple[int, dict[str, Any], str, str]:
    path = write_plan(tmp_path, plan)
    proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"), timeout=60)
    run_dir = only_run(tmp_path / "runs")
    log = (run_dir / "logs" / "enduro.log").read_text() \
        if (run_dir / "logs" / "enduro.log").exists() else ""
    return proc.returncode, json.loads((run_dir / "results.json").read_text()), \
        proc.stderr, log


@pytest.mark.slow(4)
def test_a_failed_flow_counts_once_and_totals_equal_the_server(tmp_path: Path,
                                                               counting_url: str) -> None:
    code, results, err, _ = run(tmp_path, {
        "name": "counts", "duration": "3s", "grace": "5s", "seed": 1,
        "observe": {"heartbeat": "1s"},
        "workloads": {"f": {"flow": {"base": counting_url, "connections": 2, "steps": [
            {"name": "a", "request": {"path": "/a"}, "capture": {"id": "$.id"}},
            # The server fails every fourth of these: the iteration ends there.
            {"name": "b", "request": {"method": "POST", "path": "/fail",
                                      "json": {"ref": "{{id}}"}},
             "expect": {"status": 200, "that": ["$.state == \"done\""]}},
            {"name": "c", "request": {"path": "/c/{{id}}"},
             "expect": {"that": ["status == 200", "$.id >= 1"]}}]}}},
        "rules": ["error_rate{op=f} > 10%", "error_rate < 15%",
                  "error_rate{workload=f} < 15%"]})
    counts = server_counts(counting_url)
    served = sum(counts["requests"].values())
    failed = counts["statuses"]["/fail"].get("500", 0)
    assert failed > 0 and served > 40, counts
    total = results["total"]
    # Requests: what the server read, each error once (not again as its iteration).
    assert total["requests"] == served, (total, counts)
    assert total["errors"] == failed
    assert results["errors_by_class"] == {"5xx": failed}
    ops = results["ops"]
    assert ops["f.b"]["errors"] == failed and ops["f.b"]["kind"] == "request"
    # `that` on flow steps, status conditions included: no step c ever failed.
    to_c = sum(n for path, n in counts["requests"].items() if path.startswith("/c/"))
    assert ops["f.c"]["errors"] == 0 and ops["f.c"]["requests"] == to_c > 0
    # Iterations are a figure of their own: one per /a, failed ones named by their step.
    flow = ops["f"]
    assert flow["kind"] == "iteration"
    assert flow["requests"] == counts["requests"]["/a"]
    assert flow["errors"] == failed and flow["errors_by_class"] == {"step:b": failed}
    rules = {r["rule"]: r for r in results["rules"]}
    assert rules["error_rate{op=f} > 10%"]["observed"] == pytest.approx(failed / flow["requests"])
    assert rules["error_rate < 15%"]["observed"] == pytest.approx(failed / served)
    # A workload's ops mixing steps and iterations read the steps (the requests).
    assert rules["error_rate{workload=f} < 15%"]["observed"] == pytest.approx(failed / served)
    assert code == 0, err
    # The page stacks requests only; the iterations are drawn apart, named as such.
    page = embedded(only_run(tmp_path / "runs") / "report.html")["run"]
    assert page["kinds"]["f"] == "iteration" and page["kinds"]["f.c"] == "request"


@pytest.mark.slow(4)
def test_a_python_step_that_never_returns_times_out(tmp_path: Path, counting_url: str) -> None:
    (tmp_path / "steps.py").write_text(
        "import asyncio\n\n\nasync def stuck(client, ctx):\n    await asyncio.Event().wait()\n")
    code, results, err, _ = run(tmp_path, {
        "name": "stuck", "duration": "2s", "grace": "1s",
        "workloads": {"f": {"flow": {"base": counting_url, "connections": 1,
                                     "timeout": "200ms", "steps": [
                                         {"name": "a", "request": {"path": "/a"}},
                                         {"name": "stuck", "python": "steps:stuck"}]}}}})
    stuck = results["ops"]["f.stuck"]
    # Each iteration's python step is cut off by the flow's timeout, class timeout (it used
    # to hold its iteration until the run's end, one 'unfinished' at most).
    assert stuck["errors_by_class"].get("timeout", 0) >= 4, stuck
    assert stuck["errors_by_class"].get("unfinished", 0) <= 1
    assert results["ops"]["f"]["errors_by_class"].get("step:stuck", 0) >= 4
    assert code == 0, err
