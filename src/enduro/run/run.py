"""One execution of a plan: the Run object owns the run directory, the task group, signals,
heartbeats, snapshots, live rule evaluation and the final verdict."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live

from enduro.engine.burst import summarize_violations
from enduro.engine.load import LoadControl, LoadFiles, LoadShare, op_names, run_load
from enduro.engine.sse import summarize_streams
from enduro.engine.workers import WorkerPool
from enduro.errors import (
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    EXIT_RUN,
    FatalWorkerError,
    RunError,
)
from enduro.faults.session import Chaos
from enduro.observe.exposition import Exporter
from enduro.observe.hist import percentiles_ms
from enduro.observe.metrics import Metrics
from enduro.observe.store import Store
from enduro.observe.watch import Watch
from enduro.observe.window import WindowStats
from enduro.plan.resolve import LoadedPlan
from enduro.plan.tokens import with_canaries, with_tokens
from enduro.report.html import write_report
from enduro.report.results import build_results, write_junit, write_results
from enduro.report.terminal import heartbeat_line, live_view, services_view, summary_table
from enduro.run.clock import Clock, SystemClock
from enduro.run.loop import run_coroutine
from enduro.run.probe import probe_tcp
from enduro.run.rundir import RunDir
from enduro.run.supervise import supervise
from enduro.services.supervisor import ServiceSet
from enduro.verdict.evaluate import Abort, RuleBook, Verdict, compile_abort_if, compile_rules
from enduro.verdict.final import Correctness
from enduro.verdict.rules import RuleResult

__all__ = ["Run", "RunOptions", "RunOutcome"]


@dataclass(frozen=True)
class RunOptions:
    """How to run a plan, beyond what the plan says."""

    out: Path = Path("runs")
    duration: float | None = None
    workers: int = 1
    seed: int | None = None
    tag: str | None = None
    live: bool | None = None  # None: a live view when stdout is a terminal
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


@dataclass
class _Status:
    state: str = "starting"
    stop_reason: str | None = None
    interrupted: bool = False
    aborts: list[Abort] = field(default_factory=list)
    fatal: BaseException | None = None


class Run:
    """A run of one plan. Create it, then ``await run.execute()`` (or ``run.main()``)."""

    def __init__(self, loaded: LoadedPlan, options: RunOptions = RunOptions(), *,
                 clock: Clock | None = None, console: Console | None = None) -> None:
        self.loaded = loaded
        self.plan = loaded.plan
        self.options = options
        self.clock = clock or SystemClock()
        self.console = console or Console(stderr=True)
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
        self.metrics = Metrics(self.plan.window, keep_s=keep)
        self.status = _Status()
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
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
        self._pool: WorkerPool | None = None
        self.chaos = Chaos(self)
        self.metrics.phase_of = self.chaos.phase_of

    # -- public ------------------------------------------------------------------------
    def main(self) -> RunOutcome:
        """Run to the end on a fresh event loop (uvloop when available)."""
        return run_coroutine(self.execute())

    async def execute(self) -> RunOutcome:
        """Run the plan; always write what was measured before returning."""
        self._started_wall = self.clock.wall()
        self._started_mono = self.clock.now()
        if self.options.run_dir is not None:
            self.rundir = RunDir.adopt(self.options.run_dir)
        else:
            self.rundir = RunDir.create(self.options.out, self.plan.name, self.options.tag,
                                        self._started_wall)
        self.store = Store(self.rundir.file("metrics.sqlite"))
        self.metrics.on_window = self.watch.store_window
        self.rulebook.store = self.store
        self._events = self.rundir.open_events()
        self._log = self.rundir.open_log()
        self.rundir.file("plan.resolved.yaml").write_text(self.loaded.resolved_yaml())
        self._write_state()
        self.event("run_started", plan=self.plan.name, seed=self.seed, duration_s=self.duration,
                   workers=self.options.workers, pid=os.getpid(), profile=self.loaded.profile)
        self._install_signals()
        try:
            try:
                await self._prepare()
            except RunError as exc:
                self.status.state = "failed"
                self.status.stop_reason = str(exc)
                self.event("run_failed", error=str(exc))
                self._write_state()
                self.console.print(f"[red]error:[/] {exc}", soft_wrap=True)
                return RunOutcome(EXIT_RUN, self.rundir.path, error=str(exc))
            if self.stop.is_set():
                self.status.state = "stopped"
                self._write_state()
                return RunOutcome(EXIT_INTERRUPTED, self.rundir.path)
            self.status.state = "running"
            self._write_state()
            await self._drive()
            if not self.force.is_set() and self.status.fatal is None:
                await self.correctness.final_phase()
            await self._stop_services()
            return self._finish()
        finally:
            await self._stop_services()
            self._remove_signals()
            for fh in (self._events, self._log):
                if fh is not None:
                    fh.close()
            if self.store is not None:
                self.store.close()

    # -- events and state --------------------------------------------------------------
    def event(self, kind: str, **data: Any) -> None:
        """Append one event to ``events.jsonl``."""
        if self._events is None:
            return
        record = {"t": round(self.elapsed(), 3), "wall": round(self.clock.wall(), 3),
                  "event": kind, **data}
        self._events.write(json.dumps(record, default=str) + "\n")

    def log(self, line: str, *, echo: bool = True) -> None:
        if self._log is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.wall()))
            self._log.write(f"{stamp} {line}\n")
        if echo:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def elapsed(self) -> float:
        return self.clock.now() - self._started_mono if self._started_mono else 0.0

    def load_elapsed(self) -> float:
        return max(0.0, self.clock.now() - self.load_start) if self.load_start else 0.0

    def _write_state(self) -> None:
        if self.rundir is None:
            return
        self.rundir.write_state({
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
        if not self.options.handle_signals:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop, sig.name)

    def _remove_signals(self) -> None:
        if not self.options.handle_signals:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)

    def request_stop(self, why: str = "SIGINT") -> None:
        """First call: stop gracefully (in-flight requests get the plan's grace). Second: force."""
        if self.stop.is_set():
            self.force.set()
            self.event("stop_forced", signal=why)
            self.log(f"{why} again: stopping now")
            return
        self.status.interrupted = True
        self.status.stop_reason = f"interrupted by {why}"
        self.stop.set()
        self.event("stop_requested", signal=why)
        self.log(f"{why}: stopping gracefully (up to {self.plan.grace:g}s for in-flight "
                 "requests); press Ctrl-C again to stop at once")

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
            await self._until_stopped(self.services.start_all())
            if self.stop.is_set():
                return
            if self.services.tokens:
                self.plan = with_tokens(self.plan, self.services.tokens)
            self._write_state()
        await self.chaos.start()
        for url in sorted(set(self.base_urls().values())):
            await self._until_stopped(probe_tcp(url))
            self.event("target_ok", url=url)

    def _on_token(self, service: str, token: str) -> None:
        """A restarted service wrote a new token: requests use it from now on."""
        assert self.services is not None
        self.plan = with_tokens(self._base_plan, self.services.tokens)
        self._control.update_plan(self.plan)
        if self._pool is not None:
            self._pool.send_all("plan", self.plan.model_dump(mode="json", by_alias=True))
        self.event("token_refreshed", service=service)

    async def _stop_services(self) -> None:
        await self.chaos.stop()
        if self.services is not None and not self.services.stopping:
            await self.services.stop_all()
            self._write_state()

    async def _until_stopped(self, coro: Any) -> Any:
        task = asyncio.ensure_future(coro)
        stopper = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task.done():
            return task.result()
        task.cancel()
        return None

    def _on_windows(self, source: int, windows: list[WindowStats]) -> None:
        """Windows sealed by a load process: merge, seal what every source has passed,
        evaluate live rules."""
        if not windows:
            return
        self.metrics.add(windows)
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

    async def _drive(self) -> None:
        self.load_start = self.clock.now()
        start_mono = time.monotonic()
        self.event("load_started", workers=self.options.workers)
        side = [
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
        if self.chaos.runner is not None:
            side.append(asyncio.create_task(self.chaos.runner.run(self.load_start)))
        live = self._live()
        try:
            if live is not None:
                side.append(asyncio.create_task(self._live_updates(live)))
            if self.options.job is not None:
                job = self.options.job
                self.job_result = await asyncio.to_thread(job, self.stop.is_set)
            elif self.options.services_only:
                await self._supervise_only()
            elif self.options.workers <= 1:
                await self._run_in_process(start_mono)
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

    def _load_files(self) -> LoadFiles:
        def wanted(name: str, kind: str) -> Path | None:
            used = any(getattr(w, kind) is not None for w in self.plan.workloads.values())
            return self.rundir.file(name) if used and self.rundir is not None else None

        return LoadFiles(plan_dir=self.loaded.source.parent.resolve(),
                         history=self.correctness.history_path(),
                         streams=wanted("sse_streams.jsonl", "sse"),
                         bursts=wanted("bursts.jsonl", "burst"))

    async def _run_in_process(self, start_mono: float) -> None:
        async def work() -> None:
            await run_load(self.plan, seed=self.seed, share=LoadShare(),
                           base_urls=self.base_urls(),
                           sink=lambda ws: self._on_windows(0, ws),
                           duration=self.duration, start_mono=start_mono, stop=self.stop,
                           force=self.force, grace=self.plan.grace, control=self._control,
                           files=self._load_files())
        await supervise("load", work, clock=self.clock, on_error=self._worker_error)

    async def _run_workers(self) -> None:
        pool = WorkerPool(self.plan, self.options.workers, self.seed, self.base_urls(),
                          self.duration, self.plan.grace, self._on_windows,
                          files=self._load_files())
        self._pool = pool
        try:
            await pool.start()
            self.load_start = self.clock.now()
            pool.go(time.time())
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
            line = heartbeat_line(self.metrics, self.load_elapsed(), min(every, 60.0))
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
            path.write_text(json.dumps(snap, indent=2) + "\n")
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
            self._write_state()

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
    def _finish(self) -> RunOutcome:
        assert self.rundir is not None
        self.metrics.seal(max(self.metrics.latest, self.metrics.sealed))
        elapsed = min(self.load_elapsed(), self.duration) if not self.status.interrupted \
            else self.load_elapsed()
        elapsed = max(elapsed, 1e-3)
        faults = self.chaos.results()
        self.rulebook.fault_values.update(Chaos.rule_values(faults))
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
        if self.plan.canaries.values:
            where = ", ".join(h["where"] for h in canary_hits[:5])
            verdict = Verdict(verdict.passed and not canary_hits, [*verdict.results, RuleResult(
                "canaries never appear", float(len(canary_hits)),
                f"{len(canary_hits)} place(s)" + (f": {where}" if where else ""),
                not canary_hits)])
        if any(self.correctness.violations.values()):
            checker_results = [RuleResult(f"checker {name}", float(len(vs)),
                                          f"{len(vs)} violation(s)", not vs,
                                          vs[0]["message"] if vs else "")
                               for name, vs in self.correctness.violations.items()]
            verdict = Verdict(False, [*verdict.results, *checker_results])
        elif self.correctness.violations:
            verdict = Verdict(verdict.passed, [*verdict.results, *(
                RuleResult(f"checker {name}", 0.0, "0 violations", True)
                for name in self.correctness.violations)])
        if self.status.fatal is not None:
            self.status.state = "failed"
            self.status.stop_reason = str(self.status.fatal)
        elif self.status.interrupted or self.status.aborts:
            self.status.state = "stopped"
        else:
            self.status.state = "completed"
        results = build_results(
            run_id=self.rundir.run_id, plan_name=self.plan.name, verdict=verdict,
            metrics=self.metrics, ops=self.ops, elapsed_s=elapsed, seed=self.seed,
            state=self.status.state, started_wall=self._started_wall,
            stop_reason=self.status.stop_reason, workers=self.options.workers,
            profile=self.loaded.profile,
            extra={"services": self.services.statuses() if self.services else {},
                   "resources": self.watch.resource_results(),
                   "generator": self.watch.generator_summary(),
                   "trends": self.rulebook.trend_details,
                   "checkers": self.correctness.violations,
                   "loop": self.job_result if isinstance(self.job_result, list) else None,
                   "canaries": canary_hits,
                   "streams": summarize_streams(self.rundir.file("sse_streams.jsonl")),
                   "bursts": summarize_violations(self.rundir.file("bursts.jsonl")),
                   "faults": faults, "faults_skipped": self.chaos.skipped,
                   "phases": {p: round(n * self.plan.window, 3)
                              for p, n in self.metrics.phase_windows.items()}})
        write_results(self.rundir.file("results.json"), results)
        write_junit(self.rundir.file("junit.xml"), results)
        if self.store is not None:
            self.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        try:
            write_report(self.rundir.path)
        except (OSError, ValueError) as exc:
            self.log(f"report.html could not be written: {exc}")
        self.event("run_finished", verdict=verdict.word, state=self.status.state)
        self._write_state()
        summary_table(results, self.console)
        if self.status.fatal is not None:
            code = EXIT_RUN
        elif self.options.services_only:
            code = EXIT_PASS  # stopping is how supervision ends
        elif self.status.interrupted:
            code = EXIT_INTERRUPTED
        else:
            code = EXIT_PASS if verdict.passed else EXIT_FAIL
        return RunOutcome(code, self.rundir.path, results)


