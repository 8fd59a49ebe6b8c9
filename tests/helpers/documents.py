"""Small valid documents for tests that need one without a run."""

from __future__ import annotations

from typing import Any

from enduro.documents.results import SCHEMA


def percentiles(p50: float = 1.0, p95: float = 2.0, p99: float = 3.0,
                top: float = 4.0) -> dict[str, float]:
    return {"p50": p50, "p90": p95, "p95": p95, "p99": p99, "p999": p99, "max": top}


def figures(requests: int = 10, errors: int = 0, **more: Any) -> dict[str, Any]:
    """One op's (or the total's) figures, as results.json holds them."""
    return {"requests": requests, "errors": errors, "rps": requests / 3.0,
            "error_rate": errors / requests if requests else 0.0, "late": 0, "dropped": 0,
            "errors_by_class": {}, "latency_ms": percentiles(),
            "service_time_ms": percentiles(), **more}


def results_json(**overrides: Any) -> dict[str, Any]:
    """A results.json of a run of one op that passed, with ``overrides`` on top."""
    ops = {"a": figures(workload="w", kind="request")}
    return {"schema": SCHEMA, "run_id": "t-20260101T000000Z", "plan": "t", "profile": None,
            "verdict": "pass", "complete": True, "rules_passed": True, "mode": "run",
            "state": "completed", "stop_reason": None, "started_at": 1.0, "duration_s": 3.0,
            "seed": 1, "worker_count": 1, "total": figures(), "ops": ops, "errors_by_class": {},
            "rules": [], "faults": [], "services": {}, **overrides}
