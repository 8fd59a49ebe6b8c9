"""metrics.sqlite roll-up: old samples become one median per minute, and trend verdicts on the
rolled-up series match those on the raw one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from enduro.observe.store import Store
from enduro.verdict.trends import leak
from tests.unit.test_trends import STEP, leaking, plateau, times


def stored(tmp_path: Path, values: np.ndarray, *, roll_at: float) -> Store:
    store = Store(tmp_path / "metrics.sqlite")
    with store.db:
        for t, v in zip(times(), values, strict=True):
            store.add_samples(float(t), "service:api", {"rss_mb": float(v), "fds": 40.0})
            store.add_scrapes(float(t), "api", [("queue_depth", "", float(v))])
    store.roll_up(roll_at)
    return store


def test_old_samples_and_scrapes_become_one_median_per_minute(tmp_path: Path) -> None:
    values = np.full(len(times()), 50.0)
    values[100] = 5000.0  # a spike in the first hour
    store = stored(tmp_path, values, roll_at=2 * 3600)
    rows = store.series("service:api", "rss_mb")
    old = [r for r in rows if r[0] < 3600]
    recent = [r for r in rows if r[0] >= 3600]
    assert len(old) == 60 and [r[0] for r in old] == [60.0 * i for i in range(60)]
    assert all(v == 50.0 for _, v in old)  # the median leaves the spike out
    assert len(recent) == 3600 / STEP
    assert len(store.series("service:api", "fds")) == 60 + 3600 / STEP
    assert len([r for r in store.scrape_series("api", "queue_depth") if r[0] < 3600]) == 60
    store.roll_up(2 * 3600)  # rolling again at the same time changes nothing
    assert store.series("service:api", "rss_mb") == rows
    store.close()


def test_leak_verdicts_hold_on_rolled_up_series(tmp_path: Path) -> None:
    for name, values, expect in (("leak", leaking(1), True), ("plateau", plateau(2), False)):
        (tmp_path / name).mkdir()
        store = stored(tmp_path / name, values, roll_at=2 * 3600)
        rows = store.series("service:api", "rss_mb")
        store.close()
        assert len(rows) == 60 + len(values) // 2  # the first hour was rolled up
        rolled = leak([r[0] for r in rows], [r[1] for r in rows], min_abs=1.0,
                      min_rel=0.005)
        raw = leak(list(times()), list(values), min_abs=1.0, min_rel=0.005)
        assert rolled.leak is expect and raw.leak is expect
        if expect:  # the same slope, within the noise
            assert abs(rolled.slope_per_h - raw.slope_per_h) < 0.1
