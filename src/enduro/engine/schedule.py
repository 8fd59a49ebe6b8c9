"""Arrival schedules of the open model: constant, Poisson, and ramping stages.

A schedule is pure: it turns "the last arrival was at t" into "the next is at t'", so an hour of
arrivals is tested in milliseconds without a clock.
"""

from __future__ import annotations

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
    """

    # While the rate is zero the schedule looks ahead in small steps for it to rise.
    _IDLE_STEP = 0.01

    def __init__(self, *, rate: float | None = None, stages: Sequence[RateStage] = (),
                 poisson: bool = False, rng: random.Random | None = None,
                 start_rate: float = 0.0, share: float = 1.0) -> None:
        if rate is None and not stages:
            raise ValueError("an arrival schedule needs a rate or stages")
        self._rate = rate
        self._stages = list(stages)
        self._start_rate = start_rate
        self._poisson = poisson
        self._rng = rng or random.Random(0)
        self._share = share
        self._t = 0.0
        self._first = True

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
        if self._first and not self._poisson:
            self._first = False
            if self.rate_at(t) > 0:
                return t
        self._first = False
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
            if self._stages and t > sum(s.duration for s in self._stages):
                self._t = float("inf")
                return self._t
            t += self._IDLE_STEP
