"""A workload kept clear of faults and SSE churn (``not_during``), end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers.plans import write_plan
from tests.helpers.procs import free_port, only_run


@pytest.mark.slow(10)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_workload_pauses_while_a_fault_is_in_force(tmp_path: Path, demo: tuple[str, Path],
                                                     workers: str) -> None:
    url, _ = demo
    front = free_port()

    def health(*avoid: str) -> dict[str, object]:
        http = {"base": f"http://127.0.0.1:{front}", "rate": "40/s", "timeout": "1s",
                "requests": [{"name": f"health_{'avoider' if avoid else 'bystander'}",
                              "path": "/health"}]}
        return {"http": http, "not_during": list(avoid)} if avoid else {"http": http}

    plan = write_plan(tmp_path, {
        "name": "avoid-faults", "duration": "4s", "grace": "1s",
        "proxies": {"front": {"listen": f"127.0.0.1:{front}",
                              "upstream": url.split("//")[1]}},
        "workloads": {"avoider": health("faults"), "bystander": health()},
        "faults": [{"at": "1s", "for": "1500ms", "down": {"proxy": "front"}}]})
    # Under --workers the runner tells every worker, and waits for their operations in
    # flight to end before it applies the fault.
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"), "--workers", workers)
    run_dir = only_run(tmp_path / "runs")
    results = json.loads((run_dir / "results.json").read_text())
    ops = results["ops"]
    # The proxy is down for 1.5 s: the bystander's requests fail, the avoider sends none.
    assert ops["health_bystander"]["errors"] > 10, proc.stderr
    assert ops["health_avoider"]["errors"] == 0, ops["health_avoider"]
    paused = results["paused"]["avoider"]
    assert paused["pauses"] == 1 and paused["by_reason"]["faults"]["pauses"] == 1
    assert 1.3 <= paused["paused_s"] <= 2.5, paused
    (first,) = paused["first"]
    assert 0.8 <= first["start_s"] <= 1.6, first
    # It resumed after the fault: about 2.5 s of 40/s, against 4 s for the bystander.
    assert 60 <= ops["health_avoider"]["requests"] <= 115, ops["health_avoider"]
    assert ops["health_bystander"]["requests"] >= 150
    assert "bystander" not in results["paused"]
    assert (run_dir / "pauses.jsonl").exists()
    # events.jsonl marks the stretch in force, for pages and scripts.
    marks = [(e["reason"], e["on"]) for e in map(json.loads, (run_dir / "events.jsonl").open())
             if e["event"] == "in_force"]
    assert marks == [("faults", True), ("faults", False)]


@pytest.mark.slow(10)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_workload_pauses_during_each_churn_round(tmp_path: Path, demo: tuple[str, Path],
                                                   workers: str) -> None:
    url, directory = demo
    auth = {"Authorization": f"Bearer {(directory / 'demo.token').read_text().strip()}"}
    plan = write_plan(tmp_path, {
        "name": "avoid-churn", "duration": "4500ms",
        "workloads": {
            "stream": {"sse": {"base": url, "path": "/api/v1/events", "headers": auth,
                               "clients": 4, "churn": {"every": "1s", "fraction": "50%"},
                               "reconnect_delay": "300ms", "reconnect_jitter": "100ms"}},
            "calls": {"not_during": ["churn"],
                      "http": {"base": url, "rate": "40/s",
                               "requests": [{"name": "ping", "path": "/health"}]}}}})
    # Under --workers each worker churns its own streams; the runner tells every worker.
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"), "--workers", workers)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((only_run(tmp_path / "runs") / "results.json").read_text())
    paused = results["paused"]["calls"]
    # Four rounds (1, 2, 3, 4 s), each in force until its clients are back (300-400 ms).
    assert paused["by_reason"]["churn"]["pauses"] >= 3, paused
    assert 0.3 * paused["pauses"] <= paused["paused_s"] <= 0.8 * paused["pauses"], paused
    sent = results["ops"]["ping"]["requests"]
    assert sent <= 40 * (4.5 - paused["paused_s"]) + 10, (sent, paused)
    assert results["ops"]["ping"]["errors"] == 0
