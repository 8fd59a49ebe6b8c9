"""What a run is asked to do and what it decided at its start: the options, the plan as run
(with its canaries), the seed, the duration, the ops and the clock. Frozen, and handed to each
collaborator of the run instead of the run itself."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enduro.base.clock import Clock
from enduro.documents.results import Results
from enduro.engine.kinds import op_names, targets
from enduro.plan.models import Plan
from enduro.plan.resolve import LoadedPlan
from enduro.plan.tokens import with_canaries

__all__ = ["FINAL_S", "FINISH_S", "LOAD_SLACK_S", "TEARDOWN_S", "WORKERS_SLACK_S",
           "RunContext", "RunOptions", "RunOutcome"]

LOAD_SLACK_S = 5.0  # beyond duration + grace: the drain is bounded by grace; this is slack
WORKERS_SLACK_S = 20.0  # with --workers: joins take up to grace + 10 s, then 5 s forced
FINAL_S = 60.0  # the final phase beyond its quiesce
TEARDOWN_S = 30.0  # undoing faults and stopping services, beyond the services' stop graces
FINISH_S = 300.0  # writing results.json, junit.xml and report.html (a day's charts)


@dataclass(frozen=True)
class RunOptions:
    """How to run a plan, beyond what the plan says."""

    out: Path = Path("runs")
    duration: float | None = None
    workers: int = 1
    cluster: str | None = None  # a Ray address (or "auto"): the workers are Ray actors there
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
    """What a finished run hands back to the command line. ``document``: its results.json
    as the model; ``results``: the same as plain data (made from ``document`` when only it is
    given), for callers that read keys."""

    exit_code: int
    run_dir: Path | None
    results: dict[str, Any] | None = None
    error: str | None = None
    # An enduro defect: the file in the run directory holding its traceback.
    traceback_file: Path | None = None
    document: Results | None = None

    def __post_init__(self) -> None:
        if self.results is None and self.document is not None:
            self.results = self.document.to_json()


@dataclass(frozen=True)
class RunContext:
    """One run's fixed facts. ``plan`` is the plan as run: with its generated canaries, and
    its ``${token:name}`` references kept (each request fills them from the credentials)."""

    loaded: LoadedPlan
    plan: Plan
    options: RunOptions
    seed: int
    duration: float
    ops: dict[str, str]  # every op, mapped to its workload
    clock: Clock

    @classmethod
    def of(cls, loaded: LoadedPlan, options: RunOptions, clock: Clock) -> RunContext:
        """The context of a run of ``loaded``: the options win over the plan; a plan without
        a seed gets a random one (recorded in the results, so the run can be repeated)."""
        plan = loaded.plan
        seed = (options.seed if options.seed is not None else
                plan.seed if plan.seed is not None else
                random.SystemRandom().randrange(1, 2**31))
        plan = with_canaries(plan)
        return cls(loaded=loaded, plan=plan, options=options, seed=seed,
                   duration=options.duration if options.duration is not None
                   else plan.duration, ops=op_names(plan), clock=clock)

    @property
    def plan_dir(self) -> Path:
        """The plan file's folder: relative paths of the plan are read from here."""
        return self.loaded.source.parent.resolve()

    @property
    def mode(self) -> str:
        """``supervise`` (services only, judged by nothing) or ``run``."""
        return "supervise" if self.options.services_only else "run"

    @property
    def load_slack(self) -> float:
        """How long the load may outlast ``duration + grace``."""
        return WORKERS_SLACK_S if self.options.workers > 1 else LOAD_SLACK_S

    @property
    def teardown_bound(self) -> float:
        """How long undoing faults and stopping services may take."""
        return TEARDOWN_S + sum(s.stop.grace for s in self.plan.services.values())

    def base_urls(self) -> dict[str, str]:
        """The base URL of each workload that sends to one."""
        return {name: self.plan.base_url(target) for name, target in targets(self.plan)}
