"""How a run is going and how it stops: the stretch it is in (each bounded by the watchdog),
its status (state, stop reason, aborts, errors), and the stop requests (graceful first,
forced second) from signals, aborts, the watchdog and defects."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text

from enduro.base.errors import RunError, save_traceback
from enduro.run.context import RunContext
from enduro.run.runlog import RunLog
from enduro.run.watchdog import Watchdog
from enduro.verdict.evaluate import Abort

__all__ = ["RunStatus", "Stops"]


@dataclass
class RunStatus:
    """Where a run stands, and why it ended as it did."""

    state: str = "starting"
    stop_reason: str | None = None
    interrupted: bool = False
    aborts: list[Abort] = field(default_factory=list)
    fatal: BaseException | None = None
    crash: BaseException | None = None  # an enduro defect (not an EnduroError)
    traceback_file: Path | None = None

    @property
    def early(self) -> bool:
        """Whether the run ended before its time (interrupted, failed, crashed)."""
        return self.interrupted or self.fatal is not None or self.crash is not None

    def end(self) -> None:
        """The state a run ends in, from how it ended."""
        if self.crash is not None:
            self.state = "failed"
        elif self.fatal is not None:
            self.state = "failed"
            self.stop_reason = self.stop_reason or str(self.fatal)
        elif self.interrupted or self.aborts:
            self.state = "stopped"
        else:
            self.state = "completed"

    def failed(self, exc: BaseException) -> None:
        """The world stopped the run (a ``RunError``)."""
        self.fatal = exc
        self.stop_reason = str(exc)


class Stops:
    """The stretch of the run (``phase``) and its stop requests: ``stop`` (end the load and
    the waits gracefully), ``force`` (cut drains, SIGKILL services) and ``interrupt`` (skip
    the final phase)."""

    def __init__(self, ctx: RunContext, runlog: RunLog) -> None:
        self.ctx = ctx
        self.runlog = runlog
        self.status = RunStatus()
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self.interrupt = asyncio.Event()  # a stop by signal or watchdog: skip the final phase
        self.phase = "starting"  # prepare, load, final, teardown, finish
        self.watchdog: Watchdog | None = None
        self.asked = False  # a stop was requested (by a signal or a caller)

    def enter(self, phase: str, bound_s: float | None) -> None:
        """Start a stretch of the run, bounded by ``bound_s`` seconds (None: by its own
        timeouts)."""
        self.phase = phase
        self.runlog.event("phase", phase=phase, bound_s=bound_s)
        if self.watchdog is not None:
            self.watchdog.arm(bound_s, f"the {phase}" if phase != "load" else "the load")

    def arm_load(self, bounded: bool) -> None:
        """The load started: bound it by ``duration + grace`` and slack (``bounded``), or by
        nothing of its own (a job, supervision); a stop already asked gives it ``grace``."""
        if self.watchdog is None:
            return
        plan, slack = self.ctx.plan, self.ctx.load_slack
        self.watchdog.arm(self.ctx.duration + plan.grace + slack if bounded else None,
                          "the load")
        if self.stop.is_set():
            self.watchdog.tighten(plan.grace + slack, "the stopping load")

    def request_stop(self, why: str = "SIGINT") -> None:
        """First call: stop gracefully (in-flight requests get the plan's grace); the verdict
        is ``incomplete``. Second call (or one after an abort): force: drains are cut and
        services get SIGKILL; faults are still undone and results written. A first call once
        the run is tearing down only says so: the verdict stands."""
        first = not self.asked
        self.asked = True
        log, event, grace = self.runlog.log, self.runlog.event, self.ctx.plan.grace
        if not first or self.stop.is_set():
            self.force.set()
            self.interrupt.set()
            event("stop_forced", signal=why, phase=self.phase)
            log(f"{why} again: stopping now")
            return
        if self.phase in ("teardown", "finish"):
            event("stop_requested", signal=why, phase=self.phase)
            log(f"{why}: the run is already ending; again to stop at once")
            return
        self.status.interrupted = True
        self.status.stop_reason = f"interrupted by {why}"
        self.stop.set()
        self.interrupt.set()
        event("stop_requested", signal=why, phase=self.phase)
        if self.watchdog is not None and self.phase == "load":
            self.watchdog.tighten(grace + self.ctx.load_slack, "the stopping load")
        if self.ctx.options.services_only:
            log(f"{why}: stopping the services; press Ctrl-C again to stop at once")
            return
        log(f"{why}: stopping gracefully (up to {grace:g}s for in-flight requests); press "
            "Ctrl-C again to stop at once")

    def abort(self, abort: Abort) -> None:
        """A rule with ``abort_on_fail`` (or an ``abort_if``) failed: stop; the verdict is a
        fail."""
        if self.stop.is_set():
            return
        self.status.aborts.append(abort)
        self.status.stop_reason = abort.reason or (f"aborted: rule {abort.rule!r} failed "
                                                   f"(observed {abort.observed_text})")
        self.runlog.event("abort", rule=abort.rule, observed=abort.observed_text)
        self.runlog.log(f"abort: {abort.reason}" if abort.reason else
                        f"abort: rule {abort.rule!r} failed, observed {abort.observed_text}")
        self.stop.set()

    def overrun(self, what: str) -> None:
        """The watchdog: a stretch of the run overran its bound; stop at once (loop thread)."""
        reason = f"{what} overran its deadline; stopped by the watchdog"
        self.runlog.event("watchdog", what=what, phase=self.phase)
        self.runlog.log(f"watchdog: {reason}")
        if self.status.fatal is None:
            self.status.fatal = RunError(reason)
        self.status.stop_reason = reason
        self.stop.set()
        self.force.set()
        self.interrupt.set()

    def failed(self, exc: RunError, *, echo: bool = False) -> None:
        """The world stopped the run: recorded, and (``echo``) told."""
        self.status.failed(exc)
        self.runlog.event("run_failed", error=str(exc))
        if echo:
            self.runlog.console.print(Text.assemble(("error:", "red"), f" {exc}"),
                                      soft_wrap=True)

    def crashed(self, exc: BaseException) -> None:
        """An enduro defect: its traceback goes to the run directory, not the terminal."""
        status = self.status
        if status.crash is None:
            status.crash = exc
        status.stop_reason = f"enduro crashed: {exc!r}"
        path: Path | None = None
        with contextlib.suppress(OSError):
            path = save_traceback(exc, self.runlog.logs_dir)
        if status.traceback_file is None:
            status.traceback_file = path
        self.runlog.event("run_crashed", error=repr(exc), phase=self.phase, traceback=str(path))
        with contextlib.suppress(Exception):
            self.runlog.log(f"enduro crashed ({exc!r}); traceback in {path}", echo=False,
                            level="ERROR")
