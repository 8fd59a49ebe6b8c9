"""The run's metrics: whole-run totals, a bounded ring of recent windows, and views over them.

Memory stays flat however long the run: totals are one merged histogram pair per op, and only
the windows that sliding rules need are kept.

Sealing stays cheap on the event loop: counts and histogram merges (numpy, a few µs each) are
done there, and the rest of a sealed window's bookkeeping (its encoding, percentiles, the ring's
compression and the window store) is finished by one writer thread, in order.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

from enduro.observe.hist import decode, encode, new_histogram, percentiles_ms, prepare
from enduro.observe.window import WindowStats

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
        elif w.burst is not None:
            out[f"{name}:round"] = ROUND
            out.update({f"{name}.{s}": SPLIT for s in w.burst.split})
        elif w.sse is not None:
            out[f"{name}:event"] = EVENT
    return out


class MetricView:
    """Merged figures over a set of windows and ops: what rules and reports read.

    Counts are summed at once; the latency histograms are merged only when read, since most
    rules need counts alone and the ring holds histograms in their compressed form.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.requests = 0
        self.errors = 0
        self.late = 0
        self.dropped = 0
        self.classes: dict[str, int] = {}
        self._lat_parts: list[HdrHistogram | str] = []
        self._svc_parts: list[HdrHistogram | str] = []
        self._lat: HdrHistogram | None = None
        self._svc: HdrHistogram | None = None
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
            lat, svc = w.histograms() if isinstance(w, WindowStats) else w.parts()
            if lat is not None:
                self._lat_parts.append(lat)
            if svc is not None:
                self._svc_parts.append(svc)
        self._lat = self._svc = None

    @staticmethod
    def _merge(parts: list[HdrHistogram | str]) -> HdrHistogram:
        out = new_histogram()
        for part in parts:
            if isinstance(part, str):
                if part:
                    out.add(decode(part))
            elif part.get_total_count():
                out.add(part)
        return out

    @property
    def latency(self) -> HdrHistogram:
        if self._lat is None:
            self._lat = self._merge(self._lat_parts)
        return self._lat

    @property
    def service(self) -> HdrHistogram:
        if self._svc is None:
            self._svc = self._merge(self._svc_parts)
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
    """A sealed window as the ring keeps it: counts, and histograms compressed (~2 KB
    instead of ~190 KB each). Made on the loop holding the histograms; ``compact`` (on the
    writer thread) swaps them for their encodings. Readers take ``parts()``, which is one or
    the other whatever the interleaving: the encoding is set before the histogram is let go."""

    __slots__ = ("_lat", "_svc", "classes", "dropped", "errors", "index", "late", "latency_enc",
                 "op", "requests", "service_enc")

    def __init__(self, w: WindowStats) -> None:
        self.op, self.index = w.op, w.index
        self.requests, self.errors, self.late, self.dropped = (w.requests, w.errors, w.late,
                                                               w.dropped)
        self.classes = dict(w.classes)
        self._lat, self._svc = w.histograms() if w.requests else (None, None)
        self.latency_enc = self.service_enc = ""

    @classmethod
    def of(cls, w: WindowStats) -> CompactWindow:
        """A compacted window, at once."""
        out = cls(w)
        out.compact()
        return out

    def compact(self) -> None:
        """Keep the encodings, let the histograms go."""
        if self._lat is not None:
            self.latency_enc = encode(self._lat) if self._lat.get_total_count() else ""
            self._lat = None
        if self._svc is not None:
            self.service_enc = encode(self._svc) if self._svc.get_total_count() else ""
            self._svc = None

    def parts(self) -> tuple[HdrHistogram | str, HdrHistogram | str]:
        """(latency, service): the histogram while it is held, else its encoding."""
        lat, svc = self._lat, self._svc
        return (lat if lat is not None else self.latency_enc,
                svc if svc is not None else self.service_enc)


class _SealWriter:
    """One daemon thread running sealed windows' bookkeeping in the order it was handed in.
    The first error is kept for ``flush`` (the run reports it); later windows still run."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._pending = 0
        self._cv = threading.Condition()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="enduro-seal", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        with self._cv:
            self._pending += 1
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException as exc:  # kept for flush: the run says it, then goes on
                if self.error is None:
                    self.error = exc
            finally:
                del job  # its windows' histograms can go back to the recorder's pool
                with self._cv:
                    self._pending -= 1
                    if not self._pending:
                        self._cv.notify_all()

    def flush(self, timeout: float) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float) -> None:
        self.flush(timeout)
        self._jobs.put(None)
        self._thread.join(timeout)


class Metrics:
    """Collects windows from one or many workers.

    Windows wait in ``pending`` (full histograms, mergeable) until every worker has passed
    them; sealing hands them to ``on_window`` and keeps them in a bounded ring, compressed.
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
        self._ring: dict[int, dict[str, CompactWindow]] = {}
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
        self.background = background
        self._writer: _SealWriter | None = None

    def add(self, windows: Iterable[WindowStats]) -> None:
        """Merge windows (from any worker, in any order) into the totals and pending slots.
        A window arriving after its index was sealed still counts in the totals."""
        for w in windows:
            total = self.totals.get(w.op)
            if total is None:
                total = self.totals[w.op] = WindowStats(op=w.op, index=-1)
            total.merge(w)
            self.latest = max(self.latest, w.index)
            if w.index <= self.sealed:
                continue
            slot = self._pending.setdefault(w.index, {})
            have = slot.get(w.op)
            if have is None:
                # The first part of a window is adopted as is (a copy of its counters, the
                # histograms shared): no new 190 KB histograms per window.
                slot[w.op] = w.adopt()
                continue
            have.merge(w)

    def seal(self, upto: int) -> None:
        """Declare windows up to ``upto`` complete: hand them to ``on_window``, keep them
        compressed in the ring, trim the ring to ``keep`` windows.

        On an event loop, encoding, percentiles, compression and ``on_window`` run on the
        writer thread (in window order; ``flush`` waits for them): the loop only merges."""
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
                    total.merge(w)
            windows = list(slot.values())
            ring = self._ring[index] = {op: CompactWindow(w) for op, w in slot.items()}
            self._order.append(index)
            job = functools.partial(self._finish, index, windows, phase, list(ring.values()))
            if self._deferred():
                if self._writer is None:
                    self._writer = _SealWriter()
                self._writer.submit(job)
            else:
                job()
        self.sealed = max(self.sealed, upto)
        while self._order and self._order[0] <= self.sealed - self.keep:
            self._ring.pop(self._order.popleft(), None)

    def _deferred(self) -> bool:
        if self.background is not None:
            return self.background
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def _finish(self, index: int, windows: list[WindowStats], phase: str | None,
                ring: list[CompactWindow]) -> None:
        """A sealed window's bookkeeping: what readers will ask of its histograms (encoding,
        percentiles) computed once, the ring's entries compressed, ``on_window`` told."""
        for w in windows:
            for hist in w.histograms():
                if hist is not None:
                    prepare(hist)
        for entry in ring:
            entry.compact()
        if self.on_window is not None:
            self.on_window(index, windows, phase)

    def flush(self, timeout: float = 60.0) -> BaseException | None:
        """Wait until every sealed window's bookkeeping is done (the window store is
        complete); the first error it met since the last flush, if any."""
        writer = self._writer
        if writer is None:
            return None
        writer.flush(timeout)
        error, writer.error = writer.error, None
        return error

    def close(self, timeout: float = 60.0) -> BaseException | None:
        """``flush``, then end the writer thread."""
        error = self.flush(timeout)
        if self._writer is not None:
            self._writer.close(timeout)
            self._writer = None
        return error

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
                    view.add(w)
            return view
        if last_s is None:
            seconds = elapsed_s if elapsed_s is not None else (self.sealed + 1) * self.window_s
            view = MetricView(seconds=seconds)
            for op, w in self.totals.items():
                if ops is None or op in ops:
                    view.add(w)
            return view
        n = max(1, round(last_s / self.window_s))
        first = self.sealed - n + 1
        view = MetricView(seconds=min(n, self.sealed + 1) * self.window_s)
        for index in range(max(0, first), self.sealed + 1):
            for op, cw in self._ring.get(index, {}).items():
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
