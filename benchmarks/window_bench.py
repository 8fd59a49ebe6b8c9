"""What sealing a window costs the engine's event loop, for 1, 16 and 50 active ops.

Drives the real path of a run through simulated windows: the recorder's rotation, the
metrics' merge and seal (with a phase labeller that reads each window's p99, as a run's does),
the window store (``metrics.sqlite``), the live figures; and for ``--workers`` the worker's
encoding and the runner's decoding. Each op records ``--per-op`` latencies per window.

    python benchmarks/window_bench.py                 # this tree
    python benchmarks/window_bench.py --src /tmp/old/src   # another tree (before/after)

Prints, per op count, the loop's time per seal (median and worst of ``--windows``; wall and
the loop thread's CPU; the writer thread has finished the previous window, as it has in a run
with 1 s windows), the CPU spent per seal on other threads (work handed off the loop),
the worker-process path, and apart from the seal the cost of the live figures: the last 10 s
p95 over every request that state.json carries every 2 s ("live"), and each op's last 10 s
p50/p95/p99 that the live view and the Prometheus exposition read ("per op").
``--repeat N`` runs it all N times and prints each figure's median over the runs with its
range (a shared machine's noise). Run it on an idle machine: the figures are wall-clock times
of one thread.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", default="1,16,50", help="op counts, comma-separated")
    parser.add_argument("--per-op", type=int, default=1000, help="latencies per op per window")
    parser.add_argument("--windows", type=int, default=15)
    parser.add_argument("--idle", type=int, default=0, help="idle ops beside the active ones")
    parser.add_argument("--src", default=None, help="the enduro source tree to measure")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the spread is printed")
    return parser.parse_args()


ARGS = _args()
sys.path.insert(0, ARGS.src or str(Path(__file__).resolve().parents[1] / "src"))

from enduro.observe.hist import percentiles_ms  # noqa: E402
from enduro.observe.metrics import Metrics, MetricView  # noqa: E402
from enduro.observe.store import Store  # noqa: E402
from enduro.observe.window import Recorder, WindowStats  # noqa: E402

LIVE: list[float] = []  # ms of the live figures (last 10 s p95) per measurement
PER_OP: list[float] = []  # ms of every op's last 10 s percentiles per measurement


def phase_of(window_s: float) -> Any:
    """What the run's phase labeller reads of each sealed window (faults/session.py)."""
    def label(index: int, windows: list[WindowStats]) -> str:
        busy = [w for w in windows if w.requests]
        if len(busy) == 1:
            busy[0].latency.get_value_at_percentile(99.0)
        elif busy:
            view = MetricView(window_s)
            for w in busy:
                view.add(w)
            percentiles_ms(view.latency)
        return "steady"
    return label


def fill(recorder: Recorder, ops: list[str], samples: list[array[int]], n: int) -> None:
    for i, op in enumerate(ops):
        c = recorder.counter(op)
        c.lat.extend(samples[(n + i) % len(samples)])
        c.svc.extend(samples[(n + i + 1) % len(samples)])
        c.requests += len(samples[0])
        if i % 7 == 0:
            c.error("5xx")


def flush(metrics: Metrics) -> None:
    done = getattr(metrics, "flush", None)
    if done is not None:
        done()


async def measure(n_ops: int, workers: bool, samples: list[array[int]],
                  work: Path) -> tuple[list[float], list[float], list[float], float, int]:
    """Loop ms per seal (the engine's loop: in-process, or a worker's), the runner's loop ms
    per seal with workers, the engine loop's CPU ms per seal, other threads' CPU ms per seal,
    windows stored."""
    ops = [f"op{i}" for i in range(n_ops)]
    idle = [f"idle{i}" for i in range(ARGS.idle)]
    store = Store(work / f"metrics-{n_ops}-{workers}.sqlite")
    window = 1.0

    def on_window(index: int, windows: list[WindowStats], phase: str | None) -> None:
        store.add_windows(index * window, window, windows, phase)

    metrics = Metrics(window_s=window, on_window=on_window)
    metrics.phase_of = phase_of(window)
    recorder = Recorder(ops + idle)
    loop_ms: list[float] = []
    runner_ms: list[float] = []
    loop_cpu: list[float] = []
    live_ms: list[float] = []
    per_op_ms: list[float] = []
    cpu0, main0 = time.process_time(), time.thread_time()
    for n in range(ARGS.windows):
        fill(recorder, ops, samples, n)
        # As in a run with 1 s windows, the writer thread has finished the last window when
        # the next is sealed: the figures are the seal's own, not the GIL shared with it
        # (that thread's work is the "other threads" column).
        flush(metrics)
        c0 = time.thread_time()
        t0 = time.perf_counter()
        sealed = recorder.rotate(n + 1)
        if workers:
            wire = [w.to_wire() for w in sealed]
            t1 = time.perf_counter()
            loop_ms.append((t1 - t0) * 1000)  # the worker's loop
            loop_cpu.append((time.thread_time() - c0) * 1000)
            t0 = t1
            sealed = [WindowStats.from_wire(w) for w in wire]
        metrics.add(sealed)
        metrics.seal(n)
        (runner_ms if workers else loop_ms).append((time.perf_counter() - t0) * 1000)
        if not workers:
            loop_cpu.append((time.thread_time() - c0) * 1000)
        if n % 2 == 1:  # the live figures of state.json (every 2 s): not part of the seal
            # Read on their own timers, mostly after the writer has finished the window (a
            # read right after a seal folds that window's buffers itself, in one pass).
            flush(metrics)
            t2 = time.perf_counter()
            percentiles_ms(metrics.view(last_s=10).latency)
            t3 = time.perf_counter()
            live_ms.append((t3 - t2) * 1000)
            for op in ops:  # the live view's and the exposition's figures
                percentiles_ms(metrics.view({op}, last_s=10).latency)
            per_op_ms.append((time.perf_counter() - t3) * 1000)
        await asyncio.sleep(0.05)
    flush(metrics)
    cpu = time.process_time() - cpu0
    main = time.thread_time() - main0
    stored = store.db.execute("SELECT COUNT(*) FROM windows").fetchone()[0]
    LIVE.append(statistics.median(live_ms))
    PER_OP.append(statistics.median(per_op_ms))
    store.close()
    return loop_ms, runner_ms, loop_cpu, max(0.0, cpu - main) * 1000 / ARGS.windows, stored


def spread(values: list[float]) -> str:
    """The median of ``values``, and their range when there are several."""
    mid = f"{statistics.median(values):.2f}"
    return mid if len(values) < 2 else f"{mid} [{min(values):.2f}-{max(values):.2f}]"


async def main() -> int:
    rng = random.Random(1)
    samples = [array("q", (int(rng.lognormvariate(7.5, 0.8)) + 50 for _ in range(ARGS.per_op)))
               for _ in range(8)]
    work = Path(tempfile.mkdtemp(prefix="enduro-window-bench-"))
    print(f"source: {sys.modules['enduro.observe.window'].__file__}")
    print(f"{ARGS.per_op} latencies per op per window, {ARGS.idle} idle ops, "
          f"{ARGS.windows} windows, {ARGS.repeat} run(s)\n")
    columns = ("ms/seal p50", "worst", "CPU ms p50", "other threads CPU ms/seal", "rows",
               "live ms", "per op ms")
    table: dict[tuple[str, int], list[list[float]]] = {}
    for _ in range(ARGS.repeat):
        for workers in (False, True):
            for n_ops in (int(x) for x in ARGS.ops.split(",")):
                loop_ms, runner_ms, cpu, other, stored = await measure(n_ops, workers, samples,
                                                                       work)
                rows = [("engine (in-process)", loop_ms)] if not workers else [
                    ("--workers: worker", loop_ms), ("--workers: runner", runner_ms)]
                for name, times in rows:
                    own = statistics.median(cpu) if name != "--workers: runner" else -1.0
                    figures = [statistics.median(times), max(times), own, other,
                               float(stored), LIVE[-1], PER_OP[-1]]
                    for k, v in enumerate(figures):
                        table.setdefault((name, n_ops), [[] for _ in columns])[k].append(v)
    print(f"{'loop':<22}{'ops':>5}" + "".join(f"  {c}" for c in columns))
    for (name, n_ops), cols in table.items():
        cells = []
        for c, values in zip(columns, cols, strict=True):
            text = "" if values[0] < 0 else (f"{int(values[0])}" if c == "rows"
                                               else spread(values))
            cells.append(f"  {text:>{len(c)}}")
        print(f"{name:<22}{n_ops:>5}" + "".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
