"""Plan models of flows: multi-step scenarios with captures, polls, branches and checks."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from enduro.plan.fields import (
    Duration,
    HeaderMap,
    HttpStatus,
    Interval,
    PositiveRate,
    StepName,
    Url,
    UrlPath,
)
from enduro.plan.tls import Tls

__all__ = ["Branch", "Eventually", "FinalPhase", "FlowRequest", "FlowSse", "FlowStep",
           "FlowWorkload", "HistorySpec"]

Concurrency = Annotated[int, Field(gt=0, le=100_000)]
CONDITION = re.compile(r"^\s*(\$[^\s=!<>]*|status)\s*(==|!=|<=|>=|<|>|in)\s*(.+?)\s*$")


def check_expect(status: object, that: list[str], regex: str | None) -> None:
    """What every ``expect`` (of a request, a flow step, a poll) must satisfy: conditions of
    the form PATH OP VALUE, a status code class such as ``2xx``, a regex that compiles."""
    for condition in that:
        if not CONDITION.match(condition):
            raise ValueError(f"that {condition!r}: expected PATH OP VALUE, such as "
                             "'$.state == \"done\"'")
    if isinstance(status, str) and not re.fullmatch(r"[1-5]xx", status):
        raise ValueError(f"status must be a code, a list of codes or '2xx', got {status!r}")
    if regex is not None:
        try:
            re.compile(regex)
        except re.error as exc:
            raise ValueError(f"regex does not compile: {exc}") from exc


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)


class FlowRequest(_Model):
    """One HTTP request of a step; ``{{var}}`` takes captured values."""

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    path: UrlPath = "/"
    service: str | None = None
    base: Url | None = None
    query: dict[str, Any] = {}
    headers: HeaderMap = {}
    json_: Any = Field(default=None, alias="json")
    body: str | None = None
    timeout: Interval | None = None


class FlowSse(_Model):
    """A step that attaches a Server-Sent Events stream to what the flow made (``path`` and
    ``headers`` take captured ``{{var}}``s) and reads it for up to ``for``: until an event's
    JSON data meets ``until``, or ``events`` events came. The step's latency is the time from
    its start to the first event; each event counts in the op ``<flow>.<step>:event`` with
    an SSE workload's figures (duplicate and gap errors, delivery latency from ``ts_path``).
    It fails (``no_events``, ``until_timeout``) with fewer than ``min_events`` events or an
    ``until`` that never held."""

    path: UrlPath
    service: str | None = None
    base: Url | None = None
    query: dict[str, Any] = {}
    headers: HeaderMap = {}
    for_: Interval = Field(default=10.0, alias="for")
    until: str | None = None
    events: Annotated[int, Field(gt=0, le=10_000_000)] | None = None
    min_events: Annotated[int, Field(ge=0, le=10_000_000)] = 1
    connect_timeout: Interval = 10.0
    ids: Literal["sequential", "opaque"] = "sequential"
    ts_path: str | None = None
    ts_unit: Literal["s", "ms"] = "s"

    @model_validator(mode="after")
    def _valid(self) -> FlowSse:
        if self.until is not None and not CONDITION.match(self.until):
            raise ValueError(f"until {self.until!r}: expected PATH OP VALUE, such as "
                             "'$.line == \"done\"'")
        if self.events is not None and self.events < self.min_events:
            raise ValueError(f"events ({self.events}) is below min_events "
                             f"({self.min_events}): the step could never pass")
        return self


class StepExpect(_Model):
    """Checks on a step's response: the keys of an http request's ``expect`` (engine
    .conditions reads both), their values may hold ``{{var}}``."""

    status: HttpStatus | list[HttpStatus] | str | None = None
    json_: dict[str, Any] | None = Field(default=None, alias="json")
    contains: str | None = None
    regex: str | None = None
    that: list[str] = Field(default=[], description="conditions such as '$.state == \"done\"'")

    @model_validator(mode="after")
    def _valid(self) -> StepExpect:
        check_expect(self.status, self.that, self.regex)
        return self


class Eventually(StepExpect):
    """An expectation rechecked until it holds: ``attempts`` tries, ``delay`` apart. The time
    until it held is the step's latency (publish-to-visible delay)."""

    attempts: Annotated[int, Field(gt=0, le=100_000)] = 10
    delay: Duration = 0.5


class Branch(_Model):
    """One weighted alternative of a ``branch`` step."""

    name: str | None = None
    weight: Annotated[float, Field(gt=0, le=1e9)] = 1.0
    steps: list[FlowStep]


class HistorySpec(_Model):
    """Record this step in ``history.jsonl`` as an operation ``f`` on ``key``. ``value`` is a
    template (``{{v}}``) or, for reads and creates, a JSON path into the response
    (``$.items``)."""

    f: Literal["write", "read", "create"]
    key: str
    value: str | None = None


class FlowStep(_Model):
    """A step: a ``request`` (with ``expect``, ``capture``, a poll ``until``, or
    ``expect_eventually``), a weighted ``branch``, a ``python`` function, or a ``sleep``."""

    name: StepName | None = None
    request: FlowRequest | None = None
    expect: StepExpect | None = None
    capture: dict[str, str] = {}
    until: str | None = None
    within: Duration = 60.0
    every: Interval = 1.0
    expect_eventually: Eventually | None = None
    branch: list[Branch] | None = None
    python: str | None = None
    sleep: Duration | None = None
    sse: FlowSse | None = None
    history: HistorySpec | None = None

    @model_validator(mode="after")
    def _shape(self) -> FlowStep:
        kinds = [k for k in ("request", "branch", "python", "sleep", "sse")
                 if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a step is exactly one of 'request', 'branch', 'python', 'sleep' "
                             "or 'sse'" + (f"; got {', '.join(kinds)}" if kinds else ""))
        if kinds[0] == "sse" and (self.capture or self.history is not None
                                  or self.until is not None or self.expect is not None
                                  or self.expect_eventually is not None):
            raise ValueError("an sse step takes its own 'until'; capture, history, expect "
                             "and expect_eventually apply to a request step")
        if kinds[0] in ("request", "python", "sse") and self.name is None:
            raise ValueError(f"a {kinds[0]} step needs a 'name' (it is the op in rules)")
        if self.until is not None and not CONDITION.match(self.until):
            raise ValueError(f"until {self.until!r}: expected PATH OP VALUE, such as "
                             "'$.state == \"completed\"'")
        if self.python is not None and not re.fullmatch(r"[\w.]+:[\w.]+", self.python):
            raise ValueError(f"python must be module:name, got {self.python!r}")
        return self


class FlowWorkload(_Model):
    """Flows started at ``rate`` (open model) or run in a loop on each of ``connections``."""

    base: Url | None = None
    service: str | None = None
    rate: PositiveRate | None = None
    connections: Concurrency | None = None
    max_concurrency: Concurrency = 256
    think: Duration = 0.0
    timeout: Interval = 30.0
    headers: HeaderMap = {}
    vars: dict[str, Any] = {}
    steps: Annotated[list[FlowStep], Field(min_length=1)]
    tls: Tls = Tls()

    @model_validator(mode="after")
    def _shape(self) -> FlowWorkload:
        if (self.rate is None) == (self.connections is None):
            raise ValueError("give exactly one of 'rate' or 'connections'")
        if (self.base is None) == (self.service is None):
            raise ValueError("give exactly one of 'base' (a URL) or 'service' (steps may "
                             "address others with their own 'service' or 'base')")
        names = self.step_names()
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"step names must be unique in a flow, repeated: {', '.join(dupes)}")
        return self

    def sse_steps(self) -> list[str]:
        """The names of the steps that attach an SSE stream (each also counts its events
        in ``<flow>.<step>:event``)."""
        found: list[str] = []

        def walk(steps: list[FlowStep]) -> None:
            for s in steps:
                if s.sse is not None and s.name is not None:
                    found.append(s.name)
                for b in s.branch or []:
                    walk(b.steps)
        walk(self.steps)
        return found

    def step_names(self) -> list[str]:
        names: list[str] = []

        def walk(steps: list[FlowStep]) -> None:
            for s in steps:
                if s.name is not None:
                    names.append(s.name)
                for b in s.branch or []:
                    walk(b.steps)
        walk(self.steps)
        return names


class FinalPhase(_Model):
    """After the load: heal faults, wait ``quiesce``, run ``steps`` once (final reads), then
    run the ``checkers`` over ``history.jsonl``."""

    base: Url | None = None
    service: str | None = None
    quiesce: Duration = 1.0
    headers: HeaderMap = {}
    steps: list[FlowStep] = []


Branch.model_rebuild()
