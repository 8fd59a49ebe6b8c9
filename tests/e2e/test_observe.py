"""Observation end to end: resource trends on the soak demo, metrics.sqlite after SIGKILL,
report.html, compare."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.conftest import HELPERS, run_cli
from tests.e2e.test_services import start, status
from tests.helpers.plans import write_plan
from tests.helpers.procs import free_port, only_run, wait_for
from tests.helpers.report import embedded

DRIFT = "drift(p95(latency{op=list})) < 100%"
FDS = "leak(fds{service=demo}) == false"


def failed_rules(out: Path) -> list[str]:
    results = json.loads((only_run(out) / "results.json").read_text())
    return [r["rule"] for r in results["rules"] if not r["passed"]]


def failed_besides_drift(out: Path, *also: str) -> list[str]:
    """Failed rules, leaving out the judged drift rule (and ``also``): the demo's real
    latency follows the load of the shared test machine, so drift over 25 s measures the
    machine as much as the demo; and its open fds follow the keep-alive connections the
    generator opens as latency rises. Those statistics are tested on recorded runs
    (test_verdict_data.py); here they must at least have been judged, not guessed."""
    results = json.loads((only_run(out) / "results.json").read_text())
    noisy = {DRIFT, *also}
    for rule in results["rules"]:
        if rule["rule"] in noisy:
            assert not rule.get("insufficient"), rule
    return [r["rule"] for r in results["rules"] if not r["passed"] and r["rule"] not in noisy]


@pytest.mark.slow(30)
def test_soak_demo_passes_without_a_defect(tmp_path: Path) -> None:
    proc = run_cli("demo", "--plan", "soak", "--duration", "25s", "--out", str(tmp_path),
                   timeout=120)
    assert failed_besides_drift(tmp_path, FDS) == [], proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    results = json.loads((only_run(tmp_path) / "results.json").read_text())
    demo = results["resources"]["service:demo"]
    assert demo["rss_mb_max"] > 10 and demo["fds_max"] > 5
    assert demo["rss_mb_trend"]["leak"] is None  # too short for the informational verdict
    assert results["generator"]["samples"] >= 20
    data = embedded(only_run(tmp_path) / "report.html")
    assert data["run"]["plan"] == "demo-soak"
    assert data["series"]["resources"]["service:demo"]["rss_mb"]["value"]
    assert data["scrapes"]["series"]["demo"]  # the demo's metrics that changed


# fd-leak is judged from a recorded 60 s run of the demo (tests/unit/test_verdict_data.py):
# 25 s of it gave p-values next to the significance level, caught or not by timing luck.
# slow-drift adds 1 ms every 2 s: over 25 s the p95 drifted 109% against the 100% limit on a
# busy machine (and -15% under a load of 11), over 40 s 177%. The leak is plain at 25 s.
@pytest.mark.parametrize(("defect", "rule", "duration"), [
    pytest.param("leak", "leak(rss{service=demo, min=10MB}) == false", "25s",
                 marks=pytest.mark.slow(28)),
    pytest.param("slow-drift", "drift(p95(latency{op=list})) < 100%", "40s",
                 marks=pytest.mark.slow(43)),
])
def test_soak_defects_are_caught(tmp_path: Path, defect: str, rule: str, duration: str) -> None:
    proc = run_cli("demo", "--defect", defect, "--duration", duration, "--out", str(tmp_path),
                   timeout=120)
    assert proc.returncode == 1, proc.stderr
    if defect == "slow-drift":
        assert [r for r in failed_rules(tmp_path) if r != FDS] == [rule]
    else:
        assert failed_besides_drift(tmp_path, FDS) == [rule]
        results = json.loads((only_run(tmp_path) / "results.json").read_text())
        trend = results["trends"][rule]
        assert trend["leak"] and trend["slope_ci_per_h"][0] > 0


@pytest.mark.slow(11)
def test_a_short_soak_says_its_trend_rules_had_too_little_data(tmp_path: Path) -> None:
    # 8 s: fewer samples than a leak test needs (12), fewer windows than drift needs (20).
    proc = run_cli("demo", "--plan", "soak", "--duration", "8s", "--out", str(tmp_path),
                   timeout=120)
    assert proc.returncode == 1, proc.stderr
    results = json.loads((only_run(tmp_path) / "results.json").read_text())
    assert results["verdict"] == "fail"
    rules = {r["rule"]: r for r in results["rules"]}
    unjudged = {text for text, r in rules.items() if r.get("insufficient")}
    assert unjudged == {"leak(rss{service=demo, min=10MB}) == false",
                        "leak(fds{service=demo}) == false",
                        "drift(p95(latency{op=list})) < 100%"}
    for text in unjudged:
        assert not rules[text]["passed"] and rules[text]["observed_text"] == "not enough data"
        assert re.fullmatch(r"not enough data \(\d+ points, needs (12|20)\)",
                            rules[text]["reason"]), rules[text]
    assert rules["availability >= 99.9%"]["passed"]


@pytest.mark.slow(28)
def test_queue_growth_is_caught_from_scraped_metrics(tmp_path: Path) -> None:
    # The demo plan catches it through an HTTP check; the soak plan through /metrics.
    proc = run_cli("demo", "--plan", "soak", "--defect", "queue-growth", "--duration", "25s",
                   "--out", str(tmp_path), timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert failed_besides_drift(tmp_path, FDS) == [
        "max(scrape{service=demo, metric=demo_queue_depth}) < 200"]


@pytest.mark.slow(8)
def test_metrics_sqlite_is_readable_after_sigkill(tmp_path: Path,
                                                  demo: tuple[str, Path]) -> None:
    url, _ = demo
    runs = tmp_path / "runs"
    plan = write_plan(tmp_path, {
        "name": "killed", "duration": "120s", "observe": {"sample": "500ms"},
        "workloads": {"w": {"http": {"base": url, "rate": "50/s",
                                     "requests": [{"name": "health", "path": "/health"}]}}}})
    run_dir = start(plan, runs)
    wait_for(lambda: (status(runs)["live"] or {}).get("requests_total", 0) > 150, 30,
             "a few windows")
    os.kill(status(runs)["runner"]["pid"], signal.SIGKILL)
    wait_for(lambda: status(runs)["state"] == "dead", 10, "the runner to die")
    db = sqlite3.connect(f"file:{run_dir / 'metrics.sqlite'}?mode=ro", uri=True)
    rows = db.execute("SELECT COUNT(*), SUM(requests) FROM windows WHERE op = 'health'").fetchone()
    samples = db.execute("SELECT COUNT(*) FROM samples WHERE target = 'generator'").fetchone()
    db.close()
    assert rows[0] >= 3 and rows[1] >= 150
    assert samples[0] >= 2
    assert run_cli("stop", "--runs", str(runs)).returncode == 0


@pytest.mark.slow(7)
def test_report_and_compare_from_the_cli(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    for name, rate in (("a", "50/s"), ("b", "100/s")):
        plan = write_plan(tmp_path, {
            "name": "cmp", "duration": "2s",
            "workloads": {"w": {"http": {"base": url, "rate": rate, "requests": [
                {"name": "health", "path": "/health"}]}}}}, f"{name}.yaml")
        assert run_cli("run", str(plan), "--out", str(tmp_path / "runs"), "--tag",
                       name).returncode == 0
    a, b = sorted((tmp_path / "runs").iterdir())
    (a / "report.html").unlink()
    proc = run_cli("report", str(a))
    assert proc.returncode == 0 and (a / "report.html").exists()
    proc = run_cli("compare", str(a), str(b))
    assert proc.returncode == 0
    rps_line = next(line for line in proc.stdout.splitlines() if "rps" in line)
    change = float(re.search(r"([+-]\d+\.\d)%", rps_line).group(1))  # type: ignore[union-attr]
    assert 90 <= change <= 110, rps_line  # 50/s -> 100/s


@pytest.mark.slow(33)
def test_leaking_and_steady_real_processes_are_told_apart(tmp_path: Path) -> None:
    """Two real processes over a minute: one keeps allocating, one does not."""
    leaky = tmp_path / "leaky.py"
    leaky.write_text("import time\nkeep = []\nwhile True:\n"
                     "    keep.append(bytearray(400_000))\n    time.sleep(0.1)\n")
    plan = write_plan(tmp_path, {
        "name": "procs", "duration": "30s", "observe": {"sample": "500ms"},
        "services": {"leaky": {"command": [sys.executable, str(leaky)]},
                     "steady": {"command": [sys.executable, str(HELPERS / "chatty_service.py"),
                                            "--port", str(free_port())]}},
        "rules": ["leak(rss{service=leaky}) == false", "leak(rss{service=steady}) == false"]})
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"), timeout=120)
    assert proc.returncode == 1
    assert failed_rules(tmp_path / "runs") == ["leak(rss{service=leaky}) == false"]


@pytest.mark.slow(4)
def test_metrics_port_serves_the_live_run(tmp_path: Path, demo: tuple[str, Path]) -> None:
    import subprocess
    import urllib.request

    url, _ = demo
    port = free_port()
    plan = write_plan(tmp_path, {
        "name": "expo", "duration": "30s",
        "workloads": {"w": {"http": {"base": url, "rate": "50/s",
                                     "requests": [{"name": "health", "path": "/health"}]}}}})
    proc = subprocess.Popen([sys.executable, "-m", "enduro", "run", str(plan), "--out",
                             str(tmp_path / "runs"), "--metrics-port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def scrape() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                return ""
            m = re.search(r'enduro_requests_total\{op="health"\} (\S+)', text)
            return text if m and float(m.group(1)) > 0 and 'enduro_rps{op="health"}' in text \
                else ""
        text = wait_for(scrape, 30, "the exporter to serve the run")
        value = float(re.search(r'enduro_requests_total\{op="health"\} (\S+)', text)
                      .group(1))  # type: ignore[union-attr]
        assert value > 0
        assert 'enduro_run_info{plan="expo"' in text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


@pytest.mark.slow(5)
def test_json_scrape_feeds_rules(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, directory = demo
    token = (directory / "demo.token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    plan = write_plan(tmp_path, {
        "name": "scrapes", "duration": "4s",
        "services": {"demo": {"url": url, "scrape": {
            "every": "500ms", "headers": auth, "prometheus": f"{url}/metrics",
            "json": {"url": f"{url}/api/v1/stats",
                     "paths": {"queue": "$.queue_depth", "downloads": "$.downloads"}}}}},
        "workloads": {"w": {"http": {"service": "demo", "rate": "20/s", "headers": auth,
                                     "requests": [{"name": "create", "method": "POST",
                                                   "path": "/api/v1/downloads",
                                                   "json": {"url": "https://s/{{seq}}"}}]}}},
        "rules": ["max(scrape{service=demo, metric=queue}) < 1000",
                  "last(scrape{service=demo, metric=downloads}) > 0",
                  "min(scrape{service=demo, metric=scrape_up}) == 1",
                  "max(scrape{service=demo, metric=demo_http_requests_total}) > 10"]})
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    db = sqlite3.connect(only_run(tmp_path / "runs") / "metrics.sqlite")
    n = db.execute("SELECT COUNT(DISTINCT t) FROM scrapes WHERE metric = 'queue'").fetchone()[0]
    assert n >= 5
