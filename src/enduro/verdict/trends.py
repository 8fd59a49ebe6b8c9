"""Trend tests for soak runs: is a resource leaking, has latency drifted?

A leak verdict on a series (time, value):

1. Downsample to at most 300 points (medians over equal spans of time): robust to spikes,
   and it keeps the O(n^2) statistics cheap on day-long series.
2. Warm-up: the longer of a fixed share of the run and a change point found by a two-segment
   linear fit (caches filling, JITs warming).
3. After warm-up: Theil-Sen slope with a 95% confidence interval; a Mann-Kendall trend test
   whose variance is corrected for lag-1 autocorrelation (Yue & Wang), since successive
   samples of a process's memory are anything but independent.
4. A leak needs all of: a significant upward trend (p < alpha), a lower confidence bound above
   zero, growth above an absolute and a relative minimum, and no level-off (the second half
   still grows at least half as fast as the first). Integer series (fds, threads) must
   also never come back down to their baseline.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["LeakVerdict", "drift", "leak", "mann_kendall"]

_MAX_POINTS = 300


@dataclass(frozen=True)
class LeakVerdict:
    """The outcome of a leak test, with the figures behind it."""

    leak: bool
    slope_per_h: float
    slope_ci_per_h: tuple[float, float]
    p_value: float
    growth: float
    growth_rel: float
    warmup_s: float
    points: int
    reasons: list[str] = field(default_factory=list)
    time_to_limit_h: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"leak": self.leak, "slope_per_h": round(self.slope_per_h, 4),
                "slope_ci_per_h": [round(x, 4) for x in self.slope_ci_per_h],
                "p_value": round(self.p_value, 6), "growth": round(self.growth, 4),
                "growth_rel": round(self.growth_rel, 4), "warmup_s": round(self.warmup_s, 1),
                "points": self.points, "reasons": self.reasons,
                "time_to_limit_h": None if self.time_to_limit_h is None
                else round(self.time_to_limit_h, 2)}


def _downsample(t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Medians over equal spans of time (not of points): the store keeps old data at one
    point a minute and recent data at every sample, and equal point counts would give the
    recent hour most of the weight."""
    if len(t) <= _MAX_POINTS:
        return t, y
    edges = np.searchsorted(t, np.linspace(t[0], t[-1], _MAX_POINTS + 1)[1:-1])
    pairs = itertools.pairwise([0, *edges.tolist(), len(t)])
    spans = [(a, b) for a, b in pairs if b > a]
    tt = np.array([np.median(t[a:b]) for a, b in spans])
    yy = np.array([np.median(y[a:b]) for a, b in spans])
    return tt, yy


def mann_kendall(y: np.ndarray) -> tuple[float, float]:
    """(S statistic, two-sided p-value) with the lag-1 autocorrelation correction."""
    n = len(y)
    if n < 4:
        return 0.0, 1.0
    diff = np.sign(y[None, :] - y[:, None])
    s = float(np.triu(diff, 1).sum())
    var = n * (n - 1) * (2 * n + 5) / 18.0
    # Yue & Wang: detrend, estimate lag-1 autocorrelation, inflate the variance.
    slope = stats.theilslopes(y)[0]
    resid = y - slope * np.arange(n)
    resid = resid - resid.mean()
    denom = float((resid ** 2).sum())
    r1 = float((resid[:-1] * resid[1:]).sum() / denom) if denom > 0 else 0.0
    r1 = max(min(r1, 0.99), -0.99)
    factor = 1 + 2 * r1 ** (n + 1) / (1 - r1) - 2 * r1 * (1 - r1 ** n) / (n * (1 - r1) ** 2) \
        if r1 > 0 else 1.0
    # The correction above corrects only lag-1; strongly autocorrelated noise needs the
    # effective sample size form as well: n_eff = n (1 - r1) / (1 + r1).
    if r1 > 0:
        factor = max(factor, (1 + r1) / (1 - r1))
    var *= factor
    if var <= 0:
        return s, 1.0
    z = (s - math.copysign(1, s)) / math.sqrt(var) if s != 0 else 0.0
    return s, float(2 * stats.norm.sf(abs(z)))


def _warmup(t: np.ndarray, y: np.ndarray, min_share: float) -> int:
    """Index where the steady state begins."""
    n = len(t)
    start = int(n * min_share)
    best, best_sse = start, None
    for k in range(max(start, 5), int(n * 0.5), max(1, n // 60)):
        sse = 0.0
        slopes = []
        for a, b in ((0, k), (k, n)):
            coef = np.polyfit(t[a:b], y[a:b], 1)
            slopes.append(coef[0])
            sse += float(((np.polyval(coef, t[a:b]) - y[a:b]) ** 2).sum())
        if best_sse is None or sse < best_sse:
            best, best_sse = k, sse
    # Only a knee where the early slope is steeper than the later one counts as warm-up.
    if best_sse is not None and best > start:
        early = np.polyfit(t[:best], y[:best], 1)[0]
        late = np.polyfit(t[best:], y[best:], 1)[0]
        if early > 2 * max(late, 0):
            return best
    return start


def leak(times: list[float], values: list[float], *, min_abs: float, min_rel: float = 0.01,
         alpha: float = 0.01, warmup_share: float = 0.1, integer: bool = False,
         limit: float | None = None) -> LeakVerdict:
    """Whether ``values`` leak over ``times`` (seconds), after warm-up."""
    t = np.asarray(times, dtype=float)
    y = np.asarray(values, dtype=float)
    t, y = _downsample(t, y)
    if len(t) < 12:
        return LeakVerdict(False, 0.0, (0.0, 0.0), 1.0, 0.0, 0.0, 0.0, len(t),
                           ["too few samples to judge"])
    w = _warmup(t, y, warmup_share)
    ts, ys = t[w:], y[w:]
    hours = (ts - ts[0]) / 3600.0
    slope, _, lo, hi = stats.theilslopes(ys, hours, alpha=0.95)
    _, p = mann_kendall(ys)
    base = float(np.median(ys[: max(3, len(ys) // 10)]))
    growth = float(slope * (hours[-1] - hours[0]))
    rel = growth / abs(base) if base else float("inf")
    third = len(ys) * 2 // 3
    half = len(ys) // 2
    early_slope = stats.theilslopes(ys[:half], hours[:half])[0]
    late_slope = stats.theilslopes(ys[half:], hours[half:])[0]
    reasons = []
    if p >= alpha:
        reasons.append(f"no significant trend (p={p:.3g})")
    if lo <= 0:
        reasons.append("the slope's confidence interval includes zero")
    if growth < min_abs:
        reasons.append(f"growth {growth:.3g} below the minimum {min_abs:.3g}")
    if rel < min_rel:
        reasons.append(f"relative growth {rel:.2%} below {min_rel:.0%}")
    # A leak keeps its pace; a cache filling up slows down (an exponential approach).
    if slope > 0 and late_slope < 0.5 * max(early_slope, slope):
        reasons.append("it levels off")
    if integer and float(ys[third:].min()) <= base:
        reasons.append("it comes back to its baseline")
    is_leak = not reasons
    ttl = None
    if is_leak and limit is not None and slope > 0:
        ttl = max(0.0, (limit - float(ys[-1])) / slope)
    return LeakVerdict(is_leak, float(slope), (float(lo), float(hi)), float(p), growth,
                       float(rel), float(t[w] - t[0]), len(t),
                       reasons if not is_leak else ["leaking"], ttl)


def drift(times: list[float], values: list[float], *, warmup_share: float = 0.1,
          span_share: float = 0.1) -> float | None:
    """Relative change of the last stretch against the first stretch after warm-up
    (medians over ``span_share`` of the run each); None without data."""
    if len(values) < 10:
        return None
    y = np.asarray(values, dtype=float)
    start = int(len(y) * warmup_share)
    span = max(3, int(len(y) * span_share))
    first = float(np.median(y[start:start + span]))
    last = float(np.median(y[-span:]))
    if first <= 0:
        return None
    return (last - first) / first
