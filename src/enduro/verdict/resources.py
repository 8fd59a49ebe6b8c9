"""The resources section of results.json: per sampled target, its last sample, its peaks and
a leak analysis of RSS and open files per incarnation of a restarted service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enduro.observe.store import Store

__all__ = ["resource_results"]


def resource_results(store: Store | None,
                     last: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Per target of ``last`` (its latest sample): the last sample, peaks from ``store``,
    and a leak verdict per series once there are two minutes of it."""
    out: dict[str, Any] = {}
    if store is None:
        return out
    for target, values in last.items():
        entry: dict[str, Any] = {"last": {k: round(v, 3) for k, v in values.items()}}
        marks = store.series(target, "pid")
        for series, integer, min_abs in (("rss_mb", False, 1.0), ("fds", True, 2.0)):
            rows = store.series(target, series)
            if not rows:
                continue
            entry[f"{series}_max"] = round(max(v for _, v in rows), 3)
            if rows[-1][0] - rows[0][0] < 120:
                # A leak verdict on less than two minutes would judge warm-up.
                entry[f"{series}_trend"] = {"leak": None, "reasons": [
                    "shorter than 2 minutes: not judged (leak() rules still are)"]}
                continue
            # Imported here: scipy takes seconds to load under load, and a short run (or
            # the watchdog's end of one) needs no trend.
            from enduro.verdict.trends import incarnations, leak_by_incarnation
            times = [r[0] for r in rows]
            entry[f"{series}_trend"] = leak_by_incarnation(
                times, [r[1] for r in rows], incarnations(times, marks), min_abs=min_abs,
                integer=integer, min_rel=0.0 if integer else 0.01).to_json()
        out[target] = entry
    return out
