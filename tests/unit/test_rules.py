from __future__ import annotations

from array import array

import pytest

from enduro.base.errors import RuleSyntaxError
from enduro.observe.hist import fold
from enduro.observe.metrics import Metrics
from enduro.observe.window import WindowStats
from enduro.verdict.evaluate import RuleBook
from enduro.verdict.rules import RuleContext, parse_rule

OPS = {"list": "browse", "get": "browse", "create": "writers"}


def window(op: str, index: int, *, requests: int = 100, errors: int = 0,
           latency_ms: float = 10.0, classes: dict[str, int] | None = None) -> WindowStats:
    lat = fold(array("q", [int(latency_ms * 1000)] * requests))
    return WindowStats(op=op, index=index, requests=requests, errors=errors,
                       classes=classes or ({"5xx": errors} if errors else {}), latency=lat,
                       service=lat)


def metrics_of(windows: list[WindowStats]) -> Metrics:
    m = Metrics(window_s=1.0, keep_s=600)
    m.add(windows)
    m.seal(max(w.index for w in windows))
    return m


@pytest.mark.parametrize(("text", "metric", "func", "threshold", "over"), [
    ("p95(latency{op=list}) < 300ms", "latency", "p95", 0.3, None),
    ("availability >= 99.9%", "availability", None, 0.999, None),
    ("error_rate < 0.5% over 5m", "error_rate", None, 0.005, 300),
    ("rate(requests) > 50/s", "requests", "rate", 50, None),
    ("rate(requests) > 120/min", "requests", "rate", 2, None),
    ("errors{class=timeout} == 0", "errors", None, 0, None),
    ("max(service_time) <= 2s", "service_time", "max", 2, None),
    ("p99(latency) < 250", "latency", "p99", 0.25, None),
])
def test_parse(text: str, metric: str, func: str | None, threshold: float,
               over: float | None) -> None:
    rule = parse_rule(text, ops=OPS)
    assert (rule.metric, rule.func, rule.over_s) == (metric, func, over)
    assert rule.threshold == pytest.approx(threshold)


@pytest.mark.parametrize(("text", "message"), [
    ("p95(latncy) < 1s", "unknown metric 'latncy' (did you mean 'latency'?)"),
    ("latency < 1s", "needs a statistic"),
    ("p95(latency{op=lst}) < 1s", "no op named 'lst' (did you mean 'list'?)"),
    ("p95(latency{zone=eu}) < 1s", "unknown label 'zone'"),
    ("availability >= lots", "is not a percentage"),
    ("p95(availability) > 1%", "p95() does not apply to availability"),
    ("availability", "does not parse"),
    ("error_rate < 1% over soon", "after 'over'"),
    ("p95(latency{workload=nope}) < 1s", "no workload named 'nope'"),
])
def test_parse_errors_explain(text: str, message: str) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse_rule(text, ops=OPS)
    assert message in str(info.value)


def test_whole_run_rules_judge_merged_figures() -> None:
    ws = [window("list", i, latency_ms=5) for i in range(10)]
    ws += [window("get", i, latency_ms=50, errors=1) for i in range(10)]
    m = metrics_of(ws)
    book = RuleBook([parse_rule(t, ops=OPS) for t in (
        "p95(latency{op=list}) < 10ms",
        "p95(latency{op=get}) < 10ms",
        "availability >= 99.9%",
        "error_rate < 1%",
        "rate(requests) >= 200/s",
        "errors{class=5xx} == 10",
        "p95(latency{workload=browse}) < 100ms",
    )], OPS)
    verdict = book.final(m, elapsed_s=10)
    passed = {r.rule: r.passed for r in verdict.results}
    assert passed == {
        "p95(latency{op=list}) < 10ms": True,
        "p95(latency{op=get}) < 10ms": False,
        "availability >= 99.9%": False,
        "error_rate < 1%": True,   # 10 / 2000 = 0.5%
        "rate(requests) >= 200/s": True,
        "errors{class=5xx} == 10": True,
        "p95(latency{workload=browse}) < 100ms": True,
    }
    assert not verdict.passed
    avail = next(r for r in verdict.results if r.rule.startswith("availability"))
    assert avail.observed == pytest.approx(0.995) and avail.observed_text == "99.50%"


def test_no_data_fails_rather_than_passes() -> None:
    m = metrics_of([window("list", 0, requests=0)])
    (result,) = RuleBook([parse_rule("p95(latency{op=list}) < 1s")], OPS).final(m, 1).results
    assert not result.passed and result.observed_text == "no data"


def test_sliding_rule_fails_on_a_bad_window_that_the_whole_run_hides() -> None:
    """Ten seconds of 50% errors inside ten minutes: 0.8% over the run, 50% over 10 s."""
    rule = parse_rule("error_rate < 5% over 10s", ops=OPS)
    whole = parse_rule("error_rate < 5%", ops=OPS)
    book = RuleBook([rule, whole], OPS)
    m = Metrics(window_s=1.0, keep_s=60)
    for i in range(600):
        m.add([window("list", i, errors=50 if 300 <= i < 310 else 0)])
        m.seal(i)
        assert book.live(m, elapsed_s=i + 1) == []
    by_rule = {r.rule: r for r in book.final(m, 600).results}
    assert by_rule["error_rate < 5%"].passed
    sliding = by_rule["error_rate < 5% over 10s"]
    assert not sliding.passed
    assert sliding.observed == pytest.approx(0.5)
    assert "first failed at t=301s" in sliding.reason


def test_abort_on_fail_waits_for_its_grace() -> None:
    rule = parse_rule("availability >= 90%", ops=OPS, abort_on_fail=True, grace_s=5)
    book = RuleBook([rule], OPS)
    m = Metrics(window_s=1.0)
    aborted_at = None
    for i in range(30):
        bad = i >= 10
        m.add([window("list", i, errors=100 if bad else 0)])
        m.seal(i)
        aborts = book.live(m, elapsed_s=i + 1)
        if aborts:
            aborted_at = aborts[0].at_s
            break
    # Whole-run availability drops under 90% at t=12 (after 2 bad windows of 12); +5 s grace.
    assert aborted_at == 17


def test_thresholds_compare_exactly_at_the_boundary() -> None:
    m = metrics_of([window("list", 0, requests=1000, errors=1)])
    (r,) = RuleBook([parse_rule("availability >= 99.9%")], OPS).final(m, 1).results
    assert r.passed


CONTEXT = RuleContext(ops=OPS, services=frozenset({"api", "db"}), processes=frozenset({"api"}),
                      scraped={"api": frozenset({"depth"})}, fault_kinds=frozenset({"kill"}),
                      classes=frozenset({"step:create"}))


@pytest.mark.parametrize(("text", "message"), [
    ("errors{class=5XX} == 0", "did you mean '5xx'?"),
    ("errors{class=step:nope} == 0", "no error class 'step:nope'"),
    ("errors{service=api} == 0", "label 'service' does not apply to errors"),
    ("p95(latency{class=5xx}) < 1s", "label 'class' does not apply to latency"),
    ("max(rss{service=zzz}) < 1GB", "no service 'zzz'"),
    ("max(rss{service=db}) < 1GB", "is not a process enduro starts"),
    ("max(rss) < 1GB", "say whose"),
    ("max(loop_lag) < 10ms", "loop_lag{target=generator}"),
    ("max(cpu{target=me}) < 50%", "the only target is 'generator'"),
    ("max(scrape{service=db, metric=depth}) < 5", "has no 'scrape' section"),
    ("max(scrape{service=api, metric=dpth}) < 5", "did you mean 'depth'?"),
    ("max(recover_s{kind=pause}) < 5s", "no fault of kind 'pause'"),
    ("error_rate{phase=Chaos} < 1%", "did you mean 'chaos'?"),
    ("leak(rss{service=api, min=ten}) == false", "min=ten is not a size"),
    ("leak(fds{service=api, min=-3}) == false", "min=-3 is not a number"),
    ("availability > 90% over 0s", "must be a positive duration"),
])
def test_labels_are_checked_against_the_plan(text: str, message: str) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse_rule(text, context=CONTEXT)
    assert message in str(info.value)


@pytest.mark.parametrize("text", [
    "errors{class=step:create, op=list} == 0",
    "errors{class=error:KeyError} == 0",
    "error_rate{phase=final} < 1%",
    "max(rss{service=api}) < 1GB",
    "max(cpu{target=generator}) < 90%",
    "max(scrape{service=api, metric=scrape_up}) >= 1",
    "max(recover_s{kind=kill}) < 5s",
    "leak(rss{service=api, min=10MB}) == false",
])
def test_labels_naming_what_the_plan_has_pass(text: str) -> None:
    assert parse_rule(text, context=CONTEXT).text == text


def test_trend_rule_with_min_parses_without_a_plan_context() -> None:
    # parse_rule without a plan checks only the min= size, not whose series it is.
    rule = parse_rule("leak(rss{service=api, min=10MB}) == false", ops={})
    assert rule.trend == "leak" and rule.labels["min"] == "10MB"
    with pytest.raises(RuleSyntaxError, match="min=lots is not a size"):
        parse_rule("leak(rss{service=api, min=lots}) == false", ops={})


def test_judging_a_rule_live_imports_nothing_heavy() -> None:
    # A first import of scipy takes ~1 s; done on the engine's loop mid-run it stalled every
    # request (demo p95 went from 10 ms to 800 ms). Live judging must not import it.
    import subprocess
    import sys
    code = (
        "import sys\n"
        "from enduro.observe.metrics import Metrics\n"
        "from enduro.verdict.rules import parse_rule\n"
        "m = Metrics(1.0, keep_s=60.0)\n"
        "parse_rule('p95(latency) < 1s', ops={'a': 'w'}).judge(m.view())\n"
        "print('scipy' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
