"""Where the load's windows go: merged from every load process, sealed once every process
has passed them, stored, and judged by the live rules (which may abort the run, and whose
status changes are told as ``rule_status`` events)."""

from __future__ import annotations

import time

from enduro.base.errors import FATAL_CLASS
from enduro.engine.http import generator_hint
from enduro.observe.metrics import Metrics, op_kinds
from enduro.observe.store import Store
from enduro.observe.window import GENERATOR, WindowStats
from enduro.run.context import RunContext
from enduro.run.stops import Stops
from enduro.verdict.evaluate import Abort, RuleBook

__all__ = ["STATUS_EVERY_S", "STATUS_SHARE", "WindowSink"]

STATUS_EVERY_S = 2.0
"""The rules' live status (``rule_status`` events) is judged at most this often, in load
seconds: the page asks for news as often."""
STATUS_SHARE = 0.01
"""Nor does judging it take more than this share of the event loop's time: a plan whose rules
take long to judge (many ops, latency statistics over all of them) is judged less often."""


class WindowSink:
    """The run's side of its load processes' windows."""

    def __init__(self, ctx: RunContext, metrics: Metrics, rulebook: RuleBook, stops: Stops,
                 store: Store | None) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.rulebook = rulebook
        self.stops = stops
        self.store = store
        self._sources_last: dict[int, int] = {}  # per load process, its last window
        self._lost: set[int] = set()  # load processes gone before their end
        self._not_requests = {*op_kinds(ctx.plan), GENERATOR}
        self.requests: dict[int, int] = {}  # per load process, the requests it counted
        self._fatal_seen = False
        self._status_at = 0.0  # load seconds: when the rules' status is judged next

    def store_window(self, index: int, windows: list[WindowStats], phase: str | None) -> None:
        """A sealed window, to ``metrics.sqlite`` (called by ``Metrics`` on its writer)."""
        window = self.ctx.plan.window
        if self.store is not None:
            self.store.add_windows(index * window, window, windows, phase)
            if index % 60 == 59:
                self.store.roll_up(index * window)

    def _fatal(self, windows: list[WindowStats]) -> None:
        """A ``Fatal`` raised by the user's code (counted as class ``fatal:<message>``, from
        any load process) stops the run at once, as failed, with its message."""
        if self._fatal_seen:
            return
        for w in windows:
            cls = next((c for c in w.classes if c.split(":", 1)[0] == FATAL_CLASS), None)
            if cls is not None:
                self._fatal_seen = True
                message = cls.partition(":")[2] or "(no message)"
                self.stops.abort(Abort(f"Fatal raised in op {w.op}", message,
                                       at_s=(w.index + 1) * self.ctx.plan.window,
                                       reason=f"Fatal raised in op {w.op}: {message}"))
                return

    def add(self, source: int, windows: list[WindowStats]) -> None:
        """Windows sealed by load process ``source``: merge, seal what every source has
        passed, evaluate live rules."""
        if not windows:
            return
        metrics, runlog = self.metrics, self.stops.runlog
        self.requests[source] = self.requests.get(source, 0) + sum(
            w.requests for w in windows if w.op not in self._not_requests)
        metrics.add(windows)
        self._fatal(windows)
        if metrics.first_seen(GENERATOR):
            # The generator's own limits: noted when first seen, told after the summary
            # (out of file descriptors, even printing may fail now).
            runlog.event("generator_limit", hint=generator_hint())
            runlog.log(f"warning: {generator_hint()}", echo=False)
        self._sources_last[source] = max(w.index for w in windows)
        self._seal()

    def lost(self, source: int) -> None:
        """Load process ``source`` is gone: its windows so far stay, and sealing no longer
        waits for it."""
        self._lost.add(source)
        self._seal()

    def _seal(self) -> None:
        """Seal what every load process still running has passed; run the live rules."""
        metrics = self.metrics
        live = [last for source, last in self._sources_last.items()
                if source not in self._lost]
        if not live or len(self._sources_last.keys() | self._lost) < self.ctx.options.workers:
            return
        sealed_upto = min(live)
        if sealed_upto > metrics.sealed:
            metrics.seal(sealed_upto)
            elapsed = min((sealed_upto + 1) * self.ctx.plan.window, self.ctx.duration)
            for abort in self.rulebook.live(metrics, elapsed):
                self.stops.abort(abort)
            if elapsed >= self._status_at:
                self._tell_status(elapsed)

    def _tell_status(self, elapsed: float) -> None:
        """One ``rule_status`` event per rule whose live status changed (the first time,
        every rule's)."""
        started = time.perf_counter()
        changes = self.rulebook.status_changes(self.metrics, elapsed)
        took = time.perf_counter() - started
        self._status_at = elapsed + max(STATUS_EVERY_S, took / STATUS_SHARE)
        for status in changes:
            first = status.first_failed_s
            self.stops.runlog.event("rule_status", rule=status.rule, status=status.status,
                                    observed=status.observed, at_s=round(status.at_s, 3),
                                    reason=status.reason,
                                    first_failed_s=None if first is None else round(first, 3))
