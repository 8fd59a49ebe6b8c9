"""The run's metrics: whole-run totals, a bounded ring of recent windows, and views over them.

Memory stays flat however long the run: totals are one merged histogram pair per op, and only
the windows that sliding rules need are kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from enduro.observe.hist import new_histogram, percentiles_ms
from enduro.observe.window import WindowStats

__all__ = ["Metrics", "MetricView"]


@dataclass
class MetricView:
    """Merged figures over a set of windows and ops: what rules and reports read."""

    seconds: float
    requests: int = 0
    errors: int = 0
    late: int = 0
    dropped: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    latency: HdrHistogram = field(default_factory=new_histogram)
    service: HdrHistogram = field(default_factory=new_histogram)

    def add(self, w: WindowStats) -> None:
        self.requests += w.requests
        self.errors += w.errors
        self.late += w.late
        self.dropped += w.dropped
        for cls, n in w.classes.items():
            self.classes[cls] = self.classes.get(cls, 0) + n
        if w.latency.get_total_count():
            self.latency.add(w.latency)
        if w.service.get_total_count():
            self.service.add(w.service)

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


class Metrics:
    """Collects sealed windows from one or many workers."""

    def __init__(self, window_s: float, keep_s: float = 900.0,
                 on_window: Callable[[int, list[WindowStats]], None] | None = None) -> None:
        self.window_s = window_s
        self.keep = max(2, int(keep_s / window_s) + 2)
        self.totals: dict[str, WindowStats] = {}
        self._recent: dict[int, dict[str, WindowStats]] = {}
        self._order: deque[int] = deque()
        self.latest = -1
        self.sealed = -1
        self._on_window = on_window

    def add(self, windows: Iterable[WindowStats]) -> None:
        """Merge windows (from any worker, in any order) into the totals and the ring."""
        for w in windows:
            total = self.totals.get(w.op)
            if total is None:
                total = self.totals[w.op] = WindowStats(op=w.op, index=-1)
            total.merge(w)
            slot = self._recent.get(w.index)
            if slot is None:
                if w.index <= self.sealed - self.keep:
                    continue
                slot = self._recent[w.index] = {}
                self._order.append(w.index)
            have = slot.get(w.op)
            if have is None:
                slot[w.op] = WindowStats(op=w.op, index=w.index)
                have = slot[w.op]
            have.merge(w)
            self.latest = max(self.latest, w.index)

    def seal(self, upto: int) -> None:
        """Declare windows up to ``upto`` complete: hand them to ``on_window``, trim the ring."""
        for index in sorted(i for i in self._recent if self.sealed < i <= upto):
            if self._on_window is not None:
                self._on_window(index, list(self._recent[index].values()))
        self.sealed = max(self.sealed, upto)
        while self._order and self._order[0] <= self.sealed - self.keep:
            self._recent.pop(self._order.popleft(), None)

    def view(self, ops: set[str] | None = None, last_s: float | None = None,
             elapsed_s: float | None = None) -> MetricView:
        """Merged figures for ``ops`` (all when None) over the whole run or the last ``last_s``
        seconds of sealed windows. ``elapsed_s`` is the run's length, for whole-run rates."""
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
            for op, w in self._recent.get(index, {}).items():
                if ops is None or op in ops:
                    view.add(w)
        return view

    def window(self, index: int) -> dict[str, WindowStats]:
        return dict(self._recent.get(index, {}))
