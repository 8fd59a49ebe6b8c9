"""Typed models of a plan. Unit strings are parsed here, once, into seconds, rates and bytes."""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from enduro.plan.bursts import BurstWorkload
from enduro.plan.faults import FaultPolicy, FaultSpec, Proxy
from enduro.plan.fields import (
    Duration,
    Fraction,
    Grace,
    HeaderMap,
    HttpStatus,
    Interval,
    Name,
    OpName,
    Percent,
    PositiveRate,
    Rate,
    RelPath,
    Size,
    Url,
    UrlPath,
)
from enduro.plan.flows import FinalPhase, FlowWorkload, check_expect
from enduro.plan.source import dotted
from enduro.plan.suites import Suite
from enduro.plan.tls import Tls

__all__ = [
    "SERVICE_VARIABLES",
    "WORKLOAD_KINDS",
    "ConfigTemplate",
    "Duration",
    "Expect",
    "HttpWorkload",
    "Observe",
    "Percent",
    "Plan",
    "PythonWorkload",
    "Rate",
    "Ready",
    "RequestSpec",
    "RuleSpec",
    "Scenario",
    "Service",
    "Size",
    "SseWorkload",
    "Stage",
    "StageFiles",
    "StopPolicy",
    "TargetSpec",
    "Tls",
    "Workload",
    "WorkloadSpec",
]

# Connections, clients and concurrency: far above what one generator host can hold, low
# enough that a typo (an extra 000) is an error instead of an exhausted host.
Connections = Annotated[int, Field(gt=0, le=100_000)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Ready(_Model):
    """How to tell that a service is ready: an HTTP answer, a TCP connect, a line in its
    output matching a regex, or a file that appears (relative to the service's directory).

    An ``http`` probe sends ``headers`` (``${token:name}`` filled with the current token) and
    reads an https URL with ``tls``; without ``tls`` the certificate is not checked, as
    Kubernetes httpGet probes do (workloads check it). With a ``token_file``, the service is
    ready only once that file was written after the launch, unless ``fresh_token`` is false
    (a service that keeps its token file across restarts)."""

    http: Url | None = None
    tcp: str | None = Field(default=None, description="host:port that must accept a connection")
    log: str | None = None
    file: str | None = None
    status: HttpStatus = 200
    timeout: Interval = 30.0
    interval: Interval = 0.25
    auth_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    headers: HeaderMap = {}
    tls: Tls | None = None
    fresh_token: bool = True

    @model_validator(mode="after")
    def _one_probe(self) -> Ready:
        given = [k for k in ("http", "tcp", "log", "file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'http', 'tcp', 'log' or 'file'"
                             + (f"; got {', '.join(given)}" if given else ""))
        if self.http is None and (self.headers or self.tls is not None):
            raise ValueError("headers and tls apply to an 'http' probe")
        if self.log is not None:
            try:
                re.compile(self.log)
            except re.error as exc:
                raise ValueError(f"log regex does not compile: {exc}") from exc
        return self


class StageFiles(_Model):
    """Files copied into the service's directory before it starts."""

    from_: str = Field(alias="from")
    fresh: list[RelPath] = Field(default=[], description="paths inside the service's "
                                 "directory, deleted after the copy")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)


class ConfigTemplate(_Model):
    """A Jinja2 template rendered into the service's directory with the run's variables."""

    template: str
    path: RelPath


class StopPolicy(_Model):
    """How a managed service is stopped: ``signal`` to its process group, then SIGKILL after
    ``grace``."""

    signal: Literal["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2"] = "SIGTERM"
    grace: Grace = 10.0


class Compose(_Model):
    """A service run by ``docker compose``."""

    file: str = "docker-compose.yml"
    service: str
    project: str | None = None


class Systemd(_Model):
    """A service run by systemd."""

    unit: str
    user: bool = False


class ScrapeTable(_Model):
    """A table of named entries read from a JSON endpoint: ``rows`` (a JSON path to a list,
    ``[*]`` steps flattened, such as ``$.account_details[*].stream_detail[*]``), each row's
    ``name`` and its ``fields`` (JSON paths inside the row). At most ``max_rows`` rows are
    kept per scrape."""

    rows: str
    name: str = "$.name"
    fields: Annotated[dict[Name, str], Field(min_length=1)]
    max_rows: Annotated[int, Field(gt=0, le=10_000)] = 200


class JsonScrape(_Model):
    """A JSON monitoring endpoint: figures to read from it by JSON path (``paths``, numeric
    series), and ``tables`` of named entries (a live table per scrape)."""

    url: Url
    paths: dict[str, str] = {}
    tables: dict[Name, ScrapeTable] = {}

    @model_validator(mode="after")
    def _something(self) -> JsonScrape:
        if not self.paths and not self.tables:
            raise ValueError("give 'paths' (figures) or 'tables' (named entries) to read")
        return self


class Scrape(_Model):
    """What to scrape from a service, and how often; ``headers`` (``${token:name}`` filled
    with the current token) and ``tls`` options as a workload's."""

    prometheus: Url | None = None
    json_: JsonScrape | None = Field(default=None, alias="json")
    every: Interval = 5.0
    headers: HeaderMap = {}
    # As a workload's: the certificate is checked (system CAs unless ``ca``).
    tls: Tls = Tls()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)


# The variables enduro gives every service template (config files, command, env, cwd),
# besides the plan's own ``vars``; see ``ServiceSet.variables``.
SERVICE_VARIABLES = frozenset({"run_id", "run_dir", "plan", "tag", "service", "service_dir",
                               "session", "port", "ports", "python", "vars"})


def _check_var_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
        raise ValueError(f"{name!r}: a variable name is letters, digits and _ (not first), "
                         "at most 64, so that templates can write {{ NAME }}")
    return name


VarName = Annotated[str, AfterValidator(_check_var_name)]
# A variable's value: a scalar a template can print (finite, as every number of a plan).
def _finite_var(value: str | bool | int | float) -> str | bool | int | float:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a variable's number must be finite")
    return value


# A variable's value: a scalar a template can print (finite, as every number of a plan).
VarValue = Annotated[str | bool | int | float, AfterValidator(_finite_var)]


class Service(_Model):
    """A service under test: a managed local process (``command``), an external target
    (``url`` only), or a unit run by ``compose`` or ``systemd``."""

    url: Url | None = None
    command: list[str] | str | None = None
    build: list[str] | str | None = None
    stage: StageFiles | None = None
    config: ConfigTemplate | list[ConfigTemplate] | None = None
    env: dict[str, str] = {}
    cwd: str | None = None
    ports: list[Annotated[int, Field(gt=0, lt=65536)]] = []
    ready: Ready | None = None
    token_file: RelPath | None = None
    depends_on: list[str] = []
    stop: StopPolicy = StopPolicy()
    restart: Literal["always", "on-failure", "never"] = "on-failure"
    restart_limit: Annotated[int, Field(ge=0, le=100_000)] = 10
    log_max: Size = 50_000_000
    crash_lines: Annotated[int, Field(gt=0, le=100_000)] = 200
    compose: Compose | None = None
    systemd: Systemd | None = None
    scrape: Scrape | None = None

    @model_validator(mode="after")
    def _kind(self) -> Service:
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        kinds = [k for k in ("command", "compose", "systemd") if getattr(self, k) is not None]
        if len(kinds) > 1:
            raise ValueError(f"give one of 'command', 'compose' or 'systemd', not {kinds}")
        if not kinds and self.url is None:
            raise ValueError("a service needs 'command' (a managed process), 'url' (an "
                             "external target), 'compose' or 'systemd'")
        if self.command is not None and not self.command:
            raise ValueError("command is empty")
        local_only = [k for k in ("build", "stage", "config", "cwd", "token_file")
                      if getattr(self, k) is not None]
        if self.command is None and local_only:
            raise ValueError(f"{', '.join(local_only)} apply only to a managed process "
                             "('command')")
        return self

    @field_validator("cwd")
    @classmethod
    def _cwd_inside(cls, cwd: str | None) -> str | None:
        # A relative cwd is created inside the service's directory; it cannot leave it.
        if cwd is not None and not cwd.startswith("/"):
            norm = posixpath.normpath(cwd)
            if norm == ".." or norm.startswith("../") or cwd.startswith("~"):
                raise ValueError(f"cwd {cwd!r} leaves the service's directory; give a path "
                                 "inside it, or an absolute path to a directory that exists")
        return cwd

    @property
    def kind(self) -> str:
        if self.command is not None:
            return "process"
        if self.compose is not None:
            return "compose"
        if self.systemd is not None:
            return "systemd"
        return "external"

    def configs(self) -> list[ConfigTemplate]:
        if self.config is None:
            return []
        return self.config if isinstance(self.config, list) else [self.config]


class Expect(_Model):
    """Checks on one response. A failed check counts as an error of class ``check_failed``."""

    status: HttpStatus | list[HttpStatus] | str | None = None
    json_: dict[str, Any] | None = Field(default=None, alias="json")
    regex: str | None = None
    contains: str | None = None
    that: list[str] = Field(default=[], description="conditions such as '$.depth < 100'")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)

    @model_validator(mode="after")
    def _valid(self) -> Expect:
        check_expect(self.status, self.that, self.regex)
        return self


class RequestSpec(_Model):
    """One op of an HTTP workload: a request with a weight and its checks."""

    name: OpName
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    path: UrlPath = "/"
    query: dict[str, str | int | float] = {}
    headers: HeaderMap = {}
    json_: Any = Field(default=None, alias="json")
    body: str | None = None
    weight: Annotated[float, Field(gt=0, le=1e9)] = 1.0
    timeout: Interval | None = None
    expect: Expect = Expect()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_body(self) -> RequestSpec:
        if self.json_ is not None and self.body is not None:
            raise ValueError("give 'json' or 'body', not both")
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', got {self.path!r}")
        return self


class Stage(_Model):
    """One stage of a ramp: reach ``target`` linearly over ``duration``."""

    duration: Duration
    target: Rate


def _check_stages(stages: list[Stage] | None) -> list[Stage] | None:
    if stages is None:
        return None
    if not stages:
        raise ValueError("stages is empty; give at least one {duration, target}")
    if all(s.target == 0 for s in stages):
        raise ValueError("every stage has target 0, so the ramp would send nothing")
    return stages


class HttpWorkload(_Model):
    """Requests against one HTTP base URL, in the open model (``rate``/``stages``) or closed
    model (``connections``)."""

    base: Url | None = None
    service: str | None = None
    rate: PositiveRate | None = None
    stages: list[Stage] | None = None
    arrivals: Literal["constant", "poisson"] = "constant"
    connections: Connections | None = None
    max_connections: Connections = 512
    think: Duration = 0.0
    timeout: Interval = 30.0
    headers: HeaderMap = {}
    tls: Tls = Tls()
    late_after: Duration = 0.01
    requests: Annotated[list[RequestSpec], Field(min_length=1)]

    _stages = field_validator("stages")(_check_stages)

    @model_validator(mode="after")
    def _model_choice(self) -> HttpWorkload:
        if (self.base is None) == (self.service is None):
            raise ValueError("give exactly one of 'base' (a URL) or 'service' (a service name)")
        if self.base is not None and not re.match(r"^https?://", self.base):
            raise ValueError(f"base must start with http:// or https://, got {self.base!r}")
        chosen = [k for k in ("rate", "stages", "connections") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "give exactly one of 'rate' (open model), 'stages' (ramping open model) or "
                f"'connections' (closed model); got {', '.join(chosen) or 'none'}"
            )
        names = [r.name for r in self.requests]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"request names must be unique, repeated: {', '.join(dupes)}")
        return self

    @property
    def is_open(self) -> bool:
        return self.connections is None


class PythonWorkload(_Model):
    """Operations written in Python: ``function`` (``module:name``, the module looked up
    beside the plan first) is an ``async def op(ctx)`` called at ``rate`` (open model) or in a
    loop on each of ``connections`` (closed model). It fails by raising."""

    function: str
    op: OpName | None = None
    rate: PositiveRate | None = None
    stages: list[Stage] | None = None
    arrivals: Literal["constant", "poisson"] = "constant"
    connections: Connections | None = None
    max_concurrency: Connections = 512
    think: Duration = 0.0
    timeout: Interval = 30.0
    late_after: Duration = 0.01
    params: dict[str, Any] = {}

    @model_validator(mode="after")
    def _shape(self) -> PythonWorkload:
        if not re.fullmatch(r"[\w.]+:[\w.]+", self.function):
            raise ValueError(f"function must be module:name, got {self.function!r}")
        chosen = [k for k in ("rate", "stages", "connections") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of 'rate', 'stages' or 'connections'; got "
                             f"{', '.join(chosen) or 'none'}")
        return self

    _stages = field_validator("stages")(_check_stages)

    @property
    def is_open(self) -> bool:
        return self.connections is None


class Churn(_Model):
    """Every ``every``, ``fraction`` of the SSE clients (at most ``max_fraction``, never all)
    disconnect and reconnect after a jittered delay."""

    every: Interval
    fraction: Fraction = 0.1
    max_fraction: Fraction = 0.5


class SseWorkload(_Model):
    """A pool of Server-Sent Events streams with churn and Last-Event-ID reconnects."""

    base: Url | None = None
    service: str | None = None
    path: UrlPath = "/"
    headers: HeaderMap = {}
    clients: Connections = 10
    churn: Churn | None = None
    reconnect_delay: Duration = 0.5
    reconnect_jitter: Duration = 0.5
    connect_timeout: Interval = 10.0
    stall_after: Interval = 30.0
    ids: Literal["sequential", "opaque"] = "sequential"
    ts_path: str | None = None
    ts_unit: Literal["s", "ms"] = "s"
    tls: Tls = Tls()

    @model_validator(mode="after")
    def _target(self) -> SseWorkload:
        if (self.base is None) == (self.service is None):
            raise ValueError("give exactly one of 'base' (a URL) or 'service'")
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', got {self.path!r}")
        return self


# The kinds of workload, each a key of ``Workload`` holding its model. What each kind does at
# run time (its driver, its checks, its files and summaries) is registered in engine/kinds.py.
WORKLOAD_KINDS = ("http", "sse", "flow", "burst", "python")
WorkloadSpec = HttpWorkload | SseWorkload | FlowWorkload | BurstWorkload | PythonWorkload
# The kinds that send to a base URL (``base`` or ``service``).
TargetSpec = HttpWorkload | SseWorkload | FlowWorkload | BurstWorkload


class Workload(_Model):
    """A source of operations. One kind per workload (``WORKLOAD_KINDS``)."""

    http: HttpWorkload | None = None
    sse: SseWorkload | None = None
    flow: FlowWorkload | None = None
    burst: BurstWorkload | None = None
    python: PythonWorkload | None = None
    # Under --workers N, run this workload in one load process only, whole (its rate,
    # connections and clients undivided): for ops that flip state global to the service.
    pin: bool = False
    # Pause this workload (it sends nothing, so nothing of it fails) while SSE churn or a
    # fault is in force; it resumes after. How long it was paused is in the results. A
    # plan (or a profile of it) without faults or churn simply never pauses it.
    not_during: list[Literal["churn", "faults"]] = []

    @model_validator(mode="after")
    def _one_kind(self) -> Workload:
        kinds = [k for k in WORKLOAD_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a workload needs exactly one kind: 'http', 'sse', 'flow', "
                             "'burst' or 'python'" + (f"; got {', '.join(kinds)}" if kinds else ""))
        if self.not_during:
            if self.sse is not None:
                raise ValueError("not_during applies to http, flow, burst and python "
                                 "workloads; an sse workload holds its streams open")
            if getattr(self.spec, "stages", None) is not None:
                raise ValueError("not_during pauses a constant rate or a closed model; a "
                                 "ramp ('stages') cannot pause, use 'rate' or 'connections'")
        return self

    @property
    def kind(self) -> str:
        """Which kind this workload is: the one key of ``WORKLOAD_KINDS`` that is set."""
        return next(k for k in WORKLOAD_KINDS if getattr(self, k) is not None)

    @property
    def spec(self) -> WorkloadSpec:
        """The model of this workload's kind."""
        spec: WorkloadSpec = getattr(self, self.kind)
        return spec

    @property
    def target(self) -> TargetSpec | None:
        """The model of a workload that sends to a base URL; None for ``python``."""
        spec = self.spec
        return None if isinstance(spec, PythonWorkload) else spec

    def op_names(self, name: str) -> list[str]:
        """The ops this workload records, named after the workload ``name``."""
        spec = self.spec
        if isinstance(spec, HttpWorkload):
            return [r.name for r in spec.requests]
        if isinstance(spec, SseWorkload):
            return [f"{name}:connect", f"{name}:event"]
        if isinstance(spec, FlowWorkload):
            return [name, *(f"{name}.{step}" for step in spec.step_names()),
                    *(f"{name}.{step}:event" for step in spec.sse_steps())]
        if isinstance(spec, BurstWorkload):
            return [name, f"{name}:round", *(f"{name}.{s}" for s in spec.split)]
        return [spec.op or name]


class RuleSpec(_Model):
    """A rule with options: ``abort_on_fail`` stops the run once the rule has failed for
    ``grace`` in a row."""

    rule: str
    abort_on_fail: bool = False
    grace: Duration = 0.0


class Scenario(_Model):
    """One of a plan's ``scenarios``: run after the one before it, against the same services
    (started once), with its own workloads, duration and rules (the plan's when it gives
    none) and its own verdict."""

    name: Name
    description: str | None = None
    duration: Interval | None = None
    workloads: dict[Name, Workload] = {}
    rules: list[str | RuleSpec] | None = None
    abort_if: list[str] | None = None
    final: FinalPhase | None = None
    checkers: list[Literal["lost_writes", "garbage_reads", "duplicate_effect",
                           "monotonic_reads", "read_your_writes"]] | None = None


HeartbeatField = Literal["rps", "errors", "err%", "p95", "p99", "flows", "events", "faults",
                         "services", "restarts"]


class Observe(_Model):
    """Intervals of the heartbeat line, the JSON snapshots and resource sampling, and when
    the generator counts as saturated (its figures are then suspect)."""

    heartbeat: Interval = 60.0
    # What the heartbeat line shows; by default the request figures, and flows, SSE events
    # and faults in force when the plan has them.
    heartbeat_fields: list[HeartbeatField] | None = None
    snapshot: Interval = 600.0
    sample: Interval = 2.0
    saturation_cpu: Percent = 0.9
    saturation_lag: Interval = 0.05
    # logs/enduro.log is rotated when it passes log_max: enduro.log.1 is the newest of the
    # log_keep files kept before it (the oldest is dropped).
    log_max: Annotated[Size, Field(ge=1024, le=1 << 40)] = 10_000_000
    log_keep: Annotated[int, Field(ge=1, le=100)] = 3


class Canaries(_Model):
    """Strings that must never appear in a response body or a service's log (privacy
    checks). ``generate`` adds N random secrets, usable in requests as ``{{canary}}``
    (the first) or ``{{canary1}}``, ``{{canary2}}``..."""

    values: list[Annotated[str, Field(min_length=4)]] = []
    generate: Annotated[int, Field(ge=0, le=16)] = 0


class Plan(_Model):
    """A validated plan."""

    name: Name
    description: str | None = None
    duration: Interval = 60.0
    seed: Annotated[int, Field(ge=-(2**63), lt=2**63)] | None = None
    window: Annotated[Duration, Field(ge=0.01, le=3600)] = 1.0
    grace: Grace = 5.0
    profiles: dict[Name, dict[str, Any]] = {}
    services: dict[Name, Service] = {}
    workloads: dict[Name, Workload] = {}
    rules: list[str | RuleSpec] = []
    observe: Observe = Observe()
    groups: dict[Name, list[str]] = {}
    proxies: dict[Name, Proxy] = {}
    faults: list[FaultSpec] = []
    fault_policy: FaultPolicy = FaultPolicy()
    # A --workers worker lost mid-run (its process or Ray actor died): go on with the others,
    # or fail the run.
    on_worker_loss: Literal["continue", "fail"] = "fail"
    abort_if: list[str] = []
    final: FinalPhase | None = None
    canaries: Canaries = Canaries()
    suite: Suite | None = None
    checkers: list[Literal["lost_writes", "garbage_reads", "duplicate_effect",
                           "monotonic_reads", "read_your_writes"]] = []
    vars: dict[VarName, VarValue] = {}
    scenarios: list[Scenario] = []

    @field_validator("scenarios")
    @classmethod
    def _scenario_names(cls, value: list[Scenario]) -> list[Scenario]:
        names = [s.name for s in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"scenario names must be unique: {', '.join(twice)} repeat")
        return value

    @field_validator("vars")
    @classmethod
    def _own_names(cls, value: dict[str, VarValue]) -> dict[str, VarValue]:
        taken = sorted(set(value) & SERVICE_VARIABLES)
        if taken:
            raise ValueError(f"{', '.join(taken)}: the name of a variable enduro sets itself "
                             f"({', '.join(sorted(SERVICE_VARIABLES))}); choose another")
        return value

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> Plan:
        # Plan loading asks for these itself, to report every one at its own line.
        if info.context and info.context.get("defer_references"):
            return self
        problems = self.reference_problems()
        if problems:
            raise ValueError("; ".join(f"{dotted(loc)}: {msg}" for loc, msg in problems))
        return self

    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Names that point at nothing (services, groups, proxies) and claims that clash
        (ports), each with the location of the reference."""
        return [*self._workload_references(), *self._service_references(),
                *self._fault_references(), *self._port_clashes(),
                *self._scenario_references()]

    def _scenario_references(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if self.scenarios and self.workloads:
            yield (("workloads",), "a plan with 'scenarios' gives its workloads in each "
                   "scenario, not at the top level")
        for i, scenario in enumerate(self.scenarios):
            for wname, wl in scenario.workloads.items():
                svc = wl.target.service if wl.target is not None else None
                if svc is not None and (svc not in self.services
                                        or self.services[svc].url is None):
                    yield (("scenarios", i, "workloads", wname, wl.kind, "service"),
                           f"names {svc!r}, which is not a service with a 'url' (services: "
                           f"{', '.join(sorted(self.services)) or 'none defined'})")

    def _workload_references(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        for wname, workload in self.workloads.items():
            target = workload.target
            if target is None or target.service is None:
                continue
            svc = target.service
            at: tuple[str | int, ...] = ("workloads", wname, workload.kind, "service")
            if svc not in self.services:
                known = ", ".join(sorted(self.services)) or "none defined"
                yield at, f"names {svc!r}, which is not a service (services: {known})"
            elif self.services[svc].url is None:
                yield at, f"names {svc!r}, which has no 'url' to send to"

    def _service_references(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        for sname, service in self.services.items():
            for i, dep in enumerate(service.depends_on):
                if dep not in self.services or dep == sname:
                    yield (("services", sname, "depends_on", i),
                           f"names {dep!r}, which is not another service")
        for gname, members in self.groups.items():
            for i, member in enumerate(members):
                if member not in self.services:
                    yield ("groups", gname, i), f"names {member!r}, which is not a service"
            if gname in self.services:
                yield ("groups", gname), f"group {gname!r} has the name of a service"

    def _fault_references(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        for i, fault in enumerate(self.faults):
            spec = fault.spec
            at: tuple[str | int, ...] = ("faults", i, fault.kind)
            process_fault = fault.kind in ("kill", "terminate", "restart", "pause")
            target = getattr(spec, "target", spec) if process_fault else None
            if isinstance(target, str) and target not in self.services \
                    and target not in self.groups:
                yield at, (f"{fault.kind} targets {target!r}, which is neither a service "
                           "nor a group")
            if process_fault and not isinstance(spec, str) and spec.choose == "all" \
                    and spec.target in self.groups and spec.rolling is None \
                    and not spec.allow_all and len(self.groups[spec.target]) > 1:
                yield at, (f"{fault.kind} of all of group {spec.target!r} at once takes "
                           "every replica down; add 'rolling: 2s' or, if that is the point, "
                           "'allow_all: true'")
            proxy = getattr(spec, "proxy", None)
            if proxy is not None and proxy not in self.proxies:
                yield (*at, "proxy"), (f"proxy {proxy!r} is not in proxies "
                                       f"({', '.join(sorted(self.proxies)) or 'none defined'})")
            elif fault.kind == "http" and proxy is not None and not self.proxies[proxy].http:
                yield (*at, "proxy"), f"http faults need proxies.{proxy}.http: true"

    def _port_clashes(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        ports: dict[int, str] = {}
        for sname, service in self.services.items():
            for i, port in enumerate(service.ports):
                if port in ports:
                    yield (("services", sname, "ports", i),
                           f"port {port} is claimed by services {ports[port]!r} and {sname!r}")
                ports[port] = sname

    def rule_specs(self) -> list[RuleSpec]:
        """Every rule in its long form."""
        return [RuleSpec(rule=r) if isinstance(r, str) else r for r in self.rules]

    def base_url(self, workload: TargetSpec) -> str:
        """The base URL a workload sends to."""
        if workload.base is not None:
            return workload.base
        assert workload.service is not None
        url = self.services[workload.service].url
        assert url is not None  # checked by _references
        return url
