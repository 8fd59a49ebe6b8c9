"""Every example under examples/ runs as its comments say (battle and fullstack have tests
of their own: test_battle.py, test_services.py)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import HELPERS, run_cli
from tests.helpers.fake_tool import end_all
from tests.helpers.procs import free_port, only_run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_gate_example_falls_back_to_thresholds_and_passes_an_aa_pair(tmp_path: Path) -> None:
    gate = EXAMPLES / "gate"
    fail = run_cli("gate", "compare", "--base", str(gate / "criterion" / "base"), "--head",
                   str(gate / "criterion" / "head"), "--config", str(gate / "gate.toml"),
                   "--out", str(tmp_path / "one"))
    assert fail.returncode == 1, fail.stdout + fail.stderr
    report = json.loads((tmp_path / "one" / "comparison.json").read_text())
    rows = {c["case"]: c for c in report["cases"]}
    # One estimate per case: judged by the threshold rule, said per case.
    assert {c["rule"] for c in rows.values()} == {"threshold"}
    assert rows["render"]["verdict"] == "regressed" and rows["render"]["delta_pct"] == 50
    assert rows["parse"]["verdict"] != "regressed" and rows["tokenize"]["verdict"] != "regressed"
    base = json.loads((tmp_path / "one" / "base_summary.json").read_text())
    assert base["stats"]["render"]["median_ns"] == pytest.approx(2000)
    assert (tmp_path / "one" / "head_snapshot.json").exists()
    same = run_cli("gate", "compare", "--base", str(gate / "base.json"), "--head",
                   str(gate / "head.json"), "--config", str(gate / "gate.toml"),
                   "--out", str(tmp_path / "two"))
    assert same.returncode == 0, same.stdout
    report = json.loads((tmp_path / "two" / "comparison.json").read_text())
    assert {c["rule"] for c in report["cases"]} == {"statistics"}


@pytest.mark.slow(8)
def test_cycles_example_runs_for_a_duration(tmp_path: Path) -> None:
    work = tmp_path / "cycles"
    shutil.copytree(EXAMPLES / "cycles", work)  # its commands write beside the plan
    proc = run_cli("cycles", str(work / "plan.yaml"), "--duration", "2s", "--out",
                   str(tmp_path / "runs"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    (out,) = (tmp_path / "runs").glob("nightly-cycles-*")
    rows = list(csv.DictReader((out / "perf_cycles.csv").open()))
    assert len(rows) >= 2 and list(rows[0])[:5] == [
        "cycle", "elapsed_secs", "cases", "median_ns_p50", "median_ns_p95"]
    assert all(r["cases"] == "2" and float(r["median_ns_p50"]) > 0 for r in rows)
    snapshot = json.loads((out / "perf_cycle_1.json").read_text())
    assert set(snapshot["cases"]) == {"sort_10k", "join_1k"}
    assert (out / "cycle-2" / "chaos-1.log").exists()  # chaos every second cycle
    assert "fast: 1000 rounds ok" in (out / "final" / "fast-1.log").read_text()


def _stand_ins(tmp_path: Path) -> tuple[Path, Path]:
    """docker, systemctl and journalctl stand-ins (tests/helpers/fake_tool.py) on PATH."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for tool in ("docker", "systemctl", "journalctl"):
        shim = bin_dir / tool
        shim.write_text(f"#!/bin/sh\nexec {sys.executable} {HELPERS / 'fake_tool.py'} "
                        f"{tool} \"$@\"\n")
        shim.chmod(0o755)
    return bin_dir, state


@pytest.mark.slow(12)
@pytest.mark.parametrize(("plan", "service", "port_var", "unit"), [
    ("compose.yaml", "web", "WEB_PORT", "web"),
    ("systemd.yaml", "worker", "WORKER_PORT", "worker.service")])
def test_supervision_examples_restart_a_crashed_service(tmp_path: Path, plan: str,
                                                        service: str, port_var: str,
                                                        unit: str) -> None:
    bin_dir, state = _stand_ins(tmp_path)
    port = free_port()
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_TOOL_STATE": str(state),
           "FAKE_TOOL_PORT": str(port), port_var: str(port),
           # The stand-in's server is SIGKILLed: a crash, as `docker kill` or
           # `systemctl kill` would make it on a real machine.
           "CRASH": f"kill -9 $(cat {state}/{unit}.pid)"}
    try:
        proc = run_cli("run", str(EXAMPLES / "supervision" / plan), "--out",
                       str(tmp_path / "runs"), "--no-live", env=env)
    finally:
        end_all(state)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run(tmp_path / "runs")
    (crash,) = (run_dir / "services" / service).glob("crash-*.log")
    assert "exit_code: 137" in crash.read_text()
    monitor = (run_dir / "services" / service / "monitor.log").read_text()
    assert "restarting" in monitor, monitor
    results = json.loads((run_dir / "results.json").read_text())
    assert results["services"][service]["restarts"] == 1
    calls = (state / "calls.log").read_text()
    assert f" restart {unit}" in calls


@pytest.mark.slow(14)
def test_soak_example_smoke_and_calm(tmp_path: Path) -> None:
    plan = EXAMPLES / "soak" / "plan.yaml"
    env = {"API_PORT": str(free_port()), "FRONT_PORT": str(free_port())}
    proc = run_cli("run", str(plan), "--profile", "smoke", "--var", "LOG_LEVEL=debug",
                   "--out", str(tmp_path / "smoke"), "--no-live", env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run(tmp_path / "smoke")
    config = (run_dir / "services" / "api" / "config.toml").read_text()
    assert 'log_level = "debug"' in config and 'sam_host = "sam.internal:7000"' in config
    results = json.loads((run_dir / "results.json").read_text())
    ops = results["ops"]
    # The flow followed each download's stream to "completed".
    assert ops["lifecycle.follow"]["requests"] == ops["lifecycle"]["requests"] > 0
    assert ops["lifecycle.follow:event"]["requests"] > 0
    # browse stayed clear of the 2 s fault: paused, never failed.
    assert ops["list"]["errors"] == 0
    assert 1.5 <= results["paused"]["browse"]["paused_s"] <= 3.0
    table = results["tables"]["api"]["downloads"]
    assert table["fields"] == ["state", "url"] and len(table["rows"]) > 0
    assert {r["state"] for r in table["rows"].values()} <= {"queued", "downloading",
                                                            "completed"}
    assert [r["rule"] for r in results["rules"]][-1] == "p95(latency{op=lifecycle.follow}) < 2s"
    log = (run_dir / "logs" / "enduro.log").read_text().splitlines()
    beats = [x for x in log if "alive t=" in x]
    assert beats and all(" INFO " in x and " flows=" in x and " faults=" in x for x in beats)
    assert (run_dir / "snapshots" / "snapshot-0000-t0s.json").exists()

    env = {"API_PORT": str(free_port()), "FRONT_PORT": str(free_port())}
    calm = run_cli("run", str(plan), "--profile", "calm", "--out", str(tmp_path / "calm"),
                   "--no-live", env=env, timeout=120)
    assert calm.returncode == 0, calm.stdout + calm.stderr
    results = json.loads((only_run(tmp_path / "calm") / "results.json").read_text())
    rules = {r["rule"]: r for r in results["rules"]}
    assert "max(recover_s) < 10s" not in rules  # removed by the profile
    assert rules["error_rate{phase=chaos} < 5%"]["applicable"] is False  # no faults
    assert results["paused"]["browse"]["pauses"] == 0  # nothing to stay clear of


def test_triage_example_groups_by_service_and_root_cause(tmp_path: Path) -> None:
    proc = run_cli("triage", str(EXAMPLES / "triage" / "logs"), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "api.errors.txt", "api.summary.md", "summary.md", "worker.errors.txt",
        "worker.summary.md"]
    api = (tmp_path / "api.summary.md").read_text()
    # The two panics of src/main.rs:3 (expect and unwrap) are two causes of four.
    assert "11 crash(es) in 4 root cause(s)" in api
    assert "panic: port must be set" in api and "ParseIntError" in api
    worker = (tmp_path / "worker.summary.md").read_text()
    assert "**Primary issue**: java.lang.IllegalStateException: disk full for 101" in worker
