"""Nothing lost: ``enduro report`` rebuilds results.json, junit.xml and report.html from the
store of a run whose runner was SIGKILLed, with counts and percentiles equal to the store's."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from enduro.detach.rebuild import rebuild_results
from enduro.observe.hist import decode, fold, new_histogram, percentiles_ms
from enduro.observe.store import Store
from enduro.observe.window import WindowStats
from tests.conftest import run_cli
from tests.helpers.plans import http_plan, write_plan
from tests.helpers.procs import only_run, wait_for


def stored(run_dir: Path) -> dict[str, Any]:
    """Per op: requests, errors, classes and the merged latency histogram of the store."""
    db = sqlite3.connect(run_dir / "metrics.sqlite")
    try:
        rows = db.execute("SELECT op, requests, errors, classes, latency_hist FROM windows")
        out: dict[str, Any] = {}
        for op, req, err, classes, lat in rows.fetchall():
            o = out.setdefault(op, {"requests": 0, "errors": 0, "classes": {},
                                    "latency": new_histogram()})
            o["requests"] += req
            o["errors"] += err
            for cls, n in json.loads(classes or "{}").items():
                o["classes"][cls] = o["classes"].get(cls, 0) + n
            if lat:
                o["latency"].add(decode(lat))
        return out
    except sqlite3.Error:
        return {}
    finally:
        db.close()


def stored_requests(run_dir: Path) -> int:
    return sum(o["requests"] for o in stored(run_dir).values())


@pytest.mark.slow(8)
def test_report_rebuilds_the_results_of_a_sigkilled_run(tmp_path: Path,
                                                         demo: tuple[str, Path]) -> None:
    url, _ = demo
    runs = tmp_path / "runs"
    plan = write_plan(tmp_path, http_plan(
        url, rate="100/s", duration="120s",
        requests=[{"name": "health", "path": "/health", "weight": 3},
                  {"name": "noauth", "path": "/api/v1/downloads", "weight": 1}],
        rules=["availability >= 99%", "p99(latency{op=health}) < 10s",
               "error_rate < 50% over 2s"]))
    proc = subprocess.Popen([sys.executable, "-m", "enduro", "run", str(plan), "--out",
                             str(runs), "--no-live"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: runs.is_dir() and any(runs.iterdir()), 30, "the run directory")
        run_dir = only_run(runs)
        wait_for(lambda: stored_requests(run_dir) >= 300, 60, "3 s of stored windows")
        # While the runner lives, there is nothing to rebuild: report says so, exit 3.
        live = run_cli("report", str(run_dir))
        assert live.returncode == 3 and "still running" in live.stderr, live.stderr
        assert not (run_dir / "results.json").exists()
        proc.send_signal(signal.SIGKILL)  # the runner alone, by its pid
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert not (run_dir / "results.json").exists()
    assert json.loads((run_dir / "state.json").read_text())["state"] == "running"
    before = run_cli("compare", str(run_dir), str(run_dir))
    assert before.returncode == 3 and "enduro report" in before.stderr, before.stderr

    done = run_cli("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert "rebuilt from the store" in done.stdout and "Traceback" not in done.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == "incomplete" and results["complete"] is False
    assert results["state"] == "dead"
    store = stored(run_dir)
    assert set(results["ops"]) == {"health", "noauth"}
    for op in ("health", "noauth"):
        assert results["ops"][op]["requests"] == store[op]["requests"] > 0
        assert results["ops"][op]["errors"] == store[op]["errors"]
        # Percentiles of the histograms merged, not averaged per window.
        assert results["ops"][op]["latency_ms"] == percentiles_ms(store[op]["latency"])
    assert results["ops"]["noauth"]["errors"] == results["ops"]["noauth"]["requests"]
    assert results["errors_by_class"] == store["noauth"]["classes"] != {}
    assert results["total"]["requests"] == sum(o["requests"] for o in store.values())
    assert results["ops"]["health"]["workload"] == "w"
    rules = {r["rule"]: r for r in results["rules"]}
    assert rules["availability >= 99%"]["passed"] is False  # a quarter are 401s
    assert rules["p99(latency{op=health}) < 10s"]["passed"] is True
    assert rules["error_rate < 50% over 2s"]["evaluated"] is True
    assert results["rebuilt"]["windows"] > 0 and results["rebuilt"]["rules_not_evaluated"] == []
    assert results["duration_s"] >= 3
    suite = ElementTree.parse(run_dir / "junit.xml").getroot()[0]
    assert set(rules) <= {case.get("name") for case in suite}
    assert int(suite.get("failures") or 0) >= 1  # never green: the run did not complete
    assert (run_dir / "report.html").stat().st_size > 10_000

    compared = run_cli("compare", str(run_dir), str(run_dir))
    assert compared.returncode == 0 and "(incomplete)" in compared.stdout, compared.stderr
    # A results.json that exists is kept: report only regenerates the page.
    again = run_cli("report", str(run_dir))
    assert again.returncode == 0 and "rebuilt" not in again.stdout, again.stderr
    # A corrupt one is set aside and rebuilt.
    (run_dir / "results.json").write_text('{"verdict": ')
    fixed = run_cli("report", str(run_dir))
    assert fixed.returncode == 0 and "rebuilt from the store" in fixed.stdout, fixed.stderr
    assert (run_dir / "results.json.corrupt").read_text() == '{"verdict": '
    assert json.loads((run_dir / "results.json").read_text())["ops"] == results["ops"]


def _window(op: str, index: int, requests: int, errors: int, lat_us: int) -> WindowStats:
    from array import array
    return WindowStats(op, index, requests, errors, 0, 0, {"5xx": errors} if errors else {},
                       fold(array("q", [lat_us] * requests)), fold(array("q", [lat_us])))


@pytest.mark.slow(6)
def test_rebuild_after_roll_up_keeps_counts_classes_and_phases(tmp_path: Path) -> None:
    """Two hours of windows, the first rolled up to minutes (as a long soak's store is):
    the rebuilt totals, error classes and phase lengths equal what was stored."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "plan.resolved.yaml").write_text(yaml.safe_dump(http_plan(
        "http://127.0.0.1:9", rate="5/s", duration="3h", requests=[{"name": "r"}],
        rules=["errors{class=5xx} == 0", "availability >= 99%"])))
    table = {"at_s": 7198.0, "fields": ["messages", "leader"],
             "rows": {"ORDERS": {"messages": 12.0, "leader": "n1"}}}
    (run_dir / "state.json").write_text(json.dumps(
        {"state": "running", "pid": 2**22 + 7, "started_at": 1.0, "updated_at": 7200.0,
         "duration_s": 10800, "seed": 1, "tables": {"nats": {"streams": table}}}))
    store = Store(run_dir / "metrics.sqlite")
    seconds = 7200
    for i in range(seconds):
        errors = 1 if i % 100 == 0 else 0
        store.add_windows(float(i), 1.0, [_window("r", i, 5, errors, 1000 + i)],
                          "chaos" if 1800 <= i < 1860 else "baseline")
    store.roll_up(float(seconds))
    spans = {s for (s,) in store.db.execute("SELECT DISTINCT span FROM windows")}
    assert spans == {1.0, 60.0}
    store.close()
    results = rebuild_results(run_dir)
    assert results["total"]["requests"] == 5 * seconds
    assert results["total"]["errors"] == seconds // 100
    assert results["errors_by_class"] == {"5xx": seconds // 100}  # survived the roll-up
    assert results["phases"] == {"baseline": seconds - 60.0, "chaos": 60.0}
    # The slowest request was in the last (raw) window: 8.199 ms, to HDR's 3 digits.
    assert abs(results["total"]["latency_ms"]["max"] - (1000 + seconds - 1) / 1000) < 0.01
    rules = {r["rule"]: r for r in results["rules"]}
    assert rules["errors{class=5xx} == 0"]["observed"] == seconds // 100
    assert results["verdict"] == "incomplete" and results["state"] == "dead"
    assert os.path.exists(run_dir / "metrics.sqlite")
    # Scraped tables as the dead runner's last state.json held them.
    assert results["tables"] == {"nats": {"streams": table}}


def test_a_rebuilt_rule_first_failed_when_the_runner_saw_it_fail(tmp_path: Path) -> None:
    """A whole-run rule of a dead run: its ``first_failed_s`` is the earliest ``fail`` of its
    live status in events.jsonl, not the end of the stored windows; the summary and
    junit.xml say when."""
    from rich.console import Console

    from enduro.detach.rebuild import rebuild_document
    from enduro.report.results import write_junit
    from enduro.report.terminal import summary_table
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rule = "availability >= 99%"
    (run_dir / "plan.resolved.yaml").write_text(yaml.safe_dump(http_plan(
        "http://127.0.0.1:9", rate="5/s", duration="60s", requests=[{"name": "r"}],
        rules=[rule, "p99(latency) < 10s"])))
    (run_dir / "state.json").write_text(json.dumps(
        {"state": "running", "pid": 2**22 + 7, "started_at": 1.0, "updated_at": 40.0,
         "duration_s": 60, "seed": 1}))
    store = Store(run_dir / "metrics.sqlite")
    for i in range(40):
        store.add_windows(float(i), 1.0, [_window("r", i, 5, 5 if i == 11 else 0, 1000)],
                          "baseline")
    store.close()

    def status(t: float, state: str, first: float | None = None) -> dict[str, Any]:
        return {"t": 1.0 + t, "wall": 1.0 + t, "event": "rule_status", "rule": rule,
                "status": state, "observed": "x", "at_s": t, "first_failed_s": first}
    lines = [{"t": 1.0, "wall": 1.0, "event": "load_started", "workers": 1},
             status(2, "pass"), status(12, "fail", 12.0), status(30, "pass"),
             status(34, "fail", 34.0)]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines)
                                          + '{"t": 39, "ev')  # a torn last line
    results = rebuild_document(run_dir)
    rules = {r.rule: r for r in results.rules}
    assert rules[rule].passed is False and rules[rule].first_failed_s == 12.0
    assert rules["p99(latency) < 10s"].passed and rules["p99(latency) < 10s"].first_failed_s is None
    write_junit(run_dir / "junit.xml", results)
    case = next(c for c in ElementTree.parse(run_dir / "junit.xml").getroot()[0]
                if c.get("name") == rule)
    failure = case.find("failure")
    assert failure is not None and "first failed at t=12s" in (failure.text or "")
    assert "first failed at t=12s" in (failure.get("message") or "")
    console = Console(record=True, width=160)
    summary_table(results, console)
    assert "first failed at t=12s" in console.export_text()
