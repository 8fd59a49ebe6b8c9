"""Trend rules over the run's store: ``leak(...)``, ``drift(...)`` and ``rss_drift``.

What they read and how, so that a verdict rests only on what the run saw:

- A leak is judged per incarnation of the service (``trends.leak_by_incarnation``): the
  sampler records the process id with every sample, and a restart starts a new series.
  ``leak(rss{service=api, incarnations=pooled}) == false`` judges the whole run as one series.
- Drift of latency ignores partial windows (those with under a quarter of the typical request
  rate: the first and last windows of a run, a pause), whose percentiles rest on a handful of
  requests and are not comparable with the others.
- Too few points for the statistic raise ``NotEnoughData``: the rule says so instead of
  guessing (see ``Rule.judge``).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from enduro.verdict.insufficient import NotEnoughData
from enduro.verdict.trends import (
    DRIFT_MIN_POINTS,
    drift_verdict,
    incarnations,
    leak_by_incarnation,
)

if TYPE_CHECKING:
    from enduro.observe.metrics import MetricView

__all__ = ["PARTIAL_WINDOW_SHARE", "NotEnoughData", "trend_value"]



class Rule(Protocol):
    """What a trend needs of its rule (``enduro.verdict.rules.Rule`` has it)."""

    @property
    def text(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def trend(self) -> str | None: ...
    @property
    def labels(self) -> Mapping[str, str]: ...

    def series(self, view: MetricView) -> tuple[list[float], list[float]] | None: ...


# A window with less than this share of the median request rate is partial.
PARTIAL_WINDOW_SHARE = 0.25




def trend_value(rule: Rule, view: MetricView) -> float | None:
    """The figure of a trend rule (1.0 / 0.0 for leak, a relative change for drift); None
    without any data; ``NotEnoughData`` with too little. Details go to
    ``view.trend_details``."""
    data = rule.series(view)
    if data is None:
        return None
    times, values = data
    if rule.trend == "leak":
        integer = rule.metric in ("fds", "threads", "connections")
        min_abs = 1.0 if rule.metric in ("rss", "uss") else 2.0 if integer else 0.0
        if "min" in rule.labels:  # leak(rss{service=api, min=10MB})
            from enduro.base.units import parse_size
            raw = rule.labels["min"]
            min_abs = (parse_size(raw) / 1e6 if rule.metric in ("rss", "uss")
                       and not raw.isdigit() else float(raw))
        pooled = rule.labels.get("incarnations") == "pooled"
        ids = None if pooled else _incarnation_ids(rule, view, times)
        verdict = leak_by_incarnation(times, values, ids, pooled=pooled, min_abs=min_abs,
                                      integer=integer, min_rel=0.0 if integer else 0.01)
        view.trend_details[rule.text] = verdict.to_json()
        if verdict.leak is None:
            raise NotEnoughData(verdict.reason)
        return 1.0 if verdict.leak else 0.0
    if rule.metric in ("latency", "service_time"):
        times, values = _whole_windows(rule, view, times, values)
    result = drift_verdict(times, values)
    view.trend_details[rule.text] = result.to_json()
    if result.points < DRIFT_MIN_POINTS:
        raise NotEnoughData(result.reason)
    return result.change


def _incarnation_ids(rule: Rule, view: MetricView, times: list[float]) -> list[float] | None:
    """The process id in force at each of ``times``, for series of one service."""
    store: Any = view.store
    if rule.labels.get("target") == "generator":
        return None
    service = rule.labels.get("service")
    if service is None:
        return None
    marks = store.series(f"service:{service}", "pid")
    return incarnations(times, marks) if marks else None


def _whole_windows(rule: Rule, view: MetricView, times: list[float],
                   values: list[float]) -> tuple[list[float], list[float]]:
    """Drop partial windows: their percentiles rest on a few requests."""
    store: Any = view.store
    op = rule.labels.get("op")
    query = "SELECT t, MAX(span), SUM(requests) FROM windows"
    rows = store.db.execute(query + (" WHERE op = ?" if op else "") + " GROUP BY t",
                            (op,) if op else ()).fetchall()
    rate = {t: (req or 0) / span for t, span, req in rows if span}
    if not rate:
        return times, values
    typical = statistics.median(rate.values())
    kept = [(t, v) for t, v in zip(times, values, strict=True)
            if rate.get(t, typical) >= PARTIAL_WINDOW_SHARE * typical]
    return [t for t, _ in kept], [v for _, v in kept]
