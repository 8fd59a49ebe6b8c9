"""Plan models of faults, proxies and abort conditions."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from enduro.plan.fields import Count, Duration, Fraction, HttpStatus, Interval, Percent, Size

__all__ = ["FAULT_KINDS", "PROCESS_KINDS", "TOXIC_KINDS", "CommandFault", "FaultPolicy",
           "FaultSpec", "HttpFault", "ProcessTarget", "Proxy", "Toxic"]


PROCESS_KINDS = ("kill", "terminate", "restart", "pause")
TOXIC_KINDS = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer",
               "limit_data", "blackhole", "down")
FAULT_KINDS = (*PROCESS_KINDS, *TOXIC_KINDS, "http", "command")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)


class Proxy(_Model):
    """A TCP proxy enduro runs in front of a service; toxics and HTTP faults act in it."""

    listen: str
    upstream: str
    http: bool = False

    @model_validator(mode="after")
    def _addresses(self) -> Proxy:
        for field_name in ("listen", "upstream"):
            value = getattr(self, field_name)
            if not re.fullmatch(r"\[?[\w.:-]*\]?:\d{1,5}", value) \
                    or not 0 < int(value.rsplit(":", 1)[1]) < 65536:
                raise ValueError(f"{field_name} must be host:port, got {value!r}")
        return self


class ProcessTarget(_Model):
    """Which services a process fault hits: a name or a group, and how to choose in it."""

    target: str
    choose: Literal["one", "random", "all"] = "random"
    rolling: Duration | None = None
    allow_all: bool = False


class Toxic(_Model):
    """A Toxiproxy-style toxic on a proxy. Parameters by kind:

    latency: add, jitter · bandwidth: rate (bytes/s, e.g. 64KB) · slow_close: delay ·
    timeout: after (0 = hold data forever) · reset_peer: after · slicer: size, size_variation,
    delay · limit_data: bytes · blackhole, down: none."""

    proxy: str
    direction: Literal["upstream", "downstream", "both"] = "downstream"
    toxicity: Fraction = 1.0
    add: Duration = 0.0
    jitter: Duration = 0.0
    rate: Size = 0
    delay: Duration = 0.0
    after: Duration = 0.0
    size: Size = 0
    size_variation: Size = 0
    bytes: Size = 0


class HttpFault(_Model):
    """HTTP-level faults in a proxy with ``http: true``: answer ``status`` for a ``fraction``
    of requests, add ``delay``, or fail the ``first`` N requests."""

    proxy: str
    status: HttpStatus = 503
    fraction: Fraction = 1.0
    delay: Duration = 0.0
    first: Count | None = None
    body: str = "injected by enduro\n"


class CommandFault(_Model):
    """A command and the command that undoes it (run when the fault ends, and on stop)."""

    run: list[str] | str
    undo: list[str] | str | None = None
    timeout: Annotated[Interval, Field(le=3600)] = 60.0


class FaultSpec(_Model):
    """One entry of ``faults:``: when, what kind, against what, for how long."""

    name: str | None = None
    at: Duration | None = None
    every: Duration | None = None
    random: Duration | None = Field(default=None, description="mean interval")
    jitter: Duration = 0.0
    between: tuple[Duration, Duration] | None = None
    for_: Interval | None = Field(default=None, alias="for")
    count: Count | None = None
    kill: str | ProcessTarget | None = None
    terminate: str | ProcessTarget | None = None
    restart: str | ProcessTarget | None = None
    pause: str | ProcessTarget | None = None
    latency: Toxic | None = None
    bandwidth: Toxic | None = None
    slow_close: Toxic | None = None
    timeout: Toxic | None = None
    reset_peer: Toxic | None = None
    slicer: Toxic | None = None
    limit_data: Toxic | None = None
    blackhole: Toxic | None = None
    down: Toxic | None = None
    http: HttpFault | None = None
    command: CommandFault | None = None

    @model_validator(mode="after")
    def _shape(self) -> FaultSpec:
        kinds = [k for k in FAULT_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a fault needs exactly one kind of {', '.join(FAULT_KINDS)}"
                             + (f"; got {', '.join(kinds)}" if kinds else ""))
        timings = [k for k in ("at", "every", "random") if getattr(self, k) is not None]
        if len(timings) != 1:
            raise ValueError("a fault needs exactly one of 'at' (once), 'every' (periodic) or "
                             "'random' (mean interval)")
        if self.every is not None and self.every <= 0:
            raise ValueError("every must be positive")
        if self.random is not None and self.random <= 0:
            raise ValueError("random (the mean interval) must be positive")
        if self.between is not None and self.between[0] >= self.between[1]:
            raise ValueError("between must be [start, end] with start before end")
        if kinds[0] == "pause" and self.for_ is None:
            raise ValueError("a pause needs 'for' (how long the process stays stopped)")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in FAULT_KINDS if getattr(self, k) is not None)

    @property
    def spec(self) -> Any:
        return getattr(self, self.kind)

    def label(self, index: int) -> str:
        return self.name or f"{self.kind}#{index}"


class FaultPolicy(_Model):
    """Limits over the whole schedule."""

    min_gap: Duration = 0.0
    max_concurrent: Annotated[int, Field(gt=0, le=10_000)] | None = None
    recovery_windows: Annotated[int, Field(gt=0, le=10_000)] = 3
    baseline_band: Percent = 0.5
