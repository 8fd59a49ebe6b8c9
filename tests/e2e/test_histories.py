"""Operation histories from flows, a final phase, and checkers, against the demo service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enduro.demo.launch import demo_service
from tests.conftest import run_cli
from tests.helpers.plans import write_plan


@pytest.fixture()
def own_demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A demo service of this test's own: reads of everything must see only its writes."""
    with demo_service(tmp_path_factory.mktemp("own-demo")) as started:
        yield started


def plan(url: str, token: str, checkers: list[str]) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {token}"}
    return {
        "name": "histories", "duration": "3s", "seed": 4,
        "workloads": {"writers": {"flow": {
            "base": url, "connections": 3, "headers": auth, "think": "50ms",
            "vars": {"tag": "h"},
            "steps": [
                {"name": "create",
                 "request": {"method": "POST", "path": "/api/v1/downloads",
                             "headers": {"Idempotency-Key": "{{uuid}}-{{seq}}"},
                             "json": {"url": "https://h/{{vu}}/{{seq}}"}},
                 "expect": {"status": 201}, "capture": {"id": "$.id"},
                 "history": {"f": "write", "key": "all", "value": "https://h/{{vu}}/{{seq}}"}},
                {"name": "mine", "request": {"path": "/api/v1/downloads",
                                             "query": {"limit": 500}},
                 "history": {"f": "read", "key": "all", "value": "$.items[*].url"}}]}}},
        "final": {"base": url, "headers": auth, "quiesce": "200ms", "steps": [
            {"name": "everything", "request": {"path": "/api/v1/downloads",
                                               "query": {"limit": 500}},
             "history": {"f": "read", "key": "all", "value": "$.items[*].url"}}]},
        "checkers": checkers}


@pytest.mark.slow(5)
def test_checkers_pass_on_a_correct_service(tmp_path: Path,
                                            own_demo: tuple[str, Path]) -> None:
    url, directory = own_demo
    token = (directory / "demo.token").read_text().strip()
    path = write_plan(tmp_path, plan(url, token, ["lost_writes", "garbage_reads",
                                                  "read_your_writes"]))
    proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    writes = [r for r in history if r["f"] == "write" and r["type"] == "ok"]
    assert len(writes) > 10
    assert not [r for r in history if r["type"] in ("info", "fail")]
    final = [r for r in history if r["process"].startswith("final") and r["type"] == "ok"]
    assert len(final) == 1 and len(final[0]["value"]) >= len(writes)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["checkers"] == {"lost_writes": [], "garbage_reads": [],
                                   "read_your_writes": []}
    assert {r["rule"] for r in results["rules"]} >= {"checker lost_writes"}


@pytest.mark.slow(5)
def test_lost_writes_are_caught_with_the_operations(tmp_path: Path,
                                                    own_demo: tuple[str, Path]) -> None:
    url, directory = own_demo
    token = (directory / "demo.token").read_text().strip()
    p = plan(url, token, ["lost_writes"])
    # The final read asks for too few items: recent writes look lost.
    p["final"]["steps"][0]["request"]["query"] = {"limit": 3}
    path = write_plan(tmp_path, p)
    proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 1
    assert "checker lost_writes" in proc.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert len(results["checkers"]["lost_writes"]) == 20  # the first 20 are kept
    violation = results["checkers"]["lost_writes"][0]
    assert "acknowledged" in violation["message"]
    assert [op["type"] for op in violation["ops"]] == ["invoke", "ok", "invoke", "ok"]
