"""Per-window recording on the hot path, and the frozen window summaries it hands out.

Rotating a window on the engine's loop folds nothing: each op's buffers of latencies go with
its sealed window as they are, and are folded into histograms when first needed, which is on
the metrics' writer thread (``fold_windows``) unless a reader on the loop asks sooner.
"""

from __future__ import annotations

from array import array
from typing import Any, TypeAlias

import numpy as np
from hdrh.histogram import HdrHistogram

from enduro.observe.hist import (
    Histogram,
    HistogramPool,
    Sparse,
    decode,
    encode,
    fold_arrays,
    fold_many,
    new_histogram,
)

__all__ = ["GENERATOR", "UNFINISHED", "UNSAFE_VALUE", "OpCounter", "Part", "Recorder",
           "WindowStats", "fold_windows"]

# A piece of a window's latency or service time: a histogram, the non-zero counters of one,
# or microsecond values not folded yet (an op's buffer from the hot path). Pieces are never
# changed once handed out, so any thread may read them.
Part: TypeAlias = "HdrHistogram | Sparse | array[int]"

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

    def seal(self, op: str, index: int) -> WindowStats:
        """This window's figures, holding the buffers themselves (folded when first needed);
        the counter starts new buffers for the next window."""
        # The classes dict and the buffers go with the window (reset starts new ones); an
        # idle op's empty ones stay.
        stats = WindowStats(op, index, self.requests, self.errors, self.late, self.dropped,
                            self.classes or None, raw=(self.lat, self.svc))
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

    The latency and service time are held as pieces (``Part``): the hot path's buffers, a
    worker's histograms, several of them after a merge. They are folded into one histogram
    when first read (``latency``, ``service``, ``histograms``) or by ``fold_windows``; an idle
    op's window holds none and makes one only when asked."""

    __slots__ = ("_lat", "_svc", "classes", "dropped", "errors", "index", "late", "op",
                 "requests")

    def __init__(self, op: str, index: int, requests: int = 0, errors: int = 0, late: int = 0,
                 dropped: int = 0, classes: dict[str, int] | None = None,
                 latency: HdrHistogram | None = None,
                 service: HdrHistogram | None = None,
                 raw: tuple[array[int], array[int]] | None = None) -> None:
        self.op = op
        self.index = index
        self.requests = requests
        self.errors = errors
        self.late = late
        self.dropped = dropped
        self.classes: dict[str, int] = classes if classes is not None else {}
        # Tuples, replaced and never changed in place: a reader on another thread sees the
        # pieces before or after a fold, each complete.
        self._lat: tuple[Part, ...] = (latency,) if latency is not None else ()
        self._svc: tuple[Part, ...] = (service,) if service is not None else ()
        if raw is not None:
            if raw[0]:
                self._lat += (raw[0],)
            if raw[1]:
                self._svc += (raw[1],)

    def __repr__(self) -> str:
        return (f"WindowStats(op={self.op!r}, index={self.index}, requests={self.requests}, "
                f"errors={self.errors}, late={self.late}, dropped={self.dropped}, "
                f"classes={self.classes!r})")

    @property
    def latency(self) -> HdrHistogram:
        """Latency from the intended send time (µs); made empty on first read if none."""
        hist = _one(self._lat)
        if hist is None:
            hist = new_histogram()
        self._lat = (hist,)
        return hist

    @latency.setter
    def latency(self, hist: HdrHistogram) -> None:
        self._lat = (hist,)

    @property
    def service(self) -> HdrHistogram:
        """Service time from the actual send time (µs); made empty on first read if none."""
        hist = _one(self._svc)
        if hist is None:
            hist = new_histogram()
        self._svc = (hist,)
        return hist

    @service.setter
    def service(self, hist: HdrHistogram) -> None:
        self._svc = (hist,)

    def histograms(self) -> tuple[HdrHistogram | None, HdrHistogram | None]:
        """(latency, service), folded: None where nothing was recorded (nothing is made)."""
        lat, svc = _one(self._lat), _one(self._svc)
        if lat is not None:
            self._lat = (lat,)
        if svc is not None:
            self._svc = (svc,)
        return lat, svc

    def parts(self) -> tuple[tuple[Part, ...], tuple[Part, ...]]:
        """(latency, service) as held, folded or not: for readers that merge windows, which
        fold every buffer they meet in one pass."""
        return self._lat, self._svc

    @property
    def folded(self) -> bool:
        """Each of latency and service is one histogram, or nothing."""
        return len(self._lat) <= 1 and len(self._svc) <= 1 and not any(
            isinstance(p, array) for p in (*self._lat, *self._svc))

    def adopt(self) -> WindowStats:
        """A copy of the counters that shares the pieces (no new histograms)."""
        out = WindowStats(self.op, self.index, self.requests, self.errors, self.late,
                          self.dropped, dict(self.classes))
        out._lat, out._svc = self._lat, self._svc
        return out

    def merge_counts(self, other: WindowStats) -> None:
        """Add ``other``'s counts (not its latencies)."""
        self.requests += other.requests
        self.errors += other.errors
        self.late += other.late
        self.dropped += other.dropped
        for cls, n in other.classes.items():
            self.classes[cls] = self.classes.get(cls, 0) + n

    def merge(self, other: WindowStats) -> None:
        """Add ``other``'s counts and latencies (its pieces join these: nothing is folded or
        added up until read)."""
        self.merge_counts(other)
        if other._lat:
            self._lat += other._lat
        if other._svc:
            self._svc += other._svc

    def to_wire(self) -> dict[str, Any]:
        """A picklable form for the pipe from a worker: buffers not folded yet as their raw
        bytes (the runner folds them off its loop), a histogram as its non-zero counters (a
        few µs, where compressing costs ~60 µs per histogram)."""
        return {
            "op": self.op, "index": self.index, "requests": self.requests,
            "errors": self.errors, "late": self.late, "dropped": self.dropped,
            "classes": self.classes, "latency": _wire(self._lat),
            "service": _wire(self._svc),
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> WindowStats:
        out = cls(
            op=data["op"], index=data["index"], requests=data["requests"],
            errors=data["errors"], late=data["late"], dropped=data["dropped"],
            classes=dict(data["classes"]))
        out._lat = _unwire(data["latency"])
        out._svc = _unwire(data["service"])
        return out


def _one(parts: tuple[Part, ...]) -> HdrHistogram | None:
    """The pieces as one histogram: the piece itself when it is one histogram, else a new
    histogram holding them all (the pieces are left as they are); None when there are none."""
    if not parts:
        return None
    if len(parts) == 1 and isinstance(parts[0], HdrHistogram):
        return parts[0]
    hist = fold_arrays([p for p in parts if isinstance(p, array)])
    _add_pieces(hist, parts)
    return hist


def _add_pieces(hist: Histogram, parts: tuple[Part, ...]) -> None:
    """Add the pieces that are not buffers into ``hist``."""
    for p in parts:
        if isinstance(p, Sparse):
            hist.add_counts(p)
        elif isinstance(p, HdrHistogram) and p.get_total_count():
            hist.add(p)


def fold_windows(windows: list[WindowStats], pool: HistogramPool | None = None) -> None:
    """Fold every window's pieces into one histogram each: all the buffers in one pass
    (``fold_many``), into histograms from ``pool``. The writer thread's part of a seal."""
    jobs: list[tuple[WindowStats, int, tuple[Part, ...]]] = []
    buffers: list[array[int]] = []
    for w in windows:
        for k, parts in ((0, w._lat), (1, w._svc)):
            raws = [p for p in parts if isinstance(p, array)]
            if not raws and len(parts) <= 1:
                continue  # one histogram or nothing: folded already
            jobs.append((w, k, parts))
            # Several buffers of one window (from several workers) are folded as one.
            buffers.append(raws[0] if len(raws) == 1 else array("q", b"".join(
                r.tobytes() for r in raws)))
    hists = fold_many(buffers, pool)
    for (w, k, parts), hist in zip(jobs, hists, strict=True):
        _add_pieces(hist, parts)
        if k == 0:
            w._lat = (hist,)
        else:
            w._svc = (hist,)


def _wire(parts: tuple[Part, ...]) -> tuple[bytes, bytes, int, int] | bytes | str | None:
    """One window's latency or service time for the pipe: the raw bytes of its buffer when
    it holds only buffers, else the non-zero counters of its histogram; None when empty."""
    if not parts:
        return None
    if all(isinstance(p, array) for p in parts):
        data = b"".join(p.tobytes() for p in parts if isinstance(p, array))
        return data or None
    return _sparse(_one(parts))


def _unwire(data: tuple[bytes, bytes, int, int] | bytes | str | None) -> tuple[Part, ...]:
    if isinstance(data, bytes):
        values = array("q")
        values.frombytes(data)
        return (values,)
    hist = _unsparse(data)
    return (hist,) if hist is not None else ()


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
    appends to it; nothing on that path allocates beyond the array growth, and rotation folds
    nothing (the buffers go with the windows).
    """

    def __init__(self, ops: list[str]) -> None:
        self.ops = list(ops)
        self.current: dict[str, OpCounter] = {op: OpCounter() for op in self.ops}
        self.index = 0

    def counter(self, op: str) -> OpCounter:
        return self.current[op]

    def rotate(self, next_index: int) -> list[WindowStats]:
        """Seal the current window (numbered ``self.index``) and start ``next_index``.

        Only ops that recorded something are in the list: an idle op costs nothing (no
        histograms, no buffers, no window). When every op was idle, the list holds one empty
        window of the first op, so that whoever collects windows sees the index pass."""
        index, self.index = self.index, next_index
        out = [c.seal(op, index) for op, c in self.current.items() if not c.idle]
        if not out and self.ops:
            out.append(WindowStats(self.ops[0], index))
        return out
