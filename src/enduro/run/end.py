"""The end of a run: its verdict (assembled in ``verdict/``), then results.json, junit.xml,
metrics.sqlite's checkpoint, report.html and state.json, each written even when another
fails, and the exit code. Written once, by the loop's thread or the watchdog's."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, cast

from rich.console import Console

from enduro.base.errors import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_PASS, EXIT_RUN
from enduro.documents.results import Mode, Results, RuleOutcome
from enduro.documents.state import RunState
from enduro.engine.http import generator_hint
from enduro.engine.kinds import summaries
from enduro.faults.chaos import Chaos
from enduro.observe.metrics import Metrics
from enduro.observe.store import Store
from enduro.observe.window import GENERATOR
from enduro.report.html import write_report
from enduro.report.results import SCHEMA, results_document, write_junit, write_results
from enduro.report.terminal import summary_table
from enduro.run.context import FINISH_S, RunContext, RunOutcome
from enduro.run.correctness import Correctness
from enduro.run.rundir import RunDir
from enduro.run.state import StateFile
from enduro.run.stops import RunStatus, Stops
from enduro.run.timeline import Timeline
from enduro.run.watch import Watch
from enduro.services.supervisor import ServiceSet
from enduro.verdict.assemble import assemble_verdict
from enduro.verdict.correctness import canary_hits
from enduro.verdict.evaluate import RuleBook, Verdict
from enduro.verdict.resources import resource_results

__all__ = ["ARTEFACTS", "RunEnd", "exit_code"]

ARTEFACTS = ("results.json", "junit.xml", "state.json", "report.html")


def exit_code(status: RunStatus, verdict: Verdict, *, services_only: bool) -> int:
    """The exit code of a run that ended as ``status`` says, its rules judged ``verdict``."""
    if status.crash is not None or status.fatal is not None:
        return EXIT_RUN  # the command line turns a raised defect into its own code
    if services_only:
        return EXIT_PASS  # stopping is how supervision ends
    if status.aborts:
        return EXIT_FAIL
    if status.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_PASS if verdict.passed else EXIT_FAIL


class RunEnd:
    """Writes the end of one run. ``written`` names the artefacts on disk; once ``late`` (the
    watchdog wrote the end itself) nothing more is written."""

    def __init__(self, ctx: RunContext, stops: Stops, timeline: Timeline, rundir: RunDir, *,
                 console: Console, metrics: Metrics, store: Store | None, rulebook: RuleBook,
                 chaos: Chaos, correctness: Correctness, watch: Watch,
                 services: ServiceSet | None, state: StateFile,
                 job_result: Callable[[], Any],
                 workers: Callable[[], list[dict[str, Any]]] = list) -> None:
        self.ctx = ctx
        self.stops = stops
        self.status = stops.status
        self.timeline = timeline
        self.rundir = rundir
        self.console = console
        self.metrics = metrics
        self.store = store
        self.rulebook = rulebook
        self.chaos = chaos
        self.correctness = correctness
        self.watch = watch
        self.services = services
        self.state = state
        self._job_result = job_result
        self._workers = workers  # the load's workers, for results.json and the verdict
        self.written: set[str] = set()
        self.late = False
        self._lock = threading.Lock()  # the loop and the watchdog never both finish
        self._finished: RunOutcome | None = None
        self._faults: list[dict[str, Any]] | None = None  # as the verdict saw them
        self._canary_hits: list[dict[str, Any]] = []

    def finish(self, wait_s: float = -1) -> RunOutcome:
        """Verdict, results.json, junit.xml, report.html, state.json: each written even when
        another fails. Runs once, in the loop's thread or in the watchdog's (which waits at
        most ``wait_s`` for the loop's to end)."""
        if not self._lock.acquire(timeout=wait_s):
            return RunOutcome(EXIT_RUN, self.rundir.path,
                              error="results are being written by another thread")
        try:
            if self._finished is None:
                self._finished = self._write()
            return self._finished
        finally:
            self._lock.release()

    def load_seconds(self) -> float:
        """How long the load ran, as the results say (at most ``duration`` unless the run
        ended early)."""
        elapsed = self.timeline.load_elapsed()
        return max(1e-3, elapsed if self.status.early else min(elapsed, self.ctx.duration))

    def _write(self) -> RunOutcome:
        status = self.status
        self.stops.phase = "finish"
        if self.stops.watchdog is not None:
            # Patient: writing the report may hold the loop for seconds; a signal now waits.
            self.stops.watchdog.arm(FINISH_S, "writing the results", patient=True)
        # Supervision judges nothing: never a pass, however it ended (build_results).
        incomplete = status.early and not status.aborts
        status.end()
        elapsed = self.load_seconds()
        try:
            verdict = self.verdict(elapsed)
        except Exception as exc:  # a defect in verdict assembly: the results still go out
            self.stops.crashed(exc)
            incomplete = True
            status.state = "failed"
            verdict = Verdict(False, [])
        try:
            doc = self.results(verdict, elapsed, incomplete)
        except Exception as exc:
            self.stops.crashed(exc)
            incomplete = True
            status.state = "failed"
            doc = self.bare_results(verdict, elapsed)
        if status.crash is not None:
            doc.error = repr(status.crash)
            doc.verdict = "incomplete"
            doc.complete = False
            if status.traceback_file is not None:
                doc.traceback = str(status.traceback_file)
        elif status.fatal is not None and "error" not in doc.model_fields_set:
            doc.error = str(status.fatal)
        problems = self._write_artefacts(doc)
        with contextlib.suppress(Exception):
            summary_table(doc, self.console)
            if doc.errors_by_class.get(GENERATOR):
                self.console.print(f"warning: {generator_hint()}", markup=False,
                                   highlight=False, soft_wrap=True)
        code = exit_code(status, verdict, services_only=self.ctx.options.services_only)
        error = repr(status.crash) if status.crash is not None else \
            str(status.fatal) if status.fatal is not None else None
        if "results.json" in problems and code in (EXIT_PASS, EXIT_FAIL):
            code = EXIT_RUN  # no verdict reached the disk: nothing can rely on this run
            error = "results.json could not be written (see logs/enduro.log)"
        return RunOutcome(code, self.rundir.path, error=error,
                          traceback_file=status.traceback_file, document=doc)

    def _write_artefacts(self, doc: Results) -> list[str]:
        """Every artefact of the end; returns those that could not be written."""
        problems: list[str] = []
        rundir = self.rundir
        self.guarded(problems, "results.json",
                     lambda: write_results(rundir.file("results.json"), doc))
        self.guarded(problems, "junit.xml", lambda: write_junit(rundir.file("junit.xml"), doc))
        if self.store is not None and threading.current_thread() is threading.main_thread():
            store = self.store
            self.guarded(problems, "metrics.sqlite",
                         lambda: store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        self.guarded(problems, "report.html", lambda: write_report(rundir.path))
        self.stops.runlog.event("run_finished", verdict=doc.verdict,
                                state=self.status.state, problems=problems)
        self.guarded(problems, "state.json", self.state.write)
        return problems

    def guarded(self, problems: list[str], what: str, write: Callable[[], object], *,
                late_ok: bool = False) -> None:
        """One artefact of the end: a failure is logged, and the others are still written.
        Nothing once the watchdog wrote the end itself (``late_ok``: the watchdog's writes)."""
        if self.late and not late_ok:
            return
        try:
            write()
            self.written.add(what)
        except Exception as exc:
            problems.append(what)
            self.stops.runlog.event("write_failed", what=what, error=repr(exc))
            with contextlib.suppress(Exception):
                self.stops.runlog.log(f"{what} could not be written: {exc}", level="ERROR")

    def verdict(self, elapsed: float) -> Verdict:
        """Seal and store the last windows, judge the rules over ``elapsed`` seconds, and
        assemble the verdict with the loop, abort, canaries and checkers."""
        runlog = self.stops.runlog
        faults = self._faults = self.chaos.results()
        self.rulebook.fault_values.update(Chaos.rule_values(faults))
        self.metrics.seal(max(self.metrics.latest, self.metrics.sealed))
        # Sealed windows' bookkeeping runs on a writer thread: the store is complete after it.
        store_error = self.metrics.flush()
        if store_error is not None:
            runlog.event("write_failed", what="metrics.sqlite", error=repr(store_error))
            runlog.log(f"metrics.sqlite: windows could not be stored: {store_error}")
        rules = (Verdict(True, []) if self.ctx.options.services_only
                 else self.rulebook.final(self.metrics, elapsed))
        values = self.ctx.plan.canaries.values
        hits = self._canary_hits = canary_hits(values, self.metrics.totals, self.rundir.path)
        job = self._job_result()
        return assemble_verdict(
            rules, loop=job if self.ctx.options.job is not None and isinstance(job, list)
            else None, aborted=bool(self.status.aborts), canaries=bool(values),
            canary_hits=hits, checkers=self.correctness.findings,
            workers_lost=[w for w in self._workers() if w.get("lost")],
            on_worker_loss=self.ctx.plan.on_worker_loss)

    def results(self, verdict: Verdict, elapsed: float, incomplete: bool) -> Results:
        """The results document."""
        ctx, findings, job = self.ctx, self.correctness.findings, self._job_result()
        faults = self._faults if self._faults is not None else self.chaos.results()
        return results_document(
            run_id=self.rundir.run_id, plan_name=ctx.plan.name, verdict=verdict,
            metrics=self.metrics, ops=ctx.ops, elapsed_s=elapsed, seed=ctx.seed,
            state=self.status.state, started_wall=self.timeline.started_wall,
            stop_reason=self.status.stop_reason, worker_count=ctx.options.workers,
            profile=ctx.loaded.profile, incomplete=incomplete, mode=ctx.mode,
            extra={"workers": self._workers(),
                   "services": self.services.statuses() if self.services else {},
                   "resources": resource_results(self.store, self.watch.resources),
                   "generator": self.watch.generator_summary(),
                   "trends": self.rulebook.trend_details,
                   "checkers": findings.violations if findings else {},
                   "checker_counts": findings.counts if findings else {},
                   "loop": job if isinstance(job, list) else None,
                   "canaries": self._canary_hits,
                   "tables": self.watch.tables,
                   **summaries(self.rundir.path),
                   "faults": faults, "faults_skipped": self.chaos.skipped,
                   "phases": {p: round(n * ctx.plan.window, 3)
                              for p, n in self.metrics.phase_windows.items()}})

    def bare_results(self, verdict: Verdict, elapsed: float) -> Results:
        """What can always be said of a run, when the full results could not be assembled."""
        ctx, status = self.ctx, self.status
        return Results(
            schema=SCHEMA, run_id=self.rundir.run_id, plan=ctx.plan.name,
            profile=ctx.loaded.profile, verdict="incomplete", complete=False,
            rules_passed=None if ctx.options.services_only else verdict.passed,
            # Both checked by the model: the casts only tell the type checker so.
            mode=cast("Mode", ctx.mode), state=cast("RunState", status.state),
            stop_reason=status.stop_reason, started_at=self.timeline.started_wall,
            duration_s=round(elapsed, 3), seed=ctx.seed, worker_count=ctx.options.workers,
            ops={}, errors_by_class={},
            rules=[RuleOutcome.model_validate(r.to_json()) for r in verdict.results],
            faults=[], services={})
