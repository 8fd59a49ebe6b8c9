"""What sealing a window costs: structure, not speed (benchmarks/window_bench.py times it).

Folding, percentiles and merging are numpy over hdrh's own counters and must give hdrh's
answers; idle ops allocate nothing; histograms are recycled once nothing refers to them; the
seal path on the calling thread neither encodes nor looks percentiles up; the writer thread
finishes windows in order and reports its errors.
"""

from __future__ import annotations

import asyncio
import random
import threading
from array import array
from typing import Any

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from enduro.observe.hist import (
    HIGHEST_US,
    Histogram,
    HistogramPool,
    decode,
    encode,
    fold,
    fold_many,
    new_histogram,
    percentiles_ms,
)
from enduro.observe.metrics import Metrics
from enduro.observe.window import Recorder, WindowStats

EDGES = [0, -5, 1, 2, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 2**31 - 1, 2**31, 2**32 + 7,
         HIGHEST_US - 1, HIGHEST_US, HIGHEST_US * 3]


def buffers(seed: int, n: int) -> list[array[int]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        size = 0 if i % 5 == 4 else rng.randint(1, 3000)
        mu, sigma = rng.uniform(0, 16), rng.uniform(0.1, 3)
        values = [int(rng.lognormvariate(mu, sigma)) for _ in range(size)]
        out.append(array("q", values + (EDGES if size else [])))
    return out


def reference(values: array[int]) -> HdrHistogram:
    """hdrh recording each value, clamped as fold clamps."""
    ref = HdrHistogram(1, HIGHEST_US, 3)
    for v in values:
        ref.record_value(min(max(v, 1), HIGHEST_US))
    return ref


def test_folding_many_buffers_equals_hdrh_recording_each_value() -> None:
    bufs = buffers(1, 12)
    for buf, hist in zip(bufs, fold_many(bufs), strict=True):
        ref = reference(buf)
        assert list(hist.counts) == list(ref.counts)
        assert hist.get_total_count() == ref.get_total_count() == len(buf)
        if buf:
            assert (hist.min_value, hist.max_value) == (ref.min_value, ref.max_value)
        for p in (0.0, 0.1, 50.0, 90.0, 99.0, 99.9, 99.999, 100.0):
            assert hist.get_value_at_percentile(p) == ref.get_value_at_percentile(p)


def test_percentiles_merges_and_encodings_match_hdrh() -> None:
    a, b = (buf for buf in buffers(2, 2))
    mine, theirs = fold(a), reference(a)
    mine.add(fold(b))
    theirs.add(reference(b))
    back = decode(encode(mine))
    assert list(back.counts) == list(mine.counts) == list(theirs.counts)
    assert (mine.min_value, mine.max_value, mine.total_count) == (
        theirs.min_value, theirs.max_value, theirs.total_count)
    for p in (50.0, 95.0, 99.9, 100.0):
        assert mine.get_value_at_percentile(p) == theirs.get_value_at_percentile(p)
        assert back.get_value_at_percentile(p) == theirs.get_value_at_percentile(p)
    plain = percentiles_ms(theirs)  # a plain hdrh histogram takes hdrh's own path
    assert percentiles_ms(mine) == percentiles_ms(back) == plain
    # A change clears the cached percentiles and encoding.
    before = percentiles_ms(mine)["p50"]
    mine.record_value(HIGHEST_US, 10 * mine.get_total_count())
    assert percentiles_ms(mine)["p50"] == round(mine.get_max_value() / 1000, 3) != before
    assert decode(encode(mine)).get_value_at_percentile(50.0) == mine.get_max_value()


def test_idle_ops_allocate_nothing_and_histograms_are_recycled() -> None:
    ops = [f"op{i}" for i in range(50)]
    rec = Recorder(ops)
    metrics = Metrics(window_s=1.0)
    idle = rec.counter("op7")
    buffers_before = (idle.lat, idle.svc, idle.classes)
    for index in range(10):
        c = rec.counter("op0")
        c.requests += 3
        c.lat.extend([1000, 2000, 3000])
        c.svc.extend([900, 1900, 2900])
        windows = rec.rotate(index + 1)
        assert [w.op for w in windows] == ["op0"]  # the 49 idle ops make no window
        # Rotation folds nothing: the window holds the buffer itself.
        assert windows[0].parts()[0] == (array("q", [1000, 2000, 3000]),)
        metrics.add(windows)
        metrics.seal(index)
        del windows
    assert metrics.view(last_s=1).latency.get_total_count() == 3
    assert metrics.view().latency.get_total_count() == 30
    # Idle counters keep their (empty) buffers; the one active op's two histograms are
    # taken back each window instead of 20 new ones (let alone 1,000).
    assert (idle.lat, idle.svc, idle.classes) == buffers_before
    assert idle.lat is buffers_before[0] and idle.classes is buffers_before[2]
    assert metrics.pool.made <= 4


def test_a_window_of_idle_ops_is_one_empty_marker_without_histograms() -> None:
    rec = Recorder(["a", "b"])
    (marker,) = rec.rotate(1)
    assert (marker.op, marker.index, marker.requests) == ("a", 0, 0)
    assert marker.histograms() == (None, None)
    metrics = Metrics(window_s=1.0)
    metrics.add([marker])
    metrics.seal(0)  # the index passes: sealing does not stall on an idle window
    assert metrics.sealed == 0 and metrics.view(last_s=1).requests == 0


def test_a_histogram_still_referenced_is_not_recycled() -> None:
    pool = HistogramPool()
    held = pool.acquire()
    held.record_value(5000)
    dropped = pool.acquire()
    dropped.record_value(7000)
    del dropped
    assert pool.reclaim() == 1
    again = pool.acquire()
    assert again is not held
    assert again.get_total_count() == 0 and not again.np_counts.any()
    assert held.get_total_count() == 1  # untouched: someone still holds it


def test_the_wire_carries_exact_counts() -> None:
    (buf,) = buffers(3, 1)
    w = WindowStats("op", 4, requests=len(buf), latency=fold(buf))
    back = WindowStats.from_wire(w.to_wire())
    assert list(back.latency.counts) == list(reference(buf).counts)
    assert back.latency.get_total_count() == len(buf)
    assert (back.latency.min_value, back.latency.max_value) == (
        w.latency.min_value, w.latency.max_value)
    assert back.histograms()[1] is None  # nothing recorded: nothing sent, nothing made


class Forbidden(AssertionError):
    pass


def test_sealing_on_the_loop_folds_nothing_looks_no_percentile_up_and_encodes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    calls: list[tuple[str, int]] = []

    def watch(name: str, real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, threading.get_ident()))
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(Histogram, "_values_at", watch("percentiles", Histogram._values_at))
    monkeypatch.setattr(Histogram, "encode", watch("encode", Histogram.encode))
    monkeypatch.setattr(Histogram, "record_many", watch("fold", Histogram.record_many))
    monkeypatch.setattr(Histogram, "add", watch("merge", Histogram.add))
    stored: list[tuple[int, list[str], dict[str, float]]] = []

    def on_window(index: int, windows: list[WindowStats], phase: str | None) -> None:
        stored.append((index, [w.op for w in windows], percentiles_ms(windows[0].latency)))

    ops = [f"op{i}" for i in range(50)]
    values = buffers(4, 50)

    async def run() -> Metrics:
        metrics = Metrics(window_s=1.0, on_window=on_window)
        rec = Recorder(ops)
        for index in range(3):
            for op, buf in zip(ops, values, strict=True):
                c = rec.counter(op)
                c.requests += len(buf)
                c.lat.extend(buf)
                c.svc.extend(buf)
            metrics.add(rec.rotate(index + 1))
            metrics.seal(index)
        return metrics

    metrics = asyncio.run(run())
    on_loop = [name for name, thread in calls if thread == loop_thread]
    assert on_loop == []
    assert metrics.flush() is None
    assert [index for index, _, _ in stored] == [0, 1, 2]  # in order, every one
    assert all(thread != loop_thread for _, thread in calls) and calls
    # What the writer thread left behind reads the same as the data.
    first = next(b for b in values if b)
    assert stored[0][2] == percentiles_ms(fold(first))
    whole = metrics.view(last_s=3)
    every = new_histogram()
    for buf in values:
        every.add(fold(buf))
        every.add(fold(buf))
        every.add(fold(buf))
    assert whole.latency.get_value_at_percentile(99.0) == every.get_value_at_percentile(99.0)
    metrics.close()


def test_the_writer_reports_its_first_error_and_goes_on() -> None:
    seen: list[int] = []

    def on_window(index: int, windows: list[WindowStats], phase: str | None) -> None:
        seen.append(index)
        if index == 1:
            raise OSError("disk full")

    metrics = Metrics(window_s=1.0, on_window=on_window, background=True)
    for index in range(4):
        metrics.add([WindowStats("a", index, requests=1, latency=fold(array("q", [10])))])
        metrics.seal(index)
    error = metrics.flush()
    assert isinstance(error, OSError) and "disk full" in str(error)
    assert seen == [0, 1, 2, 3]
    assert metrics.close() is None  # reported once


def test_totals_phases_and_late_windows_hold_every_value_once_the_writer_is_done() -> None:
    """The loop adds counts; the writer folds the buffers and adds them to the totals (of the
    run and of each phase), including a window that arrived after its index was sealed and a
    window's parts from two workers (through the wire, as raw buffers)."""
    rng = random.Random(9)
    ops = ["a", "b", "c"]
    phases = ["baseline", "chaos", "recovery"]
    every: dict[str, list[int]] = {op: [] for op in ops}
    by_phase: dict[str, list[int]] = {p: [] for p in phases}

    def phase_of(index: int, windows: list[WindowStats]) -> str:
        assert any(w.requests for w in windows)
        return phases[index % 3]

    async def run() -> Metrics:
        metrics = Metrics(window_s=1.0)
        metrics.phase_of = phase_of
        workers = [Recorder(ops), Recorder(ops)]
        held_back: list[WindowStats] = []
        for index in range(9):
            sealed: list[WindowStats] = []
            for k, rec in enumerate(workers):
                for op in ops:
                    values = [int(rng.lognormvariate(8, 1.5)) + 1
                              for _ in range(rng.randint(1, 300))]
                    c = rec.counter(op)
                    c.requests += len(values)
                    c.lat.extend(values)
                    c.svc.extend(v // 2 + 1 for v in values)
                    every[op] += values
                    if not (index == 4 and k == 1):
                        by_phase[phases[index % 3]] += values
                windows = rec.rotate(index + 1)
                if index == 4 and k == 1:
                    held_back = windows  # the second worker's window 4 comes after its seal
                else:
                    sealed += windows
            metrics.add([WindowStats.from_wire(w.to_wire()) for w in sealed])
            metrics.seal(index)
            if index == 5:
                metrics.add([WindowStats.from_wire(w.to_wire()) for w in held_back])
        return metrics

    metrics = asyncio.run(run())
    assert metrics.flush() is None
    for op in ops:
        view = metrics.view({op})
        direct = fold(array("q", every[op]))
        assert view.requests == len(every[op]) == view.latency.get_total_count()
        assert list(view.latency.counts) == list(direct.counts)
        assert view.service.get_total_count() == len(every[op])
    assert metrics.view().latency.get_total_count() == sum(len(v) for v in every.values())
    # The late part counts in the totals, not in its window's phase.
    for p in phases:
        view = metrics.view(phase=p)
        direct = fold(array("q", by_phase[p]))
        assert view.requests == len(by_phase[p]) == view.latency.get_total_count()
        assert list(view.latency.counts) == list(direct.counts)
    metrics.close()


def test_a_buffer_goes_through_the_wire_as_it_is() -> None:
    rec = Recorder(["op"])
    c = rec.counter("op")
    c.requests += 3
    c.lat.extend([5, 70_000, 3_600_000_001])
    (w,) = rec.rotate(1)
    wire = w.to_wire()
    assert isinstance(wire["latency"], bytes) and wire["service"] is None
    back = WindowStats.from_wire(wire)
    assert back.parts()[0] == (array("q", [5, 70_000, 3_600_000_001]),)
    assert list(back.latency.counts) == list(reference(array("q", [5, 70_000,
                                                                   3_600_000_001])).counts)


@pytest.mark.parametrize("lowest,highest,digits", [(1, HIGHEST_US, 3), (1, HIGHEST_US, 2),
                                                    (1000, 10**12, 3), (1, 10**9, 4)])
def test_bulk_indices_equal_hdrh_s_for_every_layout(lowest: int, highest: int,
                                                    digits: int) -> None:
    hist = Histogram(lowest, highest, digits)
    rng = random.Random(digits)
    powers = [2**k + d for k in range(1, highest.bit_length()) for d in (-1, 0, 1)]
    values = [v for v in (*range(1, 5000), *powers,
                          *(rng.randint(1, highest) for _ in range(5000))) if 1 <= v <= highest]
    mine = hist.indices(np.array(values, dtype=np.int64)).tolist()
    assert mine == [hist._counts_index_for(v) for v in values]
