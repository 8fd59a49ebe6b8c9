"""Phases of the timeline and recovery analysis of faults, measured on the load's windows.

Every sealed window gets a phase: ``baseline`` (no fault in force, not recovering), ``chaos``
(a fault in force) or ``recovery`` (after a fault, until K consecutive windows are back within
the pre-fault baseline band). Per fault: ``detect_s`` is the first bad window after its start,
``recover_s`` the time from its end to the first of K good windows.

Attribution: a fault is credited only with what it can explain. A bad window counts as its
detection only if it begins within the fault's active period plus a settle time (``settle_s``,
by default the longer of two windows and 5 s: the in-flight requests of the moment fail or
time out, a killed process is noticed) and ends before the next fault starts (a window the next
fault started in is the next fault's, unless this fault started in it too). A fault with no bad
window there has ``detect_s`` null, ``recover_s`` 0 and its errors counted over that stretch
only: windows that go bad 20 s later are someone else's doing. Recovery, once detected, is
looked for after the fault's end without the settle bound (slow recoveries are the finding),
but only up to the next fault: good windows that last until it starts count as recovery; a
fault still bad when the next one starts never recovered (``recover_s`` null).
"""

from __future__ import annotations

import statistics
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["PhaseTracker", "WindowSummary", "analyze_fault"]


@dataclass(frozen=True)
class WindowSummary:
    """One sealed window over all ops, as recovery analysis needs it."""

    index: int
    requests: int
    errors: int
    p99_ms: float
    phase: str

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class _Series:
    """Window summaries in flat arrays (~17 bytes a window: a day of 1 s windows is ~1.5 MB)."""

    _PHASES = ("baseline", "chaos", "recovery", "final")

    def __init__(self) -> None:
        self.index = array("q")
        self.requests = array("q")
        self.errors = array("q")
        self.p99 = array("f")
        self.phase = array("b")

    def append(self, w: WindowSummary) -> None:
        self.index.append(w.index)
        self.requests.append(w.requests)
        self.errors.append(w.errors)
        self.p99.append(w.p99_ms)
        self.phase.append(self._PHASES.index(w.phase))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> WindowSummary:
        return WindowSummary(self.index[i], self.requests[i], self.errors[i],
                             round(self.p99[i], 3), self._PHASES[self.phase[i]])

    def __iter__(self) -> Iterator[WindowSummary]:
        return (self[i] for i in range(len(self)))


class PhaseTracker:
    """Labels windows as they are sealed and keeps their summaries."""

    _BASELINE_KEEP = 600

    def __init__(self, window_s: float, k: int, band: float,
                 fault_active: Callable[[float, float], bool], expect_load: bool) -> None:
        self.window_s = window_s
        self.k = k
        self.band = band
        self.fault_active = fault_active
        self.expect_load = expect_load
        self.series = _Series()
        self._base_requests = 0
        self._base_errors = 0
        self._base_p99: list[float] = []
        self._recovering = False
        self._good_run = 0
        self._seen_fault = False

    def baseline(self) -> tuple[float, float] | None:
        """Baseline error rate and p99 (ms), once there is one."""
        if not self._base_requests:
            return None
        return (self._base_errors / self._base_requests,
                statistics.median(self._base_p99) if self._base_p99 else 0.0)

    def good(self, w: WindowSummary | tuple[int, int, float]) -> bool:
        requests, errors, p99 = ((w.requests, w.errors, w.p99_ms)
                                 if isinstance(w, WindowSummary) else w)
        if requests == 0:
            return not self.expect_load
        base = self.baseline()
        base_err, base_p99 = base if base is not None else (0.0, 0.0)
        err_ok = errors / requests <= base_err + max(0.01, base_err * self.band)
        p99_ok = base is None or p99 <= base_p99 * (1 + self.band) + 5.0
        return err_ok and p99_ok

    def label(self, index: int, requests: int, errors: int, p99_ms: float) -> str:
        start = index * self.window_s
        end = start + self.window_s
        if self.fault_active(start, end):
            phase = "chaos"
            self._seen_fault = True
            self._recovering = True
            self._good_run = 0
        elif self._recovering:
            if self.good((requests, errors, p99_ms)):
                self._good_run += 1
            else:
                self._good_run = 0
            phase = "recovery"
            if self._good_run >= self.k:
                self._recovering = False
        else:
            phase = "baseline"
            # Only the stretch before the first fault sets the band; skip the first window,
            # which holds connection set-up.
            if not self._seen_fault and index > 0 and requests:
                self._base_requests += requests
                self._base_errors += errors
                if len(self._base_p99) < self._BASELINE_KEEP:
                    self._base_p99.append(p99_ms)
        self.series.append(WindowSummary(index, requests, errors, p99_ms, phase))
        return phase


# How far (in windows) a window may run past the next fault's start and still be this one's.
_EDGE = 0.01


def settle_time(window_s: float) -> float:
    """How long after a fault's end its effects may still begin (see the module docstring)."""
    return max(2 * window_s, 5.0)


def analyze_fault(tracker: PhaseTracker, start_s: float, end_s: float | None,
                  horizon_s: float, next_start_s: float | None = None,
                  settle_s: float | None = None) -> dict[str, Any]:
    """detect_s, recover_s, errors and worst p99 of one fault from the window series.

    Detection is the first bad window beginning before ``end + settle_s`` (``settle_time`` by
    default; at most ``horizon_s``) and ending by ``next_start_s``. Recovery is the first of K
    consecutive good windows after the fault's end and its detection, among the windows that
    end by the next fault's start; a shorter run of good windows cut off by the next fault
    counts too. See the module docstring for why."""
    w = tracker.window_s
    end = end_s if end_s is not None else start_s
    settle = settle_time(w) if settle_s is None else settle_s
    until = end + min(settle, horizon_s)
    ours, cut = _own_windows(tracker, start_s, next_start_s)
    detect_at = _first_bad(tracker, ours, until)
    if detect_at is None:
        return _figures(None, 0.0, [s for s in ours if s.index * w < until])
    detect = max(0.0, detect_at * w - start_s)
    run, first_good = _good_run(tracker, ours, end, detect_at)
    if run >= tracker.k or (run and cut):
        recover = max(0.0, first_good * w - end)
        return _figures(detect, recover, [s for s in ours if s.index < first_good])
    # Still bad when the data ended or the next fault started: everything up to there.
    return _figures(detect, None, ours)


def _own_windows(tracker: PhaseTracker, start_s: float,
                 next_start_s: float | None) -> tuple[list[WindowSummary], bool]:
    """The windows from the fault's start that can be this fault's rather than the next
    one's, and whether the next fault's start cut them short of the data's end."""
    w = tracker.window_s

    def mine(index: int) -> bool:
        if next_start_s is None or index * w <= start_s:
            return True  # no next fault, or this fault started in (or before) the window
        # A fault at a whole second starts a few ms after a window boundary; a timer may fire
        # a hair early, hence the tolerance.
        return (index + 1) * w <= next_start_s + _EDGE * w

    windows = [s for s in tracker.series if (s.index + 1) * w > start_s]
    ours: list[WindowSummary] = []
    for s in windows:
        if not mine(s.index):
            break
        ours.append(s)
    return ours, len(ours) < len(windows)


def _first_bad(tracker: PhaseTracker, ours: list[WindowSummary], until: float) -> int | None:
    """The index of the first bad window that begins before ``until``."""
    for s in ours:
        if s.index * tracker.window_s >= until:
            break
        if not tracker.good(s):
            return s.index
    return None


def _good_run(tracker: PhaseTracker, ours: list[WindowSummary], end: float,
              detect_at: int) -> tuple[int, int]:
    """Good windows in a row after the fault's end and its detection: the length of the first
    run to reach K, or else of the run still going when the windows end (0 when the last is
    bad), and the index of its first window."""
    w = tracker.window_s
    run, first_good = 0, 0
    for s in ours:
        # Good windows before the fault's end, or before its effect showed, are not a
        # recovery from it.
        if (s.index + 1) * w <= end or s.index <= detect_at:
            continue
        if not tracker.good(s):
            run = 0
            continue
        run += 1
        if run == 1:
            first_good = s.index
        if run >= tracker.k:
            break
    return run, first_good


def _figures(detect: float | None, recover: float | None,
             span: list[WindowSummary]) -> dict[str, Any]:
    return {
        "detect_s": None if detect is None else round(detect, 3),
        "recover_s": None if recover is None else round(recover, 3),
        "errors": sum(s.errors for s in span),
        "requests": sum(s.requests for s in span),
        "worst_p99_ms": max((s.p99_ms for s in span), default=0.0),
    }
