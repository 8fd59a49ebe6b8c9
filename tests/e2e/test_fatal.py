"""``enduro.Fatal``: the user's code stops the run at once, as failed, with its reason."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HELPERS, run_cli
from tests.helpers.plans import write_plan
from tests.helpers.procs import only_run, python_server

OPS = """\
import enduro

async def op(ctx):
    if ctx.seq >= 15:
        raise enduro.Fatal("the ledger lost entry 42\\nsee the audit log")

async def step(client, ctx):
    raise enduro.Fatal("order total went negative")
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_a_fatal_in_a_python_op_stops_the_run_as_failed(tmp_path: Path, workers: int) -> None:
    (tmp_path / "ops.py").write_text(OPS)
    plan = write_plan(tmp_path, {
        "name": "fatal", "duration": "60s", "window": "0.5s",
        "workloads": {"w": {"python": {"function": "ops:op", "rate": "20/s"}}}})
    started = time.monotonic()
    proc = run_cli("run", str(plan), "--workers", str(workers), "--out", str(tmp_path / "r"))
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - started < 30  # stopped at once, not after the 60 s
    results: dict[str, Any] = json.loads((only_run(tmp_path / "r") / "results.json")
                                         .read_text())
    assert results["verdict"] == "fail"
    reason = "Fatal raised in op w: the ledger lost entry 42 see the audit log"
    assert results["stop_reason"] == reason, results["stop_reason"]
    assert reason in proc.stderr + proc.stdout
    classes = results["ops"]["w"]["errors_by_class"]
    assert classes == {"fatal:the ledger lost entry 42 see the audit log": classes[
        "fatal:the ledger lost entry 42 see the audit log"]}


@pytest.mark.slow(6)
def test_a_fatal_in_a_python_flow_step_stops_the_run(tmp_path: Path) -> None:
    (tmp_path / "ops.py").write_text(OPS)
    with python_server(HELPERS / "counting_server.py") as url:
        plan = write_plan(tmp_path, {
            "name": "fatalflow", "duration": "60s", "window": "0.5s",
            "workloads": {"f": {"flow": {"base": url, "rate": "5/s", "steps": [
                {"name": "get", "request": {"path": "/"}},
                {"name": "check", "python": "ops:step"}]}}}})
        proc = run_cli("run", str(plan), "--out", str(tmp_path / "r"))
    assert proc.returncode == 1, proc.stderr
    results = json.loads((only_run(tmp_path / "r") / "results.json").read_text())
    assert "order total went negative" in results["stop_reason"]
