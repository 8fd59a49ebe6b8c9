"""The run's page with long runs: the size of report.html and the time to write it, and how
long headless Chromium takes to draw it, for a run of one hour and of a day of one-second
windows (the worst case: a real store rolls windows older than an hour into minutes); and
the live dashboard's first load of the day-long run.

    python benchmarks/report_bench.py --template RUN_DIR [--hours 1 24] [--ops 6] [--rolled]

RUN_DIR is any finished run (its results.json, plan.resolved.yaml and events.jsonl are the
template; scripts/report_screenshot.py --keep DIR makes one). The store is synthetic:
every op has a window every second, with percentiles, a few errors and, now and then, a
window where every request failed; two targets sampled every second; ten scraped series
every two seconds; a fault every ten minutes and a restart every hour.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from enduro.dashboard.access import Listen
from enduro.dashboard.server import Dashboard
from enduro.observe.hist import encode, new_histogram
from enduro.report.html import write_report


def synthetic_run(template: Path, where: Path, hours: float, ops: int,
                  rolled: bool = False) -> Path:
    run_dir = where / f"long-{hours:g}h{'-rolled' if rolled else ''}"
    run_dir.mkdir(parents=True)
    duration = hours * 3600
    results = json.loads((template / "results.json").read_text())
    first = next(iter(results["ops"].values()))
    results["ops"] = {f"op{i}": {**first, "kind": "request", "workload": "w"}
                      for i in range(ops)}
    results["duration_s"] = duration
    (run_dir / "results.json").write_text(json.dumps(results))
    shutil.copy(template / "plan.resolved.yaml", run_dir)
    events = [json.loads(line) for line in (template / "events.jsonl").read_text().splitlines()
              if '"fault_' not in line and '"service_' not in line]
    load = next(e["t"] for e in events if e["event"] == "load_started")
    more = []
    for n, start in enumerate(range(300, int(duration) - 120, 600)):
        more.append({"t": load + start, "event": "fault_start", "id": n, "name": f"f{n}",
                     "fault_kind": "latency", "targets": ["front"]})
        more.append({"t": load + start + 90, "event": "fault_end", "id": n,
                     "fault_kind": "latency", "error": None})
    for start in range(1800, int(duration), 3600):
        more.append({"t": load + start, "event": "service_restart", "service": "demo",
                     "message": "demo restarted"})
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in
                                                  sorted(events + more, key=lambda e: e["t"])))
    db = sqlite3.connect(run_dir / "metrics.sqlite")
    db.executescript("""
        CREATE TABLE windows (t REAL NOT NULL, span REAL NOT NULL, op TEXT NOT NULL,
            phase TEXT, requests INTEGER, errors INTEGER, late INTEGER, dropped INTEGER,
            classes TEXT, p50_ms REAL, p95_ms REAL, p99_ms REAL, max_ms REAL,
            svc_p95_ms REAL, latency_hist TEXT, service_hist TEXT);
        CREATE INDEX windows_t ON windows(t);
        CREATE TABLE samples (t REAL NOT NULL, target TEXT NOT NULL, metric TEXT NOT NULL,
            value REAL);
        CREATE INDEX samples_tm ON samples(target, metric, t);
        CREATE TABLE scrapes (t REAL NOT NULL, service TEXT NOT NULL, metric TEXT NOT NULL,
            labels TEXT, value REAL);
        CREATE INDEX scrapes_sm ON scrapes(service, metric, t);""")
    seconds = int(duration)
    hist = new_histogram()
    for ms in (1, 2, 2, 3, 8, 20):
        hist.record_value(ms * 1000)
    blob = encode(hist)

    # As the store keeps them: windows, samples and scrapes older than an hour rolled up
    # into minutes (rolled), or every second kept (the worst case).
    rolled_until = max(0, seconds - 3600) // 60 * 60 if rolled else 0

    def windows():  # type: ignore[no-untyped-def]
        times = [*range(0, rolled_until, 60), *range(rolled_until, seconds)]
        for t in times:
            span = 60.0 if t < rolled_until else 1.0
            wave = 1 + 0.3 * math.sin(t / 300)
            for i in range(ops):
                failed = t % 997 == i
                errors = 100 if failed else (t * 7 + i) % 3
                yield (t, span, f"op{i}", "load", int(100 * span), errors, 0, 0,
                       json.dumps({"status:503": errors}) if errors else None,
                       2 * wave, 8 * wave, 20 * wave, 0.0 if failed else 40.0, 7.0,
                       None if failed else blob, None)

    db.executemany("INSERT INTO windows VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", windows())
    gauge_times = [*range(0, rolled_until, 60), *range(rolled_until, seconds)]
    db.executemany("INSERT INTO samples VALUES (?,?,?,?)", (
        (t, target, metric, value * (1 + t / seconds))
        for t in gauge_times for target in ("generator", "service:demo")
        for metric, value in (("rss_mb", 80.0), ("cpu_pct", 30.0), ("fds", 40.0),
                              ("threads", 8.0))))
    db.executemany("INSERT INTO scrapes VALUES (?,?,?,?,?)", (
        (t, "demo", f"demo_metric_{k}_bytes" if k % 2 else f"demo_metric_{k}_total", "",
         float(t * (k + 1)))
        for t in gauge_times if t % 2 == 0 for k in range(10)))
    db.commit()
    db.close()
    (run_dir / "state.json").write_text(json.dumps({
        "run_id": run_dir.name, "plan": "long", "state": "completed", "pid": 1,
        "started_at": 1.0, "updated_at": 1.0 + duration, "duration_s": duration, "seed": 1,
        "stop_reason": None, "elapsed_s": duration}))
    return run_dir


def draw_time(url: str, page_ready: str) -> float:
    """Seconds from navigation until the page has drawn its throughput chart."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "chromium",
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_selector(page_ready, timeout=120_000)
        took = time.perf_counter() - start
        browser.close()
    if errors:
        raise SystemExit(f"script errors: {errors}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--hours", type=float, nargs="+", default=[1.0, 24.0])
    parser.add_argument("--ops", type=int, default=6)
    parser.add_argument("--rolled", action="store_true", help="windows older than an hour "
                        "rolled up into minutes, as a real store keeps them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="enduro-report-bench-") as tmp:
        for hours in args.hours:
            run_dir = synthetic_run(args.template, Path(tmp), hours, args.ops, args.rolled)
            start = time.perf_counter()
            report = write_report(run_dir)
            written = time.perf_counter() - start
            drawn = draw_time(report.resolve().as_uri(), "#slot-request-rate canvas")
            board = Dashboard(run_dir, Listen("127.0.0.1", 0))
            board.start()
            try:
                live = draw_time(board.url, "body[data-updated] #slot-request-rate canvas")
            finally:
                board.close()
            print(f"{hours:g} h{' (rolled up)' if args.rolled else ''}, {args.ops} ops: "
                  f"report.html {report.stat().st_size / 1e6:.2f} MB"
                  f", written in {written:.2f} s, drawn in {drawn:.2f} s; live page drawn in "
                  f"{live:.2f} s")


if __name__ == "__main__":
    main()
