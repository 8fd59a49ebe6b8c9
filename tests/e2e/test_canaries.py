"""Leak canaries: secrets that must never come back in a response or land in a log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers.plans import write_plan


@pytest.mark.slow(4)
def test_canaries_in_responses_and_logs(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, directory = demo
    token = (directory / "demo.token").read_text().strip()
    path = write_plan(tmp_path, {
        "name": "canaries", "duration": "2s",
        "canaries": {"values": ["s3cr3t-value-42"], "generate": 1},
        "services": {"leaky": {"command": "echo starting with password=s3cr3t-value-42; "
                                          "exec sleep 60"}},
        "workloads": {
            "quiet": {"http": {"base": url, "rate": "20/s", "requests": [
                {"name": "health", "path": "/health",
                 "headers": {"X-Password": "{{canary}}"}}]}},
            "echo": {"http": {"base": url, "rate": "10/s",
                              "headers": {"Authorization": f"Bearer {token}"}, "requests": [
                {"name": "create", "method": "POST", "path": "/api/v1/downloads",
                 "json": {"url": "https://x/{{canary}}"}}]}}}})
    proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 1
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    ops = results["ops"]
    assert ops["health"]["errors"] == 0  # sent, never echoed: fine
    assert ops["create"]["errors_by_class"] == {"canary": ops["create"]["requests"]}
    wheres = [h["where"] for h in results["canaries"]]
    assert "responses of op create" in wheres
    assert any(w.startswith("services/leaky/output.log:") for w in wheres)
    (rule,) = [r for r in results["rules"] if r["rule"] == "canaries never appear"]
    assert not rule["passed"]
    # The generated canary is written nowhere in the run directory.
    generated = [w for w in (run_dir / "events.jsonl").read_text().split() if "enduro-canary" in w]
    assert generated == []
    assert "s3cr3t" not in json.dumps(results["canaries"])


def test_no_canary_no_alarm(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    path = write_plan(tmp_path, {
        "name": "quiet", "duration": "1s", "canaries": {"generate": 2},
        "workloads": {"w": {"http": {"base": url, "rate": "20/s", "requests": [
            {"name": "health", "path": "/health", "headers": {"X-A": "{{canary2}}"}}]}}}})
    proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
