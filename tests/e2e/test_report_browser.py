"""report.html in a real browser: headless Chromium from the OS packages renders every chart
without a script error, and the screenshot is not blank."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers.plans import write_plan

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=5000"]


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing; scripts/test.sh installs it")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return binary


@pytest.mark.slow(11)
def test_report_renders_in_headless_chromium(tmp_path: Path, demo: tuple[str, Path]) -> None:
    browser = chromium()
    url, _ = demo
    plan = write_plan(tmp_path, {
        "name": "browser", "duration": "4s", "observe": {"sample": "500ms"},
        "workloads": {"w": {"http": {"base": url, "rate": "100/s", "requests": [
            {"name": "health", "path": "/health"}, {"name": "nope", "path": "/nope",
                                                  "weight": 0.2}]}}},
        "rules": ["availability >= 99%"]})
    run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    (run_dir,) = (tmp_path / "runs").iterdir()
    page = (run_dir / "report.html").resolve().as_uri()
    profile = tmp_path / "chromium-profile"
    dom = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page],
                         capture_output=True, text=True, timeout=120).stdout
    html_tag = re.search(r"<html[^>]*>", dom)
    assert html_tag is not None and "data-js-error" not in html_tag.group(0), html_tag
    charts = dom.count('class="main-svg"')
    assert charts >= 2 * 5  # plotly draws two svg layers per chart; five charts at least
    assert dom.count("scatterlayer") >= 5 and 'class="js-line"' in dom
    shot = tmp_path / "report.png"
    subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--window-size=1200,1800",
                    f"--screenshot={shot}", page], capture_output=True, timeout=120)
    from PIL import Image
    image = Image.open(shot).convert("RGB")
    colors = image.getcolors(maxcolors=1_000_000)
    assert colors is not None and len(colors) > 200  # charts, not a blank page
    # The verdict badge (red for fail) is drawn near the top.
    top = image.crop((0, 0, 600, 60)).getcolors(maxcolors=100_000) or []
    assert any(r > 180 and g < 100 and b < 100 for _, (r, g, b) in top)
