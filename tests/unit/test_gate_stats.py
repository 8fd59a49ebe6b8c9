"""The gate's statistics on seeded synthetic benchmarks: A/A passes, 5% slower is caught."""

from __future__ import annotations

import numpy as np
import pytest

from enduro.gate.stats import Thresholds, compare_cases


def cases(rng: np.random.Generator, n_cases: int, n: int, slow: float = 1.0,
          slow_cases: int = 0) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    base, head = {}, {}
    for i in range(n_cases):
        center = rng.uniform(1e-4, 1e-2)
        cv = rng.uniform(0.01, 0.04)
        # Benchmark timings: right-skewed noise around the center.
        base[f"case{i}"] = list(center * (1 + rng.lognormal(0, 1, n) * cv))
        factor = slow if i < slow_cases else 1.0
        head[f"case{i}"] = list(center * factor * (1 + rng.lognormal(0, 1, n) * cv))
    return base, head


@pytest.mark.slow(14)
def test_a_a_false_alarms_stay_under_one_percent() -> None:
    reps = 400
    failing = 0
    flagged_cases = 0
    for seed in range(reps):
        rng = np.random.default_rng(seed)
        base, head = cases(rng, 20, 30)
        results, _ = compare_cases(base, head, Thresholds(bootstrap=300, seed=seed))
        bad = sum(r.verdict != "inconclusive" for r in results)
        flagged_cases += bad
        failing += bad > 0
    print(f"A/A: {failing}/{reps} repetitions with a false alarm, "
          f"{flagged_cases}/{reps * 20} cases")
    assert failing / reps <= 0.01


@pytest.mark.slow(5)
def test_a_5_percent_slowdown_is_flagged() -> None:
    reps = 100
    caught = 0
    for seed in range(reps):
        rng = np.random.default_rng(1000 + seed)
        base, head = cases(rng, 20, 30, slow=1.05, slow_cases=1)
        results, _ = compare_cases(base, head, Thresholds(bootstrap=300, seed=seed))
        by_case = {r.case: r for r in results}
        caught += by_case["case0"].verdict == "regressed"
        assert all(r.verdict == "inconclusive" for r in results if r.case != "case0")
    print(f"5% slowdown flagged in {caught}/{reps}")
    assert caught >= 90


def test_an_improvement_and_the_noise_floor() -> None:
    rng = np.random.default_rng(7)
    base, head = cases(rng, 3, 30, slow=0.8, slow_cases=1)
    results, skipped = compare_cases(base, head, Thresholds(seed=1))
    by_case = {r.case: r for r in results}
    assert by_case["case0"].verdict == "improved" and -25 < by_case["case0"].delta_pct < -15
    assert all(r.noise_floor_pct > 0 for r in results)
    assert skipped == []


def test_filters_and_missing_cases() -> None:
    base = {"a": [1.0, 1.1, 0.9], "b": [1.0] * 3, "slow": [2.0] * 3}
    head = {"a": [1.0, 1.1, 0.9], "c": [1.0] * 3, "slow": [2.0] * 3}
    results, skipped = compare_cases(base, head, Thresholds(exclude="^slow$"))
    assert [r.case for r in results] == ["a"]
    assert sorted(skipped) == ["b: only in base", "c: only in head"]
