"""Every workload kind, registered once: its model (a key of ``plan.models.Workload``), how its
driver is built, the run-directory file it writes and the summary of that file in
``results.json``, and whether it records operations for the history checkers.

To add a kind: its model in ``plan/`` (a key of ``Workload`` and of ``WORKLOAD_KINDS``), its
driver in ``engine/``, an entry in ``KINDS`` here, and its checks in ``engine/validate.py`` (a
method named after the kind)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from enduro.engine.burst import BurstDriver, summarize_violations
from enduro.engine.flow import FlowDriver, HistoryLog
from enduro.engine.http import HttpDriver, make_driver
from enduro.engine.python import PythonDriver
from enduro.engine.quiet import Avoiding, Quiet, summarize_pauses
from enduro.engine.request import prepare_requests
from enduro.engine.sse import SseDriver, summarize_streams
from enduro.net.target import split_base
from enduro.observe.window import Recorder
from enduro.plan.bursts import BurstWorkload
from enduro.plan.flows import FlowWorkload
from enduro.plan.models import (
    WORKLOAD_KINDS,
    HttpWorkload,
    Plan,
    PythonWorkload,
    SseWorkload,
    TargetSpec,
)
from enduro.plan.tokens import Credentials, Filled

Driver = HttpDriver | PythonDriver | SseDriver | FlowDriver | BurstDriver | Avoiding

__all__ = ["KINDS", "PAUSES", "Driver", "DriverArgs", "LoadFiles", "LoadShare", "Output",
           "WorkloadKind", "history_used", "op_names", "outputs", "summaries", "targets"]


@dataclass(frozen=True)
class LoadFiles:
    """Where the load reads and writes files: the plan's folder (for ``python:`` modules and
    bodies), ``history.jsonl`` when operations are recorded, and each kind's own output
    (``Output``), by file name. Plain paths, so it crosses to worker processes."""

    plan_dir: Path | None = None
    history: Path | None = None
    outputs: tuple[tuple[str, Path], ...] = ()

    def output(self, name: str) -> Path | None:
        """The path of the output file ``name``, when this load writes it."""
        return dict(self.outputs).get(name)


@dataclass(frozen=True)
class LoadShare:
    """Which part of the load this process drives: worker ``index`` of ``count``."""

    index: int = 0
    count: int = 1

    def connections(self, total: int) -> int:
        base, extra = divmod(total, self.count)
        return base + (1 if self.index < extra else 0)


@dataclass(frozen=True)
class DriverArgs:
    """What building one workload's driver takes, in one process of the load."""

    plan: Plan
    name: str  # the workload's name
    spec: Any  # the workload's model, of its kind's ``model``
    base_url: str | None
    recorder: Recorder
    rng: random.Random
    seed: int
    share: LoadShare
    files: LoadFiles
    history: HistoryLog | None
    credentials: Credentials | None
    # What is in force now (SSE churn, faults), for workloads that stay clear of it.
    quiet: Quiet | None = None

    def service_urls(self) -> dict[str, str]:
        return {n: svc.url for n, svc in self.plan.services.items() if svc.url}

    def url(self) -> str:
        assert self.base_url is not None  # every kind but python has a target
        return self.base_url


@dataclass(frozen=True)
class Output:
    """A file a kind writes in the run directory, and its summary under ``key`` in
    ``results.json``."""

    file: str
    key: str
    summary: Callable[[Path], dict[str, Any]]


@dataclass(frozen=True)
class WorkloadKind:
    """One kind of workload. ``build`` returns None when this process has no share of it
    (more workers than connections)."""

    model: type[BaseModel]
    build: Callable[[DriverArgs], Driver | None]
    output: Output | None = None
    records_history: Callable[[Any], bool] = lambda _spec: False


def _python(a: DriverArgs) -> Driver | None:
    py: PythonWorkload = a.spec
    conns = a.share.connections(py.connections) if py.connections else None
    if conns == 0:
        return None
    return PythonDriver(py, py.op or a.name, a.recorder, a.rng, share=1.0 / a.share.count,
                        connections=conns, plan_dir=a.files.plan_dir, worker=a.share.index,
                        credentials=a.credentials)


def _burst(a: DriverArgs) -> Driver | None:
    # Keys made by the burst are unique to the run (seed and start), so runs never collide.
    prefix = f"enduro_{a.seed % 100_000}_{int(time.time()) % 1_000_000}_"
    return BurstDriver(a.spec, a.name, a.url(), a.recorder, a.rng,
                       service_urls=a.service_urls(), prefix=prefix,
                       active=a.share.index == 0, history=a.history,
                       violations_path=a.files.output("bursts.jsonl"),
                       credentials=a.credentials)


def _flow(a: DriverArgs) -> Driver | None:
    flow: FlowWorkload = a.spec
    conns = a.share.connections(flow.connections) if flow.connections else None
    if conns == 0:
        return None
    return FlowDriver(flow, a.name, a.url(), a.recorder, a.rng, share=1.0 / a.share.count,
                      connections=conns, plan_dir=a.files.plan_dir,
                      service_urls=a.service_urls(), history=a.history,
                      canaries=tuple(a.plan.canaries.values), credentials=a.credentials)


def _sse(a: DriverArgs) -> Driver | None:
    sse: SseWorkload = a.spec
    clients = a.share.connections(sse.clients)
    if clients == 0:
        return None
    return SseDriver(sse, a.name, split_base(a.url()), a.recorder, a.rng, clients=clients,
                     credentials=a.credentials, quiet=a.quiet)


def _http(a: DriverArgs) -> Driver | None:
    http: HttpWorkload = a.spec
    target = split_base(a.url())
    forbidden = tuple(v.encode() for v in a.plan.canaries.values)
    requests = prepare_requests(Filled(http, a.credentials).get(), target, a.rng, forbidden)
    connections = a.share.connections(http.connections) if http.connections else None
    if connections == 0:
        return None
    return make_driver(http, target, requests, a.recorder, a.rng, share=1.0 / a.share.count,
                       connections=connections)


def _burst_history(spec: BurstWorkload) -> bool:
    return spec.history is not None


KINDS: dict[str, WorkloadKind] = {
    "http": WorkloadKind(HttpWorkload, _http),
    "sse": WorkloadKind(SseWorkload, _sse,
                        output=Output("sse_streams.jsonl", "streams", summarize_streams)),
    "flow": WorkloadKind(FlowWorkload, _flow, records_history=lambda _spec: True),
    "burst": WorkloadKind(BurstWorkload, _burst,
                          output=Output("bursts.jsonl", "bursts", summarize_violations),
                          records_history=_burst_history),
    "python": WorkloadKind(PythonWorkload, _python),
}
assert tuple(KINDS) == WORKLOAD_KINDS, "every kind of plan.models.Workload, in its order"

# The pauses of the workloads that stay clear of churn or faults (``not_during``), whatever
# their kind.
PAUSES = Output("pauses.jsonl", "paused", summarize_pauses)


def op_names(plan: Plan) -> dict[str, str]:
    """Every op of the plan mapped to its workload."""
    return {op: wname for wname, w in plan.workloads.items() for op in w.op_names(wname)}


def targets(plan: Plan) -> Iterator[tuple[str, TargetSpec]]:
    """Each workload that sends to a base URL, with its model."""
    for name, workload in plan.workloads.items():
        target = workload.target
        if target is not None:
            yield name, target


def history_used(plan: Plan) -> bool:
    """Whether the run records operations in ``history.jsonl`` (for its checkers)."""
    return bool(plan.checkers) or any(KINDS[w.kind].records_history(w.spec)
                                      for w in plan.workloads.values())


def outputs(plan: Plan) -> list[Output]:
    """The kinds' output files this plan writes, each once."""
    found: dict[str, Output] = {}
    for workload in plan.workloads.values():
        output = KINDS[workload.kind].output
        if output is not None:
            found.setdefault(output.file, output)
        if workload.not_during:
            found.setdefault(PAUSES.file, PAUSES)
    return list(found.values())


def summaries(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Every kind's summary of its output file in ``run_dir``, under its key in
    ``results.json`` (empty when the run wrote no such file)."""
    every = [kind.output for kind in KINDS.values() if kind.output is not None]
    return {o.key: o.summary(run_dir / o.file) for o in (*every, PAUSES)}
