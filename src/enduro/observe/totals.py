"""The latencies of the run's totals, by op and by (phase, op): added to by the writer thread,
read by views as copies made under a lock."""

from __future__ import annotations

import threading

from hdrh.histogram import HdrHistogram

from enduro.observe.hist import Histogram, new_histogram
from enduro.observe.window import WindowStats, fold_windows

__all__ = ["Guarded", "LatencyTotals"]

Key = str | tuple[str, str]


class Guarded:
    """One histogram of a pair that the writer thread adds to: read under the lock."""

    __slots__ = ("k", "lock", "pair")

    def __init__(self, lock: threading.Lock, pair: list[Histogram | None], k: int) -> None:
        self.lock, self.pair, self.k = lock, pair, k

    def add_to(self, out: HdrHistogram) -> None:
        with self.lock:
            hist = self.pair[self.k]
            if hist is not None and hist.get_total_count():
                out.add(hist)



class LatencyTotals:
    """The totals' (latency, service) histograms by op, and by (phase, op) the phases'."""

    def __init__(self) -> None:
        self._hists: dict[Key, list[Histogram | None]] = {}
        self._lock = threading.Lock()

    def absorb(self, windows: list[WindowStats], phase: str | None = None) -> None:
        """Add folded windows' latencies to their ops' totals (and to ``phase``'s)."""
        with self._lock:
            for w in windows:
                self._add(w.op, w)
                if phase is not None:
                    self._add((phase, w.op), w)

    def absorb_late(self, windows: list[WindowStats]) -> None:
        """Windows that arrived after their index was sealed: their latencies go into the
        totals only (their counts already did)."""
        fold_windows(windows)
        self.absorb(windows)

    def guarded(self, key: Key) -> tuple[Guarded, Guarded] | None:
        """``key``'s (latency, service) pair, each read under the lock; None before any."""
        pair = self._hists.get(key)
        if pair is None:
            return None
        return Guarded(self._lock, pair, 0), Guarded(self._lock, pair, 1)

    def _add(self, key: Key, w: WindowStats) -> None:
        """Add a folded window's latencies to the totals of ``key`` (the lock is held)."""
        pair = self._hists.get(key)
        for k, hist in enumerate(w.histograms()):
            if hist is None or not hist.get_total_count():
                continue
            if pair is None:
                pair = self._hists[key] = [None, None]
            own = pair[k]
            if own is None:
                own = pair[k] = new_histogram()
            own.add(hist)
