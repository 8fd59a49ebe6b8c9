"""Burst workloads with post-conditions against a real PostgreSQL."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enduro.engine.burst import check_rows
from tests.conftest import HELPERS, run_cli
from tests.helpers.plans import write_plan
from tests.helpers.postgres import pg_bin, postgres
from tests.helpers.procs import python_server
from tests.helpers.report import embedded


@pytest.mark.parametrize(("check", "rows", "columns", "problem"), [
    ("exactly_one", [(1,)], ["count"], None),
    ("exactly_one", [(2,)], ["count"], "expected exactly one, found 2"),
    ("exactly_one", [("a",)], ["k"], None),
    ("none", [], ["k"], None),
    ("count == 3", [(3,)], ["count"], None),
    ("count >= 4", [(3,)], ["count"], "count 3 is not >= 4"),
    ("unique(k)", [("a",), ("b",)], ["k"], None),
    ("unique(k)", [("a",), ("a",)], ["k"], "k repeats: 'a'"),
    ("monotonic(ts)", [(1,), (2,), (2,)], ["ts"], None),
    ("monotonic(ts)", [(1,), (3,), (2,)], ["ts"], "ts goes back from 3 to 2"),
    ("unique(nope)", [(1,)], ["k"], "no column 'nope' in the result (k)"),
])
def test_sql_checks(check: str, rows: list[tuple[Any, ...]], columns: list[str],
                    problem: str | None) -> None:
    assert check_rows(check, rows, columns) == problem


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    pytest.importorskip("psycopg")
    if pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is missing; scripts/test.sh installs postgresql")
        pytest.skip("PostgreSQL is not installed")
    with postgres() as url:
        yield url


def burst_plan(url: str, dsn: str) -> dict[str, Any]:
    return {
        "name": "battle", "duration": "30s",
        "workloads": {"battle": {"burst": {
            "base": url, "size": 30, "rounds": 3, "every": "200ms",
            "vars": {"key": "{{prefix}}{{uuid}}"},
            "request": {"method": "POST", "path": "/items",
                        "headers": {"Idempotency-Key": "{{key}}"}},
            "split": {"created": {"status": 201}, "replayed": {"status": 200}},
            "database": {"dsn": dsn},
            "cleanup": ["delete from items where idem_key like %(prefix_like)s"],
            "after": [
                {"name": "one_row", "sql": "select count(*) from items where idem_key = %(key)s",
                 "check": "exactly_one"},
                {"name": "unique_keys",
                 "sql": "select idem_key from items where idem_key like %(prefix_like)s",
                 "check": "unique(idem_key)"},
                {"name": "ordered", "sql": "select created_at from items where idem_key like "
                 "%(prefix_like)s order by id", "check": "monotonic(created_at)"}]}}},
        "rules": ["errors{op=battle:round} == 0"]}


@pytest.mark.parametrize("mode", ["safe", "racy"])
def test_burst_post_conditions_in_postgres(tmp_path: Path, dsn: str, mode: str) -> None:
    import psycopg

    with python_server(HELPERS / "pg_service.py", dsn, "--mode", mode) as url:
        path = write_plan(tmp_path, burst_plan(url, dsn))
        proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"))
        (run_dir,) = (tmp_path / "runs").iterdir()
        results = json.loads((run_dir / "results.json").read_text())
        ops = results["ops"]
        assert ops["battle:round"]["requests"] == 3
        assert ops["battle"]["requests"] == 90 and ops["battle"]["errors"] == 0
        if mode == "safe":
            assert proc.returncode == 0, proc.stderr
            assert ops["battle.created"]["requests"] == 3
            assert ops["battle.replayed"]["requests"] == 87
            assert results["bursts"] == {}
        else:
            assert proc.returncode == 1
            classes = ops["battle:round"]["errors_by_class"]
            assert classes["post:one_row"] == 3 and classes["post:unique_keys"] == 3
            assert "post:ordered" not in classes
            assert ops["battle.created"]["requests"] > 3
            # What was wrong, per check, is in results.json and on the terminal.
            burst = results["bursts"]["battle"]
            assert burst["by_check"] == {"one_row": 3, "unique_keys": 3}
            assert burst["rounds_failed"] == 3
            first = burst["examples"][0]
            assert first["check"] == "one_row" and first["condition"] == "exactly_one"
            assert first["problem"].startswith("expected exactly one, found ")
            assert "burst battle: 6 failed post-condition(s) in 3 round(s)" in proc.stdout
            shown = embedded(run_dir / "report.html")["run"]["results"]["bursts"]["battle"]
            assert shown["by_check"] == {"one_row": 3, "unique_keys": 3}
        with psycopg.connect(dsn) as db:
            # Test data carries the run's prefix and is cleaned after the last round.
            left = db.execute("select count(*) from items").fetchone()
            assert left is not None and left[0] == 0
