"""The load of one process: every workload's driver, window rotation, graceful and forced stop.

``run_load`` serves both the in-process engine and each ``--workers`` process; windows go to a
sink, which is the run's ``Metrics`` in-process or a pipe to the parent in a worker.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Callable, Mapping

from enduro.engine.flow import HistoryLog
from enduro.engine.http import HttpDriver, raise_fd_limit
from enduro.engine.kinds import (
    KINDS,
    PAUSES,
    Driver,
    DriverArgs,
    LoadFiles,
    LoadShare,
    op_names,
)
from enduro.engine.quiet import Avoiding, Quiet, write_pauses
from enduro.engine.request import prepare_requests
from enduro.engine.sse import SseDriver, write_streams
from enduro.observe.window import Recorder, WindowStats
from enduro.plan.models import Plan
from enduro.plan.tokens import Credentials, has_token_refs

__all__ = ["LoadControl", "LoadFiles", "LoadShare", "build_drivers", "op_names", "run_load"]


class LoadControl:
    """A handle on running drivers and the process's credentials: a restarted service wrote a
    new token, so every driver builds its next request with it."""

    def __init__(self) -> None:
        self.drivers: list[tuple[str, Driver]] = []
        self.plan: Plan | None = None
        self.credentials = Credentials()
        # SSE churn and faults in force, for the workloads that stay clear of them.
        self.quiet = Quiet()

    def update_tokens(self, tokens: Mapping[str, str]) -> None:
        """New tokens: the drivers that read credentials per request see them at once; the
        ``http`` engine's compiled requests are compiled again."""
        if not self.credentials.update(tokens) or self.plan is None:
            return
        for wname, outer in self.drivers:
            driver = outer.current if isinstance(outer, Avoiding) else outer
            http = self.plan.workloads[wname].http
            if http is not None and isinstance(driver, HttpDriver) and has_token_refs(http):
                forbidden = tuple(v.encode() for v in self.plan.canaries.values)
                driver.requests = prepare_requests(self.credentials.fill(http), driver.target,
                                                   driver.rng, forbidden)


def build_drivers(plan: Plan, recorder: Recorder, seed: int, share: LoadShare,
                  base_urls: dict[str, str], files: LoadFiles | None = None,
                  history: HistoryLog | None = None,
                  credentials: Credentials | None = None, quiet: Quiet | None = None,
                  origin: float = 0.0) -> list[tuple[str, Driver]]:
    """A driver per workload (built by its kind, ``engine.kinds.KINDS``), seeded per worker
    so that schedules are reproducible; each fills ``${token:name}`` from ``credentials``
    when it builds a request. A workload with ``not_during`` runs in ``Avoiding``, paused
    while ``quiet`` says one of its reasons is in force (``origin``: the load's start)."""
    files = files or LoadFiles()
    quiet = quiet or Quiet()
    drivers: list[tuple[str, Driver]] = []
    for n, (wname, workload) in enumerate(plan.workloads.items()):
        mine = share
        if workload.pin:  # one process runs it whole: the first (each run, the same one)
            if share.index != 0:
                continue
            mine = LoadShare(0, 1)
        args = DriverArgs(
            plan=plan, name=wname, spec=workload.spec, base_url=base_urls.get(wname),
            recorder=recorder, rng=random.Random(f"{seed}/{share.index}/{n}"), seed=seed,
            share=mine, files=files, history=history, credentials=credentials, quiet=quiet)
        build = KINDS[workload.kind].build
        driver: Driver | None
        if workload.not_during:
            driver = Avoiding(functools.partial(build, args), quiet,
                              tuple(workload.not_during), grace=plan.grace, origin=origin)
        else:
            driver = build(args)
        if driver is not None:
            drivers.append((wname, driver))
    return drivers


async def run_load(plan: Plan, *, seed: int, share: LoadShare, base_urls: dict[str, str],
                   sink: Callable[[list[WindowStats]], None], duration: float,
                   start_mono: float, stop: asyncio.Event, force: asyncio.Event,
                   grace: float, control: LoadControl | None = None,
                   files: LoadFiles | None = None) -> None:
    """Drive the load until ``duration`` passes or ``stop`` is set; seal a window every
    ``plan.window`` seconds measured from ``start_mono`` (shared by all workers)."""
    files = files or LoadFiles()
    raise_fd_limit()  # as wrk and k6 users do with `ulimit -n`; see generator_hint
    recorder = Recorder(list(op_names(plan)))
    history = HistoryLog(files.history, share.index) if files.history is not None else None
    named = build_drivers(plan, recorder, seed, share, base_urls, files, history,
                          control.credentials if control is not None else None,
                          control.quiet if control is not None else None, start_mono)
    drivers = [d for _, d in named]
    if control is not None:
        control.drivers = named
        control.plan = plan
    window = plan.window
    recorder.index = max(0, int((time.monotonic() - start_mono) / window))

    async def rotate() -> None:
        while True:
            next_index = recorder.index + 1
            await asyncio.sleep(max(0.0, start_mono + next_index * window - time.monotonic()))
            sink(recorder.rotate(next_index))

    remaining = max(0.0, start_mono + duration - time.monotonic())
    rotator = asyncio.create_task(rotate())
    runs = [asyncio.create_task(d.run(remaining)) for d in drivers]
    if not runs:  # a plan of services only still lasts its duration
        runs.append(asyncio.create_task(asyncio.sleep(remaining)))
    stop_wait = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([*runs, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            await asyncio.wait(runs)
        for task in runs:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            task.cancel()
        await _drain(drivers, grace, force)
    finally:
        stop_wait.cancel()
        for d in drivers:
            d.close_all()
        rotator.cancel()
        # The partial last window still counts.
        sink(recorder.rotate(recorder.index + 1))
        if history is not None:
            history.close()
        streams = files.output("sse_streams.jsonl")
        if streams is not None:
            write_streams(streams, share.index,
                          [(n, d) for n, d in named if isinstance(d, SseDriver)])
        pauses = files.output(PAUSES.file)
        if pauses is not None:
            write_pauses(pauses, share.index,
                         [(n, d) for n, d in named if isinstance(d, Avoiding)])


async def _drain(drivers: list[Driver], grace: float, force: asyncio.Event) -> None:
    """Let requests in flight end, within ``grace``; a forced stop cuts the wait."""
    async def drain_all() -> None:
        await asyncio.gather(*(d.drain(grace) for d in drivers))

    drain = asyncio.create_task(drain_all())
    force_wait = asyncio.create_task(force.wait())
    await asyncio.wait([drain, force_wait], return_when=asyncio.FIRST_COMPLETED)
    force_wait.cancel()
    if not drain.done():
        drain.cancel()
