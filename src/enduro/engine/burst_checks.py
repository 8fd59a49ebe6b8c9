"""What a burst round checks around its requests: its setup steps before, and its
post-conditions after, by HTTP (a condition on the answer) or SQL (a check on the rows)."""

from __future__ import annotations

import asyncio
import itertools
import re
from typing import Any

from enduro.engine.flow import FlowContext, render
from enduro.net.client import HttpClient, Response
from enduro.net.conditions import Answer, Condition
from enduro.net.templates import Template
from enduro.net.wire import UnsafeValue
from enduro.plan.bursts import BurstWorkload, PostCondition, sqlstate
from enduro.plan.flows import FlowRequest

__all__ = ["RoundChecks", "check_rows"]


def check_rows(check: str, rows: list[tuple[Any, ...]], columns: list[str]) -> str | None:
    """None when the rows satisfy ``check``; else what is wrong."""
    check = check.strip()
    scalar = rows[0][0] if len(rows) == 1 and len(rows[0]) == 1 and \
        isinstance(rows[0][0], int) else None
    count = scalar if scalar is not None else len(rows)
    if check == "exactly_one":
        return None if count == 1 else f"expected exactly one, found {count}"
    if check == "none":
        return None if count == 0 else f"expected none, found {count}"
    if m := re.match(r"count\s*(==|>=|<=|<|>)\s*(\d+)$", check):
        op, n = m.group(1), int(m.group(2))
        ok = {"==": count == n, ">=": count >= n, "<=": count <= n, "<": count < n,
              ">": count > n}[op]
        return None if ok else f"count {count} is not {op} {n}"
    m = re.match(r"(unique|monotonic)\((\w+)\)$", check)
    assert m is not None
    kind, col = m.groups()
    if col not in columns:
        return f"no column {col!r} in the result ({', '.join(columns)})"
    values = [r[columns.index(col)] for r in rows]
    if kind == "unique":
        dupes = sorted({repr(v) for v in values if values.count(v) > 1})
        return None if not dupes else f"{col} repeats: {', '.join(dupes[:5])}"
    for a, b in itertools.pairwise(values):
        if b < a:
            return f"{col} goes back from {a!r} to {b!r}"
    return None


def _params(ctx: FlowContext) -> dict[str, Any]:
    """The round's variables an SQL statement can name (``%(key)s``)."""
    return {k: v for k, v in ctx.vars.items() if isinstance(v, str | int | float)}


class RoundChecks:
    """A burst workload's setup steps and post-conditions, for every round."""

    def __init__(self, workload: BurstWorkload, urls: dict[str, str]) -> None:
        self.urls = urls
        # Post-conditions compiled once (their values may hold {{var}}, filled in per round).
        self._conditions = {p.check: Condition(p.check, templated=True)
                            for p in workload.after if p.http is not None
                            and p.check is not None}

    async def setup(self, w: BurstWorkload, ctx: FlowContext, client: HttpClient,
                    db: Any) -> str | None:
        """The round's setup steps in order; what went wrong, or None."""
        for i, step in enumerate(w.setup):
            if step.sql is not None:
                import psycopg
                try:
                    await db.execute(step.sql, _params(ctx))
                except psycopg.Error as exc:
                    return f"setup[{i}]: the statement failed: {exc}"
                continue
            assert step.http is not None
            req = step.http
            try:
                response = await self._send(req, w, ctx, client)
            except (OSError, TimeoutError, UnsafeValue) as exc:
                return f"setup[{i}]: request failed: {exc!r}"
            allowed = step.expect_status
            ok = (response.status < 400 if allowed is None else response.status in (
                allowed if isinstance(allowed, list) else [allowed]))
            if not ok:
                return (f"setup[{i}]: {req.method} {req.path} answered {response.status}: "
                        f"{response.text[:200]}")
        return None

    async def post(self, post: PostCondition, w: BurstWorkload, ctx: FlowContext,
                   client: HttpClient, db: Any) -> str | None:
        """One post-condition of the round (after its ``wait``); what is wrong, or None."""
        if post.wait:
            await asyncio.sleep(post.wait)
        if post.http is not None:
            assert post.check is not None
            try:
                response = await self._send(post.http, w, ctx, client)
            except (OSError, TimeoutError, UnsafeValue) as exc:
                return f"request failed: {exc!r}"
            if self._conditions[post.check].holds(Answer(response.status, response.body), ctx):
                return None
            return f"{post.check} does not hold: {response.text[:200]}"
        return await self._post_sql(post, ctx, db)

    async def _send(self, req: FlowRequest, w: BurstWorkload, ctx: FlowContext,
                    client: HttpClient) -> Response:
        """A setup or post-condition request, rendered for this round, and its answer."""
        base = render(req.base, ctx) if req.base else self.urls[req.service or ""]
        return await client.request(
            req.method, base.rstrip("/") + Template(req.path).render_target(ctx),
            headers={**w.headers, **render(req.headers, ctx)},
            query=render(req.query, ctx) or None,
            json_body=render(req.json_, ctx) if req.json_ is not None else None)

    @staticmethod
    async def _post_sql(post: PostCondition, ctx: FlowContext, db: Any) -> str | None:
        statement = post.sql if post.sql is not None else post.exec_
        assert statement is not None
        import psycopg
        try:
            cursor = await db.execute(statement, _params(ctx))
            rows = await cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            if post.expect_error is None:
                return f"the statement failed: {exc}"
            got = exc.sqlstate or "?"
            want = sqlstate(post.expect_error)
            return None if got == want else (f"expected {post.expect_error} ({want}), got "
                                             f"{got}: {exc}")
        if post.expect_error is not None:
            return f"expected {post.expect_error}, but the statement succeeded"
        if post.check is None:
            return None
        columns = [d.name for d in cursor.description or []]
        return check_rows(post.check, [tuple(r) for r in rows], columns)
