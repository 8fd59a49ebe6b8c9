"""Suites, loops and cycles with real commands."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import HELPERS, run_cli
from tests.helpers.plans import write_plan


def only(path: Path, pattern: str) -> Path:
    (found,) = list(path.glob(pattern))
    return found


@pytest.mark.slow(5)
def test_suite_layers_retries_timeouts_and_failpoints(tmp_path: Path) -> None:
    counter = tmp_path / "attempts"
    plan = write_plan(tmp_path, {"name": "s", "suite": {
        "env": {"SHARED": "yes"},
        "layers": {
            "fast": {"commands": ["test \"$SHARED\" = yes", "echo threads={threads}"]},
            "stress": {"commands": ["sleep 30"], "timeout": "1s"},
            "chaos": {"commands": [f"echo x >> {counter}; test $(wc -l < {counter}) -ge 2",
                                   "test \"$FAILPOINT_DB\" = on"],
                      "retries": 2, "failpoints": {"FAILPOINT_DB": "on"}}}}})
    proc = run_cli("suite", str(plan), "all", "--threads", "3", "--out", str(tmp_path / "runs"),
                   timeout=120)
    assert proc.returncode == 1  # the stress layer timed out
    assert "failures: 1" in proc.stdout and "sleep 30" in proc.stdout
    assert "timed out" in proc.stdout
    out = only(tmp_path / "runs", "s-suite-*")
    summary = json.loads((out / "suite.json").read_text())
    layers = {entry["layer"]: entry for entry in summary}
    assert layers["fast"]["passed"] and not layers["stress"]["passed"]
    assert layers["chaos"]["passed"] and layers["chaos"]["commands"][0]["attempts"] == 2
    assert "threads=3" in (out / "fast-2.log").read_text()
    assert layers["stress"]["commands"][0]["seconds"] < 15
    only_fast = run_cli("suite", str(plan), "fast", "--out", str(tmp_path / "runs2"))
    assert only_fast.returncode == 0 and "failures: 0" in only_fast.stdout
    unknown = run_cli("suite", str(plan), "nightly", "--out", str(tmp_path / "runs3"))
    assert unknown.returncode == 2 and "no suite layer 'nightly'" in unknown.stderr


@pytest.mark.slow(4)
def test_loop_with_cleanup_between_iterations(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    plan = write_plan(tmp_path, {"name": "l", "suite": {
        "layers": {"fast": {"commands": [f"test ! -e {marker} && touch {marker}"]}},
        "cleanup": [f"rm -f {marker}"]}})
    proc = run_cli("loop", str(plan), "--iterations", "4", "--duration", "60s", "--out",
                   str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    tsv = only(tmp_path / "runs", "l-loop-*") / "loop.tsv"
    rows = list(csv.DictReader(tsv.open(), delimiter="\t"))
    assert [r["passed"] for r in rows] == ["pass"] * 4
    # Without the cleanup the second iteration would have failed.
    plan = write_plan(tmp_path, {"name": "l2", "suite": {
        "layers": {"fast": {"commands": [f"test ! -e {marker}.2 && touch {marker}.2"]}}}},
                      "l2.yaml")
    proc = run_cli("loop", str(plan), "--iterations", "3", "--out", str(tmp_path / "runs"))
    assert proc.returncode == 1 and "3 iteration(s), 2 failed" in proc.stdout


def test_loop_runs_inside_services_and_faults(tmp_path: Path) -> None:
    marker = tmp_path / "fault-on"
    plan = write_plan(tmp_path, {
        "name": "combo",
        "services": {"svc": {"command": [sys.executable, str(HELPERS / "chatty_service.py")]}},
        "faults": [{"at": "0s", "for": "1h", "command": {"run": f"touch {marker}",
                                                        "undo": f"rm -f {marker}"}}],
        "suite": {"layers": {"fast": {"commands": [
            f"for i in $(seq 50); do test -e {marker} && exit 0; sleep 0.1; done; exit 1"]}}}})
    proc = run_cli("loop", str(plan), "--iterations", "2", "--out", str(tmp_path / "runs"),
                   timeout=120)
    assert proc.returncode == 0, proc.stderr
    run_dir = only(tmp_path / "runs", "combo-2*")
    results = json.loads((run_dir / "results.json").read_text())
    assert len(results["loop"]) == 2 and all(r["passed"] for r in results["loop"])
    assert results["services"]["svc"]["state"] == "stopped"
    assert not marker.exists()  # the fault was undone when the loop ended


@pytest.mark.slow(4)
def test_cycles_write_perf_cycles_csv(tmp_path: Path) -> None:
    perf = (f"{sys.executable} -c \"import json,random; json.dump({{'format': "
            "'enduro-gate-summary', 'cases': {'a': [random.uniform(1, 2) for _ in range(20)]}}, "
            "open('perf.json', 'w'))\"")
    plan = write_plan(tmp_path, {"name": "c", "suite": {
        "layers": {"stress": {"commands": ["true"]}, "chaos": {"commands": ["true"]},
                   "fast": {"commands": ["true"]}},
        "cycles": {"count": 4, "chaos_every": 2, "perf_every": 2, "perf_command": perf,
                   "perf_result": "perf.json", "pause": "0s"}}})
    proc = run_cli("cycles", str(plan), "--out", str(tmp_path / "runs"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = only(tmp_path / "runs", "c-cycles-*")
    rows = list(csv.DictReader((out / "perf_cycles.csv").open()))
    assert [r["cycle"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["cases"] for r in rows] == ["0", "1", "0", "1"]
    assert list(rows[0]) == ["cycle", "elapsed_secs", "cases", "median_ns_p50",
                             "median_ns_p95", "passed"]
    assert 1e9 <= float(rows[1]["median_ns_p50"]) <= 2e9  # samples in s, columns in ns
    snapshot = json.loads((out / "perf_cycle_2.json").read_text())
    assert 1e9 <= snapshot["cases"]["a"]["median_ns"] <= 2e9
    assert not (out / "perf_cycle_1.json").exists()  # no snapshot in cycle 1
    assert (out / "cycle-2" / "chaos-1.log").exists() and not (out / "cycle-1" /
                                                              "chaos-1.log").exists()
    assert (out / "final" / "fast-1.log").exists()
    assert "uPlot" in (out / "cycles.html").read_text()


def test_cycles_run_for_a_duration_then_the_final_check(tmp_path: Path) -> None:
    perf = (f"{sys.executable} -c \"import json; json.dump({{'format': 'enduro-gate-summary', "
            "'cases': {'a': [0.001, 0.002, 0.003], 'b': [0.010], 'c': [0.100]}}, "
            "open('perf.json', 'w'))\"")
    plan = write_plan(tmp_path, {"name": "d", "suite": {
        "layers": {"stress": {"commands": [f"{sys.executable} -c 'import time; "
                                           "time.sleep(0.4)'"]},
                   "fast": {"commands": ["true"]}},
        "cycles": {"count": 2, "perf_command": perf, "perf_result": "perf.json"}}})
    # --duration replaces the plan's count: cycles go on until 2 s have passed
    proc = run_cli("cycles", str(plan), "--duration", "2s", "--out", str(tmp_path / "runs"),
                   timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = only(tmp_path / "runs", "d-cycles-*")
    rows = list(csv.DictReader((out / "perf_cycles.csv").open()))
    assert len(rows) >= 3, rows
    # the last cycle started before the end (elapsed_secs is rounded to 0.1 s)
    assert float(rows[-2]["elapsed_secs"]) < 2.05
    # p50 and p95 over the cases' medians (2 ms, 10 ms, 100 ms), in ns
    assert rows[0]["median_ns_p50"] == "10000000"
    assert rows[0]["median_ns_p95"] == "91000000"
    assert (out / "final" / "fast-1.log").exists()
    assert len(list(out.glob("perf_cycle_*.json"))) == len(rows)


def test_cycles_count_flag_and_bad_values(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, {"name": "e", "suite": {
        "layers": {"stress": {"commands": ["true"]}}, "cycles": {"duration": "1h"}}})
    proc = run_cli("cycles", str(plan), "--count", "2", "--out", str(tmp_path / "runs"),
                   timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((only(tmp_path / "runs", "e-cycles-*") /
                                "perf_cycles.csv").open()))
    assert [r["cycle"] for r in rows] == ["1", "2"]  # the count ends it before the hour
    for bad in (["--count", "0"], ["--duration", "-1s"], ["--duration", "soon"]):
        proc = run_cli("cycles", str(plan), *bad, "--out", str(tmp_path / "runs"))
        assert proc.returncode == 2, (bad, proc.stderr)
        assert "Traceback" not in proc.stderr
