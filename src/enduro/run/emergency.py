"""The watchdog's end of a run whose event loop is blocked, from the watchdog's thread: undo
the faults from the journal, stop every process the run started, write the end within a
budget (what is not on disk by then is written bare)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from enduro.base.errors import EXIT_INTERRUPTED, EXIT_PASS, EXIT_RUN, RunError
from enduro.documents.journal import CommandUndo
from enduro.faults.journal import Journal, run_undo
from enduro.report.results import write_junit, write_results
from enduro.run.context import RunOutcome
from enduro.run.end import ARTEFACTS, RunEnd
from enduro.run.signals import Signals
from enduro.run.watchdog import end_children
from enduro.services.supervisor import ServiceSet
from enduro.verdict.evaluate import Verdict

__all__ = ["EMERGENCY_FINISH_S", "EMERGENCY_STOP_S", "WatchdogEnd"]

EMERGENCY_STOP_S = 5.0  # what the watchdog gives processes between SIGTERM and SIGKILL
# The watchdog's end writes results, junit, state and report within this, then exits anyway
# (what is missing by then is written bare; `enduro report RUN` rebuilds the rest).
EMERGENCY_FINISH_S = 10.0


class WatchdogEnd:
    """The end the watchdog gives a blocked run; called with why, returns the exit code."""

    def __init__(self, end: RunEnd, signals: Signals, services: ServiceSet | None, *,
                 close: Callable[[], None], budget_s: float = EMERGENCY_FINISH_S) -> None:
        self.end = end
        self.stops = end.stops
        self.signals = signals
        self.services = services
        self._close = close
        self.budget_s = budget_s

    def __call__(self, why: str) -> int:
        """Undo the faults from the journal, stop every process the run started (SIGKILL at
        once after a second signal), write the results within ``budget_s``."""
        stops, status, runlog = self.stops, self.stops.status, self.stops.runlog
        reason = f"the watchdog ended the run: {why}"
        forced = self.signals.count >= 2
        with contextlib.suppress(Exception):
            runlog.event("watchdog_end", why=why, phase=stops.phase)
            runlog.log(f"watchdog: {why}; undoing faults, stopping processes, writing results")
        if (stops.asked or self.signals.seen) and status.fatal is None:
            status.interrupted = True
            status.stop_reason = status.stop_reason or f"interrupted by {self.signals.seen}; " \
                                                       f"{reason}"
        else:
            status.fatal = status.fatal or RunError(reason)
            status.stop_reason = reason
        with contextlib.suppress(Exception):
            self.undo_journal()
        with contextlib.suppress(Exception):
            grace = 0.0 if forced else EMERGENCY_STOP_S
            pids = end_children(grace)
            runlog.event("processes_ended", by="watchdog", grace_s=grace, pids=pids)
        if self.services is not None:
            for entry in self.services.entries.values():
                entry.status.state = "stopped" if entry.status.state != "failed" else "failed"
        return self.end_within(self.budget_s)

    def undo_journal(self) -> None:
        """Undo, synchronously, every fault the journal says is in force."""
        runlog = self.stops.runlog
        journal = Journal(self.end.rundir.file("faults.journal.jsonl"))
        for pending in journal.pending_records():
            record, undo = pending.record, pending.undo
            if isinstance(undo, CommandUndo):  # the only undo that waits on anything
                undo = undo.model_copy(update={"timeout": min(undo.timeout, 10.0)})
            try:
                what = run_undo(undo, record.host)
            except Exception as exc:
                # Still in force: it stays pending for `enduro recover`, with its error.
                journal.undo_failed(record.id, str(exc))
                runlog.event("fault_undo_failed", id=record.id, fault_kind=record.kind,
                             by="watchdog", error=str(exc))
                continue
            journal.undone(record.id)
            runlog.event("fault_undone", id=record.id, fault_kind=record.kind,
                         by="watchdog", result=what)

    def end_within(self, budget_s: float) -> int:
        """Write the end (``RunEnd.finish``) from a thread of its own, waiting at most
        ``budget_s``: under load an import, a trend analysis or a large report can take
        longer than a forced end may. What is not on disk by then is written bare
        (results.json with the verdict ``incomplete``, junit.xml, state.json). Returns the
        exit code."""
        end, status, runlog = self.end, self.stops.status, self.stops.runlog
        ended: list[RunOutcome] = []

        def finish() -> None:
            with contextlib.suppress(Exception):
                ended.append(end.finish(wait_s=budget_s))

        thread = threading.Thread(target=finish, name="enduro-finish", daemon=True)
        thread.start()
        thread.join(budget_s)
        if ended:
            self._close()
            return ended[0].exit_code
        end.late = True  # the finish thread may go on, but writes nothing more
        missing = [w for w in ARTEFACTS if w not in end.written]
        with contextlib.suppress(Exception):
            runlog.log(f"watchdog: the results were not all written within {budget_s:g}s "
                       f"(missing: {', '.join(missing)}); `enduro report` rebuilds them")
        status.end()
        try:
            results = end.bare_results(Verdict(False, []),
                                       max(1e-3, end.timeline.load_elapsed()))
        except Exception:
            return EXIT_RUN
        rundir = end.rundir
        writes: dict[str, Callable[[], object]] = {
            "results.json": lambda: write_results(rundir.file("results.json"), results),
            "junit.xml": lambda: write_junit(rundir.file("junit.xml"), results),
            "state.json": end.state.write_bare}
        problems = [w for w in missing if w not in writes]
        for what, write in writes.items():
            if what in missing:
                end.guarded(problems, what, write, late_ok=True)
        with contextlib.suppress(Exception):
            runlog.event("run_finished", verdict="incomplete", state=status.state,
                         problems=problems, by="watchdog")
        self._close()
        if status.crash is not None or status.fatal is not None:
            return EXIT_RUN
        if status.interrupted and self.end.ctx.options.services_only:
            return EXIT_PASS  # stopping is how supervision ends
        return EXIT_INTERRUPTED if status.interrupted else EXIT_RUN
