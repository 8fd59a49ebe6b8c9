"""The run's page in a real browser (headless Chromium from the OS packages): live during a run
started with ``--dashboard``, and as report.html at its end. Every server is on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.helpers.browser import browser_page
from tests.helpers.plans import write_plan
from tests.helpers.procs import free_port, stop, wait_for


def fault_plan(tmp_path: Path, upstream: str, duration: str) -> Path:
    """Requests through a proxy that adds latency from 1.5 s for 2 s, and one op that fails."""
    front = free_port()
    return write_plan(tmp_path, {
        "name": "browser", "duration": duration, "seed": 1, "observe": {"sample": "500ms"},
        "proxies": {"front": {"listen": f"127.0.0.1:{front}",
                              "upstream": upstream.split("//")[1]}},
        "faults": [{"at": "1500ms", "for": "2s", "latency": {"proxy": "front", "add": "30ms"}}],
        "workloads": {"w": {"http": {"base": f"http://127.0.0.1:{front}", "rate": "80/s",
                                     "requests": [
            {"name": "health", "path": "/health"},
            {"name": "nope", "path": "/nope", "weight": 0.2, "expect": {"status": 200}}]}}},
        "rules": ["availability >= 99%", "p95(latency{op=health}) < 2s"]})


def first_figure(page: Any) -> str:
    return str(page.inner_text("#cards .card b"))


@pytest.mark.slow(22)
def test_the_live_page_follows_a_run_started_with_dashboard(tmp_path: Path,
                                                            demo: tuple[str, Path]) -> None:
    url, _ = demo
    plan = fault_plan(tmp_path, url, "9s")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    proc = subprocess.Popen([sys.executable, "-m", "enduro", "run", "--dashboard",
                             f"127.0.0.1:{port}", str(plan), "--out", str(tmp_path / "runs"),
                             "--no-live"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stderr is not None
        said = [proc.stderr.readline() for _ in range(2)]
        line = next((s for s in said if s.startswith("dashboard: ")), "")
        assert line.strip() == f"dashboard: http://127.0.0.1:{port}/", said
        with browser_page() as seen:
            page = seen.page
            page.goto(line.split(": ", 1)[1].strip())
            page.wait_for_function("() => document.querySelector('#cards .card b') && "
                                   "document.querySelector('#cards .card b').textContent "
                                   "!== '0'", timeout=15_000)
            before = first_figure(page)
            page.wait_for_function(f"() => document.querySelector('#cards .card b')"
                                   f".textContent !== {before!r}", timeout=10_000)
            assert first_figure(page) != before  # the figures move while the run runs
            assert "live" in page.inner_text("#mode")
            band = page.wait_for_selector(".fault-band .band-label", timeout=15_000)
            assert band is not None and band.inner_text() == "latency \u00b7 front"
            assert page.locator("#slot-request-latency canvas").count() == 1
            # The rules' live status: /nope fails availability from the first seconds on.
            page.wait_for_function("() => /first failed at t=/.test(document.querySelector("
                                   "'#rules').innerText)", timeout=10_000)
            rules = page.inner_text("#rules")
            assert "\u2717 fail" in rules and "\u2713 pass" in rules, rules
            assert "Live" in rules and "rule first failed" in page.inner_text("#legend")
            assert seen.errors == []
        assert proc.wait(60) == 1  # /nope fails its expectation: the rule fails
    finally:
        stop(proc)


@pytest.mark.slow(16)
def test_report_html_tells_the_story_of_the_run(tmp_path: Path,
                                                demo: tuple[str, Path]) -> None:
    url, _ = demo
    plan = fault_plan(tmp_path, url, "5s")
    done = run_cli("run", str(plan), "--out", str(tmp_path / "runs"), "--no-live")
    assert done.returncode == 1, done.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    report = run_dir / "report.html"
    text = report.read_text()
    assert "<script src" not in text and "<link" not in text  # self-contained, offline
    shot = tmp_path / "report.png"
    with browser_page(1300, 1000) as seen:
        page = seen.page
        page.goto(report.resolve().as_uri())
        page.wait_for_selector("#slot-request-rate canvas")
        assert page.get_attribute("html", "data-js-error") is None and seen.errors == []
        assert page.inner_text("#verdict") == "FAIL"
        labels = page.locator(".fault-band .band-label").all_inner_texts()
        assert labels and set(labels) == {"latency \u00b7 front"}
        # every time chart carries the band: throughput, errors, latency, resources
        assert len(labels) >= 4
        rules = page.inner_text("#rules")
        assert "availability >= 99%" in rules and "fail" in rules
        assert "first failed at t=" in rules
        assert page.locator(".marker.rule").count() >= 4  # on every time chart
        # /nope failed every time: its latency is a gap, and its errors are drawn by class
        assert page.locator("#slot-request-errors canvas").count() == 1
        legend = page.inner_text("#slot-request-errors")
        assert "4xx" in legend, legend
        # numbers for people: "12.3 ms", never "12.345678 ms"
        ops = page.inner_text("#ops")
        assert not re.search(r"\d\.\d{3,} ?ms", ops), ops
        page.screenshot(path=str(shot), full_page=True)
    from PIL import Image
    image = Image.open(shot).convert("RGB")
    colors = image.getcolors(maxcolors=1_000_000)
    assert colors is not None and len(colors) > 300  # charts, not a blank page
    # the verdict badge (red for fail) is drawn near the top
    top = image.crop((0, 0, 700, 60)).getcolors(maxcolors=100_000) or []
    assert any(r > 180 and g < 100 and b < 100 for _, (r, g, b) in top)


@pytest.mark.slow(12)
def test_a_busy_dashboard_port_is_said_and_the_next_one_taken(tmp_path: Path,
                                                              demo: tuple[str, Path]) -> None:
    url, _ = demo
    plan = fault_plan(tmp_path, url, "30s")
    runs = tmp_path / "runs"
    busy = socket.socket()
    port = free_port()
    busy.bind(("127.0.0.1", port))
    busy.listen(1)
    try:
        started = run_cli("start", str(plan), "--out", str(runs), "--dashboard",
                          f"127.0.0.1:{port}")
        assert started.returncode == 0, started.stderr
        assert "Traceback" not in started.stdout + started.stderr
        assert f"127.0.0.1:{port} is in use" in started.stdout, started.stdout
        (line,) = [s for s in started.stdout.splitlines() if s.startswith("dashboard: ")]
        other = line.split(": ", 1)[1].strip()
        assert other != f"http://127.0.0.1:{port}/"

        def state() -> str:
            with urllib.request.urlopen(other + "api/run", timeout=5) as answer:
                return str(json.loads(answer.read())["state"])

        assert wait_for(lambda: state() == "running", 20, "the detached run's dashboard")
        assert run_cli("stop", "--runs", str(runs), "--grace", "5s").returncode == 0
        # the dashboard outlives the run a little, to show how it ended
        assert state() in ("stopped", "completed", "interrupted"), state()
    finally:
        busy.close()
        run_cli("stop", "--runs", str(runs), "--grace", "5s")


def _windows(op: str, index: int, requests: int) -> Any:
    from array import array

    from enduro.observe.hist import fold
    from enduro.observe.window import WindowStats
    return WindowStats(op, index, requests, 0, 0, 0, {},
                       fold(array("q", [2000] * requests)), fold(array("q", [2000])))


def paused_run_dir(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A dead run's directory as its runner left it: a workload kept clear of faults that
    paused from load second 3 to 5, a flow with an sse step, a scraped table in state.json."""
    import yaml

    from enduro.observe.store import Store
    run_dir = tmp_path / "runs" / "paused-20261122T000000Z"
    run_dir.mkdir(parents=True)
    base = "http://127.0.0.1:9"
    http = {"base": base, "rate": "5/s", "requests": [{"name": "ping", "path": "/"}]}
    (run_dir / "plan.resolved.yaml").write_text(yaml.safe_dump({
        "name": "paused", "duration": "10s", "seed": 1, "workloads": {
            "avoider": {"not_during": ["faults"], "http": http},
            "other": {"http": {**http, "requests": [{"name": "other", "path": "/"}]}},
            "life": {"flow": {"base": base, "connections": 1, "steps": [
                {"name": "make", "request": {"path": "/"}},
                {"name": "follow", "sse": {"path": "/events", "for": "1s"}}]}}}}))
    table = {"at_s": 9.5, "fields": ["messages", "leader"], "truncated": 1,
             "rows": {"ORDERS": {"messages": 1234.0, "leader": "n1"},
                      "AUDIT": {"messages": 7.0, "leader": None}}}
    (run_dir / "state.json").write_text(json.dumps({
        "run_id": run_dir.name, "plan": "paused", "state": "running", "pid": 2**22 + 7,
        "started_at": 1.0, "updated_at": 11.0, "duration_s": 10.0, "elapsed_s": 10.0,
        "seed": 1, "tables": {"nats": {"streams": table}}}))
    events = [{"t": 1.0, "wall": 1.0, "event": "load_started", "workers": 1},
              {"t": 4.0, "wall": 4.0, "event": "in_force", "reason": "faults", "on": True},
              {"t": 6.0, "wall": 6.0, "event": "in_force", "reason": "faults", "on": False}]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    store = Store(run_dir / "metrics.sqlite")
    for i in range(10):
        ops = ["other", "life", "life.make", "life.follow", "life.follow:event"]
        store.add_windows(float(i), 1.0, [_windows(op, i, 5) for op in
                                          (ops if 3 <= i < 5 else ["ping", *ops])])
    store.close()
    return run_dir, {"nats": {"streams": table}}


@pytest.mark.slow(10)
def test_the_page_shows_pauses_scraped_tables_and_flow_sse_delivery(tmp_path: Path) -> None:
    from enduro.dashboard.access import Listen
    from enduro.dashboard.server import Dashboard
    run_dir, tables = paused_run_dir(tmp_path)
    board = Dashboard(run_dir, Listen("127.0.0.1", free_port()), None)
    board.start()
    try:
        base = board.listen.url(board.port)
        with urllib.request.urlopen(base + "api/run", timeout=10) as answer:
            run = json.load(answer)
        assert run["tables"] == tables  # as state.json holds them while there are no results
        assert run["pausing"] == {"ping": {"workload": "avoider", "reasons": ["faults"]}}
        assert run["kinds"]["life.follow:event"] == "event"
        with browser_page() as seen:
            page = seen.page
            page.goto(base)
            page.wait_for_selector("#slot-request-rate canvas", timeout=15_000)
            page.wait_for_selector("#tables table", timeout=10_000)
            # The pause, on the charts of the requests (the avoider's op among them) only.
            labels = page.locator("#sec-request .pause-band .band-label").all_inner_texts()
            assert labels and set(labels) == {"paused: fault"} and len(labels) >= 2
            assert page.locator("#sec-event .pause-band, #sec-iteration .pause-band") \
                .count() == 0
            assert "paused: fault" in page.inner_text("#legend")
            pauses = page.inner_text("#pauses")
            assert "avoider" in pauses and "faults" in pauses and "\u00d71" in pauses, pauses
            assert "other" not in pauses
            # A flow's sse step: its events are charted as SSE delivery, not as requests.
            assert page.locator("#sec-event canvas").count() >= 1
            assert "life.follow:event" in page.inner_text("#sec-event")
            options = page.locator("#op-picker option").all_inner_texts()
            assert "life.follow:event" not in options and "life.follow" in options
            shown = page.inner_text("#tables")
            assert "nats \u00b7 streams" in shown and "1 more entry left out" in shown
            rows = page.locator("#tables tbody tr").all_inner_texts()
            assert [r.split("\t")[:3] for r in rows] == [["AUDIT", "7", "-"],
                                                         ["ORDERS", "1,234", "n1"]], rows
            assert page.get_attribute("html", "data-js-error") is None and seen.errors == []
    finally:
        board.close()


@pytest.mark.slow(20)
def test_report_html_shows_pauses_tables_and_when_rules_first_failed(
        tmp_path: Path, demo: tuple[str, Path]) -> None:
    """A real run: a workload kept clear of a proxy fault, a flow with an sse step, a scraped
    table of a service, and a rule that fails; report.html, the summary and junit.xml."""
    from xml.etree import ElementTree

    from tests.helpers.report import embedded
    url, directory = demo
    token = (directory / "demo.token").read_text().strip()
    www, front, port = tmp_path / "www", free_port(), free_port()
    www.mkdir()
    (www / "queues.json").write_text(json.dumps({"queues": [
        {"name": "jobs", "depth": 12, "state": "ok"}, {"name": "mail", "depth": 0.5},
        {"name": "zzz", "depth": 1}]}))
    avoider = {"base": f"http://127.0.0.1:{front}", "rate": "20/s", "timeout": "1s",
               "requests": [{"name": "ping", "path": "/health"}]}
    plan = write_plan(tmp_path, {
        "name": "story", "duration": "4s", "seed": 1, "grace": "1s",
        "proxies": {"front": {"listen": f"127.0.0.1:{front}",
                              "upstream": url.split("//")[1]}},
        "services": {"www": {
            "command": [sys.executable, "-m", "http.server", str(port), "--bind",
                        "127.0.0.1", "--directory", str(www)],
            "ports": [port],
            "ready": {"http": f"http://127.0.0.1:{port}/queues.json", "timeout": "20s"},
            "scrape": {"every": "500ms", "json": {
                "url": f"http://127.0.0.1:{port}/queues.json",
                "tables": {"queues": {"rows": "$.queues[*]", "max_rows": 2,
                                      "fields": {"depth": "$.depth", "state": "$.state"}}}}}}},
        "faults": [{"at": "1s", "for": "1500ms", "down": {"proxy": "front"}}],
        "workloads": {
            "avoider": {"not_during": ["faults"], "http": avoider},
            "w": {"http": {"base": url, "rate": "10/s", "requests": [
                {"name": "nope", "path": "/nope", "expect": {"status": 200}}]}},
            "life": {"flow": {
                "base": url, "connections": 1, "headers": {"Authorization": f"Bearer {token}"},
                "steps": [
                    {"name": "create", "request": {"method": "POST", "path": "/api/v1/downloads",
                                                   "json": {"url": "https://x/{{seq}}"}},
                     "expect": {"status": 201}, "capture": {"id": "$.id"}},
                    {"name": "follow", "sse": {
                        "path": "/api/v1/events", "query": {"download": "{{id}}"}, "for": "5s",
                        "until": '$.state == "completed"', "ts_path": "$.ts"}}]}}},
        "rules": ["availability{op=nope} >= 99%"]})
    done = run_cli("run", str(plan), "--out", str(tmp_path / "runs"), "--no-live")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "first failed at t=" in done.stdout, done.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    failure = ElementTree.parse(run_dir / "junit.xml").getroot().find(".//failure")
    assert failure is not None and "first failed at t=" in (failure.text or "")
    data = embedded(run_dir / "report.html")
    run = data["run"]
    assert run["tables"]["www"]["queues"]["truncated"] == 1
    assert run["results"]["paused"]["avoider"]["pauses"] == 1
    assert run["kinds"]["life.follow:event"] == "event"
    with browser_page() as seen:
        page = seen.page
        page.goto((run_dir / "report.html").resolve().as_uri())
        page.wait_for_selector("#slot-request-rate canvas")
        assert page.get_attribute("html", "data-js-error") is None and seen.errors == []
        labels = page.locator("#sec-request .pause-band .band-label").all_inner_texts()
        assert labels and set(labels) == {"paused: fault"}, labels
        pauses = page.inner_text("#pauses")
        assert "avoider" in pauses and "paused: fault \u00d71" in pauses, pauses
        shown = page.inner_text("#tables")
        assert "www \u00b7 queues" in shown and "1 more entry left out" in shown, shown
        assert page.locator("#tables tbody tr").count() == 2
        assert "life.follow:event" in page.inner_text("#sec-event")
        assert "first failed at t=" in page.inner_text("#rules")
