"""A run's one start time and its load's, on the run's one clock."""

from __future__ import annotations

import time

from enduro.base.clock import Clock

__all__ = ["Timeline"]


class Timeline:
    """When the run started (monotonic and wall) and when its load started; every elapsed
    figure of the run (events, state.json, heartbeats, samples) is read here."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.started_mono = 0.0
        self.started_wall = 0.0
        self.load_start = 0.0  # on the clock's monotonic time; 0 until the load starts

    def start(self) -> None:
        """The run starts now."""
        self.started_wall = self.clock.wall()
        self.started_mono = self.clock.now()

    def begin_load(self) -> float:
        """The load starts now: one start for the load's windows, its phases and the fault
        timeline. Returns it on the engine's clock (``time.monotonic``, which the system
        clock reads too)."""
        self.load_start = self.clock.now()
        return self.load_start + (time.monotonic() - self.clock.now())

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return self.clock.now() - self.started_mono if self.started_mono else 0.0

    def load_elapsed(self) -> float:
        """Seconds since the load started (0 before)."""
        return max(0.0, self.clock.now() - self.load_start) if self.load_start else 0.0
