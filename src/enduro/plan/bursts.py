"""Plan models of bursts: N identical or templated requests released together, then
post-conditions by HTTP or SQL."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from enduro.plan.fields import Count, Duration, HeaderMap, HttpStatus, Interval, StepName, Url
from enduro.plan.flows import CONDITION, FlowRequest, HistorySpec
from enduro.plan.tls import Tls

__all__ = ["BurstWorkload", "PostCondition", "SplitRule"]

_SQL_CHECK = re.compile(r"^(exactly_one|none|count\s*(==|>=|<=|<|>)\s*\d+|unique\(\w+\)|"
                        r"monotonic\(\w+\))$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)


class SplitRule(_Model):
    """Which responses count under a split name: a status and/or a header present."""

    status: HttpStatus | list[HttpStatus] | None = None
    header: str | None = None


class PostCondition(_Model):
    """Checked after each round: an HTTP request whose answer must satisfy ``check``
    (``$.total == 1``), or an SQL query with ``check`` one of ``exactly_one``, ``none``,
    ``count == N``, ``unique(col)``, ``monotonic(col)``."""

    name: str
    http: FlowRequest | None = None
    sql: str | None = None
    check: str

    @model_validator(mode="after")
    def _shape(self) -> PostCondition:
        if (self.http is None) == (self.sql is None):
            raise ValueError("a post-condition needs exactly one of 'http' or 'sql'")
        if self.http is not None and not CONDITION.match(self.check):
            raise ValueError(f"check {self.check!r}: expected PATH OP VALUE, such as "
                             "'$.total == 1'")
        if self.sql is not None and not _SQL_CHECK.match(self.check.strip()):
            raise ValueError(f"check {self.check!r}: expected exactly_one, none, count == N, "
                             "unique(col) or monotonic(col)")
        return self


class Database(_Model):
    """Where SQL post-conditions run (PostgreSQL through psycopg)."""

    dsn: str


class BurstWorkload(_Model):
    """``size`` requests on as many connections, released together by a barrier, ``rounds``
    times ``every`` apart; each round renders ``vars`` once (a shared Idempotency-Key), then
    checks ``after``. ``{{prefix}}`` is unique per run, for isolating test data; ``cleanup``
    SQL runs before the first and after the last round."""

    base: Url | None = None
    service: str | None = None
    size: Annotated[int, Field(gt=0, le=10_000)] = 100
    rounds: Count = 1
    every: Duration = 1.0
    timeout: Interval = 30.0
    settle: Duration = 0.0
    headers: HeaderMap = {}
    vars: dict[str, Any] = {}
    request: FlowRequest
    split: dict[StepName, SplitRule] = {}
    after: list[PostCondition] = []
    database: Database | None = None
    cleanup: list[str] = []
    tls: Tls = Tls()
    history: HistorySpec | None = None

    @model_validator(mode="after")
    def _shape(self) -> BurstWorkload:
        if (self.base is None) == (self.service is None):
            raise ValueError("give exactly one of 'base' (a URL) or 'service'")
        if (any(p.sql for p in self.after) or self.cleanup) and self.database is None:
            raise ValueError("SQL post-conditions and cleanup need 'database: {dsn: ...}'")
        return self
