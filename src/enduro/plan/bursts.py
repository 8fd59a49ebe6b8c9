"""Plan models of bursts: N identical or templated requests released together, then
post-conditions by HTTP or SQL."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from enduro.plan.fields import Count, Duration, HeaderMap, HttpStatus, Interval, StepName, Url
from enduro.plan.flows import CONDITION, FlowRequest, HistorySpec
from enduro.plan.tls import Tls

__all__ = ["SQL_ERRORS", "BurstWorkload", "PostCondition", "SetupStep", "SplitRule", "sqlstate"]

_SQL_CHECK = re.compile(r"^(exactly_one|none|count\s*(==|>=|<=|<|>)\s*\d+|unique\(\w+\)|"
                        r"monotonic\(\w+\))$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)


class SplitRule(_Model):
    """Which responses count under a split name: a status and/or a header present."""

    status: HttpStatus | list[HttpStatus] | None = None
    header: str | None = None


# PostgreSQL's condition names of the errors a battle test expects, with their SQLSTATEs.
SQL_ERRORS = {"unique_violation": "23505", "foreign_key_violation": "23503",
              "not_null_violation": "23502", "check_violation": "23514",
              "exclusion_violation": "23P01", "serialization_failure": "40001",
              "deadlock_detected": "40P01", "lock_not_available": "55P03",
              "undefined_table": "42P01", "raise_exception": "P0001"}
_SQLSTATE = re.compile(r"^[0-9A-Z]{5}$")


def sqlstate(expected: str) -> str:
    """The SQLSTATE an ``expect_error`` names (a condition name or the code itself)."""
    return SQL_ERRORS.get(expected, expected)


def _check_expect_error(value: str | None) -> str | None:
    if value is not None and value not in SQL_ERRORS and not _SQLSTATE.match(value):
        raise ValueError(f"expect_error {value!r}: expected an SQLSTATE (5 characters, such "
                         f"as 23505) or one of {', '.join(sorted(SQL_ERRORS))}")
    return value


class SetupStep(_Model):
    """Run before each round of a burst: an SQL statement (``sql``) or an HTTP request
    (``http``, whose answer must have a status in ``expect_status``; by default below 400).
    ``{{prefix}}``, ``{{round}}`` and the burst's ``vars`` are in scope."""

    sql: str | None = None
    http: FlowRequest | None = None
    expect_status: HttpStatus | list[HttpStatus] | None = None

    @model_validator(mode="after")
    def _shape(self) -> SetupStep:
        if (self.http is None) == (self.sql is None):
            raise ValueError("a setup step needs exactly one of 'http' or 'sql'")
        if self.sql is not None and self.expect_status is not None:
            raise ValueError("expect_status is for 'http' setup steps")
        return self


class PostCondition(_Model):
    """Checked after each round, in order (each after ``wait``): an HTTP request whose
    answer must satisfy ``check`` (``$.total == 1``, ``status == 410``); an SQL query
    (``sql``) with ``check`` one of ``exactly_one``, ``none``, ``count == N``,
    ``unique(col)``, ``monotonic(col)``; or an SQL action (``exec``: a statement or a
    cleanup job such as ``select cache_cleanup()``) whose rows, if ``check`` is given, are
    checked the same way. ``expect_error`` (a condition name such as ``unique_violation``,
    or an SQLSTATE) turns an SQL step into one that must fail with that error."""

    name: str
    http: FlowRequest | None = None
    sql: str | None = None
    exec_: str | None = Field(default=None, alias="exec")
    check: str | None = None
    expect_error: str | None = None
    wait: Duration = 0.0

    @model_validator(mode="after")
    def _shape(self) -> PostCondition:
        if sum(x is not None for x in (self.http, self.sql, self.exec_)) != 1:
            raise ValueError("a post-condition needs exactly one of 'http', 'sql' or 'exec'")
        _check_expect_error(self.expect_error)
        if self.http is not None:
            if self.expect_error is not None:
                raise ValueError("expect_error is for 'sql' and 'exec' steps (an HTTP step "
                                 "checks 'status == 409')")
            if self.check is None or not CONDITION.match(self.check):
                raise ValueError(f"check {self.check!r}: expected PATH OP VALUE, such as "
                                 "'$.total == 1' or 'status == 200'")
            return self
        if self.check is not None and self.expect_error is not None:
            raise ValueError("give 'check' (rows) or 'expect_error' (a failure), not both")
        if self.sql is not None and self.check is None and self.expect_error is None:
            raise ValueError("an 'sql' check needs 'check' (or 'expect_error'); a statement "
                             "run for its effect is an 'exec' step")
        if self.check is not None and not _SQL_CHECK.match(self.check.strip()):
            raise ValueError(f"check {self.check!r}: expected exactly_one, none, count == N, "
                             "unique(col) or monotonic(col)")
        return self


class Database(_Model):
    """Where SQL post-conditions run (PostgreSQL through psycopg)."""

    dsn: str


class BurstWorkload(_Model):
    """``size`` requests on as many connections, released together by a barrier, ``rounds``
    times ``every`` apart; each round runs ``setup``, renders ``vars`` once (a shared
    Idempotency-Key), then checks ``after``. The request is rendered once per round (N
    identical requests), or per request when it uses ``{{i}}``, its index in the round (0 to
    size - 1), or ``{{sender}}``, its sender (``i % senders``). ``{{prefix}}`` is unique
    per run, for isolating test data; ``cleanup`` SQL runs before the first and after the last
    round."""

    base: Url | None = None
    service: str | None = None
    size: Annotated[int, Field(gt=0, le=10_000)] = 100
    senders: Annotated[int, Field(gt=0, le=10_000)] = 1
    setup: list[SetupStep] = []
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
        if (any(p.sql or p.exec_ for p in self.after) or self.cleanup
                or any(s.sql for s in self.setup)) and self.database is None:
            raise ValueError("SQL steps (setup, after, cleanup) need 'database: {dsn: ...}'")
        if self.senders > self.size:
            raise ValueError(f"senders ({self.senders}) cannot be more than size "
                             f"({self.size})")
        return self
