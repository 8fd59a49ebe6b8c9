"""HDR histograms of latency in microseconds: creation, bulk folding, encoding for transfer.

``Histogram`` is hdrh's histogram with its bulk operations done by numpy over a view of the
same counts (hdrh walks its 23,552 counters in Python: ~2 ms per percentile lookup, ~1.5 ms
per reset, ~0.8 ms to fold a thousand values). Results are identical to hdrh's; the tests
compare them. A sealed histogram's encoding and percentiles are computed once and cached
(any change clears them), so whoever needs them first (the metrics' writer thread) pays.
"""

from __future__ import annotations

import sys
import weakref
from array import array
from collections.abc import Iterable
from typing import Any

import numpy as np
from hdrh.codec import HdrHistogramEncoder
from hdrh.histogram import HdrHistogram

__all__ = ["HIGHEST_US", "PERCENTILES", "Histogram", "HistogramPool", "Sparse", "decode", "encode",
           "fold", "fold_arrays", "fold_many", "new_histogram", "percentiles_ms", "prepare"]

# One hour in microseconds: a longer latency is clamped (and is an outage anyway).
HIGHEST_US = 3_600_000_000
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
_EMPTY_MS = {"p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}


class Histogram(HdrHistogram):  # type: ignore[misc]  # hdrh is untyped
    """An ``HdrHistogram`` whose counters are also a numpy array (``np_counts``, the same
    memory), with numpy percentiles, resets and merges, and cached encoding/percentiles."""

    def __init__(self, lowest: int, highest: int, digits: int,
                 hdr_payload: Any = None) -> None:
        super().__init__(lowest, highest, digits, hdr_payload=hdr_payload)
        # Signed, so that numpy adds bincounts without a cast (no count nears 2**63).
        self.np_counts: np.ndarray[Any, np.dtype[np.int64]] = np.ctypeslib.as_array(
            self.counts).view(np.int64)
        self._encoded: str | None = None
        self._pct: dict[str, float] | None = None
        # (min_value, max_value) -> (lo, hi, get_min_value(), get_max_value()): a pure
        # function of the two, computed by hdrh in Python (~6 µs), asked at every merge.
        self._ext: tuple[int, int, tuple[int, int, int, int]] | None = None
        # hdrh's histogram and its encoder refer to each other, so every histogram would be
        # a reference cycle that only the cyclic GC frees (~190 KB each, piling up between
        # full collections). A weak back reference lets reference counting free it at once.
        self.encoder.histogram = weakref.proxy(self)

    # -- changes clear the caches --------------------------------------------------------
    def record_value(self, value: int, count: int = 1) -> bool:
        self._encoded = self._pct = None
        return bool(super().record_value(value, count))

    def reset(self) -> None:
        self._encoded = self._pct = None
        lo, hi = self._span()  # every count lies in it: min and max are kept by all writers
        self.np_counts[lo:hi] = 0
        self.total_count = 0
        self.min_value = sys.maxsize  # hdrh's "none yet"
        self.max_value = 0
        self.start_time_stamp_msec = sys.maxsize
        self.end_time_stamp_msec = 0

    def _span(self) -> tuple[int, int]:
        """The index range [lo, hi) that holds every recorded value."""
        if not self.total_count:
            return 0, 0
        ext = self._extent()
        return ext[0], ext[1]

    def _extent(self) -> tuple[int, int, int, int]:
        """(lo, hi, min, max) of a non-empty histogram: ``_span`` and hdrh's
        ``get_min_value``/``get_max_value``, remembered for the current min and max."""
        low, high = self.min_value, self.max_value
        cached = self._ext
        if cached is not None and cached[0] == low and cached[1] == high:
            return cached[2]
        lo = self.get_counts_array_index(low) if low <= high else 0
        out = (lo, self.get_counts_array_index(high) + 1, int(super().get_min_value()),
               int(super().get_max_value()))
        self._ext = (low, high, out)
        return out

    def add(self, other: HdrHistogram) -> None:
        self._encoded = self._pct = None
        if not (isinstance(other, Histogram) and self._same_layout(other)):
            super().add(other)
            return
        if other.total_count:
            lo, hi, other_min, other_max = other._extent()
            # hdrh's get_min_value() of this histogram once it holds the other's counts.
            own_min = self._extent()[2] if self.total_count else sys.maxsize
            view = self.np_counts[lo:hi]
            view += other.np_counts[lo:hi]
            self.total_count += other.total_count
            # As hdrh does: the other's extremes as their bucket's equivalent values.
            self.max_value = max(self.max_value, other_max)
            self.min_value = min(own_min, other_min)
        self.start_time_stamp_msec = min(self.start_time_stamp_msec,
                                         other.start_time_stamp_msec)
        self.end_time_stamp_msec = max(self.end_time_stamp_msec, other.end_time_stamp_msec)

    def add_part(self, part: HdrHistogram | Sparse, sign: int = 1) -> None:
        """Add (or with ``sign`` -1 take away) a histogram or sparse counts that were added."""
        if isinstance(part, Sparse):
            self.add_counts(part, sign)
        elif sign > 0:
            self.add(part)
        elif isinstance(part, Histogram) and self._same_layout(part):
            if part.total_count:
                self._encoded = self._pct = None
                lo, hi = part._span()
                view = self.np_counts[lo:hi]
                view -= part.np_counts[lo:hi]
                self.total_count -= part.total_count
                self.extremes_from_counts(lo, hi)
        else:
            sparse = Sparse.of(part)
            if sparse is not None:
                self.add_counts(sparse, -1)

    def add_counts(self, part: Sparse, sign: int = 1) -> None:
        """Add (or with ``sign`` -1 subtract) sparse counts; min and max become the extremes
        of the non-zero counters, as ``add`` would leave them."""
        self._encoded = self._pct = None
        part.add_to(self.np_counts, sign)
        self.total_count += sign * part.total
        if sign > 0 and self.total_count == part.total:
            self.min_value = self.get_value_from_index(part.lo)
            self.max_value = self.get_value_from_index(part.hi - 1)
        elif sign > 0:
            self.min_value = min(self.min_value, self.get_value_from_index(part.lo))
            self.max_value = max(self.max_value, self.get_value_from_index(part.hi - 1))
        else:
            self.extremes_from_counts(part.lo, part.hi)

    def extremes_from_counts(self, lo: int = 0, hi: int | None = None) -> None:
        """Set min and max from the non-zero counters after counts were taken away (``lo`` ..
        ``hi``: where they were taken from; the extremes move only when they were there)."""
        if not self.total_count:
            self.min_value, self.max_value = sys.maxsize, 0
            return
        first = self.get_counts_array_index(self.min_value) if self.min_value <= \
            self.max_value else 0
        last = self.get_counts_array_index(self.max_value)
        hi = len(self.np_counts) if hi is None else hi
        if first >= lo and self.np_counts[first] == 0:
            first += int(np.argmax(self.np_counts[first:] != 0))
            self.min_value = self.get_value_from_index(first)
        if last < hi and self.np_counts[last] == 0:
            last -= int(np.argmax(self.np_counts[last::-1] != 0))
            self.max_value = self.get_value_from_index(last)

    def _same_layout(self, other: Histogram) -> bool:
        return bool(self.counts_len == other.counts_len and self.unit_magnitude ==
                    other.unit_magnitude and self.sub_bucket_count == other.sub_bucket_count
                    and self.word_size == other.word_size)

    # -- bulk recording ------------------------------------------------------------------
    def indices(self, values: np.ndarray[Any, np.dtype[np.int64]]
                ) -> np.ndarray[Any, np.dtype[np.int64]]:
        """hdrh's ``_counts_index_for`` of each value (1 .. highest), vectorised.

        A value's index is its bucket (its bit length, less the sub-bucket bits) times the
        half count, plus its top sub-bucket bits; both are float64's exponent and leading
        mantissa bits, exact for values below 2**53: one shift of the float's bits. Values
        below the half count are their own index."""
        half_mag = self.sub_bucket_half_count_magnitude
        scaled = values >> self.unit_magnitude if self.unit_magnitude else values
        bits = scaled.astype(np.float64).view(np.int64) >> (52 - half_mag)
        bits -= (1022 + half_mag) << half_mag
        index: np.ndarray[Any, np.dtype[np.int64]] = np.where(
            scaled < self.sub_bucket_half_count, scaled, bits)
        return index

    def record_many(self, values: np.ndarray[Any, np.dtype[np.int64]],
                    index: np.ndarray[Any, np.dtype[np.int64]] | None = None,
                    low: int | None = None, high: int | None = None,
                    first: int | None = None) -> None:
        """Record each value of an int64 array (all within 1 .. highest) once; ``index``,
        ``low``, ``high`` and ``first`` are the values' indices, minimum, maximum and lowest
        index when known."""
        if not len(values):
            return
        self._encoded = self._pct = None
        if index is None:
            index = self.indices(values)
        lo = int(index.min()) if first is None else first
        counts = np.bincount(index - lo)
        view = self.np_counts[lo:lo + len(counts)]
        view += counts
        self.total_count += len(values)
        self.min_value = min(self.min_value, int(values.min()) if low is None else low)
        self.max_value = max(self.max_value, int(values.max()) if high is None else high)

    # -- reading -------------------------------------------------------------------------
    def _values_at(self, percentiles: tuple[float, ...]) -> list[int]:
        hi = self._span()[1]
        cum = np.cumsum(self.np_counts[:hi])
        if not len(cum) or int(cum[-1]) < self.total_count:
            # Counts set behind our back (min/max not kept): read them all.
            cum = np.cumsum(self.np_counts)
        # hdrh's walk: the first index whose running count reaches the target count
        # (hdrh's get_target_count_at_percentile, inline).
        total = self.total_count
        targets = [max(int(min(p, 100.0) * total / 100 + 0.5), 1) for p in percentiles]
        found = np.searchsorted(cum, targets, side="left").tolist()
        # hdrh's get_value_from_index and equivalent values, inline: the value at index i is
        # sub << (bucket + unit), and its bucket spans 1 << (bucket + unit) values.
        half_mag, half, unit = (self.sub_bucket_half_count_magnitude, self.sub_bucket_half_count,
                                self.unit_magnitude)
        out = []
        for p, i in zip(percentiles, found, strict=True):
            if i >= len(cum):
                out.append(0)
                continue
            bucket = (i >> half_mag) - 1
            sub = (i & (half - 1)) + half
            if bucket < 0:
                sub -= half
                bucket = 0
            shift = bucket + unit
            value = sub << shift
            out.append(value + (1 << shift) - 1 if p else value)
        return out

    def get_value_at_percentile(self, percentile: float) -> int:
        return self._values_at((percentile,))[0]

    def get_mean_value(self) -> float:
        """hdrh's mean (each count at the middle of its bucket's equivalent range), by
        index arithmetic over the recorded span: hdrh walks its counters in Python (~10 ms a
        histogram), too slow for rules judged while the run goes."""
        if not self.total_count:
            return 0.0
        lo, hi = self._span()
        counts = self.np_counts[lo:hi]
        if int(counts.sum()) < self.total_count:
            lo, hi, counts = 0, self.counts_len, self.np_counts  # counts set behind our back
        index = np.arange(lo, hi, dtype=np.int64)
        bucket = (index >> self.sub_bucket_half_count_magnitude) - 1
        sub = (index & (self.sub_bucket_half_count - 1)) + self.sub_bucket_half_count
        first = bucket < 0
        sub[first] -= self.sub_bucket_half_count
        bucket[first] = 0
        shift = bucket + self.unit_magnitude
        middle = (sub << shift) + ((np.int64(1) << shift) >> 1)
        # Summed as Python integers, exactly as hdrh does (int64 products, not their sum).
        total = sum((counts * middle)[counts != 0].tolist())
        return float(total) / self.total_count

    def percentiles_ms(self) -> dict[str, float]:
        """p50 .. p999 and max in ms, computed once while the histogram is unchanged."""
        if self._pct is None:
            if not self.total_count:
                self._pct = dict(_EMPTY_MS)
            else:
                values = self._values_at(PERCENTILES)
                out = {("p999" if p == 99.9 else f"p{int(p)}"): round(v / 1000.0, 3)
                       for p, v in zip(PERCENTILES, values, strict=True)}
                out["max"] = round(self.get_max_value() / 1000.0, 3)
                self._pct = out
        return dict(self._pct)

    def encoded(self) -> str:
        """The compressed text form, computed once while the histogram is unchanged."""
        if self._encoded is None:
            raw = self.encode()
            self._encoded = raw.decode("ascii") if isinstance(raw, bytes) else str(raw)
        return self._encoded


def counts_of(hist: HdrHistogram) -> np.ndarray[Any, np.dtype[np.int64]]:
    """A histogram's counters as a numpy array (the same memory for a ``Histogram``)."""
    if isinstance(hist, Histogram):
        return hist.np_counts
    return np.ctypeslib.as_array(hist.counts).astype(np.int64)


class Sparse:
    """A histogram's non-zero counters: their indices and counts (a few KB, where the
    histogram is 188 KB), as the ring of recent windows keeps them. Summed into another
    histogram's counters by one numpy operation, with nothing to decode."""

    __slots__ = ("counts", "hi", "index", "lo", "total")

    def __init__(self, index: np.ndarray[Any, np.dtype[np.intp]],
                 counts: np.ndarray[Any, np.dtype[np.int64]], total: int) -> None:
        self.index = index  # ascending, each once
        self.counts = counts
        self.total = total
        self.lo = int(index[0]) if len(index) else 0
        self.hi = int(index[-1]) + 1 if len(index) else 0

    @classmethod
    def of(cls, hist: HdrHistogram) -> Sparse | None:
        """The non-zero counters of ``hist``; None when it is empty."""
        if not hist.get_total_count():
            return None
        counts = counts_of(hist)
        lo, hi = hist._span() if isinstance(hist, Histogram) else (0, len(counts))
        view = counts[lo:hi]
        # A boolean mask first: flatnonzero of int64 counters is several times slower.
        where = np.flatnonzero(view != 0)
        return cls(where + lo, view[where], int(hist.get_total_count()))

    @classmethod
    def of_counts(cls, counts: np.ndarray[Any, np.dtype[np.int64]]) -> Sparse | None:
        """The non-zero entries of a counters array; None when there are none."""
        where = np.flatnonzero(counts != 0)
        if not len(where):
            return None
        values = counts[where]
        return cls(where, values, int(values.sum()))

    def add_to(self, counts: np.ndarray[Any, np.dtype[np.int64]], sign: int = 1) -> None:
        """Add (``sign`` 1) or subtract (-1) these counts into a counters array."""
        if sign > 0:
            counts[self.index] += self.counts
        else:
            counts[self.index] -= self.counts

    def histogram(self) -> Histogram:
        """A new histogram holding these counts."""
        hist = new_histogram()
        hist.add_counts(self)
        return hist


def new_histogram() -> Histogram:
    """An empty histogram with 3 significant digits over 1 µs .. 1 h."""
    return Histogram(1, HIGHEST_US, 3)


def fold(values: array[int], into: HdrHistogram | None = None) -> Histogram:
    """Record a buffer of microsecond values into a histogram (a new one by default).

    The hot path appends to a plain ``array('q')``; folding once per window is one numpy pass
    (~30 µs per thousand values), where recording each value would cost ~1.7 µs apiece.
    """
    hist: Histogram = into if into is not None else new_histogram()
    if not values:
        return hist
    arr = np.minimum(np.maximum(np.frombuffer(values, dtype=np.int64), 1), HIGHEST_US)
    if isinstance(hist, Histogram):
        hist.record_many(arr)
        return hist
    uniq, counts = np.unique(arr, return_counts=True)  # a plain hdrh histogram
    for value, count in zip(uniq.tolist(), counts.tolist(), strict=True):
        hist.record_value(value, count)
    return hist


def fold_arrays(buffers: Iterable[array[int]], into: Histogram | None = None) -> Histogram:
    """``fold`` of several buffers into one histogram (a new one by default) in one numpy
    pass: what a reader of windows not folded yet does with all of them at once."""
    hist = into if into is not None else new_histogram()
    parts = [np.frombuffer(b, dtype=np.int64) for b in buffers if b]
    if not parts:
        return hist
    values = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
    np.clip(values, 1, HIGHEST_US, out=values)
    hist.record_many(values)
    return hist


class HistogramPool:
    """Histograms handed out for windows and taken back once nothing refers to them.

    A fresh histogram is 188 KB of zeroed memory: with a hundred made per window, the page
    faults alone cost ~20 ms. ``reclaim`` (once per window) takes back every histogram handed
    out whose only references are the pool's own, which reference counting tells exactly
    (whoever still reads a window, on any thread, holds a reference)."""

    def __init__(self, keep: int = 1024) -> None:
        self._out: list[Histogram] = []
        self._free: list[Histogram] = []
        self._keep = keep
        probe = [new_histogram()]
        self._base = self._count(probe)[0]  # references held by the pool alone

    @staticmethod
    def _count(hists: list[Histogram]) -> list[int]:
        return [sys.getrefcount(h) for h in hists]

    def acquire(self) -> Histogram:
        """An empty histogram: a reclaimed one when there is one."""
        hist = self._free.pop() if self._free else new_histogram()
        self._out.append(hist)
        return hist

    def reclaim(self) -> int:
        """Take back the histograms nobody else refers to; how many there were."""
        out, base = self._out, self._base
        counts = self._count(out)
        self._out = [h for h, n in zip(out, counts, strict=True) if n > base]
        taken = 0
        for h, n in zip(out, counts, strict=True):
            if n <= base and len(self._free) < self._keep:
                h.reset()
                self._free.append(h)
                taken += 1
        return taken

    @property
    def made(self) -> int:
        """Histograms this pool holds or has handed out."""
        return len(self._out) + len(self._free)


# Values folded by one numpy pass in ``fold_many``: enough that numpy's ~1 µs per call is
# spread over many values, few enough that the pass's temporaries stay in the cache.
_GROUP = 8192


def fold_many(buffers: list[array[int]], pool: HistogramPool | None = None) -> list[Histogram]:
    """``fold`` of each buffer into a new histogram (from ``pool`` when given).

    Buffers are taken in groups of about ``_GROUP`` values: each group's indices, minima and
    maxima are computed by one numpy pass over the group, then each buffer's counters are
    one ``bincount`` of its slice (one pass over everything was slower: its temporaries
    leave the cache; one pass per buffer pays numpy's per-call cost a dozen times each)."""
    out = [pool.acquire() if pool is not None else new_histogram() for _ in buffers]
    start = 0
    while start < len(buffers):
        end, size = start, 0
        while end < len(buffers) and (end == start or size + len(buffers[end]) <= _GROUP):
            size += len(buffers[end])
            end += 1
        _fold_group(buffers[start:end], out[start:end])
        start = end
    return out


def _fold_group(buffers: list[array[int]], hists: list[Histogram]) -> None:
    sizes = [len(b) for b in buffers]
    if not any(sizes):
        return
    values = np.concatenate([np.frombuffer(b, dtype=np.int64) for b in buffers if b])
    np.clip(values, 1, HIGHEST_US, out=values)
    index = hists[0].indices(values)
    bounds = np.cumsum([0, *(n for n in sizes if n)])
    starts = bounds[:-1]
    lows = np.minimum.reduceat(values, starts).tolist()
    highs = np.maximum.reduceat(values, starts).tolist()
    firsts = np.minimum.reduceat(index, starts).tolist()
    k = 0
    for hist, n in zip(hists, sizes, strict=True):
        if not n:
            continue
        a, b = int(bounds[k]), int(bounds[k + 1])
        hist.record_many(values[a:b], index[a:b], lows[k], highs[k], firsts[k])
        k += 1


def encode(hist: HdrHistogram) -> str:
    """A compact text form (HdrHistogram's compressed base64) for pipes, files and SQLite."""
    if isinstance(hist, Histogram):
        return hist.encoded()
    raw = hist.encode()
    return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)


def decode(text: str) -> Histogram:
    """The histogram encoded by ``encode``."""
    if not text:
        return new_histogram()
    payload = HdrHistogramEncoder.decode(text, True)
    head = payload.payload
    hist = Histogram(head.lowest_trackable_value, head.highest_trackable_value,
                     head.significant_figures, hdr_payload=payload)
    hist._encoded = text
    return hist


def percentiles_ms(hist: HdrHistogram) -> dict[str, float]:
    """p50, p90, p95, p99, p999 and max in milliseconds (0 for an empty histogram)."""
    if isinstance(hist, Histogram):
        return hist.percentiles_ms()
    if hist.get_total_count() == 0:
        return dict(_EMPTY_MS)
    out = {}
    for p in PERCENTILES:
        key = "p999" if p == 99.9 else f"p{int(p)}"
        out[key] = round(hist.get_value_at_percentile(p) / 1000.0, 3)
    out["max"] = round(hist.get_max_value() / 1000.0, 3)
    return out


def prepare(hist: HdrHistogram) -> None:
    """Compute and cache what readers of a sealed histogram ask for (its encoding and
    percentiles), off the event loop."""
    if isinstance(hist, Histogram) and hist.total_count:
        hist.encoded()
        hist.percentiles_ms()
