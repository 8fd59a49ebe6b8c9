"""Arrival schedules of the open model: constant, Poisson, and ramping stages.

A schedule is pure: it turns "the last arrival was at t" into "the next is at t'", so an hour of
arrivals is tested in milliseconds without a clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ArrivalSchedule", "RateStage"]


@dataclass(frozen=True)
class RateStage:
    """Reach ``target`` requests/s linearly over ``duration`` seconds."""

    duration: float
    target: float


class ArrivalSchedule:
    """Intended send times, in seconds from the start of the load.

    ``rate`` gives a constant rate; ``stages`` a piecewise-linear ramp starting at
    ``start_rate`` (0 by default) and holding the last target afterwards. ``poisson`` draws
    exponential gaps with the same mean instead of even spacing.

    A rate of zero means no arrivals (``next`` returns infinity, it never spins); a rate or
    stage that is not a finite number >= 0 is refused with ``ValueError``.
    """

    # While the rate is zero the schedule looks ahead in small steps for it to rise.
    _IDLE_STEP = 0.01

    def __init__(self, *, rate: float | None = None, stages: Sequence[RateStage] = (),
                 poisson: bool = False, rng: random.Random | None = None,
                 start_rate: float = 0.0, share: float = 1.0) -> None:
        if rate is None and not stages:
            raise ValueError("an arrival schedule needs a rate or stages")
        # Validation refuses these first; here they would hang or flood the scheduler.
        for what, value in (("rate", rate), ("start rate", start_rate), ("share", share),
                            *(("stage target", st.target) for st in stages),
                            *(("stage duration", st.duration) for st in stages)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"arrival schedule: {what} must be a finite number >= 0, "
                                 f"got {value!r}")
        self._rate = rate
        self._stages = list(stages)
        self._start_rate = start_rate
        self._poisson = poisson
        self._rng = rng or random.Random(0)
        self._share = share
        self._t = 0.0
        self._first = True
        self._span = sum(st.duration for st in self._stages)
        # A constant rate evenly spaced: every gap is the same (the hot path at high rates).
        self._gap = (1.0 / (rate * share) if rate is not None and rate * share > 0
                     and not poisson else None)

    def rate_at(self, t: float) -> float:
        """The target arrival rate at ``t`` (this worker's share of it)."""
        if self._rate is not None:
            return self._rate * self._share
        begin = 0.0
        previous = self._start_rate
        for stage in self._stages:
            if t < begin + stage.duration:
                frac = (t - begin) / stage.duration if stage.duration > 0 else 1.0
                return (previous + (stage.target - previous) * frac) * self._share
            begin += stage.duration
            previous = stage.target
        return previous * self._share

    def next(self) -> float:
        """The next intended send time."""
        t = self._t
        gap = self._gap
        if gap is not None and not self._first:
            self._t = t + gap
            return self._t
        if self._first and not self._poisson:
            self._first = False
            if self.rate_at(t) > 0:
                return t
        self._first = False
        if self._rate is not None and self.rate_at(t) <= 0:
            self._t = math.inf  # a constant rate of zero: no arrival, ever
            return self._t
        while True:
            rate = self.rate_at(t)
            if rate > 0:
                gap = self._rng.expovariate(rate) if self._poisson else 1.0 / rate
                if self._stages:
                    # Midpoint rate keeps a ramp's arrival count close to its integral.
                    mid = self.rate_at(t + gap / 2)
                    if mid > 0:
                        gap = (self._rng.expovariate(mid) if self._poisson else 1.0 / mid)
                self._t = t + gap
                return self._t
            if t > self._span:
                self._t = math.inf
                return self._t
            t = self._after_idle(t)

    def _after_idle(self, t: float) -> float:
        """Where to look next while the rate is zero at ``t``: the end of a stage that stays
        at zero (an hour at zero is one step, not 360,000), else a small step ahead."""
        begin = 0.0
        previous = self._start_rate
        for stage in self._stages:
            end = begin + stage.duration
            if t < end:
                if previous <= 0 and stage.target <= 0:
                    return max(end, t + self._IDLE_STEP)
                break
            begin = end
            previous = stage.target
        return t + self._IDLE_STEP
