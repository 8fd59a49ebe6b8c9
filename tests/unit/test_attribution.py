"""Detection and recovery are credited to a fault only for windows it can explain: bad windows
that begin within its active period plus the settle time, and before the next fault."""

from __future__ import annotations

from enduro.verdict.recovery import PhaseTracker, analyze_fault, settle_time


def tracker(series: list[tuple[int, int]], faults: list[tuple[float, float]]) -> PhaseTracker:
    """Windows of 1 s given as (requests, errors), p99 1 ms; faults as (start, end)."""
    t = PhaseTracker(1.0, 3, 0.5, lambda s, e: any(a < e and b >= s for a, b in faults),
                     expect_load=True)
    for i, (req, err) in enumerate(series):
        t.label(i, req, err, 1.0)
    return t


def test_a_fault_without_errors_is_not_detected_by_later_windows() -> None:
    # A kill at t=10 nobody noticed; unrelated errors from t=28 to t=40.
    series = [(100, 0)] * 28 + [(100, 60)] * 12 + [(100, 0)] * 10
    t = tracker(series, [(10.0, 10.0)])
    result = analyze_fault(t, 10.0, 10.0, horizon_s=30)
    assert result["detect_s"] is None and result["recover_s"] == 0.0
    assert result["errors"] == 0
    assert result["requests"] == 100 * int(settle_time(1.0))


def test_errors_within_the_settle_time_are_the_faults() -> None:
    series = [(100, 0)] * 13 + [(100, 60)] * 3 + [(100, 0)] * 20
    t = tracker(series, [(10.0, 10.0)])
    result = analyze_fault(t, 10.0, 10.0, horizon_s=30)
    assert result["detect_s"] == 3.0 and result["recover_s"] == 6.0
    assert result["errors"] == 180


def test_errors_after_the_next_fault_started_are_not_this_ones() -> None:
    # Fault A at t=10 (no effect), fault B at t=12, errors from t=13.
    series = [(100, 0)] * 13 + [(100, 60)] * 3 + [(100, 0)] * 20
    t = tracker(series, [(10.0, 10.0), (12.0, 12.0)])
    first = analyze_fault(t, 10.0, 10.0, horizon_s=30, next_start_s=12.0)
    assert first["detect_s"] is None and first["errors"] == 0
    second = analyze_fault(t, 12.0, 12.0, horizon_s=30)
    assert second["detect_s"] == 1.0


def test_a_long_fault_is_detected_anywhere_in_its_active_period() -> None:
    # A 60 s partition whose errors start 40 s in (a cache ran dry).
    series = [(100, 0)] * 50 + [(100, 80)] * 25 + [(100, 0)] * 10
    t = tracker(series, [(10.0, 70.0)])
    result = analyze_fault(t, 10.0, 70.0, horizon_s=30)
    assert result["detect_s"] == 40.0 and result["recover_s"] == 5.0
