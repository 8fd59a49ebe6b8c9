"""What judging the rules' live status costs the engine's event loop (``rule_status`` events:
``RuleBook.status_changes``, called by the runner every 2 s at most), for 1, 16 and 50 ops.

Twenty rules of a plan's usual mix: whole-run counts and rates, whole-run latency statistics
(p50 .. p999, max, mean) over one op, a workload or every request, sliding rules and rules
judged only at the end. Windows of ``--per-op`` latencies are sealed one by one, as in a run,
and the status judged after every second one (so no figure is read twice unchanged).

    python benchmarks/rule_status_bench.py
    python benchmarks/rule_status_bench.py --src /tmp/old/src   # another tree

Prints, per op count, the time of one judgement of the twenty rules: median and worst of
``--calls``. Run it on an idle machine: the figures are wall-clock times of one thread.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from array import array
from pathlib import Path


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", default="1,16,50", help="op counts, comma-separated")
    parser.add_argument("--per-op", type=int, default=500, help="latencies per op per window")
    parser.add_argument("--calls", type=int, default=60, help="judgements per op count")
    parser.add_argument("--src", default=None, help="the enduro source tree to measure")
    return parser.parse_args()


ARGS = _args()
sys.path.insert(0, ARGS.src or str(Path(__file__).resolve().parents[1] / "src"))

from enduro.observe.hist import fold  # noqa: E402
from enduro.observe.metrics import Metrics  # noqa: E402
from enduro.observe.window import WindowStats  # noqa: E402
from enduro.verdict.evaluate import RuleBook  # noqa: E402
from enduro.verdict.rules import parse_rule  # noqa: E402

RULES = (
    "availability >= 99%", "error_rate < 1%", "rate(requests) > 50/s", "errors{class=5xx} == 0",
    "count(requests) > 100", "availability{op=op0} >= 99.9%", "error_rate{workload=w0} < 1%",
    "p95(latency) < 300ms", "p99(latency) < 500ms", "p999(latency) < 2s",
    "p95(latency{op=op0}) < 100ms", "p99(latency{op=op0}) < 200ms", "max(latency{op=op0}) < 1s",
    "mean(latency{op=op0}) < 100ms", "p50(latency{workload=w0}) < 50ms",
    "error_rate < 5% over 10s", "p95(latency) < 300ms over 30s", "availability >= 90% over 1m",
    "availability{phase=final} >= 99%", "max(recover_s) < 10s",
)


def _windows(ops: list[str], index: int, rng: random.Random) -> list[WindowStats]:
    out = []
    for op in ops:
        lat = fold(array("q", (int(rng.lognormvariate(9, 1)) for _ in range(ARGS.per_op))))
        errors = 1 if rng.random() < 0.1 else 0
        out.append(WindowStats(op=op, index=index, requests=ARGS.per_op, errors=errors,
                               classes={"5xx": errors} if errors else {}, latency=lat,
                               service=lat))
    return out


def measure(n_ops: int) -> list[float]:
    rng = random.Random(1)
    ops = {f"op{i}": f"w{i % 3}" for i in range(n_ops)}
    book = RuleBook([parse_rule(t, ops=ops) for t in RULES], ops, has_faults=False)
    metrics = Metrics(window_s=1.0, keep_s=120, background=False)
    times = []
    for index in range(60 + 2 * ARGS.calls):
        metrics.add(_windows(list(ops), index, rng))
        metrics.seal(index)
        book.live(metrics, index + 1)
        if index >= 60 and index % 2:
            start = time.perf_counter()
            book.status_changes(metrics, index + 1)
            times.append(time.perf_counter() - start)
    return times


def main() -> int:
    print(f"{len(RULES)} rules, {ARGS.per_op} latencies per op per window, {ARGS.calls} calls")
    for n_ops in (int(n) for n in ARGS.ops.split(",")):
        times = measure(n_ops)
        print(f"{n_ops:>3} ops: median {statistics.median(times) * 1e3:.2f} ms, "
              f"worst {max(times) * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
