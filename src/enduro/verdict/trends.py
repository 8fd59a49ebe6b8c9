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
5. Too few points (fewer than ``LEAK_MIN_POINTS``) is no verdict at all: ``leak`` is None and
   the reason says how many points there were and how many the test needs.

A service restarted during the run (a ``kill`` or ``restart`` fault, a crash) starts each
incarnation with a fresh heap: its series is a sawtooth, and over the whole run a real leak
reads as "no significant trend". ``leak_by_incarnation`` splits the series where the process
changed (the sampler records its pid with every sample) and judges each incarnation long
enough to judge on its own, with the significance level divided among them (Bonferroni), so
that many short incarnations do not multiply false alarms. A leak in any of them is a leak.
``pooled=True`` judges the whole series as one (for figures that outlive a restart: disk use,
a persistent queue).

Drift compares the median of a stretch at the start (after warm-up) with one at the end; it
needs ``DRIFT_MIN_POINTS`` points so that each stretch has at least five.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["DRIFT_MIN_POINTS", "LEAK_MIN_POINTS", "DriftVerdict", "LeakVerdict",
           "TrendVerdict", "drift", "drift_verdict", "incarnations", "leak",
           "leak_by_incarnation", "mann_kendall"]

_MAX_POINTS = 300
LEAK_MIN_POINTS = 12
DRIFT_MIN_POINTS = 20
_DRIFT_MIN_SPAN = 5


@dataclass(frozen=True)
class LeakVerdict:
    """The outcome of a leak test, with the figures behind it; ``leak`` is None when the
    series was too short to judge."""

    leak: bool | None
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


def mann_kendall(y: np.ndarray, t: np.ndarray | None = None) -> tuple[float, float]:
    """(S statistic, two-sided p-value) with the lag-1 autocorrelation correction. ``t``:
    the sample times, against which the trend is removed before the autocorrelation is
    estimated (by sample number when absent)."""
    n = len(y)
    if n < 4:
        return 0.0, 1.0
    diff = np.sign(y[None, :] - y[:, None])
    s = float(np.triu(diff, 1).sum())
    var = n * (n - 1) * (2 * n + 5) / 18.0
    # Yue & Wang: detrend, estimate lag-1 autocorrelation, inflate the variance. Against
    # time: samples taken at uneven intervals (a busy machine samples late) leave a steady
    # rise looking like autocorrelated noise when detrended by sample number, and the
    # correction then inflates the variance twentyfold and hides a plain leak.
    x = np.arange(n, dtype=float) if t is None else np.asarray(t, dtype=float)
    slope = stats.theilslopes(y, x)[0]
    resid = y - slope * x
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
    if len(t) < LEAK_MIN_POINTS:
        return LeakVerdict(None, 0.0, (0.0, 0.0), 1.0, 0.0, 0.0, 0.0, len(t),
                           [not_enough(len(t), LEAK_MIN_POINTS)])
    w = _warmup(t, y, warmup_share)
    ts, ys = t[w:], y[w:]
    hours = (ts - ts[0]) / 3600.0
    slope, _, lo, hi = stats.theilslopes(ys, hours, alpha=0.95)
    _, p = mann_kendall(ys, ts)
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


def not_enough(points: int, needs: int) -> str:
    """The reason a trend was not judged, as rules and results.json say it."""
    return f"not enough data ({points} points, needs {needs})"


@dataclass(frozen=True)
class DriftVerdict:
    """Relative change of the end of a series against its start; ``change`` is None when the
    series was too short (``reason`` says so) or its start is not positive."""

    change: float | None
    first: float
    last: float
    span: int
    points: int
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"drift": None if self.change is None else round(self.change, 4),
                "first": round(self.first, 4), "last": round(self.last, 4),
                "span_points": self.span, "points": self.points,
                **({"reason": self.reason} if self.reason else {})}


def drift_verdict(times: list[float], values: list[float], *, warmup_share: float = 0.1,
                  span_share: float = 0.1) -> DriftVerdict:
    """Relative change of the last stretch against the first stretch after warm-up (medians
    over ``span_share`` of the points each, at least five points each)."""
    n = len(values)
    if n < DRIFT_MIN_POINTS:
        return DriftVerdict(None, 0.0, 0.0, 0, n, not_enough(n, DRIFT_MIN_POINTS))
    y = np.asarray(values, dtype=float)
    start = int(n * warmup_share)
    span = max(_DRIFT_MIN_SPAN, int(n * span_share))
    first = float(np.median(y[start:start + span]))
    last = float(np.median(y[-span:]))
    if first <= 0:
        return DriftVerdict(None, first, last, span, n, "the series starts at zero")
    return DriftVerdict((last - first) / first, first, last, span, n)


def drift(times: list[float], values: list[float], *, warmup_share: float = 0.1,
          span_share: float = 0.1) -> float | None:
    """The relative change ``drift_verdict`` finds; None when it cannot say."""
    return drift_verdict(times, values, warmup_share=warmup_share,
                         span_share=span_share).change


def incarnations(times: Sequence[float], marks: Sequence[tuple[float, float]]) -> list[float]:
    """For each of ``times``, the incarnation (a process id) in force then, from ``marks``
    (time, pid) samples in time order: the latest mark at or before it (the first mark for
    earlier times). Empty ``marks`` give one incarnation."""
    if not marks:
        return [0.0] * len(times)
    mark_t = np.asarray([m[0] for m in marks], dtype=float)
    idx = np.searchsorted(mark_t, np.asarray(times, dtype=float), side="right") - 1
    ids = [m[1] for m in marks]
    return [ids[max(0, int(i))] for i in idx]


@dataclass(frozen=True)
class TrendVerdict:
    """A leak verdict over a service's incarnations. ``leak`` is None when no incarnation was
    long enough to judge; ``decisive`` is the verdict the answer rests on (the steepest leaking
    incarnation, else the longest judged one)."""

    leak: bool | None
    mode: str
    parts: list[tuple[float, float, float, LeakVerdict]]  # (pid, start_s, end_s, verdict)
    decisive: LeakVerdict | None
    reason: str = ""

    @property
    def points(self) -> int:
        return sum(v.points for *_, v in self.parts)

    def to_json(self) -> dict[str, Any]:
        head = self.decisive.to_json() if self.decisive is not None else {}
        head["leak"] = self.leak
        reasons = list(head.get("reasons", []))
        if self.reason and self.reason not in reasons:
            reasons.append(self.reason)
        head["reasons"] = reasons
        head["mode"] = self.mode
        head["incarnations"] = [
            {"pid": int(pid) if pid == int(pid) else pid, "start_s": round(a, 3),
             "end_s": round(b, 3), **v.to_json()} for pid, a, b, v in self.parts]
        return head


def leak_by_incarnation(times: list[float], values: list[float], ids: Sequence[float] | None,
                        *, pooled: bool = False, alpha: float = 0.01,
                        **options: Any) -> TrendVerdict:
    """``leak`` on each incarnation of a restarted process (consecutive samples with one id),
    or on the whole series when ``pooled`` or when it never restarted."""
    if pooled or ids is None or len(set(ids)) <= 1:
        verdict = leak(times, values, alpha=alpha, **options)
        pid = ids[0] if ids else 0.0
        span = (times[0], times[-1]) if times else (0.0, 0.0)
        return TrendVerdict(verdict.leak, "pooled" if pooled else "per_incarnation",
                            [(pid, *span, verdict)], verdict,
                            verdict.reasons[0] if verdict.leak is None else "")
    runs: list[tuple[float, int, int]] = []  # (id, first index, end index)
    for i, pid in enumerate(ids):
        if runs and runs[-1][0] == pid:
            runs[-1] = (pid, runs[-1][1], i + 1)
        else:
            runs.append((pid, i, i + 1))
    judged = [r for r in runs if r[2] - r[1] >= LEAK_MIN_POINTS]
    if not judged:
        longest = max(r[2] - r[1] for r in runs)
        reason = (f"{not_enough(longest, LEAK_MIN_POINTS)} in the longest of {len(runs)} "
                  "incarnations")
        parts = [(pid, times[a], times[b - 1], leak(times[a:b], values[a:b], **options))
                 for pid, a, b in runs]
        return TrendVerdict(None, "per_incarnation", parts, None, reason)
    # Bonferroni: k chances at a false alarm, each at alpha / k.
    each = alpha / len(judged)
    parts = [(pid, times[a], times[b - 1], leak(times[a:b], values[a:b], alpha=each, **options))
             for pid, a, b in judged]
    leaking = [p for p in parts if p[3].leak]
    if leaking:
        decisive = max(leaking, key=lambda p: p[3].slope_per_h)[3]
    else:
        decisive = max(parts, key=lambda p: p[3].points)[3]
    skipped = len(runs) - len(judged)
    reason = (f"{skipped} incarnation(s) shorter than {LEAK_MIN_POINTS} points not judged"
              if skipped and not leaking else "")
    return TrendVerdict(bool(leaking), "per_incarnation", parts, decisive, reason)
