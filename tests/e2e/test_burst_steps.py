"""Burst setup steps, per-request variables, SQL action steps and expected errors, against a
real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import HELPERS, run_cli
from tests.e2e.test_bursts import dsn  # noqa: F401  (the module's PostgreSQL fixture)
from tests.helpers.plans import write_plan
from tests.helpers.procs import python_server


def steps_plan(url: str, database: str) -> dict[str, Any]:
    key = "%(prefix)s || '-' || %(round)s"
    return {
        "name": "steps", "duration": "30s",
        "workloads": {"b": {"burst": {
            "base": url, "size": 12, "senders": 3, "rounds": 2, "every": "100ms",
            "request": {"method": "POST", "path": "/items",
                        "headers": {"Idempotency-Key": "{{prefix}}-{{round}}-s{{sender}}"}},
            "split": {"created": {"status": 201}},
            "database": {"dsn": database},
            "setup": [
                {"sql": f"insert into items (idem_key) values ({key} || '-setup')"},
                {"http": {"method": "POST", "path": "/items",
                          "headers": {"Idempotency-Key": "{{prefix}}-{{round}}-http"}},
                 "expect_status": 201}],
            "cleanup": ["delete from items where idem_key like %(prefix_like)s"],
            "after": [
                {"name": "rows", "check": "count == 5",
                 "sql": f"select count(*) from items where idem_key like {key} || '-%%'"},
                {"name": "action", "exec": "update items set idem_key = idem_key "
                 f"where idem_key = {key} || '-setup' returning idem_key", "check": "exactly_one"},
                {"name": "duplicate", "expect_error": "unique_violation",
                 "exec": f"insert into items (idem_key) values ({key} || '-s0')"},
                {"name": "by_code", "expect_error": "23505", "wait": "10ms",
                 "exec": f"insert into items (idem_key) values ({key} || '-s1')"},
                {"name": "wrong", "expect_error": "check_violation",
                 "exec": f"insert into items (idem_key) values ({key} || '-s2')"}]}}},
        "rules": ["errors{op=b} == 0"]}


def test_setup_senders_actions_and_expected_errors(tmp_path: Path, dsn: str) -> None:  # noqa: F811
    with python_server(HELPERS / "pg_service.py", dsn, "--mode", "safe") as url:
        path = write_plan(tmp_path, steps_plan(url, dsn))
        proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"), "--no-live")
        (run_dir,) = (tmp_path / "runs").iterdir()
        results = json.loads((run_dir / "results.json").read_text())
    ops = results["ops"]
    assert ops["b"]["requests"] == 24 and ops["b"]["errors"] == 0, ops["b"]
    # Three senders: three keys a round, so three creates a round.
    assert ops["b.created"]["requests"] == 6
    # Only the step expecting the wrong error fails, in each round.
    assert ops["b:round"]["errors_by_class"] == {"post:wrong": 2}, ops["b:round"]
    burst = results["bursts"]["b"]
    assert burst["by_check"] == {"wrong": 2}
    assert burst["examples"][0]["condition"] == "expect_error check_violation"
    assert burst["examples"][0]["problem"].startswith(
        "expected check_violation (23514), got 23505")
    assert proc.returncode == 0, proc.stderr  # the rule reads only the requests


def test_step_mistakes_are_reported_at_their_line(tmp_path: Path) -> None:
    plan = steps_plan("http://127.0.0.1:9", "postgresql://x@127.0.0.1:9/x")
    after = plan["workloads"]["b"]["burst"]["after"]
    after[2]["expect_error"] = "no_such_error"
    after.append({"name": "bare", "sql": "select 1"})
    plan["workloads"]["b"]["burst"]["request"]["path"] = "/items/{{nope}}"
    path = write_plan(tmp_path, plan)
    proc = run_cli("validate", str(path))
    assert proc.returncode == 2
    assert "expect_error 'no_such_error': expected an SQLSTATE" in proc.stderr
    assert "an 'sql' check needs 'check'" in proc.stderr
