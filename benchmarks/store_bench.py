"""Size of ``metrics.sqlite`` over a long run, measured by driving the real Store through
simulated hours: 1 s windows with realistic latency histograms per op, resource samples of
the generator and each service every 2 s (8 figures each), roll-up as a run does it.

    python benchmarks/store_bench.py [--hours 24] [--ops 1] [--processes 2] [--rps 200]

Prints the file size (database plus WAL) at each hour and the growth per hour after the
first, which is what the README quotes.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from enduro.observe.hist import new_histogram
from enduro.observe.store import Store
from enduro.observe.window import WindowStats


def size_mb(path: Path) -> float:
    files = [path, path.with_name(path.name + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--ops", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2, help="sampled processes")
    parser.add_argument("--rps", type=int, default=200, help="requests per op per second")
    args = parser.parse_args()
    rng = random.Random(1)
    path = Path(tempfile.mkdtemp()) / "metrics.sqlite"
    store = Store(path)
    # A pool of realistic window histograms (log-normal latencies around 5 ms), reused so
    # that the benchmark measures the store rather than the histogram library.
    pool = []
    for _ in range(64):
        h = new_histogram()
        for _ in range(args.rps):
            h.record_value(max(1, int(rng.lognormvariate(8.5, 0.6))))
        pool.append(h)
    ops = [f"op{i}" for i in range(args.ops)]
    seconds = int(args.hours * 3600)
    started = time.perf_counter()
    print(f"{args.ops} op(s) at {args.rps}/s, {args.processes} sampled process(es), "
          f"1 s windows, 2 s samples")
    print(f"{'hour':>5} {'size MB':>9}")
    hourly = []
    for t in range(seconds):
        windows = []
        for op in ops:
            w = WindowStats(op, t, requests=args.rps)
            w.latency = pool[rng.randrange(len(pool))]
            w.service = pool[rng.randrange(len(pool))]
            windows.append(w)
        with store.db:
            store.add_windows(float(t), 1.0, windows, phase="baseline")
            if t % 2 == 0:
                for p in range(args.processes):
                    store.add_samples(float(t), f"proc{p}", {
                        "rss_mb": 60 + rng.random(), "uss_mb": 50 + rng.random(),
                        "fds": 40.0, "threads": 8.0, "connections": 50.0,
                        "cpu_s": t * 0.3, "processes": 1.0, "cpu_pct": 30 + rng.random()})
        store.roll_up(float(t))
        if (t + 1) % 3600 == 0:
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            hourly.append(size_mb(path))
            print(f"{len(hourly):>5} {hourly[-1]:>9.1f}", flush=True)
    store.close()
    if len(hourly) >= 2:
        per_hour = (hourly[-1] - hourly[0]) / (len(hourly) - 1)
        print(f"first hour {hourly[0]:.1f} MB, then {per_hour:.2f} MB per hour "
              f"({hourly[-1]:.1f} MB after {len(hourly)} h; "
              f"{time.perf_counter() - started:.0f} s to simulate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
