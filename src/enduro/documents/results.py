"""``results.json``: what a run found, versioned by ``schema``.

Keys are added freely within a schema; none is renamed or changes meaning without a new
``schema``. Schema history:

1. ``verdict`` "pass" or "fail".
2. ``verdict`` may be "incomplete" (a run that ended early: interrupted, crashed, or its
   runner died); ``complete`` and ``rules_passed`` added; ``error`` when the run crashed.
   Added since, within schema 2: ``mode`` ("run", or "supervise" for services without
   load, whose verdict is always "incomplete" and ``rules_passed`` null) and each op's
   ``kind``. A file without them reads as ``mode`` "run" and ``kind`` "request".
3. ``workers`` is a list, one entry per load worker (``Worker``); the number of workers moved
   to ``worker_count``. An older file reads with its ``workers`` number as ``worker_count``
   and an empty ``workers`` list.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from enduro.documents.document import Document, NewerDocument
from enduro.documents.service import ServiceRecord
from enduro.documents.state import RunState
from enduro.documents.tables import ScrapedTable

__all__ = ["MODES", "SCHEMA", "VERDICTS", "BurstSummary", "CanaryHit", "CheckerViolation",
           "FaultOutcome", "Figures", "Generator", "LeakTrend", "LoopIteration", "OpFigures",
           "Percentiles", "ResourceSummary", "Results", "RuleOutcome", "ScenarioResult",
           "StreamSummary", "TrendDetail", "Worker"]

SCHEMA = 3
Verdict = Literal["pass", "fail", "incomplete"]
Mode = Literal["run", "supervise"]
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "incomplete")
MODES: tuple[Mode, ...] = ("run", "supervise")


class Percentiles(Document):
    """Latency percentiles in milliseconds (0 when nothing was measured)."""

    p50: float
    p90: float
    p95: float
    p99: float
    p999: float
    max: float


class Figures(Document):
    """Counts and latencies over the whole run: of every request (``total``) or of one op."""

    requests: int
    errors: int
    rps: float
    error_rate: float
    """A share, 0 to 1."""
    late: int
    """Open-model arrivals sent late (the generator could not keep up)"""
    dropped: int
    """Open-model arrivals never sent."""
    errors_by_class: dict[str, int]
    latency_ms: Percentiles
    """From the intended send time (coordinated omission)"""
    service_time_ms: Percentiles
    """From the actual send time."""


class OpFigures(Figures):
    """One op's figures. ``requests`` counts what ``kind`` names: requests, or a figure of its
    own (a flow's iterations, a burst's rounds, SSE events), never part of ``total``."""

    workload: str
    kind: str


class RuleOutcome(Document):
    """One rule (or a check enduro adds: checkers, canaries, loop iterations) and its result."""

    rule: str
    observed: float | None
    """Null: no data, or never (an infinite time)"""
    observed_text: str
    passed: bool
    reason: str = ""
    """Absent when there is nothing to say."""
    insufficient: bool = False
    """Too little data for the rule's statistic; present when true."""
    evaluated: bool = True
    """A rebuilt run's rule the store could not judge: false."""
    applicable: bool = True
    """False (and passed) for a rule the plan cannot have data for, such as one about the
    chaos phase in a plan without faults; present when false."""
    first_failed_s: float | None = None
    """Load seconds when a failed rule first failed: a sliding rule's first failed window, a
    whole-run rule's first failure the live status saw (the end, when it failed only
    there). Null: passed, failed for want of data, or a check enduro adds."""


class FaultOutcome(Document):
    """One fault: what, when (seconds into the load), and what the load saw of it."""

    id: int
    name: str
    kind: str
    targets: list[str] = Field(default_factory=list)
    start_s: float | None
    """Null: the run ended before it."""
    end_s: float | None
    """Null: instantaneous, or still in force at the end."""
    error: str | None
    ready_s: dict[str, float] | None = None
    """A restart: each target's time to ready."""
    exit_code: int | None = None
    """A command fault's exit code."""
    target: str
    """The targets, comma-separated."""
    skipped: str | None = None
    """Why it never ran."""
    detect_s: float | None = None
    """Absent when not analysed (no load, or never started)"""
    recover_s: float | None = None
    """Null: never recovered."""
    errors: int | None = None
    requests: int | None = None
    worst_p99_ms: float | None = None
    undone: bool | None = None
    """A rebuilt run's fault: whether its undo was seen."""
    in_force_at_end: bool | None = None
    """A rebuilt run's fault still in force when it died."""
    undo_pending: bool | None = None
    """A rebuilt run's fault still in force: whether the journal still holds its undo."""


class LeakFigures(Document):
    """A leak analysis of one series (Mann-Kendall with Theil-Sen slopes)."""

    leak: bool | None = None
    """Null: not judged (``reasons`` says why)"""
    slope_per_h: float | None = None
    slope_ci_per_h: list[float] | None = None
    p_value: float | None = None
    growth: float | None = None
    growth_rel: float | None = None
    warmup_s: float | None = None
    points: int | None = None
    reasons: list[str] = Field(default_factory=list)
    time_to_limit_h: float | None = None


class _Span(Document):
    pid: int | float
    start_s: float
    end_s: float


class Incarnation(LeakFigures, _Span):
    """The analysis of one incarnation of a restarted process: its pid and span, then the
    figures."""


class LeakTrend(LeakFigures):
    """A leak analysis, per incarnation of a restarted process or pooled."""

    mode: str | None = None
    """``per_incarnation`` or ``pooled``."""
    incarnations: list[Incarnation] | None = None


class DriftDetail(Document):
    """What a ``drift(...)`` rule saw: the last stretch against the first after warm-up."""

    drift: float | None
    """The relative change; null when it cannot say (``reason``)."""
    first: float
    last: float
    span_points: int
    points: int
    reason: str | None = None


TrendDetail = Annotated[DriftDetail | LeakTrend, Field(union_mode="left_to_right")]
"""What a trend rule saw: a drift, or a leak analysis."""


class ResourceSummary(Document):
    """One sampled process tree (``generator`` or ``service:<name>``)."""

    last: dict[str, float]
    rss_mb_max: float | None = None
    rss_mb_trend: LeakTrend | None = None
    fds_max: float | None = None
    fds_trend: LeakTrend | None = None


class Generator(Document):
    """Whether the load generator itself was the bottleneck."""

    saturated: bool
    saturated_samples: int
    samples: int
    loop_lag_worst_ms: float


class CheckerViolation(Document):
    """One anomaly a history checker found, and the operations that show it."""

    checker: str
    key: Any
    message: str
    ops: list[dict[str, Any]]


class CanaryHit(Document):
    """Where a canary value appeared: responses of an op, or a line of a service's log."""

    where: str
    count: int | None = None
    canary: str | None = None
    """Which canary (never the value itself)"""


class LoopIteration(Document):
    """One iteration of ``enduro loop``."""

    iteration: int
    started: float
    seconds: float
    passed: bool
    failed_commands: list[str]


class Spread(Document):
    min: int
    median: int | float
    max: int


class WorstStream(Document):
    worker: int
    stream: int
    duplicates: int
    gaps: int
    stalls: int
    failed: int
    events: int


class StreamSummary(Document):
    """One SSE workload's streams (``sse_streams.jsonl`` holds each stream's row)."""

    streams: int
    events_per_stream: Spread
    connects: int
    resumed_with_last_event_id: int
    replayed: int = 0
    """Events stamped before their connection opened (replays after a resume): counted as
    events, kept out of the delivery latency."""
    streams_with: dict[str, int]
    """Per trouble (duplicates, gaps, stalls, failed): how many streams had it."""
    streams_without_events: int
    worst_ttfe_s: float
    longest_gap_s: float
    worst_streams: list[WorstStream]
    file: str


class BurstExample(Document):
    round: int | None
    check: str | None
    condition: str | None
    problem: str | None


class BurstSummary(Document):
    """One burst workload's failed post-conditions (``bursts.jsonl`` holds them all)."""

    violations: int
    rounds_failed: int
    by_check: dict[str, int]
    examples: list[BurstExample]
    file: str


class PauseSpan(Document):
    start_s: float
    end_s: float


class ReasonPauses(Document):
    pauses: int
    paused_s: float


class PauseSummary(Document):
    """One workload kept clear of SSE churn or faults (``not_during``): how often and how
    long it sent nothing (``pauses.jsonl`` holds each process's pauses)."""

    pauses: int
    paused_s: float
    """Seconds paused in all, from the start of each pause to the resume."""
    by_reason: dict[str, ReasonPauses]
    """Per reason (churn, faults)."""
    first: list[PauseSpan]
    """The first 20 pauses, in seconds from the start of the load."""
    file: str


class ScenarioResult(Document):
    """One scenario of a plan of ``scenarios``, as its own run judged it (its whole
    results.json is in ``run_dir``)."""

    name: str
    verdict: Verdict
    complete: bool
    rules_passed: bool | None
    exit_code: int
    run_dir: str
    """The scenario's run directory, relative to this run's."""
    duration_s: float
    stop_reason: str | None = None
    error: str | None = None
    rules: list[RuleOutcome] = Field(default_factory=list)
    ops: dict[str, OpFigures] = Field(default_factory=dict)
    bursts: dict[str, BurstSummary] = Field(default_factory=dict)


class Worker(Document):
    """One load worker (``--workers``; the run's own process when there is one)."""

    index: int
    node: str
    """Where it ran: the Ray node id with ``--cluster``, else the host name."""
    share: float
    """Its part of the load: the open model's rate and the closed model's connections are
    split evenly (connections that do not divide go to the first workers)."""
    requests: int
    """The requests it counted (of its windows that reached the runner)."""
    saturation: float | None
    """CPU seconds its process used per second of load (1.0: a core kept busy); null when
    it was lost before saying."""
    lost: str | None = None
    """Why it ended before its load did (its process or Ray actor died); absent otherwise."""


class Rebuilt(Document):
    """How ``enduro report`` rebuilt the results of a run whose runner died."""

    at: float
    from_: list[str] = Field(alias="from")
    windows: int
    rolled_up_windows: int
    stored_until_s: float
    last_heartbeat: float | None
    rules_not_evaluated: list[str]
    notes: list[str]


class Results(Document):
    """``results.json``. The keys up to ``services`` are always written; the sections after
    them when the run got that far (a run whose results could not be assembled writes the
    first ones only, with the verdict "incomplete")."""

    model_config = ConfigDict(title="results.json")

    schema_: int = Field(alias="schema", ge=1)
    """The version of this document's shape (see the history above); 3 today."""
    run_id: str
    """The run directory's name: ``<plan>-<UTC stamp>[-tag]``."""
    plan: str
    """The plan's name."""
    profile: str | None
    """The profile chosen with ``--profile``."""
    verdict: Verdict
    """``incomplete`` for a run that ended early or judged nothing: never read it as a pass."""
    complete: bool
    """False: the run ended early, whatever its rules said."""
    rules_passed: bool | None
    """What the rules said of the part that ran; null: not judged."""
    mode: Mode
    """``run``, or ``supervise``: services only, no load, nothing judged."""
    state: RunState
    """How the run ended; ``dead``: its runner died (results rebuilt from the store)."""
    stop_reason: str | None
    """Why it stopped before its end (a signal, an abort rule, an error)."""
    started_at: float
    """Wall-clock seconds."""
    duration_s: float
    """Of the load, in seconds."""
    seed: int
    """The seed of the fault schedule and of the load's random choices."""
    worker_count: int
    """Load workers (``--workers``): processes, or Ray actors with ``--cluster``."""
    workers: list[Worker] = Field(default_factory=list)
    """Each load worker: where it ran, its share, its requests and how busy it was; empty
    for a rebuilt run."""
    total: Figures | None = None
    """Requests only: what the servers saw."""
    ops: dict[str, OpFigures]
    """Per op (``<workload>.<step>`` for flows, ``<workload>:<part>`` for SSE and bursts)."""
    errors_by_class: dict[str, int]
    """Errors of every request by class (5xx, timeout, connect, protocol, check_failed...)."""
    rules: list[RuleOutcome]
    """The plan's rules in order, then the checks enduro adds."""
    faults: list[FaultOutcome]
    """In the order scheduled."""
    services: dict[str, ServiceRecord]
    """Each service as the run ended."""
    resources: dict[str, ResourceSummary] = Field(default_factory=dict)
    """Per sampled process tree: the last sample, peaks and leak analyses."""
    generator: Generator | None = None
    trends: dict[str, TrendDetail] = Field(default_factory=dict)
    """What each trend rule saw, keyed by the rule's text."""
    checkers: dict[str, list[CheckerViolation]] = Field(default_factory=dict)
    """Per checker, its first 20 violations (``checker_counts`` counts them all)."""
    checker_counts: dict[str, int] = Field(default_factory=dict)
    loop: list[LoopIteration] | None = None
    """The iterations of ``enduro loop``; null for other runs."""
    canaries: list[CanaryHit] = Field(default_factory=list)
    streams: dict[str, StreamSummary] = Field(default_factory=dict)
    """Per SSE workload."""
    bursts: dict[str, BurstSummary] = Field(default_factory=dict)
    """Per burst workload with failed post-conditions."""
    paused: dict[str, PauseSummary] = Field(default_factory=dict)
    """Per workload with ``not_during``: when it was paused."""
    tables: dict[str, dict[str, ScrapedTable]] = Field(default_factory=dict)
    """Per service, its ``scrape.json.tables`` as last scraped."""
    faults_skipped: int = 0
    """By the plan's fault_policy."""
    phases: dict[str, float] = Field(default_factory=dict)
    """Seconds in each phase."""
    error: str | None = None
    """Why the run crashed or could not proceed."""
    traceback: str | None = None
    """The file holding an enduro defect's traceback."""
    rebuilt: Rebuilt | None = None
    """Present when ``enduro report`` rebuilt these results from the store."""
    scenarios: list[ScenarioResult] | None = None
    """A plan of scenarios: each one run, in order; the run's verdict is the worst of theirs
    (``ops`` and ``rules`` above are then empty). Null for other runs."""

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        """Older files read as the current schema; newer ones are refused (their keys may
        mean something else)."""
        if not isinstance(data, dict):
            return data
        schema = data.get("schema")
        if isinstance(schema, int) and not isinstance(schema, bool):
            if schema > SCHEMA:
                # Not a ValueError: pydantic lets it through, and readers tell it apart.
                raise NewerDocument(f"schema {schema} is newer than this enduro reads "
                                    f"({SCHEMA}): read it with a newer enduro")
            if schema == 1:  # verdict pass or fail, nothing said of completeness
                data = {"complete": True, "rules_passed": data.get("verdict") == "pass",
                        **data}
            if schema <= 2 and "worker_count" not in data:  # workers was the count
                count = data.get("workers")
                data = {**data, "worker_count": count if isinstance(count, int) else 1,
                        "workers": []}
        if "mode" not in data:
            data = {**data, "mode": "run"}
        ops = data.get("ops")
        if isinstance(ops, dict) and any(isinstance(s, dict) and "kind" not in s
                                         for s in ops.values()):
            data = {**data, "ops": {op: {**s, "kind": "request"}
                                    if isinstance(s, dict) and "kind" not in s else s
                                    for op, s in ops.items()}}
        return data

    @property
    def supervise(self) -> bool:
        """Services only, nothing judged: never a pass."""
        return self.mode == "supervise"
