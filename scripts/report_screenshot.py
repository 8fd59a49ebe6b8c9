"""Make docs/report.png: a 40-second run of the demo service (managed by enduro, its /metrics
scraped) through a proxy, with a latency fault, a kill and a flow, and a screenshot of its
report.html in headless Chromium (the OS package, driven by Playwright).

    python scripts/report_screenshot.py [--out docs/report.png] [--keep DIR]

Everything listens on 127.0.0.1. Takes about a minute.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plan(demo: int, front: int) -> dict[str, object]:
    auth = {"Authorization": "Bearer ${token:demo}"}
    return {
        "name": "shop-soak", "duration": "40s", "seed": 7, "grace": "2s",
        "observe": {"sample": "1s", "heartbeat": "10s"},
        "services": {"demo": {
            "command": "{{ python }} -m enduro.demo.server --port {{ port }} "
                       "--token-file data/api.token",
            "url": f"http://127.0.0.1:{demo}", "ports": [demo],
            "ready": {"http": f"http://127.0.0.1:{demo}/ready", "timeout": "20s"},
            "token_file": "data/api.token", "restart": "always",
            "scrape": {"prometheus": f"http://127.0.0.1:{demo}/metrics", "every": "2s"}}},
        "proxies": {"front": {"listen": f"127.0.0.1:{front}",
                              "upstream": f"127.0.0.1:{demo}"}},
        "workloads": {
            "browse": {"http": {"base": f"http://127.0.0.1:{front}", "rate": "150/s",
                                "timeout": "3s", "headers": auth, "requests": [
                {"name": "list", "path": "/api/v1/downloads", "query": {"limit": 20},
                 "weight": 3, "expect": {"status": 200}},
                {"name": "health", "path": "/health"},
                {"name": "missing", "path": "/api/v1/downloads/nope", "weight": 0.2,
                 "expect": {"status": 200}}]}},
            "writers": {"flow": {"service": "demo", "connections": 3, "think": "100ms",
                                 "timeout": "2s", "headers": auth, "steps": [
                {"name": "create", "request": {
                    "method": "POST", "path": "/api/v1/downloads",
                    "json": {"url": "https://files.example/{{vu}}-{{seq}}.bin"}},
                 "expect": {"status": 201}}]}}},
        "faults": [{"at": "10s", "for": "8s", "latency": {"proxy": "front", "add": "120ms"}},
                   {"at": "26s", "kill": "demo"}],
        "rules": ["availability{workload=browse} >= 99%", "p95(latency{op=list}) < 100ms",
                  "max(recover_s) < 10s", "error_rate{op=list} < 5% over 5s"],
    }


def screenshot(report: Path, out: Path, height: int) -> None:
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "chromium",
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": height})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(report.resolve().as_uri())
        page.wait_for_selector("#slot-request-rate canvas")
        page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": 1280, "height": height},
                        full_page=True)
        browser.close()
    if errors:
        raise SystemExit(f"the page had script errors: {errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    parser.add_argument("--height", type=int, default=2300, help="pixels of the page shown")
    parser.add_argument("--keep", type=Path, help="keep the run directory under DIR")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="enduro-shot-") as tmp:
        where = Path(tmp)
        plan_file = where / "shop-soak.yaml"
        plan_file.write_text(yaml.safe_dump(plan(free_port(), free_port()), sort_keys=False))
        runs = args.keep or where / "runs"
        done = subprocess.run([sys.executable, "-m", "enduro", "run", str(plan_file), "--out",
                               str(runs), "--no-live"], capture_output=True, text=True,
                              timeout=300, cwd=where)
        run_dir = Path(done.stdout.strip().splitlines()[-1].split(": ", 1)[1])
        report = run_dir / "report.html"
        if not report.exists():
            raise SystemExit(f"no report.html (exit {done.returncode}):\n{done.stderr}")
        screenshot(report, args.out, args.height)
        print(f"{args.out} from {report} ({report.stat().st_size / 1e3:.0f} kB, "
              f"exit {done.returncode})")


if __name__ == "__main__":
    main()
