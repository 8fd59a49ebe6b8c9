from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from enduro.faults.timeline import expand, format_schedule
from enduro.plan.models import Plan
from enduro.verdict.recovery import PhaseTracker, analyze_fault


def plan(faults: list[dict[str, Any]], **extra: Any) -> Plan:
    return Plan.model_validate({
        "name": "f", "duration": "10m",
        "services": {n: {"command": "sleep 1"} for n in ("a", "b", "c", "api")},
        "groups": {"cluster": ["a", "b", "c"]},
        "proxies": {"front": {"listen": "127.0.0.1:1", "upstream": "127.0.0.1:2",
                              "http": True}},
        "faults": faults, **extra})


def test_same_seed_same_schedule_other_seed_other() -> None:
    p = plan([{"every": "40s", "jitter": "5s", "kill": {"target": "cluster"}},
              {"random": "1m", "for": "10s", "latency": {"proxy": "front", "add": "150ms"}}])
    one, _ = expand(p, 600, 42)
    two, _ = expand(p, 600, 42)
    other, _ = expand(p, 600, 43)
    assert one == two
    assert [f.start for f in one] != [f.start for f in other]
    assert format_schedule(one, 0, 42) == format_schedule(two, 0, 42)


def test_every_with_jitter_stays_in_bounds() -> None:
    schedule, _ = expand(plan([{"every": "40s", "jitter": "5s", "kill": "api"}]), 600, 1)
    assert len(schedule) == 14  # 40, 80, ... 560
    for i, f in enumerate(schedule, start=1):
        assert abs(f.start - 40 * i) <= 5
        assert f.end is None and f.targets == ("api",)


def test_at_between_count_and_for() -> None:
    p = plan([{"at": "45m", "restart": "api"},  # after the run: dropped
              {"at": "2m", "for": "30s", "latency": {"proxy": "front", "add": "150ms"}},
              {"every": "10s", "between": ["1m", "2m"], "count": 3, "terminate": "api"}])
    schedule, _ = expand(p, 600, 1)
    kinds = [(f.kind, f.start, f.end) for f in schedule]
    assert kinds == [("terminate", 60, None), ("terminate", 70, None),
                     ("terminate", 80, None), ("latency", 120, 150)]


def test_random_faults_have_the_mean_interval() -> None:
    p = plan([{"random": "30s", "kill": "api"}])
    counts = [len(expand(p, 36_000, seed)[0]) for seed in range(5)]
    assert sum(counts) / len(counts) == pytest.approx(1200, rel=0.05)


def test_policy_min_gap_and_max_concurrent() -> None:
    p = plan([{"every": "10s", "kill": "a"}, {"every": "10s", "kill": "b"}],
             fault_policy={"min_gap": "5s"})
    schedule, skipped = expand(p, 100, 1)
    assert len(schedule) == 9 and skipped == 9
    p = plan([{"every": "10s", "for": "25s", "latency": {"proxy": "front", "add": "1ms"}}],
             fault_policy={"max_concurrent": 2})
    schedule, skipped = expand(p, 100, 1)
    for f in schedule:
        active = [g for g in schedule if g.start <= f.start < (g.end or g.start)]
        assert len(active) <= 2
    assert skipped > 0


def test_group_choice() -> None:
    p = plan([{"every": "10s", "kill": {"target": "cluster", "choose": "one"}}])
    assert len({f.targets for f in expand(p, 100, 3)[0]}) == 1
    p = plan([{"every": "10s", "kill": {"target": "cluster", "choose": "random"}}])
    assert len({f.targets for f in expand(p, 600, 3)[0]}) == 3
    p = plan([{"at": "10s", "restart": {"target": "cluster", "choose": "all", "rolling": "2s"}}])
    (f,) = expand(p, 100, 3)[0]
    assert f.targets == ("a", "b", "c") and f.rolling == 2


def test_all_replicas_at_once_needs_allow_all() -> None:
    with pytest.raises(ValidationError, match="takes every replica down"):
        plan([{"at": "10s", "kill": {"target": "cluster", "choose": "all"}}])
    plan([{"at": "10s", "kill": {"target": "cluster", "choose": "all", "allow_all": True}}])


@pytest.mark.parametrize(("fault", "message"), [
    ({"at": "1s"}, "exactly one kind"),
    ({"kill": "api"}, "exactly one of 'at'"),
    ({"at": "1s", "kill": "nope"}, "neither a service nor a group"),
    ({"at": "1s", "latency": {"proxy": "back"}}, "proxy 'back' is not in proxies"),
    ({"at": "1s", "pause": "api"}, "a pause needs 'for'"),
])
def test_bad_faults_are_explained(fault: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        plan([fault])


def tracker(series: list[tuple[int, int]], faults: list[tuple[float, float]],
            k: int = 3) -> PhaseTracker:
    """Windows of 1 s given as (requests, errors), p99 1 ms; faults as (start, end)."""
    t = PhaseTracker(1.0, k, 0.5, lambda s, e: any(a < e and b >= s for a, b in faults),
                     expect_load=True)
    for i, (req, err) in enumerate(series):
        t.label(i, req, err, 1.0)
    return t


def test_recovery_analysis_matches_what_happened() -> None:
    # 10 good windows, a kill at t=10, 4 windows of errors, then good again.
    series = [(100, 0)] * 10 + [(100, 100)] * 4 + [(100, 0)] * 10
    t = tracker(series, [(10.0, 10.0)])
    result = analyze_fault(t, 10.0, 10.0, horizon_s=30)
    assert result["detect_s"] == 0.0
    assert result["recover_s"] == 4.0
    assert result["errors"] == 400
    phases = [s.phase for s in t.series]
    assert phases[:10] == ["baseline"] * 10 and phases[10] == "chaos"
    assert phases[11:17] == ["recovery"] * 6 and phases[17] == "baseline"


def test_a_fault_nobody_noticed_recovers_at_once() -> None:
    t = tracker([(100, 0)] * 30, [(10.0, 15.0)])
    # Counted over the fault's active period and its settle time (5 s): t=10 to 20.
    assert analyze_fault(t, 10.0, 15.0, horizon_s=30) == {
        "detect_s": None, "recover_s": 0.0, "errors": 0, "requests": 1000,
        "worst_p99_ms": 1.0}


def test_a_fault_that_never_recovers() -> None:
    t = tracker([(100, 0)] * 10 + [(100, 50)] * 20, [(10.0, 10.0)])
    result = analyze_fault(t, 10.0, 10.0, horizon_s=30)
    assert result["detect_s"] == 0.0 and result["recover_s"] is None
