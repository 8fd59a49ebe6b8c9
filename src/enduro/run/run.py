"""One execution of a plan: the Run object owns the run directory, the task group, signals,
heartbeats, snapshots, live rule evaluation and the final verdict.

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

import asyncio
import contextlib
import functools
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from enduro.base.clock import Clock, SystemClock
from enduro.base.errors import (
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    EXIT_RUN,
    FatalWorkerError,
    RunError,
    save_traceback,
)
from enduro.base.eventloop import run_coroutine
from enduro.engine.burst import summarize_violations
from enduro.engine.http import generator_hint
from enduro.engine.kinds import outputs
from enduro.engine.load import LoadControl, LoadFiles, LoadShare, op_names, run_load
from enduro.engine.sse import summarize_streams
from enduro.engine.workers import WorkerPool
from enduro.faults.journal import Journal, run_undo
from enduro.faults.session import Chaos
from enduro.observe.exposition import Exporter
from enduro.observe.hist import percentiles_ms
from enduro.observe.metrics import Metrics, op_kinds
from enduro.observe.store import Store
from enduro.observe.watch import Watch
from enduro.observe.window import GENERATOR, WindowStats
from enduro.plan.resolve import LoadedPlan
from enduro.plan.tokens import with_canaries
from enduro.report.html import write_report
from enduro.report.results import SCHEMA, build_results, write_junit, write_results
from enduro.report.terminal import (
    heartbeat_line,
    live_view,
    services_line,
    services_view,
    summary_table,
)
from enduro.run.probe import probe_tcp
from enduro.run.rundir import RunDir
from enduro.run.supervise import supervise
from enduro.run.watchdog import Watchdog, end_children
from enduro.services.identity import kill_group
from enduro.services.supervisor import ServiceSet
from enduro.verdict.evaluate import Abort, RuleBook, Verdict, compile_abort_if, compile_rules
from enduro.verdict.final import Correctness
from enduro.verdict.rules import RuleResult

__all__ = ["FINAL_S", "FINISH_S", "LOAD_SLACK_S", "TEARDOWN_S", "WORKERS_SLACK_S", "Run",
           "RunOptions", "RunOutcome"]

LOAD_SLACK_S = 5.0  # beyond duration + grace: the drain is bounded by grace; this is slack
WORKERS_SLACK_S = 20.0  # with --workers: joins take up to grace + 10 s, then 5 s forced
FINAL_S = 60.0  # the final phase beyond its quiesce
TEARDOWN_S = 30.0  # undoing faults and stopping services, beyond the services' stop graces
FINISH_S = 300.0  # writing results.json, junit.xml and report.html (a day's charts)
EMERGENCY_STOP_S = 5.0  # what the watchdog gives processes between SIGTERM and SIGKILL
# The watchdog's end writes results, junit, state and report within this, then exits anyway
# (what is missing by then is written bare; `enduro report RUN` rebuilds the rest).
EMERGENCY_FINISH_S = 10.0


@dataclass(frozen=True)
class RunOptions:
    """How to run a plan, beyond what the plan says."""

    out: Path = Path("runs")
    duration: float | None = None
    workers: int = 1
    seed: int | None = None
    tag: str | None = None
    live: bool | None = None  # None: a live view when stdout is a terminal
    # The run owns the process: it handles SIGINT/SIGTERM, and its watchdog may end the
    # process when the event loop is blocked past a deadline.
    handle_signals: bool = True
    run_dir: Path | None = None  # a directory chosen beforehand (detached runs)
    services_only: bool = False  # `enduro supervise`: services, no load, until stopped
    metrics_port: int | None = None  # serve the live figures in Prometheus text
    # A blocking job (``enduro loop``) run in a thread while services and faults run; it gets
    # a "should I stop?" callable, and the run ends when it returns.
    job: Callable[[Callable[[], bool]], Any] | None = None


@dataclass
class RunOutcome:
    """What a finished run hands back to the command line."""

    exit_code: int
    run_dir: Path | None
    results: dict[str, Any] | None = None
    error: str | None = None
    # An enduro defect: the file in the run directory holding its traceback.
    traceback_file: Path | None = None


@dataclass
class _Status:
    state: str = "starting"
    stop_reason: str | None = None
    interrupted: bool = False
    aborts: list[Abort] = field(default_factory=list)
    fatal: BaseException | None = None
    crash: BaseException | None = None  # an enduro defect (not an EnduroError)
    traceback_file: Path | None = None


class Run:
    """A run of one plan. Create it, then ``await run.execute()`` (or ``run.main()``)."""

    emergency_finish_s = EMERGENCY_FINISH_S

    def __init__(self, loaded: LoadedPlan, options: RunOptions = RunOptions(), *,
                 clock: Clock | None = None, console: Console | None = None) -> None:
        self.loaded = loaded
        self.plan = loaded.plan
        self.options = options
        self.clock = clock or SystemClock()
        # No markup: plan names, rule texts and service output are printed as they are.
        self.console = console or Console(stderr=True, markup=False, highlight=False, emoji=False)
        self.duration = options.duration if options.duration is not None else self.plan.duration
        self.seed = (options.seed if options.seed is not None else
                     self.plan.seed if self.plan.seed is not None else
                     random.SystemRandom().randrange(1, 2**31))
        self.plan = self._base_plan = with_canaries(self.plan)
        self.ops = op_names(self.plan)
        self.rulebook = RuleBook(compile_rules(self.plan, self.ops), self.ops,
                                 compile_abort_if(self.plan, self.ops))
        # The ring holds what sliding rules and the live view read; heartbeats read at most
        # its last minute.
        keep = max([60.0, *(r.over_s or 0.0 for r in self.rulebook.rules)])
        self.metrics = Metrics(self.plan.window, keep_s=keep, kinds=op_kinds(self.plan))
        self.status = _Status()
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self.interrupt = asyncio.Event()  # a stop by signal or watchdog: skip the final phase
        self.phase = "starting"  # prepare, load, final, teardown, finish
        self._stop_asked = False
        self._watchdog: Watchdog | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._end_lock = threading.Lock()  # the loop and the watchdog never both finish
        self._finished: RunOutcome | None = None
        self._services_down = False
        self._signal_seen: str | None = None  # set by the signal handler, in any state
        self._signals = 0  # how many the handler took (the loop may not have answered any)
        self._written: set[str] = set()  # the artefacts of the end already on disk
        self._late = False  # the watchdog gave up waiting for the end: write nothing more
        self._side: list[asyncio.Task[Any]] = []
        self._faults: list[dict[str, Any]] | None = None  # as the verdict saw them
        self._canary_hits: list[dict[str, Any]] = []
        self.rundir: RunDir | None = None
        self._events: TextIO | None = None
        self._log: TextIO | None = None
        self._started_mono = 0.0
        self._started_wall = 0.0
        self.load_start = 0.0
        self._sources_last: dict[int, int] = {}
        self.services: ServiceSet | None = None
        self.store: Store | None = None
        self.watch = Watch(self)
        self.correctness = Correctness(self)
        self.job_result: Any = None
        self._control = LoadControl()
        # The current token of each service, read by every path that sends a request.
        self.credentials = self._control.credentials
        self._pool: WorkerPool | None = None
        self.chaos = Chaos(self)
        self.metrics.phase_of = self.chaos.phase_of

    # -- public ------------------------------------------------------------------------
    def main(self) -> RunOutcome:
        """Run to the end on a fresh event loop (uvloop when available)."""
        return run_coroutine(self.execute())

    async def execute(self) -> RunOutcome:
        """Run the plan; always write what was measured before returning.

        An enduro defect is raised again once results are written, with ``run_dir`` and
        ``traceback_file`` (its traceback, saved in the run directory) set on it."""
        self._started_wall = self.clock.wall()
        self._started_mono = self.clock.now()
        if self.options.run_dir is not None:
            self.rundir = RunDir.adopt(self.options.run_dir)
        else:
            self.rundir = RunDir.create(self.options.out, self.plan.name, self.options.tag,
                                        self._started_wall)
        try:
            self.store = Store(self.rundir.file("metrics.sqlite"))
            self.metrics.on_window = self.watch.store_window
            self.rulebook.store = self.store
            self._events = self.rundir.open_events()
            self._log = self.rundir.open_log()
            self.rundir.file("plan.resolved.yaml").write_text(self.loaded.resolved_yaml())
            self._write_state()
        except BaseException:
            self._close_files()
            raise
        self.event("run_started", plan=self.plan.name, seed=self.seed, duration_s=self.duration,
                   workers=self.options.workers, pid=os.getpid(), profile=self.loaded.profile)
        self._install_signals()
        try:
            try:
                await self._body()
            except RunError as exc:  # the world, after the load started
                self.status.fatal = exc
                self.status.stop_reason = str(exc)
                self.event("run_failed", error=str(exc))
            except Exception as exc:  # an enduro defect: still tear down and write results
                self._crashed(exc)
            await self._teardown()
            outcome = self._finish()
        finally:
            if self._watchdog is not None:
                self._watchdog.stop()
            self._close_files()
            self._remove_signals()
        crash = self.status.crash
        if crash is not None:
            crash.run_dir = self.rundir.path  # type: ignore[attr-defined]
            crash.traceback_file = self.status.traceback_file  # type: ignore[attr-defined]
            raise crash
        return outcome

    async def _body(self) -> None:
        """Prepare, load, final phase: each cut short by a stop."""
        self._enter("prepare", None)
        try:
            await self._prepare()
        except RunError as exc:
            self.status.fatal = exc
            self.status.stop_reason = str(exc)
            self.event("run_failed", error=str(exc))
            self.console.print(Text.assemble(("error:", "red"), f" {exc}"), soft_wrap=True)
            return
        if self.stop.is_set():
            return
        self.status.state = "running"
        self._write_state()
        self._enter("load", None)  # armed when the load starts (after workers spawn)
        await self._drive()
        if self.force.is_set() or self.interrupt.is_set() or self.status.fatal is not None:
            return
        final = self.plan.final
        self._enter("final", (final.quiesce if final is not None else 0.0) + FINAL_S)
        await self._until(self.correctness.final_phase(), self.interrupt)

    def _enter(self, phase: str, bound_s: float | None) -> None:
        """Start a stretch of the run, bounded by ``bound_s`` seconds (None: by its own
        timeouts)."""
        self.phase = phase
        self.event("phase", phase=phase, bound_s=bound_s)
        if self._watchdog is not None:
            self._watchdog.arm(bound_s, f"the {phase}" if phase != "load" else "the load")

    def _load_slack(self) -> float:
        return WORKERS_SLACK_S if self.options.workers > 1 else LOAD_SLACK_S

    def teardown_bound(self) -> float:
        """How long undoing faults and stopping services may take."""
        return TEARDOWN_S + sum(s.stop.grace for s in self.plan.services.values())

    def _crashed(self, exc: BaseException) -> None:
        """An enduro defect: its traceback goes to the run directory, not the terminal."""
        if self.status.crash is None:
            self.status.crash = exc
        self.status.stop_reason = f"enduro crashed: {exc!r}"
        path: Path | None = None
        with contextlib.suppress(OSError):
            path = save_traceback(exc, self.rundir.path / "logs" if self.rundir else None)
        if self.status.traceback_file is None:
            self.status.traceback_file = path
        self.event("run_crashed", error=repr(exc), phase=self.phase, traceback=str(path))
        with contextlib.suppress(Exception):
            self.log(f"enduro crashed ({exc!r}); traceback in {path}", echo=False)

    def _close_files(self) -> None:
        files = (self._events, self._log)
        self._events = self._log = None
        for fh in files:
            if fh is not None:
                with contextlib.suppress(OSError, ValueError):
                    fh.close()
        with contextlib.suppress(Exception):
            self.metrics.close()  # windows still being stored, before the store closes
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()

    # -- events and state --------------------------------------------------------------
    def event(self, kind: str, **data: Any) -> None:
        """Append one event to ``events.jsonl``."""
        if self._events is None:
            return
        record = {"t": round(self.elapsed(), 3), "wall": round(self.clock.wall(), 3),
                  "event": kind, **data}
        with contextlib.suppress(OSError, ValueError):  # a full disk must not end the run
            self._events.write(json.dumps(record, default=str) + "\n")

    def log(self, line: str, *, echo: bool = True) -> None:
        if self._log is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.wall()))
            with contextlib.suppress(OSError, ValueError):
                self._log.write(f"{stamp} {line}\n")
        if echo:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def elapsed(self) -> float:
        return self.clock.now() - self._started_mono if self._started_mono else 0.0

    def load_elapsed(self) -> float:
        return max(0.0, self.clock.now() - self.load_start) if self.load_start else 0.0

    def _write_state(self, background: bool = False) -> None:
        """``state.json`` now, or (``background``, the periodic write) on a writer thread:
        the fsync never blocks the event loop."""
        if self.rundir is None:
            return
        self.rundir.write_state(background=background, state={
            "run_id": self.rundir.run_id,
            "plan": self.plan.name,
            "state": self.status.state,
            "pid": os.getpid(),
            "started_at": self._started_wall,
            "plan_file": str(self.loaded.source.resolve()),
            "services_only": self.options.services_only,
            "updated_at": self.clock.wall(),
            "duration_s": self.duration,
            "elapsed_s": round(self.load_elapsed(), 3),
            "seed": self.seed,
            "stop_reason": self.status.stop_reason,
            "live": self._live_figures(),
            "resources": {k: {m: round(v, 2) for m, v in vals.items()}
                          for k, vals in self.watch.resources.items()},
            "services": self.services.statuses() if self.services is not None else {},
        })

    def _write_state_bare(self) -> None:
        """``state.json`` from the watchdog, which cannot rely on the live figures (another
        thread may be reading the metrics): the full state if it can be had, else the core."""
        try:
            self._write_state()
        except Exception:
            if self.rundir is None:
                raise
            self.rundir.write_state(state={
                "run_id": self.rundir.run_id, "plan": self.plan.name,
                "state": self.status.state, "pid": os.getpid(),
                "started_at": self._started_wall, "updated_at": self.clock.wall(),
                "duration_s": self.duration, "seed": self.seed,
                "stop_reason": self.status.stop_reason})

    def _live_figures(self) -> dict[str, Any]:
        if self.metrics.sealed < 0:
            return {}
        view = self.metrics.view(last_s=10)
        return {"rps": round(view.rps, 1), "errors": view.errors,
                "error_rate": round(view.error_rate, 6),
                "p95_ms": percentiles_ms(view.latency)["p95"],
                "requests_total": self.metrics.view(elapsed_s=1).requests}

    # -- signals -----------------------------------------------------------------------
    def _install_signals(self) -> None:
        """Python-level handlers rather than the loop's: they run in the main thread even
        while the event loop is blocked, so that the watchdog hears every signal."""
        if not self.options.handle_signals:
            return
        loop = asyncio.get_running_loop()
        self._watchdog = Watchdog(loop, on_overrun=self._overrun, emergency=self._emergency)

        def handler(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            self._signal_seen = name
            self._signals += 1
            if self._watchdog is not None:
                self._watchdog.noted_signal()
            with contextlib.suppress(RuntimeError):  # the loop closed: the run is over
                loop.call_soon_threadsafe(self._signalled, name)

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: no signals here
                self._previous_handlers[sig] = signal.signal(sig, handler)
        self._watchdog.start()

    def _remove_signals(self) -> None:
        for sig, previous in self._previous_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, previous)
        self._previous_handlers.clear()

    def _signalled(self, name: str) -> None:
        if self._watchdog is not None:
            self._watchdog.answered_signal()
        self.request_stop(name)

    def request_stop(self, why: str = "SIGINT") -> None:
        """First call: stop gracefully (in-flight requests get the plan's grace); the verdict
        is ``incomplete``. Second call (or one after an abort): force: drains are cut and
        services get SIGKILL; faults are still undone and results written. A first call once
        the run is tearing down only says so: the verdict stands."""
        first = not self._stop_asked
        self._stop_asked = True
        if not first or self.stop.is_set():
            self.force.set()
            self.interrupt.set()
            self.event("stop_forced", signal=why, phase=self.phase)
            self.log(f"{why} again: stopping now")
            return
        if self.phase in ("teardown", "finish"):
            self.event("stop_requested", signal=why, phase=self.phase)
            self.log(f"{why}: the run is already ending; again to stop at once")
            return
        self.status.interrupted = True
        self.status.stop_reason = f"interrupted by {why}"
        self.stop.set()
        self.interrupt.set()
        self.event("stop_requested", signal=why, phase=self.phase)
        if self._watchdog is not None and self.phase == "load":
            self._watchdog.tighten(self.plan.grace + self._load_slack(), "the stopping load")
        if self.options.services_only:
            self.log(f"{why}: stopping the services; press Ctrl-C again to stop at once")
            return
        self.log(f"{why}: stopping gracefully (up to {self.plan.grace:g}s for in-flight "
                 "requests); press Ctrl-C again to stop at once")

    def _overrun(self, what: str) -> None:
        """The watchdog: a stretch of the run overran its bound; stop at once (loop thread)."""
        reason = f"{what} overran its deadline; stopped by the watchdog"
        self.event("watchdog", what=what, phase=self.phase)
        self.log(f"watchdog: {reason}")
        if self.status.fatal is None:
            self.status.fatal = RunError(reason)
        self.status.stop_reason = reason
        self.stop.set()
        self.force.set()
        self.interrupt.set()

    def _emergency(self, why: str) -> int:
        """The watchdog's end of a run whose event loop is blocked (its own thread): undo the
        faults from the journal, stop every process the run started (SIGKILL at once after a
        second signal), write the results within ``emergency_finish_s``. Returns the exit
        code."""
        reason = f"the watchdog ended the run: {why}"
        forced = self._signals >= 2
        with contextlib.suppress(Exception):
            self.event("watchdog_end", why=why, phase=self.phase)
            self.log(f"watchdog: {why}; undoing faults, stopping processes, writing results")
        if (self._stop_asked or self._signal_seen) and self.status.fatal is None:
            self.status.interrupted = True
            self.status.stop_reason = (self.status.stop_reason
                                       or f"interrupted by {self._signal_seen}; {reason}")
        else:
            self.status.fatal = self.status.fatal or RunError(reason)
            self.status.stop_reason = reason
        with contextlib.suppress(Exception):
            self._undo_journal()
        with contextlib.suppress(Exception):
            grace = 0.0 if forced else EMERGENCY_STOP_S
            pids = end_children(grace)
            self.event("processes_ended", by="watchdog", grace_s=grace, pids=pids)
        if self.services is not None:
            for entry in self.services.entries.values():
                entry.status.state = "stopped" if entry.status.state != "failed" else "failed"
        return self._emergency_end(self.emergency_finish_s)

    def _emergency_end(self, budget_s: float) -> int:
        """Write the end (``_finish``) from a thread of its own, waiting at most ``budget_s``:
        under load an import, a trend analysis or a large report can take longer than a
        forced end may. What is not on disk by then is written bare (results.json with the
        verdict ``incomplete``, junit.xml, state.json). Returns the exit code."""
        ended: list[RunOutcome] = []

        def finish() -> None:
            with contextlib.suppress(Exception):
                ended.append(self._finish(wait_s=budget_s))

        thread = threading.Thread(target=finish, name="enduro-finish", daemon=True)
        thread.start()
        thread.join(budget_s)
        if ended:
            self._close_files()
            return ended[0].exit_code
        self._late = True  # the finish thread may go on, but writes nothing more
        missing = [w for w in ("results.json", "junit.xml", "state.json", "report.html")
                   if w not in self._written]
        with contextlib.suppress(Exception):
            self.log(f"watchdog: the results were not all written within {budget_s:g}s "
                     f"(missing: {', '.join(missing)}); `enduro report` rebuilds them")
        self._end_state()
        try:
            results = self._bare_results(Verdict(False, []), max(1e-3, self.load_elapsed()))
        except Exception:
            return EXIT_RUN
        rundir = self.rundir
        assert rundir is not None
        writes: dict[str, Callable[[], object]] = {
            "results.json": lambda: write_results(rundir.file("results.json"), results),
            "junit.xml": lambda: write_junit(rundir.file("junit.xml"), results),
            "state.json": self._write_state_bare}
        problems = [w for w in missing if w not in writes]
        for what, write in writes.items():
            if what in missing:
                self._guarded(problems, what, write, late_ok=True)
        with contextlib.suppress(Exception):
            self.event("run_finished", verdict="incomplete", state=self.status.state,
                       problems=problems, by="watchdog")
        self._close_files()
        if self.status.crash is not None or self.status.fatal is not None:
            return EXIT_RUN
        if self.status.interrupted and self.options.services_only:
            return EXIT_PASS  # stopping is how supervision ends
        return EXIT_INTERRUPTED if self.status.interrupted else EXIT_RUN

    def _undo_journal(self) -> None:
        """Undo, synchronously, every fault the journal says is in force."""
        if self.rundir is None:
            return
        journal = Journal(self.rundir.file("faults.journal.jsonl"))
        for record in journal.pending():
            undo = dict(record["undo"])
            undo["timeout"] = min(float(undo.get("timeout", 60)), 10.0)
            try:
                what = run_undo(undo, record.get("host"))
            except Exception as exc:
                # Still in force: it stays pending for `enduro recover`, with its error.
                journal.undo_failed(record["id"], str(exc))
                self.event("fault_undo_failed", id=record["id"], fault_kind=record.get("kind"),
                           by="watchdog", error=str(exc))
                continue
            journal.undone(record["id"])
            self.event("fault_undone", id=record["id"], fault_kind=record.get("kind"),
                       by="watchdog", result=what)

    # -- phases ------------------------------------------------------------------------
    def base_urls(self) -> dict[str, str]:
        out = {}
        for name, w in self.plan.workloads.items():
            target = w.http or w.sse or w.flow or w.burst
            if target is not None:
                out[name] = self.plan.base_url(target)
        return out

    async def _prepare(self) -> None:
        assert self.rundir is not None
        if self.plan.services:
            self.services = ServiceSet(
                self.plan, self.loaded.source.parent.resolve(), self.rundir.path,
                self.rundir.run_id, tag=self.options.tag, clock=self.clock, event=self.event,
                log=self.log)
            self.services.on_token = self._on_token
            await self._until(self.services.start_all(), self.stop)
            if self.stop.is_set():
                return
            # The plan keeps its ${token:name} references; every driver and the scraper
            # fill them from the credentials when they build a request.
            self.credentials.update(self.services.tokens)
            self._write_state()
        await self.chaos.start()
        if self.stop.is_set():
            return
        for url in sorted(set(self.base_urls().values())):
            await self._until(probe_tcp(url), self.stop)
            if self.stop.is_set():
                return
            self.event("target_ok", url=url)

    def _on_token(self, service: str, token: str) -> None:
        """A restarted service wrote a new token: requests use it from now on."""
        assert self.services is not None
        self._control.update_tokens(self.services.tokens)
        if self._pool is not None:
            self._pool.send_all("tokens", dict(self.services.tokens))
        self.event("token_refreshed", service=service)

    async def _teardown(self) -> None:
        """Undo faults, stop proxies and services: gracefully, or at once when forced (a
        second signal, the watchdog). Failures are recorded, never raised."""
        self._enter("teardown", self.teardown_bound())
        task = asyncio.ensure_future(self._stop_services())
        await self._settle(task)
        if task.done() and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self.event("teardown_failed", error=repr(exc))
            if isinstance(exc, Exception) and not isinstance(exc, RunError):
                self._crashed(exc)
            else:
                self.log(f"teardown: {exc}")

    async def _stop_services(self) -> None:
        try:
            await self.chaos.stop()
        finally:
            if self.services is not None and not self._services_down:
                self._services_down = True
                await self.services.stop_all()
                self._write_state()

    async def _until(self, coro: Any, event: asyncio.Event) -> Any:
        """Run ``coro`` until it ends or ``event`` is set; then cancel it and wait until its
        clean-up has run (so that nothing it started outlives the run)."""
        task = asyncio.ensure_future(coro)
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            return task.result()
        task.cancel()
        await self._settle(task)
        return None

    async def _settle(self, task: asyncio.Future[Any]) -> None:
        """Wait for ``task`` to end; a forced stop sends SIGKILL to every service so that
        graceful waits end at once (fault undos still run, bounded by their timeouts)."""
        forcer = asyncio.ensure_future(self.force.wait())
        try:
            await asyncio.wait([task, forcer], return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                self._kill_services()
                await asyncio.wait([task])
        finally:
            forcer.cancel()

    def _kill_services(self) -> None:
        if self.services is None:
            return
        self.event("services_killed")
        self.services.stopping = True  # a killed service is not restarted
        for entry in self.services.entries.values():
            proc = entry.process.proc if entry.process is not None else None
            if proc is not None and proc.returncode is None:
                kill_group(proc.pid, signal.SIGKILL)

    def _on_windows(self, source: int, windows: list[WindowStats]) -> None:
        """Windows sealed by a load process: merge, seal what every source has passed,
        evaluate live rules."""
        if not windows:
            return
        self.metrics.add(windows)
        if self.metrics.first_seen(GENERATOR):
            # The generator's own limits: noted when first seen, told after the summary
            # (out of file descriptors, even printing may fail now).
            self.event("generator_limit", hint=generator_hint())
            self.log(f"warning: {generator_hint()}", echo=False)
        self._sources_last[source] = max(w.index for w in windows)
        sealed_upto = min(self._sources_last.values())
        if len(self._sources_last) < self.options.workers:
            return
        if sealed_upto > self.metrics.sealed:
            self.metrics.seal(sealed_upto)
            elapsed = (sealed_upto + 1) * self.plan.window
            for abort in self.rulebook.live(self.metrics, min(elapsed, self.duration)):
                if not self.stop.is_set():
                    self.status.aborts.append(abort)
                    self.status.stop_reason = (f"aborted: rule {abort.rule!r} failed "
                                               f"(observed {abort.observed_text})")
                    self.event("abort", rule=abort.rule, observed=abort.observed_text)
                    self.log(f"abort: rule {abort.rule!r} failed, observed "
                             f"{abort.observed_text}")
                    self.stop.set()

    def _worker_error(self, name: str, exc: BaseException, tb: str, attempt: int) -> None:
        self.event("worker_error", worker=name, error=repr(exc), attempt=attempt, traceback=tb)
        self.log(f"worker {name} failed ({exc!r}); "
                 + ("stopping the run" if isinstance(exc, FatalWorkerError)
                    else f"restart {attempt + 1}"), echo=True)

    def _begin_load(self, bounded: bool = True) -> float:
        """The load starts now: one start time for the load's windows, its phases and the
        fault timeline. Returns the start on ``time.monotonic``'s clock."""
        self.load_start = self.clock.now()
        start_mono = time.monotonic()
        self.event("load_started", workers=self.options.workers)
        if self.chaos.runner is not None:
            self._side.append(asyncio.create_task(self.chaos.runner.run(self.load_start)))
        if self._watchdog is not None:
            slack = self._load_slack()
            self._watchdog.arm(self.duration + self.plan.grace + slack if bounded else None,
                               "the load")
            if self.stop.is_set():
                self._watchdog.tighten(self.plan.grace + slack, "the stopping load")
        return start_mono

    async def _drive(self) -> None:
        side = self._side = [
            asyncio.create_task(supervise("heartbeat", self._heartbeat, clock=self.clock,
                                          on_error=self._worker_error)),
            asyncio.create_task(supervise("snapshot", self._snapshots, clock=self.clock,
                                          on_error=self._worker_error)),
            asyncio.create_task(supervise("state", self._state_ticker, clock=self.clock,
                                          on_error=self._worker_error)),
            asyncio.create_task(supervise("sampler", self.watch.sampler, clock=self.clock,
                                          on_error=self._worker_error)),
            asyncio.create_task(self.watch.loop_lag.run()),
        ]
        for name, service in self.plan.services.items():
            if service.scrape is not None:
                side.append(asyncio.create_task(supervise(
                    f"scrape:{name}", functools.partial(self.watch.scraper, name), clock=self.clock,
                    on_error=self._worker_error)))
        live = self._live()
        try:
            if live is not None:
                side.append(asyncio.create_task(self._live_updates(live)))
            if self.options.job is not None:
                job = self.options.job
                self._begin_load(bounded=False)  # the job's own limits bound it
                self.job_result = await asyncio.to_thread(job, self.stop.is_set)
            elif self.options.services_only:
                self._begin_load(bounded=False)  # supervision lasts until stopped
                await self._supervise_only()
            elif self.options.workers <= 1:
                await self._run_in_process(self._begin_load())
            else:
                await self._run_workers()
        except FatalWorkerError as exc:
            self.status.fatal = exc
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            if live is not None:
                live.stop()

    async def _supervise_only(self) -> None:
        """Keep the services up, supervised, until stopped or the duration passes."""
        stopper = asyncio.ensure_future(self.stop.wait())
        timer = asyncio.ensure_future(self.clock.sleep(self.duration))
        try:
            await asyncio.wait([stopper, timer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            timer.cancel()
        if not self.stop.is_set():
            self.status.stop_reason = f"supervised for --duration {self.duration:g}s"

    def _load_files(self) -> LoadFiles:
        rundir = self.rundir
        return LoadFiles(plan_dir=self.loaded.source.parent.resolve(),
                         history=self.correctness.history_path(),
                         outputs=tuple((o.file, rundir.file(o.file)) for o in outputs(self.plan))
                         if rundir is not None else ())

    async def _run_in_process(self, start_mono: float) -> None:
        async def work() -> None:
            await run_load(self.plan, seed=self.seed, share=LoadShare(),
                           base_urls=self.base_urls(),
                           sink=lambda ws: self._on_windows(0, ws),
                           duration=self.duration, start_mono=start_mono, stop=self.stop,
                           force=self.force, grace=self.plan.grace, control=self._control,
                           files=self._load_files())
        await supervise("load", work, clock=self.clock, on_error=self._worker_error,
                        stop=self.stop)

    async def _run_workers(self) -> None:
        pool = WorkerPool(self.plan, self.options.workers, self.seed, self.base_urls(),
                          self.duration, self.plan.grace, self._on_windows,
                          files=self._load_files())
        self._pool = pool
        try:
            await self._until(pool.start(), self.stop)
            if self.stop.is_set():
                return
            pool.send_all("tokens", dict(self.credentials.tokens))
            # Faults, phases and windows count from the workers' common go.
            self._begin_load()
            pool.go(self.clock.wall())
            waiter = asyncio.ensure_future(pool.wait())
            stopper = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                pool.send_all("stop")
                forcer = asyncio.ensure_future(self.force.wait())
                await asyncio.wait([waiter, forcer], timeout=self.plan.grace + 10,
                                   return_when=asyncio.FIRST_COMPLETED)
                forcer.cancel()
                if not waiter.done():
                    pool.send_all("force")
                    await asyncio.wait([waiter], timeout=5)
                    waiter.cancel()
            stopper.cancel()
        finally:
            pool.close()
        bad = [c for c in pool.exit_codes() if c not in (0, None)]
        if bad:
            self.event("worker_exit", exit_codes=pool.exit_codes())
            if not self.status.interrupted:
                raise FatalWorkerError(f"load worker processes exited with {bad}")

    async def _heartbeat(self) -> None:
        every = self.plan.observe.heartbeat
        # A little after each boundary, so that the window just ended has been sealed.
        await self.clock.sleep(min(0.2, self.plan.window / 5))
        while True:
            await self.clock.sleep(every)
            line = (services_line(self.services.statuses() if self.services else {},
                                  self.load_elapsed()) if self.options.services_only
                    else heartbeat_line(self.metrics, self.load_elapsed(), min(every, 60.0)))
            self.event("heartbeat", line=line)
            self.log(line, echo=not self._is_live())

    async def _snapshots(self) -> None:
        every = self.plan.observe.snapshot
        n = 0
        await self.clock.sleep(min(0.2, self.plan.window / 5))
        while True:
            await self.clock.sleep(every)
            n += 1
            assert self.rundir is not None
            elapsed = self.load_elapsed()
            snap = {"t": round(elapsed, 3), "wall": self.clock.wall(),
                    "total": self.metrics.view(elapsed_s=elapsed).summary(),
                    "ops": {op: self.metrics.view({op}, elapsed_s=elapsed).summary()
                            for op in self.ops}}
            path = self.rundir.path / "snapshots" / f"snapshot-{n:04d}-t{int(elapsed)}s.json"
            await asyncio.to_thread(path.write_text, json.dumps(snap, indent=2) + "\n")
            self.event("snapshot", path=str(path.relative_to(self.rundir.path)))

    async def _state_ticker(self) -> None:
        exporter = None
        if self.options.metrics_port is not None:
            exporter = Exporter()
            exporter.start(self.options.metrics_port)
            self.log(f"metrics: http://127.0.0.1:{self.options.metrics_port}/metrics")
        while True:
            if exporter is not None:
                exporter.update(self.watch.exposition())
            await self.clock.sleep(2.0)
            self._write_state(background=True)

    def _is_live(self) -> bool:
        if self.options.live is not None:
            return self.options.live
        return self.console.is_terminal and sys.stdout.isatty()

    def _live(self) -> Live | None:
        if not self._is_live():
            return None
        live = Live(self._render(), console=self.console, refresh_per_second=2,
                    transient=True)
        live.start()
        return live

    def _render(self) -> Any:
        if self.options.services_only:
            return services_view(self.services.statuses() if self.services else {},
                                 plan=self.plan.name, elapsed_s=self.load_elapsed())
        return live_view(self.metrics, self.ops, plan=self.plan.name,
                         elapsed_s=self.load_elapsed(), duration_s=self.duration,
                         state=self.status.state, resources=self.watch.resources,
                         scraped=self.watch.scraped)

    async def _live_updates(self, live: Live) -> None:
        while True:
            await self.clock.sleep(1.0)
            live.update(self._render())

    # -- the end -----------------------------------------------------------------------
    def _finish(self, wait_s: float = -1) -> RunOutcome:
        """Verdict, results.json, junit.xml, report.html, state.json: each written even when
        another fails. Runs once, in the loop's thread or in the watchdog's (which waits at
        most ``wait_s`` for the loop's to end)."""
        if not self._end_lock.acquire(timeout=wait_s):
            return RunOutcome(EXIT_RUN, self.rundir.path if self.rundir else None,
                              error="results are being written by another thread")
        try:
            if self._finished is None:
                self._finished = self._write_end()
            return self._finished
        finally:
            self._end_lock.release()

    def _write_end(self) -> RunOutcome:
        assert self.rundir is not None
        self.phase = "finish"
        if self._watchdog is not None:
            # Patient: writing the report may hold the loop for seconds; a signal now waits.
            self._watchdog.arm(FINISH_S, "writing the results", patient=True)
        early = (self.status.interrupted or self.status.fatal is not None
                 or self.status.crash is not None)
        # Supervision judges nothing: never a pass, however it ended (build_results).
        incomplete = early and not self.status.aborts
        self._end_state()
        elapsed = max(1e-3, min(self.load_elapsed(), self.duration)
                      if not early else self.load_elapsed())
        try:
            verdict = self._verdict(elapsed)
        except Exception as exc:  # a defect in verdict assembly: the results still go out
            self._crashed(exc)
            incomplete = True
            self.status.state = "failed"
            verdict = Verdict(False, [])
        try:
            results = self._results(verdict, elapsed, incomplete)
        except Exception as exc:
            self._crashed(exc)
            incomplete = True
            self.status.state = "failed"
            results = self._bare_results(verdict, elapsed)
        if self.status.crash is not None:
            results["error"] = repr(self.status.crash)
            results["verdict"] = "incomplete"
            results["complete"] = False
            if self.status.traceback_file is not None:
                results["traceback"] = str(self.status.traceback_file)
        elif self.status.fatal is not None:
            results.setdefault("error", str(self.status.fatal))
        problems: list[str] = []
        rundir = self.rundir
        self._guarded(problems, "results.json",
                      lambda: write_results(rundir.file("results.json"), results))
        self._guarded(problems, "junit.xml",
                      lambda: write_junit(rundir.file("junit.xml"), results))
        if self.store is not None and threading.current_thread() is threading.main_thread():
            store = self.store
            self._guarded(problems, "metrics.sqlite",
                          lambda: store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        self._guarded(problems, "report.html", lambda: write_report(rundir.path))
        self.event("run_finished", verdict=results.get("verdict"), state=self.status.state,
                   problems=problems)
        self._guarded(problems, "state.json", self._write_state)
        with contextlib.suppress(Exception):
            summary_table(results, self.console)
            if results.get("errors_by_class", {}).get(GENERATOR):
                self.console.print(f"warning: {generator_hint()}", markup=False,
                                   highlight=False, soft_wrap=True)
        error = None
        if self.status.crash is not None:
            code = EXIT_RUN  # the command line turns a raised defect into its own code
            error = repr(self.status.crash)
        elif self.status.fatal is not None:
            code = EXIT_RUN
            error = str(self.status.fatal)
        elif self.options.services_only:
            code = EXIT_PASS  # stopping is how supervision ends
        elif self.status.aborts:
            code = EXIT_FAIL
        elif self.status.interrupted:
            code = EXIT_INTERRUPTED
        else:
            code = EXIT_PASS if verdict.passed else EXIT_FAIL
        if "results.json" in problems and code in (EXIT_PASS, EXIT_FAIL):
            code = EXIT_RUN  # no verdict reached the disk: nothing can rely on this run
            error = "results.json could not be written (see logs/enduro.log)"
        return RunOutcome(code, self.rundir.path, results, error=error,
                          traceback_file=self.status.traceback_file)

    def _end_state(self) -> None:
        """The state a run ends in, from how it ended."""
        if self.status.crash is not None:
            self.status.state = "failed"
        elif self.status.fatal is not None:
            self.status.state = "failed"
            self.status.stop_reason = self.status.stop_reason or str(self.status.fatal)
        elif self.status.interrupted or self.status.aborts:
            self.status.state = "stopped"
        else:
            self.status.state = "completed"

    def _guarded(self, problems: list[str], what: str, write: Callable[[], object], *,
                 late_ok: bool = False) -> None:
        """One artefact of the end: a failure is logged, and the others are still written.
        Nothing once the watchdog wrote the end itself (``late_ok``: the watchdog's writes)."""
        if self._late and not late_ok:
            return
        try:
            write()
            self._written.add(what)
        except Exception as exc:
            problems.append(what)
            self.event("write_failed", what=what, error=repr(exc))
            with contextlib.suppress(Exception):
                self.log(f"{what} could not be written: {exc}")

    def _verdict(self, elapsed: float) -> Verdict:
        faults = self.chaos.results()
        self._faults = faults
        self.rulebook.fault_values.update(Chaos.rule_values(faults))
        self.metrics.seal(max(self.metrics.latest, self.metrics.sealed))
        # Sealed windows' bookkeeping runs on a writer thread: the store is complete after it.
        store_error = self.metrics.flush()
        if store_error is not None:
            self.event("write_failed", what="metrics.sqlite", error=repr(store_error))
            self.log(f"metrics.sqlite: windows could not be stored: {store_error}")
        verdict: Verdict = (Verdict(True, []) if self.options.services_only
                            else self.rulebook.final(self.metrics, elapsed))
        if self.options.job is not None and isinstance(self.job_result, list):
            failed = sum(1 for row in self.job_result if not row.get("passed"))
            verdict = Verdict(verdict.passed and not failed, [*verdict.results, RuleResult(
                "every loop iteration passes", float(failed),
                f"{failed} of {len(self.job_result)} failed", not failed)])
        if self.status.aborts:
            verdict = Verdict(False, verdict.results)
        canary_hits = self.correctness.canary_hits()
        self._canary_hits = canary_hits
        if self.plan.canaries.values:
            where = ", ".join(h["where"] for h in canary_hits[:5])
            verdict = Verdict(verdict.passed and not canary_hits, [*verdict.results, RuleResult(
                "canaries never appear", float(len(canary_hits)),
                f"{len(canary_hits)} place(s)" + (f": {where}" if where else ""),
                not canary_hits)])
        if any(self.correctness.violations.values()):
            counts = self.correctness.counts  # the lists hold only the first examples
            checker_results = [RuleResult(f"checker {name}", float(counts.get(name, len(vs))),
                                          f"{counts.get(name, len(vs))} violation(s)", not vs,
                                          vs[0]["message"] if vs else "")
                               for name, vs in self.correctness.violations.items()]
            verdict = Verdict(False, [*verdict.results, *checker_results])
        elif self.correctness.violations:
            verdict = Verdict(verdict.passed, [*verdict.results, *(
                RuleResult(f"checker {name}", 0.0, "0 violations", True)
                for name in self.correctness.violations)])
        return verdict

    def _results(self, verdict: Verdict, elapsed: float, incomplete: bool) -> dict[str, Any]:
        assert self.rundir is not None
        faults = self._faults if self._faults is not None else self.chaos.results()
        return build_results(
            run_id=self.rundir.run_id, plan_name=self.plan.name, verdict=verdict,
            metrics=self.metrics, ops=self.ops, elapsed_s=elapsed, seed=self.seed,
            state=self.status.state, started_wall=self._started_wall,
            stop_reason=self.status.stop_reason, workers=self.options.workers,
            profile=self.loaded.profile, incomplete=incomplete, mode=self._mode(),
            extra={"services": self.services.statuses() if self.services else {},
                   "resources": self.watch.resource_results(),
                   "generator": self.watch.generator_summary(),
                   "trends": self.rulebook.trend_details,
                   "checkers": self.correctness.violations,
                   "checker_counts": self.correctness.counts,
                   "loop": self.job_result if isinstance(self.job_result, list) else None,
                   "canaries": self._canary_hits,
                   "streams": summarize_streams(self.rundir.file("sse_streams.jsonl")),
                   "bursts": summarize_violations(self.rundir.file("bursts.jsonl")),
                   "faults": faults, "faults_skipped": self.chaos.skipped,
                   "phases": {p: round(n * self.plan.window, 3)
                              for p, n in self.metrics.phase_windows.items()}})

    def _mode(self) -> str:
        return "supervise" if self.options.services_only else "run"

    def _bare_results(self, verdict: Verdict, elapsed: float) -> dict[str, Any]:
        """What can always be said of a run, when the full results could not be assembled."""
        assert self.rundir is not None
        return {"schema": SCHEMA, "run_id": self.rundir.run_id, "plan": self.plan.name,
                "profile": self.loaded.profile, "verdict": "incomplete", "complete": False,
                "rules_passed": None if self.options.services_only else verdict.passed,
                "mode": self._mode(), "state": self.status.state,
                "stop_reason": self.status.stop_reason, "started_at": self._started_wall,
                "duration_s": round(elapsed, 3), "seed": self.seed,
                "workers": self.options.workers, "ops": {}, "errors_by_class": {},
                "rules": [r.to_json() for r in verdict.results], "faults": [], "services": {}}
