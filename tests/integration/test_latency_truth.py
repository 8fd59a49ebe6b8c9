"""Latency you can check: against a server whose delays follow a known distribution (80% 5 ms,
15% 50 ms, 5% 200 ms, seeded) and which records how long it held each request, enduro's p50,
p90 and p99 must equal the server's own within HDR precision plus the client overhead, which
the same test measures against the same server without delays. Closed and open model."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.plans import http_plan, run_plan
from tests.helpers.procs import REPO, free_port, only_run, stop, wait_port

SERVER = REPO / "tests" / "helpers" / "delay_server.py"
# 3 significant digits: a recorded value is within 0.1% of the true one.
HDR_PRECISION = 0.001
QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))


@contextmanager
def delay_server(log: Path, *, zero: bool = False) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", str(port), "--log",
                             str(log), *(["--zero"] if zero else [])])
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def quantile(values: list[float], q: float) -> float:
    """The nearest-rank quantile (what an HDR histogram reports, before its rounding)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.5) - 1))]


def measure(tmp_path: Path, name: str, *, zero: bool = False,
            **model: Any) -> tuple[dict[str, float], dict[str, float], int]:
    """enduro's percentiles (ms), the server's own (ms), and enduro's request count."""
    log = tmp_path / f"{name}.log"
    with delay_server(log, zero=zero) as base:
        plan = http_plan(base, requests=[{"name": "get", "path": "/"}], duration="5s",
                         **model)
        outcome = run_plan(tmp_path / name, plan)
    assert outcome.exit_code == 0
    results = json.loads((only_run(tmp_path / name / "runs") / "results.json").read_text())
    op = results["ops"]["get"]
    held = [float(line) * 1000 for line in log.read_text().split()]
    assert op["errors"] == 0 and op["requests"] == len(held), (op, len(held))
    truth = {label: quantile(held, q) for label, q in QUANTILES}
    return {label: float(op["latency_ms"][label]) for label, _ in QUANTILES}, truth, len(held)


@pytest.mark.parametrize("model", [{"connections": 8}, {"rate": "150/s"}],
                         ids=["closed", "open"])
@pytest.mark.slow(11)
@pytest.mark.timing
def test_percentiles_match_the_server_s_own(tmp_path: Path, model: dict[str, Any]) -> None:
    # The client's own share of each latency: the same load against no delay at all.
    overhead, _, _ = measure(tmp_path, "zero", zero=True, **model)
    seen, truth, count = measure(tmp_path, "delayed", **model)
    assert count >= 500, count  # enough for a p99 of the 200 ms mass
    for label, _ in QUANTILES:
        low = truth[label] * (1 - HDR_PRECISION)
        # Overhead measured at the same percentile, and 1 ms for the timer and the loop.
        high = truth[label] * (1 + HDR_PRECISION) + overhead[label] + 1.0
        assert low <= seen[label] <= high, (label, seen, truth, overhead)
    # The distribution itself, so that the comparison above means something.
    assert 5 <= truth["p50"] < 15 and 50 <= truth["p90"] < 65 and 200 <= truth["p99"] < 230
