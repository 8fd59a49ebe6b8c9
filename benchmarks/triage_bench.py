"""Triage speed: lines per second over a synthetic service log (target: 100k lines/s).

    python benchmarks/triage_bench.py [--lines 1000000]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from enduro.triage.report import triage

TRACE = """Traceback (most recent call last):
  File "/srv/app/handlers.py", line 42, in handle
    load(user)
  File "/srv/app/store.py", line 7, in load
    raise KeyError(user)
KeyError: 'user-{n}'
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = random.Random(1)
    path = Path(tempfile.mkdtemp()) / "service.log"
    with path.open("w") as fh:
        for i in range(args.lines):
            r = rng.random()
            if r < 0.001:
                fh.write(TRACE.format(n=i))
            elif r < 0.02:
                fh.write(f"12:00:{i % 60:02d} ERROR db timeout after {rng.randint(1, 900)}ms "
                         f"on shard {rng.randint(1, 9)} request {rng.getrandbits(64):x}\n")
            elif r < 0.03:
                fh.write(f"12:00:{i % 60:02d} WARN slow query {rng.randint(1, 9)}s\n")
            else:
                fh.write(f"12:00:{i % 60:02d} INFO served /api/v1/items/{i} in "
                         f"{rng.randint(1, 50)}ms\n")
    started = time.perf_counter()
    result = triage([path])
    took = time.perf_counter() - started
    print(f"{result['lines']:,} lines in {took:.2f}s: {result['lines'] / took:,.0f} lines/s "
          f"(target 100,000); {len(result['crashes'])} crash group(s), "
          f"{len(result['log_groups'])} log template(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
