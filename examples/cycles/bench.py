"""Stands in for a benchmark run: times two small cases and writes them as a gate summary
(samples in seconds), which `enduro cycles` reads after each snapshot."""

import json
import sys
import time


def sample(fn, n=30):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


cases = {"sort_10k": sample(lambda: sorted(range(10_000, 0, -1))),
         "join_1k": sample(lambda: ",".join(str(i) for i in range(1_000)))}
with open(sys.argv[1], "w") as fh:
    json.dump({"format": "enduro-gate-summary", "cases": cases}, fh)
