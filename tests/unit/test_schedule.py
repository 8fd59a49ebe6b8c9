import random

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
