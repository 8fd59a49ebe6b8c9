"""Totals, heartbeats, phases and faults count requests; flow iterations, burst rounds and
splits and SSE events are figures of their own."""

from __future__ import annotations

from enduro.observe.metrics import EVENT, ITERATION, ROUND, SPLIT, Metrics, op_kinds
from enduro.observe.window import WindowStats
from enduro.plan.models import Plan
from enduro.report.terminal import heartbeat_line

KINDS = {"f": ITERATION, "b:round": ROUND, "b.created": SPLIT, "s:event": EVENT}


def window(op: str, index: int, requests: int, errors: int) -> WindowStats:
    w = WindowStats(op, index, requests, errors, classes={"5xx": errors} if errors else None)
    for _ in range(requests):
        w.latency.record_value(1000)
        w.service.record_value(1000)
    return w


def failed_flow_window(index: int) -> list[WindowStats]:
    # One iteration whose second step failed: 2 requests, 1 error, and 1 failed iteration.
    return [window("f.a", index, 1, 0), window("f.b", index, 1, 1), window("f", index, 1, 1),
            window("s:event", index, 5, 0)]


def test_totals_heartbeats_and_rules_count_requests_once() -> None:
    m = Metrics(1.0, kinds=KINDS)
    for i in range(3):
        m.add(failed_flow_window(i))
    m.seal(2)
    total = m.view(elapsed_s=3.0)
    assert (total.requests, total.errors) == (6, 3)  # not 9 and 6: iterations are apart
    assert "errors=1 " in heartbeat_line(m, 3.0, 1.0)  # the last second: one error, once
    # `errors{op=f}` reads the iterations; `{workload=f}` (steps and iteration) the steps.
    assert m.view({"f"}).requests == 3 and m.view({"f"}).errors == 3
    assert m.view({"f", "f.a", "f.b"}).requests == 6
    assert m.view({"s:event"}, last_s=2).requests == 10  # sse_ rules read events
    # Without kinds (a plan of http requests only) every op is a request, as before.
    plain = Metrics(1.0)
    plain.add(failed_flow_window(0))
    assert plain.view().requests == 8


def test_phases_and_faults_are_judged_on_requests() -> None:
    seen: list[tuple[int, int]] = []

    def phase_of(index: int, windows: list[WindowStats]) -> str:
        seen.append((sum(w.requests for w in windows), sum(w.errors for w in windows)))
        return "chaos"

    m = Metrics(1.0, kinds=KINDS)
    m.phase_of = phase_of
    m.add(failed_flow_window(0))
    m.seal(0)
    assert seen == [(2, 1)]  # what recovery.py sums per fault
    chaos = m.view(phase="chaos")
    assert (chaos.requests, chaos.errors) == (2, 1)
    assert m.view({"f"}, phase="chaos").errors == 1


def test_op_kinds_of_a_plan() -> None:
    plan = Plan.model_validate({
        "name": "k", "duration": "1s",
        "workloads": {
            "h": {"http": {"base": "http://127.0.0.1:1", "rate": "1/s",
                           "requests": [{"name": "r"}]}},
            "f": {"flow": {"base": "http://127.0.0.1:1", "rate": "1/s",
                           "steps": [{"name": "a", "request": {"path": "/"}}]}},
            "s": {"sse": {"base": "http://127.0.0.1:1"}},
            "b": {"burst": {"base": "http://127.0.0.1:1", "size": 2,
                            "request": {"path": "/"},
                            "split": {"created": {"status": 201}}}}}})
    assert op_kinds(plan) == {"f": ITERATION, "s:event": EVENT, "b:round": ROUND,
                              "b.created": SPLIT}
