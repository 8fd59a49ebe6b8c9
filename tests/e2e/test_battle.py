"""examples/battle/battle.yaml: the seven battle tests against the demo service on a real
PostgreSQL, as scenarios of one plan (the service started once)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.e2e.test_bursts import dsn  # noqa: F401  (the module's PostgreSQL fixture)
from tests.helpers.procs import free_port

PLAN = Path(__file__).resolve().parents[2] / "examples" / "battle" / "battle.yaml"
SCENARIOS = ["idempotency", "members", "messages", "ttl", "leave", "grace", "duplicate"]


def test_battle_plan_lists_its_scenarios() -> None:
    proc = run_cli("plan", str(PLAN), "--list", env={"BATTLE_DSN": "postgresql://x@h/x"})
    assert proc.returncode == 0, proc.stderr
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == SCENARIOS


@pytest.mark.slow(19)
def test_battle_tests_pass_on_postgres(tmp_path: Path, dsn: str) -> None:  # noqa: F811
    import psycopg

    env = {"BATTLE_DSN": dsn, "BATTLE_PORT": str(free_port())}
    proc = run_cli("run", str(PLAN), "--out", str(tmp_path / "runs"), "--no-live", env=env,
                   timeout=180)
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    verdicts = {s["name"]: s["verdict"] for s in results["scenarios"]}
    assert verdicts == dict.fromkeys(SCENARIOS, "pass"), (verdicts, proc.stderr[-3000:])
    assert proc.returncode == 0 and results["verdict"] == "pass"
    for name in SCENARIOS:
        assert f"scenario {name}: PASS" in proc.stdout
    by_name = {s["name"]: s for s in results["scenarios"]}
    ops = by_name["idempotency"]["ops"]
    assert ops["order.created"]["requests"] == 1 and ops["order.replayed"]["requests"] == 99
    assert by_name["leave"]["ops"]["leave.left"]["requests"] == 1
    assert by_name["grace"]["ops"]["fetch.fetched"]["requests"] == 1
    assert by_name["messages"]["ops"]["chat"]["requests"] == 200
    # The service ran once for all seven, and every scenario cleaned up its data.
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "service_start" for e in events) == 1
    with psycopg.connect(dsn) as db:
        for table in ("battle_orders", "battle_cache", "battle_groups", "battle_members",
                      "battle_messages", "battle_queue"):
            row = db.execute(f"select count(*) from {table}").fetchone()
            assert row is not None and row[0] == 0, table


def test_only_runs_the_named_scenarios(tmp_path: Path, dsn: str) -> None:  # noqa: F811
    env = {"BATTLE_DSN": dsn, "BATTLE_PORT": str(free_port())}
    proc = run_cli("run", str(PLAN), "--out", str(tmp_path / "runs"), "--no-live",
                   "--only", "duplicate", "--only", "leave", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    # In the plan's order, whatever the order of --only.
    assert [s["name"] for s in results["scenarios"]] == ["leave", "duplicate"]


def test_battle_tests_catch_check_then_act(tmp_path: Path, dsn: str) -> None:  # noqa: F811
    """The same endpoints written check-then-act: the plan's checks fail where exactly-once
    is lost, and pass where the database's constraints still hold."""
    env = {"BATTLE_DSN": dsn, "BATTLE_PORT": str(free_port()),
           "BATTLE_DEFECT_FLAG": "--defect battle-races"}
    only = ["idempotency", "messages", "leave", "grace", "duplicate"]
    proc = run_cli("run", str(PLAN), "--out", str(tmp_path / "runs"), "--no-live",
                   *(arg for name in only for arg in ("--only", name)), env=env, timeout=180)
    assert proc.returncode == 1, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    verdicts = {s["name"]: s["verdict"] for s in results["scenarios"]}
    assert verdicts == {"idempotency": "fail", "messages": "fail", "leave": "fail",
                        "grace": "fail", "duplicate": "pass"}, proc.stderr[-3000:]
    assert results["verdict"] == "fail"
    by_name = {s["name"]: s for s in results["scenarios"]}
    assert by_name["leave"]["ops"]["leave.left"]["requests"] > 1
    assert by_name["messages"]["bursts"]["chat"]["by_check"] == {"monotonic": 1}
