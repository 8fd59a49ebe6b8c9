"""Per-window recording on the hot path, and the frozen window summaries it hands out."""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from enduro.observe.hist import (
    Histogram,
    HistogramPool,
    decode,
    encode,
    fold,
    fold_many,
    new_histogram,
)

__all__ = ["GENERATOR", "UNFINISHED", "UNSAFE_VALUE", "OpCounter", "Recorder", "WindowStats"]

# Error classes the engine records beside the transport and response classes.
UNFINISHED = "unfinished"  # still unanswered when the run ended (after the grace)
GENERATOR = "generator"  # the load generator's own limit (open files, ports, buffers)
UNSAFE_VALUE = "unsafe_value"  # not sent: a value would have put CR/LF/controls on the wire


class OpCounter:
    """What one op did in the current window. Mutated on the hot path: plain slots only."""

    __slots__ = ("classes", "dropped", "errors", "lat", "late", "requests", "svc")

    def __init__(self) -> None:
        self.lat: array[int] = array("q")  # µs from the intended send time
        self.svc: array[int] = array("q")  # µs from the actual send time
        self.requests = 0
        self.errors = 0
        self.late = 0
        self.dropped = 0
        self.classes: dict[str, int] = {}

    def reset(self) -> None:
        # An idle op keeps its (empty) buffers: nothing is allocated for it per window.
        if self.lat:
            self.lat = array("q")
        if self.svc:
            self.svc = array("q")
        self.requests = self.errors = self.late = self.dropped = 0
        if self.classes:
            self.classes = {}

    @property
    def idle(self) -> bool:
        """Nothing was recorded in this window."""
        return not (self.requests or self.errors or self.late or self.dropped or self.lat
                    or self.svc or self.classes)

    def seal(self, op: str, index: int, latency: HdrHistogram | None = None,
             service: HdrHistogram | None = None) -> WindowStats:
        """This window's figures, with ``latency`` and ``service`` folded from the buffers
        by the caller (folded here when not given, only where values were recorded); the
        counter is then reset for the next window."""
        if latency is None and self.lat:
            latency = fold(self.lat)
        if service is None and self.svc:
            service = fold(self.svc)
        # The classes dict goes with the window (reset starts a new one); an empty one stays.
        stats = WindowStats(op, index, self.requests, self.errors, self.late, self.dropped,
                            self.classes or None, latency, service)
        self.reset()
        return stats

    def error(self, cls: str) -> None:
        self.errors += 1
        self.classes[cls] = self.classes.get(cls, 0) + 1

    def unfinished(self, intended: float, sent: float | None, now: float) -> None:
        """Count an operation still unanswered at the end of the run: an error of class
        ``unfinished`` whose latency is the time it waited so far (from ``intended``), and
        whose service time counts from ``sent`` (None: it never left the queue)."""
        self.requests += 1
        self.lat.append(max(0, int((now - intended) * 1_000_000)))
        if sent is not None:
            self.svc.append(max(0, int((now - sent) * 1_000_000)))
        self.error(UNFINISHED)


class WindowStats:
    """One op over one window: counts and latency histograms. Mergeable across workers.

    An idle op's window holds no histogram: they are made only when a value is recorded,
    merged in, or asked for (``latency``, ``service``)."""

    __slots__ = ("_latency", "_service", "classes", "dropped", "errors", "index", "late", "op",
                 "requests")

    def __init__(self, op: str, index: int, requests: int = 0, errors: int = 0, late: int = 0,
                 dropped: int = 0, classes: dict[str, int] | None = None,
                 latency: HdrHistogram | None = None,
                 service: HdrHistogram | None = None) -> None:
        self.op = op
        self.index = index
        self.requests = requests
        self.errors = errors
        self.late = late
        self.dropped = dropped
        self.classes: dict[str, int] = classes if classes is not None else {}
        self._latency = latency
        self._service = service

    def __repr__(self) -> str:
        return (f"WindowStats(op={self.op!r}, index={self.index}, requests={self.requests}, "
                f"errors={self.errors}, late={self.late}, dropped={self.dropped}, "
                f"classes={self.classes!r})")

    @property
    def latency(self) -> HdrHistogram:
        """Latency from the intended send time (µs); made empty on first read if none."""
        if self._latency is None:
            self._latency = new_histogram()
        return self._latency

    @latency.setter
    def latency(self, hist: HdrHistogram) -> None:
        self._latency = hist

    @property
    def service(self) -> HdrHistogram:
        """Service time from the actual send time (µs); made empty on first read if none."""
        if self._service is None:
            self._service = new_histogram()
        return self._service

    @service.setter
    def service(self, hist: HdrHistogram) -> None:
        self._service = hist

    def histograms(self) -> tuple[HdrHistogram | None, HdrHistogram | None]:
        """(latency, service) as held: None where nothing was recorded (nothing is made)."""
        return self._latency, self._service

    def adopt(self) -> WindowStats:
        """A copy of the counters that shares the histograms (no new histograms)."""
        return WindowStats(self.op, self.index, self.requests, self.errors, self.late,
                           self.dropped, dict(self.classes), self._latency, self._service)

    def merge(self, other: WindowStats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.late += other.late
        self.dropped += other.dropped
        for cls, n in other.classes.items():
            self.classes[cls] = self.classes.get(cls, 0) + n
        lat, svc = other._latency, other._service
        if lat is not None and lat.get_total_count():
            self.latency.add(lat)
        if svc is not None and svc.get_total_count():
            self.service.add(svc)

    def to_wire(self) -> dict[str, Any]:
        """A picklable form for the pipe from a worker: each histogram's non-zero counters
        as raw arrays (a few µs, where compressing costs ~60 µs per histogram)."""
        return {
            "op": self.op, "index": self.index, "requests": self.requests,
            "errors": self.errors, "late": self.late, "dropped": self.dropped,
            "classes": self.classes, "latency": _sparse(self._latency),
            "service": _sparse(self._service),
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> WindowStats:
        return cls(
            op=data["op"], index=data["index"], requests=data["requests"],
            errors=data["errors"], late=data["late"], dropped=data["dropped"],
            classes=dict(data["classes"]), latency=_unsparse(data["latency"]),
            service=_unsparse(data["service"]),
        )


def _sparse(hist: HdrHistogram | None) -> tuple[bytes, bytes, int, int] | str | None:
    """(indices, counts, min, max) of a histogram's non-zero counters; None when empty."""
    if hist is None or not hist.get_total_count():
        return None
    if not isinstance(hist, Histogram):
        return encode(hist)
    lo, hi = hist._span()
    where = np.flatnonzero(hist.np_counts[lo:hi])
    counts = hist.np_counts[lo:hi][where]
    return ((where + lo).astype(np.int32).tobytes(), counts.tobytes(), int(hist.min_value),
            int(hist.max_value))


def _unsparse(data: tuple[bytes, bytes, int, int] | str | None) -> Histogram | None:
    if data is None:
        return None
    if isinstance(data, str):
        return decode(data)
    index, counts, low, high = data
    hist = new_histogram()
    values = np.frombuffer(counts, dtype=np.int64)
    hist.np_counts[np.frombuffer(index, dtype=np.int32)] = values
    hist.total_count = int(values.sum())
    hist.min_value, hist.max_value = low, high
    return hist


class Recorder:
    """Counters for the current window of every op; ``rotate`` seals them into ``WindowStats``.

    The engine holds each op's ``OpCounter`` for the whole run (rotation resets it in place) and
    appends to it; nothing on that path allocates beyond the array growth.
    """

    def __init__(self, ops: list[str]) -> None:
        self.ops = list(ops)
        self.current: dict[str, OpCounter] = {op: OpCounter() for op in self.ops}
        self.index = 0
        self.pool = HistogramPool()

    def counter(self, op: str) -> OpCounter:
        return self.current[op]

    def rotate(self, next_index: int) -> list[WindowStats]:
        """Seal the current window (numbered ``self.index``) and start ``next_index``.

        Only ops that recorded something are in the list: an idle op costs nothing (no
        histograms, no buffers, no window). When every op was idle, the list holds one empty
        window of the first op, so that whoever collects windows sees the index pass."""
        index, self.index = self.index, next_index
        active = [(op, c) for op, c in self.current.items() if not c.idle]
        # Every buffer of the window folded in one pass, into histograms that earlier
        # windows no longer use; empty buffers give no histogram.
        self.pool.reclaim()
        buffers = [buf for _, c in active for buf in (c.lat, c.svc) if buf]
        folded = iter(fold_many(buffers, self.pool))
        out = [c.seal(op, index, next(folded) if c.lat else None,
                      next(folded) if c.svc else None) for op, c in active]
        if not out and self.ops:
            out.append(WindowStats(self.ops[0], index))
        return out
