"""Views over the last seconds read running sums: exactly the figures of merging every window
(``view_slow``), at a cost bounded whatever the span or the ring's length, decoding nothing."""

from __future__ import annotations

import asyncio
import random
from array import array
from typing import Any

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from enduro.observe import hist as hist_module
from enduro.observe.hist import Histogram, Sparse, fold, percentiles_ms
from enduro.observe.metrics import EVENT, ITERATION, Metrics, MetricView
from enduro.observe.window import WindowStats

KINDS = {"f": ITERATION, "s:event": EVENT}
OPS = ["a", "b", "c", "f", "s:event"]


def windows_at(rng: random.Random, index: int) -> list[WindowStats]:
    out = []
    for op in OPS:
        if rng.random() < 0.25:
            continue  # idle this window
        n = rng.randint(0, 400)
        mu = rng.uniform(4, 12)
        lat = array("q", (int(rng.lognormvariate(mu, 1.0)) for _ in range(n)))
        svc = array("q", (max(1, v - rng.randint(0, 50)) for v in lat))
        errors = rng.randint(0, min(n, 5))
        classes = {rng.choice(["5xx", "timeout", "reset"]): errors} if errors else None
        out.append(WindowStats(op, index, n, errors, rng.randint(0, 3), rng.randint(0, 2),
                               classes, fold(lat) if n else None, fold(svc) if n else None))
    return out or [WindowStats(OPS[0], index)]


def same(fast: MetricView, slow: MetricView, service: bool) -> None:
    assert (fast.requests, fast.errors, fast.late, fast.dropped, fast.seconds) == (
        slow.requests, slow.errors, slow.late, slow.dropped, slow.seconds)
    assert fast.classes == slow.classes
    pairs = [(fast.latency, slow.latency)]
    if service:
        pairs.append((fast.service, slow.service))
    for mine, theirs in pairs:
        assert mine.get_total_count() == theirs.get_total_count()
        assert np.array_equal(hist_module.counts_of(mine), hist_module.counts_of(theirs))
        assert percentiles_ms(mine) == percentiles_ms(theirs)
        assert (mine.get_min_value(), mine.get_max_value()) == (theirs.get_min_value(),
                                                                 theirs.get_max_value())
        for p in (0.0, 50.0, 99.9, 100.0):
            assert mine.get_value_at_percentile(p) == theirs.get_value_at_percentile(p)


@pytest.mark.parametrize("background", [False, True])
def test_running_views_equal_merging_every_window(background: bool) -> None:
    """Spans shorter and longer than the ring, reads after one window and after long gaps,
    service times read late, ops sets of requests and of other figures; with the writer
    thread compacting windows while they are read (background) or at once."""
    rng = random.Random(11)
    metrics = Metrics(window_s=1.0, keep_s=12.0, kinds=KINDS, background=background)
    reads = [(None, 1.0), (None, 5.0), (None, 10.0), (None, 40.0), ({"a"}, 5.0),
             ({"a", "b"}, 3.0), ({"f"}, 4.0), ({"a", "f"}, 6.0), ({"s:event"}, 2.0)]
    checked = 0
    for index in range(60):
        metrics.add(windows_at(rng, index))
        metrics.seal(index)
        if background and index % 3 == 0:
            metrics.flush()
        gap = 9 if 20 <= index < 40 else 1  # a reader that comes back after a while
        for k, (ops, last_s) in enumerate(reads):
            if (index + k) % gap:
                continue
            service = (index + k) % 4 == 0
            same(metrics.view(ops, last_s=last_s), metrics.view_slow(ops, last_s=last_s),
                 service)
            checked += 1
    assert checked > 250
    assert metrics.close() is None


def test_a_window_arriving_after_its_seal_counts_in_the_totals_not_the_running_view() -> None:
    metrics = Metrics(window_s=1.0)
    metrics.add([WindowStats("a", 0, 1, latency=fold(array("q", [1000])))])
    metrics.seal(0)
    assert metrics.view(last_s=5).requests == 1
    metrics.add([WindowStats("a", 0, 2, latency=fold(array("q", [5000, 5000])))])
    assert metrics.view(last_s=5).requests == 1 == metrics.view_slow(last_s=5).requests
    assert metrics.view().requests == 3


def test_a_live_read_touches_a_bounded_number_of_histograms_and_decodes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After each seal, a view over every request reads the window that entered and the one
    that left (their sums over ops), however long the span and however many ops."""
    touched: list[int] = []
    real = Histogram.add_part

    def counting(self: Histogram, part: HdrHistogram | Sparse, sign: int = 1) -> None:
        touched.append(sign)
        real(self, part, sign)

    def no_decode(text: str) -> Histogram:
        raise AssertionError("a live view decoded a histogram")

    monkeypatch.setattr(Histogram, "add_part", counting)
    monkeypatch.setattr("enduro.observe.metrics.decode", no_decode)
    rng = random.Random(3)
    ops = [f"op{i}" for i in range(50)]
    for span in (10.0, 60.0):
        metrics = Metrics(window_s=1.0, keep_s=span)
        per_read = []
        for index in range(int(span) + 10):
            metrics.add([WindowStats(op, index, 10, latency=fold(array(
                "q", (rng.randint(100, 90_000) for _ in range(10))))) for op in ops])
            metrics.seal(index)
            touched.clear()
            view = metrics.view(last_s=span)
            percentiles_ms(view.latency)
            per_read.append(len(touched))
        # The first read sums the span; each later one adds one window and takes one away.
        assert max(per_read[int(span) + 1:]) <= 2, per_read
        # One op's view: that op's window in, its window out.
        touched.clear()
        metrics.view({"op7"}, last_s=span)
        metrics.add([WindowStats("op7", int(span) + 10, 3, latency=fold(array("q", [5] * 3)))])
        metrics.seal(int(span) + 10)
        touched.clear()
        assert metrics.view({"op7"}, last_s=span).latency.get_total_count() == 10 * (
            int(span) - 1) + 3
        assert len(touched) <= 2


class Forbidden(AssertionError):
    pass


def test_sealing_on_the_loop_decodes_nothing_and_walks_no_bucket_in_python(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """hdrh's per-value and per-bucket Python paths (recording one value, a counter by index,
    its iterators, its own add) and decoding stay off the loop's seal."""
    def forbid(name: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            raise Forbidden(name)
        return wrapper

    ops = [f"op{i}" for i in range(50)]
    rng = random.Random(5)
    prepared = [[fold(array("q", (rng.randint(50, 400_000) for _ in range(300))))
                 for _ in range(2)] for _ in range(3 * len(ops))]

    async def run() -> Metrics:
        metrics = Metrics(window_s=1.0, on_window=None)
        for name in ("record_value", "get_count_at_index", "get_recorded_iterator",
                     "get_percentile_iterator"):
            monkeypatch.setattr(HdrHistogram, name, forbid(name))
        monkeypatch.setattr(Histogram, "record_value", forbid("record_value"))
        monkeypatch.setattr(Histogram, "_values_at", forbid("percentiles"))
        monkeypatch.setattr("enduro.observe.metrics.decode", forbid("decode"))
        monkeypatch.setattr(hist_module.HdrHistogramEncoder, "decode", forbid("decode"))
        it = iter(prepared)
        for index in range(3):
            metrics.add([WindowStats(op, index, 300, latency=lat, service=svc)
                         for op, (lat, svc) in zip(ops, it, strict=False)])
            metrics.seal(index)
            metrics.view(last_s=10)  # the live figures' counts: no percentile either
        return metrics

    metrics = asyncio.run(run())
    monkeypatch.undo()
    assert metrics.flush() is None
    assert metrics.view(last_s=3).requests == 3 * 50 * 300
    metrics.close()


def test_percentiles_read_by_index_arithmetic_equal_hdrh_walking_its_buckets() -> None:
    rng = random.Random(8)
    for _ in range(20):
        mu = rng.uniform(0, 18)
        values = [max(1, int(rng.lognormvariate(mu, 2.0))) for _ in range(rng.randint(1, 300))]
        mine = fold(array("q", values))
        ref = HdrHistogram(1, hist_module.HIGHEST_US, 3)
        for v in values:
            ref.record_value(min(v, hist_module.HIGHEST_US))
        for p in (0.0, 0.001, 1.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.99, 100.0, 150.0):
            assert mine.get_value_at_percentile(p) == ref.get_value_at_percentile(p), (mu, p)
