"""The rules' live status: judged on the windows sealed so far, told once per change, and
the time each failed rule first failed."""

from __future__ import annotations

from array import array

import pytest

from enduro.documents.events import make_event
from enduro.observe.hist import fold
from enduro.observe.metrics import Metrics
from enduro.observe.window import WindowStats
from enduro.report.pagedata import describe, live_rule_rows
from enduro.verdict.evaluate import RuleBook
from enduro.verdict.rules import parse_rule

OPS = {"list": "browse"}


def window(index: int, errors: int = 0) -> WindowStats:
    lat = fold(array("q", [10_000] * 100))
    return WindowStats(op="list", index=index, requests=100, errors=errors,
                       classes={"5xx": errors} if errors else {}, latency=lat, service=lat)


def test_statuses_change_once_per_transition_and_fail_times_are_kept() -> None:
    texts = ("availability >= 90%", "error_rate < 5% over 5s", "p95(latency{op=list}) < 1s",
             "availability{phase=final} >= 99%", "max(recover_s) < 10s")
    book = RuleBook([parse_rule(t, ops=OPS) for t in texts], OPS, has_faults=False)
    m = Metrics(window_s=1.0, keep_s=60)
    told: list[tuple[float, str, str]] = []
    first: dict[str, float | None] = {}
    for i in range(30):
        m.add([window(i, errors=100 if i >= 10 else 0)])  # every request fails from t=10
        m.seal(i)
        book.live(m, i + 1)
        if i % 2 == 1:  # as the runner does: every 2 s
            for s in book.status_changes(m, i + 1):
                told.append((s.at_s, s.rule, s.status))
                first[s.rule] = s.first_failed_s
    assert told == [
        (2, "availability >= 90%", "pass"),
        (2, "error_rate < 5% over 5s", "pending"),  # its first window is not full yet
        (2, "p95(latency{op=list}) < 1s", "pass"),
        (2, "availability{phase=final} >= 99%", "pending"),  # judged at the end
        (2, "max(recover_s) < 10s", "pending"),  # not applicable: no faults
        (6, "error_rate < 5% over 5s", "pass"),
        # Whole-run availability is 10/12 at t=12: under 90%.
        (12, "availability >= 90%", "fail"),
        # Judged live at t=11 (one bad window of five: 20%), told at the next status.
        (12, "error_rate < 5% over 5s", "fail"),
    ]
    assert first == {"availability >= 90%": 12, "error_rate < 5% over 5s": 11,
                     "p95(latency{op=list}) < 1s": None,
                     "availability{phase=final} >= 99%": None, "max(recover_s) < 10s": None}
    final = {r.rule: r for r in book.final(m, 30).results}
    assert final["availability >= 90%"].first_failed_s == 12
    assert final["error_rate < 5% over 5s"].first_failed_s == 11  # 1 bad window of 5: 20%
    assert final["p95(latency{op=list}) < 1s"].first_failed_s is None  # passed
    assert final["error_rate < 5% over 5s"].to_json()["first_failed_s"] == 11


def test_a_whole_run_rule_that_fails_only_at_the_end_failed_at_the_end() -> None:
    book = RuleBook([parse_rule("availability >= 90%", ops=OPS)], OPS)
    m = Metrics(window_s=1.0)
    for i in range(10):
        m.add([window(i, errors=100 if i == 9 else 0)])
        m.seal(i)
        if i == 8:
            (status,) = book.status_changes(m, i + 1)
            assert (status.status, status.observed) == ("pass", "100.00%")
    assert book.status_changes(m, 10) == []  # 90% is still a pass: nothing changed
    m.add([window(10, errors=100)])
    m.seal(10)
    (result,) = book.final(m, 11).results
    assert not result.passed and result.first_failed_s == 11


def test_a_rule_without_data_yet_is_pending_and_a_whole_run_rule_may_pass_again() -> None:
    book = RuleBook([parse_rule("availability >= 50%", ops=OPS)], OPS)
    m = Metrics(window_s=1.0)
    (first,) = book.status_changes(m, 0)
    assert (first.status, first.observed) == ("pending", "no data")
    statuses = []
    for i, errors in enumerate((100, 0, 0, 0)):
        m.add([window(i, errors=errors)])
        m.seal(i)
        statuses += [s.status for s in book.status_changes(m, i + 1)]
    assert statuses == ["fail", "pass"]  # 0%, 50% (a pass), then better
    (result,) = book.final(m, 4).results
    assert result.passed and result.first_failed_s is None


@pytest.mark.parametrize("text", ["mean(latency{op=list}) < 1s", "max(latency) < 1s"])
def test_latency_rules_are_judged_live(text: str) -> None:
    book = RuleBook([parse_rule(text, ops=OPS)], OPS)
    m = Metrics(window_s=1.0)
    m.add([window(0)])
    m.seal(0)
    m.flush()  # the totals' latencies are added by the writer thread
    (status,) = book.status_changes(m, 1)
    assert (status.status, status.observed) == ("pass", "10.0ms")


def test_the_page_lists_the_rules_as_their_last_events_told() -> None:
    told = [("a < 1", "pass", "0", 1.0), ("b > 2", "pending", "no data", 1.0),
            ("a < 1", "fail", "3", 5.0), ("a < 1", "pass", "0.5", 7.0), ("a < 1", "fail", "2", 9.0)]
    records = [(i, make_event("rule_status", at_s + 0.2, 0.0, {
        "rule": rule, "status": status, "observed": observed, "at_s": at_s}))
        for i, (rule, status, observed, at_s) in enumerate(told)]
    assert live_rule_rows(records) == [
        {"rule": "a < 1", "status": "fail", "passed": False, "observed": "2", "reason": "",
         "first_failed_s": 5.0, "live": True},
        {"rule": "b > 2", "status": "pending", "passed": False, "observed": "no data",
         "reason": "", "first_failed_s": None, "live": True}]
    assert describe(records[2][1], {}) == ("rule", "rule a < 1: fail (3)")
