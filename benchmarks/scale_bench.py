"""How enduro's throughput scales with ``--workers``: local processes, and Ray actors.

For 1, 2, 4 ... workers (up to ``--max-workers``), a closed-model run of ``--duration`` with
``--connections`` per worker against one nginx; prints each run's req/s, its req/s per worker,
and that as a ratio to one worker's (1.00: each worker added drives as much as the first).
The machine's core count comes first: past it, workers share cores with each other and with
nginx, and the ratio falls for that reason alone.

By default everything runs in network, PID and mount namespaces of their own
(``tests/helpers/ray_cluster.py``: a two-node Ray cluster on this machine and nginx, on
loopback only), and the Ray runs use that cluster (``--cluster`` with the address). Needs root
(unshare) and nginx, and ``pip install -e '.[ray]'``.

    python benchmarks/scale_bench.py                       # 1, 2, 4 workers, 5 s each
    python benchmarks/scale_bench.py --max-workers 16 --duration 10s
    python benchmarks/scale_bench.py --cluster HOST:6379 --url http://TARGET:8080
                                    # an existing cluster against your own server (its
                                    # nodes must reach the URL; only Ray runs then)

The local and Ray figures share the machine, nginx and the plan, so they compare within one
run; a machine shared with other work moves them all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.procs import REPO, free_port, wait_for

HELPER = REPO / "tests" / "helpers" / "ray_cluster.py"
CLUSTER_CPUS = 8  # the helper's two nodes, four CPUs each: at most 8 Ray workers


@dataclass
class Place:
    """Where runs go: a command prefix (into the namespace, or none), the cluster, the URL."""

    prefix: list[str]
    address: str
    url: str


def _counts(most: int) -> list[int]:
    counts, n = [], 1
    while n <= most:
        counts.append(n)
        n *= 2
    return counts


def _namespace(workdir: Path) -> tuple[subprocess.Popen[str], Place]:
    ports = [free_port() for _ in range(7)]
    # A HOME of its own: Ray writes an auth token under ~/.ray, and one left by another
    # cluster makes this one's second node refuse to join.
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", sys.executable, str(HELPER),
         str(workdir), *map(str, ports)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=(workdir / "helper.err").open("w"), text=True,
        env={**os.environ, "HOME": str(home)})
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    init_pid = int(wait_for(lambda: children.read_text().split(), 10, "the namespace")[0])
    guard = threading.Timer(180, proc.kill)
    guard.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
    finally:
        guard.cancel()
    if not line:
        sys.exit(f"the cluster did not start: {(workdir / 'helper.err').read_text()[-2000:]}")
    ready = json.loads(line)
    prefix = ["nsenter", "-t", str(init_pid), "-n", "-p", "-m", "--", "env", f"HOME={home}"]
    return proc, Place(prefix, ready["address"], ready["url"])


def _run(place: Place, workdir: Path, workers: int, *, ray: bool, duration: str,
         connections: int) -> float:
    """One run's req/s."""
    name = f"{'ray' if ray else 'local'}-{workers}"
    plan = workdir / f"{name}.yaml"
    plan.write_text(yaml.safe_dump({
        "name": name, "duration": duration, "grace": "1s",
        "workloads": {"w": {"http": {"base": place.url, "connections": connections * workers,
                                     "requests": [{"name": "root", "path": "/"}]}}}}))
    out = workdir / "runs" / name
    cmd = [*place.prefix, sys.executable, "-m", "enduro", "run", str(plan), "--no-live",
           "--out", str(out), "--workers", str(workers)]
    if ray:
        cmd += ["--cluster", place.address]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode not in (0, 1):
        sys.exit(f"{name}: exit {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    (run_dir,) = list(out.iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    return float(results["total"]["requests"]) / max(float(results["duration_s"]), 1e-9)


def _table(mode: str, rates: dict[int, float]) -> None:
    first = rates[min(rates)]
    for workers, rate in rates.items():
        per = rate / workers
        print(f"{mode:6} {workers:7d} {rate:10.0f} {per:11.0f} {per / first:8.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-workers", type=int, default=4)
    parser.add_argument("--duration", default="5s")
    parser.add_argument("--connections", type=int, default=16, help="per worker")
    parser.add_argument("--cluster", help="an existing Ray cluster (then only Ray runs)")
    parser.add_argument("--url", help="the server to load, with --cluster")
    parser.add_argument("--no-ray", action="store_true", help="local workers only")
    args = parser.parse_args()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(f"cores: {os.cpu_count()} (this process may use {affinity})", flush=True)
    counts = _counts(args.max_workers)
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        workdir = Path(tmp)
        helper = None
        if args.cluster:
            if not args.url:
                sys.exit("--cluster needs --url, the server the nodes load")
            place = Place([], args.cluster, args.url)
        else:
            helper, place = _namespace(workdir)
        try:
            print(f"{'mode':6} {'workers':>7} {'req/s':>10} {'per worker':>11} {'ratio':>8}")
            if not args.cluster:
                _table("local", {n: _run(place, workdir, n, ray=False, duration=args.duration,
                                         connections=args.connections) for n in counts})
            if not args.no_ray:
                ray_counts = counts if args.cluster else [n for n in counts
                                                           if n <= CLUSTER_CPUS]
                _table("ray", {n: _run(place, workdir, n, ray=True, duration=args.duration,
                                       connections=args.connections) for n in ray_counts})
        finally:
            if helper is not None:
                assert helper.stdin is not None
                helper.stdin.close()  # the namespace ends, and the cluster with it
                helper.wait(60)


if __name__ == "__main__":
    main()
