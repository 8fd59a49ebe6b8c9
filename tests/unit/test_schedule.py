import random
import threading

import pytest

from enduro.engine.schedule import ArrivalSchedule, RateStage


def count_until(schedule: ArrivalSchedule, end: float) -> int:
    n = 0
    while schedule.next() < end:
        n += 1
    return n


def test_constant_rate_over_an_hour_is_exact() -> None:
    assert count_until(ArrivalSchedule(rate=100.0), 3600.0) == 360_000


def test_worker_share_splits_the_rate() -> None:
    total = sum(count_until(ArrivalSchedule(rate=90.0, share=1 / 3), 60.0) for _ in range(3))
    assert total == pytest.approx(5400, abs=3)


def test_poisson_arrivals_have_the_mean_rate() -> None:
    n = count_until(ArrivalSchedule(rate=200.0, poisson=True, rng=random.Random(1)), 600.0)
    assert n == pytest.approx(120_000, rel=0.01)
    gaps = []
    s = ArrivalSchedule(rate=200.0, poisson=True, rng=random.Random(2))
    prev = s.next()
    for _ in range(10_000):
        t = s.next()
        gaps.append(t - prev)
        prev = t
    mean = sum(gaps) / len(gaps)
    var = sum((g - mean) ** 2 for g in gaps) / len(gaps)
    # Exponential gaps: the standard deviation equals the mean (even spacing would give 0).
    assert var**0.5 == pytest.approx(mean, rel=0.05)


def test_ramp_follows_the_integral_of_the_stages() -> None:
    stages = [RateStage(60, 100), RateStage(60, 100), RateStage(60, 0)]
    s = ArrivalSchedule(stages=stages)
    # 0->100 over 60 s is 3000 arrivals, hold 6000, 100->0 another 3000.
    assert count_until(s, 60) == pytest.approx(3000, rel=0.01)
    s = ArrivalSchedule(stages=stages)
    assert count_until(s, 180) == pytest.approx(12_000, rel=0.01)
    assert s.rate_at(30) == pytest.approx(50)
    assert s.rate_at(500) == 0


def test_ramp_holds_the_last_target() -> None:
    s = ArrivalSchedule(stages=[RateStage(10, 50)])
    assert s.rate_at(1000) == 50


def _next_within(schedule: ArrivalSchedule, seconds: float) -> float:
    """``schedule.next()``, failing (not hanging) if it does not return within ``seconds``."""
    out: list[float] = []
    worker = threading.Thread(target=lambda: out.append(schedule.next()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert out, f"next() spun for more than {seconds}s"
    return out[0]


@pytest.mark.parametrize("poisson", [False, True])
def test_a_zero_rate_gives_no_arrival_and_returns_at_once(poisson: bool) -> None:
    s = ArrivalSchedule(rate=0.0, poisson=poisson)
    # Without the guard, next() stepped ahead 10 ms at a time forever (100% CPU).
    assert _next_within(s, 5) == float("inf")
    assert _next_within(s, 5) == float("inf")
    assert ArrivalSchedule(rate=5.0, share=0.0).next() == float("inf")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_a_rate_that_is_not_a_finite_number_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite number"):
        ArrivalSchedule(rate=bad)
    with pytest.raises(ValueError, match="finite number"):
        ArrivalSchedule(stages=[RateStage(10, bad)])
    with pytest.raises(ValueError, match="finite number"):
        ArrivalSchedule(stages=[RateStage(bad, 10)])


def test_a_long_stage_at_zero_is_skipped_in_one_step() -> None:
    s = ArrivalSchedule(stages=[RateStage(86_400, 0), RateStage(0, 10)])
    # A day at zero, then 10/s: the first arrival comes at the day's end, found at once.
    assert s.next() == pytest.approx(86_400.1, abs=0.02)
    assert s.next() - 86_400 == pytest.approx(0.2, abs=0.02)
