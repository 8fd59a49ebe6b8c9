"""The load of one process: every workload's driver, window rotation, graceful and forced stop.

``run_load`` serves both the in-process engine and each ``--workers`` process; windows go to a
sink, which is the run's ``Metrics`` in-process or a pipe to the parent in a worker.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from enduro.engine.burst import BurstDriver
from enduro.engine.flow import FlowDriver, HistoryLog
from enduro.engine.http import HttpDriver, make_driver, raise_fd_limit
from enduro.engine.python import PythonDriver
from enduro.engine.request import prepare_requests
from enduro.engine.sse import SseDriver, write_streams
from enduro.net.target import split_base
from enduro.observe.window import Recorder, WindowStats
from enduro.plan.models import Plan
from enduro.plan.tokens import Credentials, Filled, has_token_refs

Driver = HttpDriver | PythonDriver | SseDriver | FlowDriver | BurstDriver

__all__ = ["LoadControl", "LoadFiles", "LoadShare", "build_drivers", "op_names", "run_load"]


@dataclass(frozen=True)
class LoadFiles:
    """Where the load reads and writes files: the plan's folder (for ``python:`` modules and
    bodies), ``history.jsonl`` when operations are recorded, ``sse_streams.jsonl`` for the
    per-stream figures of SSE workloads, ``bursts.jsonl`` for failed post-conditions of
    bursts. Plain paths, so it crosses to worker processes."""

    plan_dir: Path | None = None
    history: Path | None = None
    streams: Path | None = None
    bursts: Path | None = None


class LoadControl:
    """A handle on running drivers and the process's credentials: a restarted service wrote a
    new token, so every driver builds its next request with it."""

    def __init__(self) -> None:
        self.drivers: list[tuple[str, Driver]] = []
        self.plan: Plan | None = None
        self.credentials = Credentials()

    def update_tokens(self, tokens: Mapping[str, str]) -> None:
        """New tokens: the drivers that read credentials per request see them at once; the
        ``http`` engine's compiled requests are compiled again."""
        if not self.credentials.update(tokens) or self.plan is None:
            return
        for wname, driver in self.drivers:
            http = self.plan.workloads[wname].http
            if http is not None and isinstance(driver, HttpDriver) and has_token_refs(http):
                forbidden = tuple(v.encode() for v in self.plan.canaries.values)
                driver.requests = prepare_requests(self.credentials.fill(http), driver.target,
                                                   driver.rng, forbidden)


@dataclass(frozen=True)
class LoadShare:
    """Which part of the load this process drives: worker ``index`` of ``count``."""

    index: int = 0
    count: int = 1

    def connections(self, total: int) -> int:
        base, extra = divmod(total, self.count)
        return base + (1 if self.index < extra else 0)


def op_names(plan: Plan) -> dict[str, str]:
    """Every op of the plan mapped to its workload."""
    return {op: wname for wname, w in plan.workloads.items() for op in w.op_names(wname)}


def build_drivers(plan: Plan, recorder: Recorder, seed: int, share: LoadShare,
                  base_urls: dict[str, str], files: LoadFiles | None = None,
                  history: HistoryLog | None = None,
                  credentials: Credentials | None = None) -> list[tuple[str, Driver]]:
    """A driver per workload, seeded per worker so that schedules are reproducible; each
    fills ``${token:name}`` from ``credentials`` when it builds a request."""
    files = files or LoadFiles()
    plan_dir = files.plan_dir
    drivers: list[tuple[str, Driver]] = []
    for n, (wname, workload) in enumerate(plan.workloads.items()):
        rng = random.Random(f"{seed}/{share.index}/{n}")
        if workload.python is not None:
            py = workload.python
            conns = share.connections(py.connections) if py.connections else None
            if conns == 0:
                continue
            drivers.append((wname, PythonDriver(
                py, py.op or wname, recorder, rng, share=1.0 / share.count,
                connections=conns, plan_dir=plan_dir, worker=share.index,
                credentials=credentials)))
            continue
        if workload.burst is not None:
            urls = {n: svc.url for n, svc in plan.services.items() if svc.url}
            prefix = f"enduro_{seed % 100_000}_{int(time.time()) % 1_000_000}_"
            drivers.append((wname, BurstDriver(workload.burst, wname, base_urls[wname],
                                               recorder, rng, service_urls=urls,
                                               prefix=prefix, active=share.index == 0,
                                               history=history,
                                               violations_path=files.bursts,
                                               credentials=credentials)))
            continue
        if workload.flow is not None:
            flow = workload.flow
            conns = share.connections(flow.connections) if flow.connections else None
            if conns == 0:
                continue
            urls = {n: svc.url for n, svc in plan.services.items() if svc.url}
            drivers.append((wname, FlowDriver(flow, wname, base_urls[wname], recorder, rng,
                                              share=1.0 / share.count, connections=conns,
                                              plan_dir=plan_dir, service_urls=urls,
                                              history=history,
                                              canaries=tuple(plan.canaries.values),
                                              credentials=credentials)))
            continue
        if workload.sse is not None:
            sse = workload.sse
            clients = share.connections(sse.clients)
            if clients == 0:
                continue
            drivers.append((wname, SseDriver(sse, wname, split_base(base_urls[wname]),
                                             recorder, rng, clients=clients,
                                             credentials=credentials)))
            continue
        http = workload.http
        assert http is not None
        target = split_base(base_urls[wname])
        forbidden = tuple(v.encode() for v in plan.canaries.values)
        requests = prepare_requests(Filled(http, credentials).get(), target, rng, forbidden)
        connections = share.connections(http.connections) if http.connections else None
        if connections == 0:
            continue
        drivers.append((wname, make_driver(http, target, requests, recorder, rng,
                                           share=1.0 / share.count, connections=connections)))
    return drivers


async def run_load(plan: Plan, *, seed: int, share: LoadShare, base_urls: dict[str, str],
                   sink: Callable[[list[WindowStats]], None], duration: float,
                   start_mono: float, stop: asyncio.Event, force: asyncio.Event,
                   grace: float, control: LoadControl | None = None,
                   files: LoadFiles = LoadFiles()) -> None:
    """Drive the load until ``duration`` passes or ``stop`` is set; seal a window every
    ``plan.window`` seconds measured from ``start_mono`` (shared by all workers)."""
    raise_fd_limit()  # as wrk and k6 users do with `ulimit -n`; see generator_hint
    recorder = Recorder(list(op_names(plan)))
    history = HistoryLog(files.history, share.index) if files.history is not None else None
    named = build_drivers(plan, recorder, seed, share, base_urls, files, history,
                          control.credentials if control is not None else None)
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

        async def drain_all() -> None:
            await asyncio.gather(*(d.drain(grace) for d in drivers))

        drain = asyncio.create_task(drain_all())
        force_wait = asyncio.create_task(force.wait())
        await asyncio.wait([drain, force_wait], return_when=asyncio.FIRST_COMPLETED)
        force_wait.cancel()
        if not drain.done():
            drain.cancel()
    finally:
        stop_wait.cancel()
        for d in drivers:
            d.close_all()
        rotator.cancel()
        # The partial last window still counts.
        sink(recorder.rotate(recorder.index + 1))
        if history is not None:
            history.close()
        if files.streams is not None:
            write_streams(files.streams, share.index,
                          [(n, d) for n, d in named if isinstance(d, SseDriver)])
