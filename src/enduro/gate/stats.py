"""Deciding, per case, whether head is slower, faster or indistinguishable from base.

- Effect: the ratio of medians head/base, with a bootstrap confidence interval.
- Significance: Mann-Whitney U on the raw samples, Holm-corrected across the cases compared.
- Noise floor: the smallest change the baseline's own spread could reveal with these sample
  sizes (about 2.8 robust standard errors: 80% power at 5%), printed per case.
- A case is regressed (or improved) only when the change is significant after correction
  and its estimate exceeds both the configured threshold and the noise floor; otherwise it
  is inconclusive.
- With fewer than 3 samples on a side (one estimate per case: Criterion's estimates.json,
  hyperfine without times, a summary without samples) no significance test can work, so the
  case is judged, visibly, by the threshold rule teams use: regressed when the change of
  the medians exceeds ``regression_pct`` (``rule: threshold`` in the reports).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["CaseResult", "Thresholds", "compare_cases", "patterns"]


@dataclass(frozen=True)
class Thresholds:
    """What counts: regression %, how many regressions fail the gate, how many cases must be
    compared, the fastest base time worth judging, and case filters (regexes)."""

    regression_pct: float = 3.0
    max_regressed: int = 0
    min_compared: int = 1
    min_base_time_s: float = 0.0
    # 0.02 rather than 0.05: A/A false alarms over 20 cases fall from 0.8% to 0.1% (1,000
    # seeded repetitions) while a 5% slowdown is still flagged 94% of the time.
    alpha: float = 0.02
    include: str | None = None
    exclude: str | None = None
    bootstrap: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class CaseResult:
    """The decision on one case."""

    case: str
    verdict: str  # regressed | improved | inconclusive
    base_median: float
    head_median: float
    delta_pct: float
    ci_pct: tuple[float, float]
    p_value: float | None
    p_adjusted: float | None
    noise_floor_pct: float
    samples: tuple[int, int]
    rule: str = "statistics"  # statistics | threshold (too few samples for a test)

    def to_json(self) -> dict[str, Any]:
        return {"case": self.case, "verdict": self.verdict, "rule": self.rule,
                "base_median": self.base_median,
                "head_median": self.head_median, "delta_pct": round(self.delta_pct, 3),
                "ci_pct": [round(x, 3) for x in self.ci_pct],
                "p_value": self.p_value, "p_adjusted": self.p_adjusted,
                "noise_floor_pct": round(self.noise_floor_pct, 3),
                "samples": list(self.samples)}


def _robust_cv(x: np.ndarray) -> float:
    med = float(np.median(x))
    if len(x) < 2 or med == 0:
        return 0.0
    return float(stats.median_abs_deviation(x, scale="normal")) / abs(med)


def _bootstrap_ratio(a: np.ndarray, b: np.ndarray, n: int,
                     rng: np.random.Generator) -> tuple[float, float]:
    if len(a) < 2 or len(b) < 2:
        r = float(np.median(b) / np.median(a))
        return r, r
    ia = rng.integers(0, len(a), (n, len(a)))
    ib = rng.integers(0, len(b), (n, len(b)))
    ratios = np.median(b[ib], axis=1) / np.median(a[ia], axis=1)
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)


def _holm(pvalues: list[float]) -> list[float]:
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    m = len(pvalues)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def compare_cases(base: dict[str, list[float]], head: dict[str, list[float]],
                  t: Thresholds) -> tuple[list[CaseResult], list[str]]:
    """Results for every case present in both, and the names skipped (with why)."""
    rng = np.random.default_rng(t.seed)
    names, skipped = _selected(base, head, t)
    # Every case is subsampled before any is bootstrapped: the draws from the seeded
    # generator, and so the intervals, stay the same from run to run.
    raw = [(name, *_tested(base[name], head[name], rng)) for name in names]
    tested = [p for *_, p in raw if p is not None]
    adjusted = iter(_holm(tested)) if tested else iter(())
    results = []
    for name, a, b, p in raw:
        p_adj = next(adjusted) if p is not None else None
        results.append(_case_result(name, a, b, p, p_adj, t, rng))
    return results, skipped


def _selected(base: dict[str, list[float]], head: dict[str, list[float]],
              t: Thresholds) -> tuple[list[str], list[str]]:
    """The cases to compare, and the ones skipped (with why), by name."""
    import re
    skipped: list[str] = []
    names = []
    include, exclude = patterns(t.include), patterns(t.exclude)
    for name in sorted(set(base) | set(head)):
        if include and not any(re.search(x, name) for x in include):
            continue
        if exclude and any(re.search(x, name) for x in exclude):
            continue
        if name not in base or name not in head:
            skipped.append(f"{name}: only in {'head' if name in head else 'base'}")
            continue
        if float(np.median(base[name])) < t.min_base_time_s:
            skipped.append(f"{name}: base median below {t.min_base_time_s:g}s")
            continue
        names.append(name)
    return names, skipped


def patterns(text: str | None) -> list[str]:
    """A filter: comma-separated names or regexes, any of which may match (a comma inside a
    regex's ``{m,n}`` does not separate)."""
    import re
    if not text:
        return []
    return [x.strip() for x in re.split(r",(?![^{]*\})", text) if x.strip()]


def _tested(base: list[float], head: list[float], rng: np.random.Generator) -> tuple[
        np.ndarray, np.ndarray, float | None]:
    """Both samples (at most 2,000 rounds each) and the Mann-Whitney p-value, None with fewer
    than 3 rounds on a side."""
    a, b = np.asarray(base, float), np.asarray(head, float)
    # pytest-benchmark can save tens of thousands of rounds: a random 2,000 of them
    # decide as well and keep the bootstrap small.
    if len(a) > 2000:
        a = rng.choice(a, 2000, replace=False)
    if len(b) > 2000:
        b = rng.choice(b, 2000, replace=False)
    p = None
    if len(a) >= 3 and len(b) >= 3:
        p = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return a, b, p


def _case_result(name: str, a: np.ndarray, b: np.ndarray, p: float | None,
                 p_adj: float | None, t: Thresholds, rng: np.random.Generator) -> CaseResult:
    """One case's verdict: a change beyond both the threshold and the noise floor, significant
    after correction, and with its bootstrap interval clear of no change."""
    ma, mb = float(np.median(a)), float(np.median(b))
    delta = (mb / ma - 1) * 100 if ma else 0.0
    lo, hi = _bootstrap_ratio(a, b, t.bootstrap, rng)
    cv = _robust_cv(a)
    # Standard error of a median ~ 1.2533 sd / sqrt(n); of a difference of two, sqrt 2.
    floor = 2.8 * 1.2533 * cv * math.sqrt(1 / len(a) + 1 / len(b)) * 100 if len(a) > 1 \
        else 0.0
    if p is None:
        # One estimate a side: no test can say anything; the threshold rule judges alone.
        verdict = ("regressed" if delta > t.regression_pct
                   else "improved" if delta < -t.regression_pct else "inconclusive")
        return CaseResult(name, verdict, ma, mb, delta, ((lo - 1) * 100, (hi - 1) * 100),
                          None, None, floor, (len(a), len(b)), rule="threshold")
    need = max(t.regression_pct, floor)
    significant = p_adj is not None and p_adj < t.alpha
    if significant and delta > need and lo > 1:
        verdict = "regressed"
    elif significant and delta < -need and hi < 1:
        verdict = "improved"
    else:
        verdict = "inconclusive"
    return CaseResult(name, verdict, ma, mb, delta, ((lo - 1) * 100, (hi - 1) * 100),
                      p, p_adj, floor, (len(a), len(b)))
