"""The run's metrics: whole-run totals, a bounded ring of recent windows, and views over them.

Memory stays flat however long the run: totals are one merged histogram pair per op, and only
the windows that sliding rules need are kept.

Sealing stays cheap on the event loop: only counts are added up there. Everything about
latencies is done by one writer thread, in window order: folding the windows' buffers into
histograms, adding them to the whole-run and per-phase totals, the ring's compaction to sparse
counters, the window store with its encodings and percentiles. A reader on the loop that needs
the latencies of a window the writer has not finished yet folds that window's buffers itself
(all of them in one pass), into its own histogram; the totals' histograms, which the writer
adds to, are read as copies made under a lock. ``flush`` waits for the writer: after it, every
figure holds every window.

Views over the last seconds (live figures, heartbeats, sliding rules) read running sums: per
(ops, span) one histogram pair that each read brings up to date by adding the windows sealed
since and taking away those that left the span, so a read costs a few numpy additions whatever
the span or the number of ops, and decodes nothing.
"""

from __future__ import annotations

import functools
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

from enduro.observe.hist import (
    Histogram,
    HistogramPool,
    Sparse,
    decode,
    fold_arrays,
    new_histogram,
    percentiles_ms,
)
from enduro.observe.seal_writer import SealJobs
from enduro.observe.totals import Guarded, LatencyTotals
from enduro.observe.window import Part, WindowStats, fold_windows

if TYPE_CHECKING:
    from enduro.plan.models import Plan

__all__ = ["EVENT", "ITERATION", "REQUEST", "ROUND", "SPLIT", "MetricView", "Metrics",
           "op_kinds"]

# The kinds of figure an op holds. Only requests (what a server would see in its access log:
# http requests, flow steps, burst requests, SSE connects, python calls) are summed into the
# run's totals, heartbeats, phase and fault counts; the others are their own figures.
REQUEST = "request"
ITERATION = "iteration"  # a flow iteration, op <flow> (its steps are the requests)
ROUND = "round"  # a burst round, op <burst>:round
SPLIT = "split"  # burst responses that matched a split, op <burst>.<split> (a subset)
EVENT = "event"  # SSE events received, op <sse>:event


def op_kinds(plan: Plan) -> dict[str, str]:
    """The ops of ``plan`` that are not requests, with their kind (every other op is a
    request)."""
    out: dict[str, str] = {}
    for name, w in plan.workloads.items():
        if w.flow is not None:
            out[name] = ITERATION
            out.update({f"{name}.{s}:event": EVENT for s in w.flow.sse_steps()})
        elif w.burst is not None:
            out[f"{name}:round"] = ROUND
            out.update({f"{name}.{s}": SPLIT for s in w.burst.split})
        elif w.sse is not None:
            out[f"{name}:event"] = EVENT
    return out


class MetricView:
    """Merged figures over a set of windows and ops: what rules and reports read.

    Counts are summed at once; the latency histograms are merged only when read, since most
    rules need counts alone. A view of one histogram (a running sum, one window) reads that
    histogram itself: read a view, never change its histograms, and read a view over the
    last seconds before the next window is sealed. The whole run's and the phases' totals,
    which the writer thread adds to, are read as copies made under its lock; until ``flush``
    their latencies may lag their counts by the windows the writer has not finished.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.requests = 0
        self.errors = 0
        self.late = 0
        self.dropped = 0
        self.classes: dict[str, int] = {}
        self._lat_parts: list[Part | str | Guarded] = []
        self._svc_parts: list[Part | str | Guarded] = []
        self._lat: HdrHistogram | None = None
        self._svc: HdrHistogram | None = None
        # Where a view over a running sum takes its histograms from.
        self._source: _Running | None = None
        # recover_s / detect_s per fault kind, filled in at the end of a run with faults.
        self.fault_values: dict[str, dict[str, list[float]]] = {}
        # The run's store, for rules over resource samples, scrapes and trends.
        self.store: Any = None
        self.trend_details: dict[str, Any] = {}

    def add(self, w: WindowStats | CompactWindow) -> None:
        self.requests += w.requests
        self.errors += w.errors
        self.late += w.late
        self.dropped += w.dropped
        for cls, n in w.classes.items():
            self.classes[cls] = self.classes.get(cls, 0) + n
        if w.requests:
            lat, svc = w.parts()
            self._lat_parts.extend(lat)
            self._svc_parts.extend(svc)
        self._lat = self._svc = None
        self._sourced()

    def add_guarded(self, lat: Guarded, svc: Guarded) -> None:
        """Histograms another thread adds to (the totals): read as copies under their lock."""
        self._lat_parts.append(lat)
        self._svc_parts.append(svc)
        self._lat = self._svc = None

    def _sourced(self) -> None:
        """A view over a running sum that is added to: the sum becomes one of its parts."""
        source, self._source = self._source, None
        if source is not None:
            self._lat_parts.append(source.latency())
            self._svc_parts.append(source.service())

    @staticmethod
    def _merge(parts: list[Part | str | Guarded]) -> HdrHistogram:
        if len(parts) == 1 and isinstance(parts[0], Histogram):
            return parts[0]  # nothing to merge: read it (no copy of 188 KB)
        # Buffers not folded yet: all of them in one pass.
        out = fold_arrays([p for p in parts if isinstance(p, array)])
        for part in parts:
            if isinstance(part, array):
                continue
            if isinstance(part, str):
                if part:
                    out.add(decode(part))
            elif isinstance(part, Sparse):
                out.add_counts(part)
            elif isinstance(part, Guarded):
                part.add_to(out)
            elif part.get_total_count():
                out.add(part)
        return out

    @property
    def latency(self) -> HdrHistogram:
        if self._lat is None:
            self._lat = (self._source.latency() if self._source is not None
                         else self._merge(self._lat_parts))
        return self._lat

    @property
    def service(self) -> HdrHistogram:
        if self._svc is None:
            self._svc = (self._source.service() if self._source is not None
                         else self._merge(self._svc_parts))
        return self._svc

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def availability(self) -> float:
        return 1.0 - self.error_rate if self.requests else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "rps": round(self.rps, 2),
            "error_rate": round(self.error_rate, 6),
            "late": self.late,
            "dropped": self.dropped,
            "errors_by_class": dict(sorted(self.classes.items())),
            "latency_ms": percentiles_ms(self.latency),
            "service_time_ms": percentiles_ms(self.service),
        }


class CompactWindow:
    """A sealed window as the ring keeps it: counts, and latencies as their non-zero
    counters (a few KB instead of ~190 KB per histogram). Made on the loop holding the sealed
    window's pieces (buffers not folded yet); ``compact`` (on the writer thread, once it has
    folded them) swaps them for sparse counters. Readers take ``parts()``, which is one or
    the other whatever the interleaving: either holds the same counts."""

    __slots__ = ("_lat", "_src", "_svc", "classes", "dropped", "errors", "index", "late", "op",
                 "requests")

    def __init__(self, w: WindowStats) -> None:
        self.op, self.index = w.op, w.index
        self.requests, self.errors, self.late, self.dropped = (w.requests, w.errors, w.late,
                                                               w.dropped)
        self.classes = dict(w.classes)
        self._src: WindowStats | None = w if w.requests else None
        self._lat: tuple[Part, ...] = ()
        self._svc: tuple[Part, ...] = ()

    @classmethod
    def of(cls, w: WindowStats) -> CompactWindow:
        """A compacted window, at once."""
        out = cls(w)
        out.compact()
        return out

    def compact(self) -> None:
        """Keep the non-zero counters, let the window and its histograms go."""
        src = self._src
        if src is None:
            return
        lat, svc = src.histograms()
        lat_sparse = Sparse.of(lat) if lat is not None else None
        svc_sparse = Sparse.of(svc) if svc is not None else None
        self._lat = (lat_sparse,) if lat_sparse is not None else ()
        self._svc = (svc_sparse,) if svc_sparse is not None else ()
        self._src = None  # last: a reader sees the window or the counters, both complete

    def parts(self) -> tuple[tuple[Part, ...], tuple[Part, ...]]:
        """(latency, service): the window's pieces while it is held, else its sparse
        counters; empty where nothing was recorded."""
        src = self._src
        if src is not None:
            return src.parts()
        return self._lat, self._svc


class _Sealed:
    """One sealed window in the ring: each op's ``CompactWindow``, and the sum over its
    requests (counts at once, the histograms' sum once the writer thread has made it), which
    views over every request read instead of each op."""

    __slots__ = ("classes", "dropped", "errors", "late", "ops", "requests", "sums")

    def __init__(self, ops: dict[str, CompactWindow], kinds: Mapping[str, str]) -> None:
        self.ops = ops
        self.requests = self.errors = self.late = self.dropped = 0
        self.classes: dict[str, int] = {}
        for op, w in ops.items():
            if op in kinds:
                continue
            self.requests += w.requests
            self.errors += w.errors
            self.late += w.late
            self.dropped += w.dropped
            for cls, n in w.classes.items():
                self.classes[cls] = self.classes.get(cls, 0) + n
        # (latency, service) over the requests, set once by the writer thread.
        self.sums: tuple[Sparse | None, Sparse | None] | None = None

    def summed(self, kinds: Mapping[str, str]) -> None:
        """Make ``sums`` from the ops' parts (on the writer thread)."""
        out: list[Sparse | None] = []
        for k in (0, 1):
            parts = [p for op, w in self.ops.items() if op not in kinds for p in w.parts()[k]]
            if not parts:
                out.append(None)
                continue
            total = new_histogram()
            _add_parts(total, parts, 1)
            out.append(Sparse.of(total))
        self.sums = (out[0], out[1])


def _add_parts(hist: Histogram, parts: list[Part], sign: int) -> None:
    """Add (``sign`` 1) or take away (-1) pieces of windows: buffers not folded yet in one
    pass, histograms and sparse counters one by one."""
    raws = [p for p in parts if isinstance(p, array)]
    for part in parts:
        if not isinstance(part, array):
            hist.add_part(part, sign)
    if raws:
        if sign > 0:
            fold_arrays(raws, into=hist)
        else:
            hist.add_part(fold_arrays(raws), -1)


class _Sum:
    """A histogram that windows are added to and taken from."""

    __slots__ = ("hist",)

    def __init__(self) -> None:
        self.hist = new_histogram()

    def clear(self) -> None:
        self.hist.reset()

    def apply(self, parts: list[Part], sign: int) -> None:
        if parts:
            _add_parts(self.hist, parts, sign)


class _Running:
    """The sum of one set of ops over the last ``n`` sealed windows (``ops`` None: every
    request), brought up to date when read: the windows sealed since are added and those that
    left the span taken away, or (after a long gap) the span summed afresh. The service
    histogram is kept only once someone has read it."""

    __slots__ = ("classes", "dropped", "errors", "keep", "kinds", "lat", "late", "n", "ops",
                 "read_at", "requests", "ring", "svc", "upto")

    def __init__(self, ops: frozenset[str] | None, n: int, ring: dict[int, _Sealed],
                 kinds: Mapping[str, str], keep: int) -> None:
        self.ops = ops
        self.n = n
        self.ring, self.kinds, self.keep = ring, kinds, keep
        self.upto = -1  # the last window summed
        self.read_at = -1
        self.requests = self.errors = self.late = self.dropped = 0
        self.classes: dict[str, int] = {}
        self.lat = _Sum()
        self.svc: _Sum | None = None

    def latency(self) -> HdrHistogram:
        return self.lat.hist

    def service(self) -> HdrHistogram:
        if self.svc is None:
            self.svc = _Sum()
            self._resum(lat=False)
        return self.svc.hist

    def advance(self, upto: int) -> None:
        """Bring the sum up to window ``upto`` (the last sealed)."""
        n = self.n
        self.read_at = upto
        if upto == self.upto:
            return
        # Windows leave the ring once older than ``keep``: one that left the span may be gone
        # (then sum afresh), as after a gap longer than the span.
        if self.upto < 0 or upto - self.upto >= n or self.upto + 1 - n <= upto - self.keep:
            self.upto = upto
            self._resum(lat=True)
            return
        svc = self.svc is not None
        for index in range(self.upto + 1, upto + 1):
            self._apply(index, 1, True, svc)
            if index - n >= 0:
                self._apply(index - n, -1, True, svc)
        self.upto = upto

    def _resum(self, lat: bool) -> None:
        if lat:
            self.requests = self.errors = self.late = self.dropped = 0
            self.classes = {}
            self.lat.clear()
        if self.svc is not None:
            self.svc.clear()
        for index in range(max(0, self.upto - self.n + 1), self.upto + 1):
            self._apply(index, 1, lat, self.svc is not None)

    def _apply(self, index: int, sign: int, lat: bool, svc: bool) -> None:
        """Add (``sign`` 1) or take away (-1) window ``index``: its counts when ``lat``, its
        latency when ``lat``, its service time when ``svc``."""
        entry = self.ring.get(index)
        if entry is None:
            return
        if self.ops is None:
            sums = entry.sums
            if lat:
                self._count(entry, sign)
            if sums is not None:
                if lat and sums[0] is not None:
                    self.lat.apply([sums[0]], sign)
                if svc and self.svc is not None and sums[1] is not None:
                    self.svc.apply([sums[1]], sign)
                return
            windows = [w for op, w in entry.ops.items() if op not in self.kinds]
        else:
            windows = [w for op in self.ops if (w := entry.ops.get(op)) is not None]
        # Every op's pieces together: a window the writer has not folded yet is folded here
        # in one pass over all its buffers.
        lat_parts: list[Part] = []
        svc_parts: list[Part] = []
        for w in windows:
            if lat and self.ops is not None:
                self._count(w, sign)
            if not w.requests:
                continue
            parts = w.parts()
            lat_parts.extend(parts[0])
            svc_parts.extend(parts[1])
        if lat:
            self.lat.apply(lat_parts, sign)
        if svc and self.svc is not None:
            self.svc.apply(svc_parts, sign)

    def _count(self, w: CompactWindow | _Sealed, sign: int) -> None:
        self.requests += sign * w.requests
        self.errors += sign * w.errors
        self.late += sign * w.late
        self.dropped += sign * w.dropped
        for cls, n in w.classes.items():
            left = self.classes.get(cls, 0) + sign * n
            if left:
                self.classes[cls] = left
            else:
                self.classes.pop(cls, None)

    def view(self, seconds: float) -> MetricView:
        view = MetricView(seconds)
        view.requests, view.errors, view.late, view.dropped = (self.requests, self.errors,
                                                               self.late, self.dropped)
        view.classes = dict(self.classes)
        if self.requests:
            view._source = self
        return view


class Metrics:
    """Collects windows from one or many workers.

    Windows wait in ``pending`` (their pieces, mergeable) until every worker has passed them;
    sealing hands them to ``on_window`` and keeps them in a bounded ring, compressed.

    ``totals`` and ``phase_totals`` hold counts (added up on the calling thread); their
    latencies are added up by the writer thread and read through ``view``.
    """

    def __init__(self, window_s: float, keep_s: float = 900.0,
                 on_window: Callable[[int, list[WindowStats], str | None], None] | None = None,
                 kinds: Mapping[str, str] | None = None,
                 background: bool | None = None) -> None:
        self.window_s = window_s
        # op -> kind for the ops that are not requests (``op_kinds``); the rest are requests.
        self.kinds = {op: k for op, k in (kinds or {}).items() if k != REQUEST}
        self.keep = max(2, int(keep_s / window_s) + 2)
        self.totals: dict[str, WindowStats] = {}
        self._pending: dict[int, dict[str, WindowStats]] = {}
        self._ring: dict[int, _Sealed] = {}
        # Views over the last seconds, by (ops, windows): see ``_Running``.
        self._running: dict[tuple[frozenset[str] | None, int], _Running] = {}
        self._order: deque[int] = deque()
        self.latest = -1
        self.sealed = -1
        self.on_window = on_window
        # Phase labelling: set by the run when it has faults (see verdict.recovery).
        self.phase_of: Callable[[int, list[WindowStats]], str] | None = None
        self.phase_totals: dict[tuple[str, str], WindowStats] = {}
        self.phase_windows: dict[str, int] = {}
        self._noted: set[str] = set()
        # Finish sealed windows on a writer thread: always (True), never (False), or when
        # sealing runs on an event loop (None).
        self._jobs = SealJobs(background)
        # The totals' latencies: added to by the writer, read by views as copies.
        self._latency = LatencyTotals()
        # Histograms the windows are folded into, taken back once nothing refers to them
        # (the writer's alone).
        self.pool = HistogramPool()

    def add(self, windows: Iterable[WindowStats]) -> None:
        """Merge windows (from any worker, in any order) into the totals and pending slots.
        A window arriving after its index was sealed still counts in the totals."""
        late: list[WindowStats] = []
        for w in windows:
            total = self.totals.get(w.op)
            if total is None:
                total = self.totals[w.op] = WindowStats(op=w.op, index=-1)
            total.merge_counts(w)  # its latencies: by the writer, when the window is sealed
            self.latest = max(self.latest, w.index)
            if w.index <= self.sealed:
                late.append(w)
                continue
            slot = self._pending.setdefault(w.index, {})
            have = slot.get(w.op)
            if have is None:
                # The first part of a window is adopted as is (a copy of its counters, the
                # pieces shared): nothing is folded or copied here.
                slot[w.op] = w.adopt()
                continue
            have.merge(w)
        if late:
            self._jobs.run(functools.partial(self._latency.absorb_late, late))

    def seal(self, upto: int) -> None:
        """Declare windows up to ``upto`` complete: hand them to ``on_window``, keep them
        compressed in the ring, trim the ring to ``keep`` windows.

        On an event loop, folding, the totals' latencies, encoding, percentiles,
        compression and ``on_window`` run on the writer thread (in window order; ``flush``
        waits for them): the loop only adds counts (and reads each window's p99 for the phase
        labeller, when there is one)."""
        for index in sorted(i for i in self._pending if i <= upto):
            slot = self._pending.pop(index)
            phase = None
            if self.phase_of is not None:
                # Phases (and so fault detection and recovery) are judged on requests alone.
                phase = self.phase_of(index, [w for op, w in slot.items()
                                              if op not in self.kinds])
                self.phase_windows[phase] = self.phase_windows.get(phase, 0) + 1
                for op, w in slot.items():
                    total = self.phase_totals.get((phase, op))
                    if total is None:
                        total = self.phase_totals[(phase, op)] = WindowStats(op=op, index=-1)
                    total.merge_counts(w)
            windows = list(slot.values())
            entry = self._ring[index] = _Sealed({op: CompactWindow(w) for op, w in slot.items()},
                                                self.kinds)
            self._order.append(index)
            self._jobs.run(functools.partial(self._finish, index, windows, phase, entry))
        self.sealed = max(self.sealed, upto)
        while self._order and self._order[0] <= self.sealed - self.keep:
            self._ring.pop(self._order.popleft(), None)
        # A running sum nobody read for a while is let go (its reader is gone, or reads
        # seldom enough that summing afresh costs no more).
        stale = [key for key, r in self._running.items()
                 if self.sealed - r.read_at > max(2 * r.n, 30)]
        for key in stale:
            del self._running[key]

    def _finish(self, index: int, windows: list[WindowStats], phase: str | None,
                entry: _Sealed) -> None:
        """A sealed window's bookkeeping: its buffers folded, its latencies added to the
        totals (and its phase's), the ring's entries compacted to their non-zero counters,
        the sum over requests made, ``on_window`` told (the window store encodes and reads
        percentiles here, off the loop)."""
        self.pool.reclaim()
        fold_windows(windows, self.pool)
        self._latency.absorb(windows, phase)
        for cw in entry.ops.values():
            cw.compact()
        entry.summed(self.kinds)
        if self.on_window is not None:
            self.on_window(index, windows, phase)

    def _with_totals(self, view: MetricView, key: str | tuple[str, str],
                     w: WindowStats) -> None:
        """Add a total's counts to ``view``, and its latencies as copies made when read."""
        view.add(w)
        pair = self._latency.guarded(key)
        if pair is not None and w.requests:
            view.add_guarded(*pair)

    def flush(self, timeout: float = 60.0) -> BaseException | None:
        """Wait until every sealed window's bookkeeping is done (the window store is
        complete); the first error it met since the last flush, if any."""
        return self._jobs.flush(timeout)

    def close(self, timeout: float = 60.0) -> BaseException | None:
        """``flush``, then end the writer thread."""
        return self._jobs.close(timeout)

    def view(self, ops: set[str] | None = None, last_s: float | None = None,
             elapsed_s: float | None = None, phase: str | None = None) -> MetricView:
        """Merged figures for ``ops`` over the whole run, the last ``last_s`` seconds of sealed
        windows, or the windows of one ``phase``. ``elapsed_s`` is the run's length, for
        whole-run rates.

        ``ops`` None means every request (never flow iterations, burst rounds and splits or
        SSE events, which are figures of their own); a set that mixes requests with such
        figures (a workload's ops) means its requests; a set of such figures alone (``op=`` a
        flow) reads them."""
        ops = self._selected(ops)
        if phase is not None:
            view = MetricView(seconds=self.phase_windows.get(phase, 0) * self.window_s)
            for (p, op), w in self.phase_totals.items():
                if p == phase and (ops is None or op in ops):
                    self._with_totals(view, (p, op), w)
            return view
        if last_s is None:
            seconds = elapsed_s if elapsed_s is not None else (self.sealed + 1) * self.window_s
            view = MetricView(seconds=seconds)
            for op, w in self.totals.items():
                if ops is None or op in ops:
                    self._with_totals(view, op, w)
            return view
        n = max(1, round(last_s / self.window_s))
        seconds = min(n, self.sealed + 1) * self.window_s
        if self.sealed < 0:
            return MetricView(seconds=seconds)
        key = (frozenset(ops) if ops is not None else None, n)
        running = self._running.get(key)
        if running is None:
            running = self._running[key] = _Running(key[0], n, self._ring, self.kinds,
                                                    self.keep)
        running.advance(self.sealed)
        return running.view(seconds)

    def view_slow(self, ops: set[str] | None = None, last_s: float = 1.0) -> MetricView:
        """``view(ops, last_s=last_s)`` merged window by window (what the running sums must
        equal; for tests and benchmarks)."""
        ops = self._selected(ops)
        n = max(1, round(last_s / self.window_s))
        first = self.sealed - n + 1
        view = MetricView(seconds=min(n, self.sealed + 1) * self.window_s)
        for index in range(max(0, first), self.sealed + 1):
            entry = self._ring.get(index)
            for op, cw in (entry.ops.items() if entry is not None else ()):
                if ops is None or op in ops:
                    view.add(cw)
        return view

    def _selected(self, ops: set[str] | None) -> set[str] | None:
        kinds = self.kinds
        if not kinds:
            return ops
        if ops is None:
            # Every op of the ring, phases and pending windows is in the totals too.
            return {op for op in self.totals if op not in kinds}
        requests = {op for op in ops if op not in kinds}
        return requests if requests else ops

    def is_request(self, op: str) -> bool:
        """Whether ``op`` counts requests (not a flow iteration, burst round or split, SSE
        events)."""
        return op not in self.kinds

    def first_seen(self, cls: str) -> bool:
        """True the first time errors of class ``cls`` are in the totals (to say something
        about them once), False before and ever after."""
        if cls in self._noted or not any(w.classes.get(cls) for w in self.totals.values()):
            return False
        self._noted.add(cls)
        return True

    @property
    def ring_size(self) -> int:
        """Windows held in the ring (bounded by ``keep``)."""
        return len(self._ring)
