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
