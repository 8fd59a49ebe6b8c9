"""One execution of a plan: the Run composes the parts of a run (``run/`` modules, each named
for what it holds) and walks it through its stretches: prepare, load, final phase, teardown,
the end.

Every run ends, and ends with its results written. The stretches of a run and their bounds:

- prepare (build, stage, start, readiness): bounded by the build and readiness timeouts;
- load: ``duration`` + ``grace`` + 5 s from the load's start (+ 20 s with ``--workers``);
- final phase: ``quiesce`` + ``FINAL_S``;
- teardown (undo faults, stop services): ``TEARDOWN_S`` + the services' stop graces;
- writing results, junit and report: ``FINISH_S``.

A watchdog thread holds the run to those bounds even when the event loop is blocked; its own
end is bounded too (undo each fault within 10 s, stop processes within 5 s, none after a
second signal, results within ``EMERGENCY_FINISH_S``, else written bare). A first
SIGINT/SIGTERM stops gracefully (in-flight requests get ``grace``); a second forces: drains are
cut and services get SIGKILL, but faults are still undone and results still written. A run
stopped early has the verdict ``incomplete`` (exit 130); an ``abort_on_fail`` abort is a
``fail`` (exit 1).
"""

from __future__ import annotations

import contextlib
import os

from rich.console import Console

from enduro.base.clock import Clock, SystemClock
from enduro.base.errors import RunError
from enduro.base.eventloop import run_coroutine
from enduro.engine.kinds import history_used
from enduro.engine.load import LoadControl
from enduro.faults.chaos import Chaos
from enduro.observe.metrics import Metrics, op_kinds
from enduro.observe.store import Store
from enduro.plan.resolve import LoadedPlan
from enduro.run.context import (
    FINAL_S,
    FINISH_S,
    LOAD_SLACK_S,
    TEARDOWN_S,
    WORKERS_SLACK_S,
    RunContext,
    RunOptions,
    RunOutcome,
)
from enduro.run.correctness import Correctness
from enduro.run.emergency import WatchdogEnd
from enduro.run.end import RunEnd
from enduro.run.load import Load
from enduro.run.probe import probe_tcp
from enduro.run.rundir import RunDir
from enduro.run.runlog import RunLog
from enduro.run.signals import Signals
from enduro.run.state import StateFile
from enduro.run.stops import Stops
from enduro.run.teardown import Teardown
from enduro.run.tickers import Tickers
from enduro.run.timeline import Timeline
from enduro.run.view import LiveView
from enduro.run.watch import Watch
from enduro.run.windows import WindowSink
from enduro.services.supervisor import ServiceSet
from enduro.verdict.evaluate import RuleBook, compile_abort_if, compile_rules

__all__ = ["FINAL_S", "FINISH_S", "LOAD_SLACK_S", "TEARDOWN_S", "WORKERS_SLACK_S", "Run",
           "RunOptions", "RunOutcome"]


class Run:
    """A run of one plan. Create it, then ``await run.execute()`` (or ``run.main()``).

    The run composes its parts, each handed what it needs (the frozen ``RunContext`` and its
    collaborators), never the run: ``Stops`` (phase, status, stop requests), ``Signals`` and
    the watchdog, ``Chaos`` (proxies, faults, phases), the services, ``Watch`` (samples and
    scrapes), ``Load`` (the load in its mode, with ``Tickers`` and the ``LiveView``),
    ``Correctness`` (the final phase), ``Teardown`` and ``RunEnd`` (verdict, results)."""

    def __init__(self, loaded: LoadedPlan, options: RunOptions | None = None, *,
                 clock: Clock | None = None, console: Console | None = None,
                 services: ServiceSet | None = None,
                 summary: Console | None = None) -> None:
        options = options or RunOptions()
        # Services started by someone else (the scenarios of a plan share them): this run
        # neither starts nor stops them.
        self.lent_services = services
        ctx = self.ctx = RunContext.of(loaded, options, clock or SystemClock())
        self.loaded = loaded
        self.plan = ctx.plan
        self.options = options
        self.seed = ctx.seed
        self.duration = ctx.duration
        # No markup: plan names, rule texts and service output are printed as they are.
        self.console = console or Console(stderr=True, markup=False, highlight=False, emoji=False)
        # The summary table and the verdict (stdout for `enduro run`, so that `> summary.txt`
        # keeps them); progress, heartbeats and logs stay on ``console``.
        self.summary = summary or self.console
        self.timeline = Timeline(ctx.clock)
        self.runlog = RunLog(self.timeline, self.console)
        self.stops = Stops(ctx, self.runlog)
        self.signals = Signals(self.stops)
        self.rulebook = RuleBook(compile_rules(ctx.plan, ctx.ops), ctx.ops,
                                 compile_abort_if(ctx.plan, ctx.ops),
                                 has_faults=bool(ctx.plan.faults))
        # The ring holds what sliding rules and the live view read; heartbeats read at most
        # its last minute.
        keep = max([60.0, *(r.over_s or 0.0 for r in self.rulebook.rules)])
        self.metrics = Metrics(ctx.plan.window, keep_s=keep, kinds=op_kinds(ctx.plan))
        self.chaos = Chaos(ctx.plan, duration=ctx.duration, seed=ctx.seed,
                           plan_dir=ctx.plan_dir, clock=ctx.clock, event=self.runlog.event,
                           log=self.runlog.log)
        self.metrics.phase_of = self.chaos.phase_of
        # The current token of each service, read by every path that sends a request.
        self.control = LoadControl()
        self.rundir: RunDir | None = None
        self.store: Store | None = None

    # -- public ------------------------------------------------------------------------
    def main(self) -> RunOutcome:
        """Run to the end on a fresh event loop (uvloop when available)."""
        return run_coroutine(self.execute())

    def request_stop(self, why: str = "SIGINT") -> None:
        """Stop gracefully; a second call forces (see ``Stops.request_stop``)."""
        self.stops.request_stop(why)

    async def execute(self) -> RunOutcome:
        """Run the plan; always write what was measured before returning.

        An enduro defect is raised again once results are written, with ``run_dir`` and
        ``traceback_file`` (its traceback, saved in the run directory) set on it."""
        ctx, status = self.ctx, self.stops.status
        self.timeline.start()
        rundir = (RunDir.adopt(ctx.options.run_dir) if ctx.options.run_dir is not None else
                  RunDir.create(ctx.options.out, ctx.plan.name, ctx.options.tag,
                                self.timeline.started_wall))
        try:
            self._open(rundir)
            rundir.file("plan.resolved.yaml").write_text(ctx.loaded.resolved_yaml())
            self.state.write()
        except BaseException:
            self._close()
            raise
        self.runlog.event("run_started", plan=ctx.plan.name, seed=ctx.seed,
                          duration_s=ctx.duration, workers=ctx.options.workers,
                          pid=os.getpid(), profile=ctx.loaded.profile)
        if ctx.options.handle_signals:
            self.signals.install(self.watchdog_end)
        try:
            try:
                await self._body()
            except RunError as exc:  # the world, after the load started
                self.stops.failed(exc)
            except Exception as exc:  # an enduro defect: still tear down and write results
                self.stops.crashed(exc)
            await self.teardown.run()
            outcome = self.end.finish()
        finally:
            if self.stops.watchdog is not None:
                self.stops.watchdog.stop()
            self._close()
            self.signals.remove()
        crash = status.crash
        if crash is not None:
            crash.run_dir = rundir.path  # type: ignore[attr-defined]
            crash.traceback_file = status.traceback_file  # type: ignore[attr-defined]
            raise crash
        return outcome

    # -- the parts ---------------------------------------------------------------------
    def _open(self, rundir: RunDir) -> None:
        """The run directory is there: open its files and compose the parts that use it."""
        ctx, timeline, runlog, stops = self.ctx, self.timeline, self.runlog, self.stops
        self.rundir = rundir
        store = self.store = Store(rundir.file("metrics.sqlite"))
        self.rulebook.store = store
        runlog.open(rundir, max_bytes=ctx.plan.observe.log_max, keep=ctx.plan.observe.log_keep)
        services = self.services = self.lent_services or (ServiceSet(
            ctx.plan, ctx.plan_dir, rundir.path, rundir.run_id, tag=ctx.options.tag,
            clock=ctx.clock, event=runlog.event, log=runlog.log) if ctx.plan.services else None)
        if services is not None:
            services.on_token = self._on_token
        watch = self.watch = Watch(ctx, timeline, runlog, store=store, services=services,
                                   credentials=self.control.credentials)
        sink = WindowSink(ctx, self.metrics, self.rulebook, stops, store)
        self.metrics.on_window = sink.store_window
        state = self.state = StateFile(ctx, rundir, timeline, stops.status, self.metrics, watch,
                                       services)
        view = LiveView(ctx, self.console, timeline, stops.status, self.metrics, watch, services)
        tickers = Tickers(ctx, runlog, timeline, rundir, self.metrics, status=stops.status,
                          state=state, watch=watch, view=view, services=services,
                          faults=self.chaos.in_force)
        self.teardown = Teardown(stops, self.chaos, services, write_state=state.write,
                                 keep_services=self.lent_services is not None)
        history = rundir.file("history.jsonl") if history_used(ctx.plan) else None
        self.correctness = Correctness(ctx, runlog, self.chaos, services, history)
        self.load = Load(ctx, stops, timeline, rundir=rundir, history=history, sink=sink,
                         chaos=self.chaos, control=self.control, tickers=tickers, watch=watch,
                         view=view, teardown=self.teardown)
        self.end = RunEnd(ctx, stops, timeline, rundir, console=self.summary,
                          metrics=self.metrics, store=store, rulebook=self.rulebook,
                          chaos=self.chaos, correctness=self.correctness, watch=watch,
                          services=services, state=state, job_result=lambda: self.load.job_result,
                          workers=lambda: self.load.worker_summaries())
        self.watchdog_end = WatchdogEnd(self.end, self.signals, services, close=self._close)

    def _close(self) -> None:
        self.runlog.close()
        with contextlib.suppress(Exception):
            self.metrics.close()  # windows still being stored, before the store closes
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()

    def _on_token(self, service: str, token: str) -> None:
        """A restarted service wrote a new token: requests use it from now on."""
        assert self.services is not None
        self.load.on_token(self.services.tokens)
        self.runlog.event("token_refreshed", service=service)

    # -- the stretches -----------------------------------------------------------------
    async def _body(self) -> None:
        """Prepare, load, final phase: each cut short by a stop."""
        stops = self.stops
        stops.enter("prepare", None)
        try:
            await self._prepare()
        except RunError as exc:
            stops.failed(exc, echo=True)
            return
        if stops.stop.is_set():
            return
        stops.status.state = "running"
        self.state.write()
        stops.enter("load", None)  # armed when the load starts (after workers spawn)
        await self.load.drive()
        if stops.force.is_set() or stops.interrupt.is_set() or stops.status.fatal is not None:
            return
        final = self.plan.final
        stops.enter("final", (final.quiesce if final is not None else 0.0) + FINAL_S)
        await self.teardown.until(self.correctness.final_phase(), stops.interrupt)

    async def _prepare(self) -> None:
        """Start the services (their tokens to the credentials), the proxies and the fault
        runner, and see that every target answers."""
        stop, until = self.stops.stop, self.teardown.until
        assert self.rundir is not None
        if self.services is not None:
            if self.lent_services is None:
                await until(self.services.start_all(), stop)
            if stop.is_set():
                return
            # The plan keeps its ${token:name} references; every driver and the scraper
            # fill them from the credentials when they build a request.
            self.control.credentials.update(self.services.tokens)
            self.state.write()
        await self.chaos.start(self.services, self.rundir.file("faults.journal.jsonl"))
        if stop.is_set():
            return
        for url in sorted(set(self.ctx.base_urls().values())):
            await until(probe_tcp(url), stop)
            if stop.is_set():
                return
            self.runlog.event("target_ok", url=url)
