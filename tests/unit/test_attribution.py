"""Detection and recovery are credited to a fault only for windows it can explain: bad windows
that begin within its active period plus the settle time and end before the next fault started;
recovery is looked for up to the next fault only."""

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


def test_the_window_the_next_fault_started_in_is_the_next_faults() -> None:
    # Faults every 5 s on whole seconds start a few ms after a window boundary (seen with a NATS
    # cluster: 5.001, 10.001). A at 5.001 had no effect; the load stalled when B hit at 10.001.
    series = [(100, 0)] * 10 + [(0, 0)] + [(100, 3)] + [(100, 0)] * 8
    t = tracker(series, [(5.001, 5.033), (10.001, 10.044)])
    first = analyze_fault(t, 5.001, 5.033, horizon_s=30, next_start_s=10.001)
    assert first["detect_s"] is None and first["recover_s"] == 0.0
    assert first["errors"] == 0 and first["requests"] == 500  # windows 5-9
    second = analyze_fault(t, 10.001, 10.044, horizon_s=30)
    assert second["detect_s"] == 0.0 and second["recover_s"] == 1.956
    assert second["errors"] == 3


def test_a_window_ending_a_hair_after_the_next_fault_started_is_still_this_ones() -> None:
    # A timer may fire the next fault a fraction of a millisecond early.
    series = [(100, 0)] * 10 + [(100, 50)] + [(100, 0)] * 10
    t = tracker(series, [(10.0, 10.0), (10.9998, 11.0)])
    result = analyze_fault(t, 10.0, 10.0, horizon_s=30, next_start_s=10.9998)
    assert result["detect_s"] == 0.0


def test_a_fault_still_bad_when_the_next_one_starts_never_recovered() -> None:
    # A at 5 breaks everything; B at 10 lands on the still broken system; all is well from 14.
    # The good windows after B started are not A's recovery.
    series = [(100, 0)] * 5 + [(100, 90)] * 9 + [(100, 0)] * 10
    t = tracker(series, [(5.0, 5.0), (10.0, 10.0)])
    first = analyze_fault(t, 5.0, 5.0, horizon_s=30, next_start_s=10.0)
    assert first["detect_s"] == 0.0 and first["recover_s"] is None
    assert first["errors"] == 5 * 90  # windows 5-9, not B's
    second = analyze_fault(t, 10.0, 10.0, horizon_s=30)
    assert second["detect_s"] == 0.0 and second["recover_s"] == 4.0


def test_good_windows_that_last_until_the_next_fault_are_a_recovery() -> None:
    # A at 5: bad windows 5-7, good 8-9 (fewer than K=3), then B at 10.
    series = [(100, 0)] * 5 + [(100, 90)] * 3 + [(100, 0)] * 2 + [(100, 90)] * 2 + [(100, 0)] * 5
    t = tracker(series, [(5.0, 5.0), (10.0, 10.0)])
    first = analyze_fault(t, 5.0, 5.0, horizon_s=30, next_start_s=10.0)
    assert first["detect_s"] == 0.0 and first["recover_s"] == 3.0
    assert first["errors"] == 3 * 90


def test_a_fault_whose_effect_outlasts_the_data_never_recovered() -> None:
    # Two good windows after the fault, then the run ends: fewer than K, no next fault.
    series = [(100, 0)] * 5 + [(100, 90)] * 2 + [(100, 0)] * 2
    t = tracker(series, [(5.0, 5.4)])
    result = analyze_fault(t, 5.0, 5.4, horizon_s=30)
    assert result["detect_s"] == 0.0 and result["recover_s"] is None
    assert result["errors"] == 180 and result["requests"] == 400
