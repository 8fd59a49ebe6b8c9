"""Burst (battle) workloads: N requests on N connections released together by a barrier,
then post-conditions by HTTP or SQL. Op ``<name>`` is one request of a burst (latency from the
release), ``<name>:round`` one round (errors ``post:<check>`` when a post-condition failed),
``<name>.<split>`` the responses that matched a split (created, replayed, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import re
import time
from pathlib import Path
from typing import Any

from enduro.engine.flow import FlowContext, HistoryLog, render
from enduro.engine.http import classify
from enduro.engine.tasks import InFlight
from enduro.net.client import MAX_HEAD_BYTES, HttpClient
from enduro.net.conditions import Answer, Condition, JsonPath, parse_json
from enduro.net.target import Target, split_base
from enduro.net.templates import Template
from enduro.net.tls import client_context, server_hostname
from enduro.net.wire import UnsafeValue, build_request
from enduro.observe.window import UNSAFE_VALUE, OpCounter, Recorder
from enduro.plan.bursts import BurstWorkload, PostCondition, SplitRule, sqlstate
from enduro.plan.tokens import Credentials, Filled

__all__ = ["BurstDriver", "check_rows", "summarize_violations"]

_monotonic = time.monotonic


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


def _matches(rule: SplitRule, status: int, headers: dict[str, str]) -> bool:
    if rule.status is not None:
        allowed = rule.status if isinstance(rule.status, list) else [rule.status]
        if status not in allowed:
            return False
    return rule.header is None or rule.header.lower() in headers


# A template naming a per-request variable: {{i}}, {{sender}} (also inside an expression).
_PER_REQUEST = re.compile(r"\{\{[^}]*\b(i|sender)\b[^}]*\}\}")


class BurstDriver:
    """Drives one burst workload (in the first worker process only)."""

    def __init__(self, workload: BurstWorkload, name: str, base_url: str, recorder: Recorder,
                 rng: random.Random, *, service_urls: dict[str, str], prefix: str,
                 active: bool, history: HistoryLog | None = None,
                 violations_path: Path | None = None,
                 credentials: Credentials | None = None) -> None:
        self.history = history
        # Each round takes the current tokens (a restarted service wrote new ones).
        self._filled = Filled(workload, credentials)
        self.violations_path = violations_path
        self.workload = workload
        # A burst is N identical requests: rendered once per round, unless the request uses
        # the per-request variables (``{{i}}``, ``{{sender}}``).
        self._per_request = bool(_PER_REQUEST.search(
            workload.request.model_dump_json(by_alias=True)))
        self.name = name
        self.base = base_url
        self.rng = rng
        self.urls = {**service_urls, "": base_url}
        # One TLS context for the workload, shared by every client and connection.
        self._ssl = client_context(workload.tls) if any(
            u.startswith("https:") for u in self.urls.values()) else None
        self.prefix = prefix
        self.active = active
        self.op: OpCounter = recorder.counter(name)
        self.round_op: OpCounter = recorder.counter(f"{name}:round")
        self.splits = {s: recorder.counter(f"{name}.{s}") for s in workload.split}
        self.sending = False
        self.violations: list[dict[str, Any]] = []
        self.in_flight = InFlight()
        # Post-conditions and the history path compiled once (their values may hold
        # {{var}}, filled in per round).
        self._conditions = {p.check: Condition(p.check, templated=True)
                            for p in workload.after if p.http is not None
                            and p.check is not None}
        spec = workload.history
        self._history_path = (JsonPath(spec.value) if spec is not None and spec.value
                              is not None and spec.value.startswith("$") else None)
        # The round still out at the end: the drain gives it the grace, close_all cancels it.
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self, duration: float) -> None:
        if not self.active:
            return
        self.sending = True
        end = _monotonic() + duration
        db = await self._database()
        client = HttpClient(timeout=self.workload.timeout, tls=self.workload.tls,
                            context=self._ssl)
        late = False
        try:
            await self._cleanup(db)
            for n in range(self.workload.rounds):
                if not self.sending or _monotonic() >= end:
                    break
                started = _monotonic()
                task = asyncio.ensure_future(self._round(n, client, db))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                # Return at the end however long a round takes (a silent server, a 30 s
                # timeout): the run's deadline is the plan's, not the round's.
                done, _ = await asyncio.wait([task], timeout=max(0.0, end - _monotonic()))
                if not done:
                    late = True
                    task.add_done_callback(lambda _t: self._release(client, db))
                    return
                task.result()
                pause = self.workload.every - (_monotonic() - started)
                await asyncio.sleep(max(0.0, min(pause, end - _monotonic())))
            await self._cleanup(db)
        finally:
            if not late:
                await client.close()
                if db is not None:
                    await db.close()

    @staticmethod
    def _release(client: HttpClient, db: Any) -> None:
        """Close what a round that outlived the run used, once it has ended."""
        client.close_now()
        if db is not None:
            asyncio.get_running_loop().create_task(db.close())

    async def _database(self) -> Any:
        if self.workload.database is None:
            return None
        import psycopg
        return await psycopg.AsyncConnection.connect(self.workload.database.dsn, autocommit=True)

    async def _cleanup(self, db: Any) -> None:
        for statement in self.workload.cleanup:
            await db.execute(statement, {"prefix": self.prefix, "prefix_like": self.prefix + "%"})

    def _ctx(self, n: int, client: HttpClient) -> FlowContext:
        ctx = FlowContext(n, 0, self.rng, {"prefix": self.prefix, "round": n,
                                           "prefix_like": self.prefix + "%"}, client, self.urls)
        for key, value in self.workload.vars.items():
            ctx.vars[key] = render(value, ctx)
        return ctx

    async def _round(self, n: int, client: HttpClient, db: Any) -> None:
        w = self.workload = self._filled.get()
        ctx = self._ctx(n, client)
        problem = await self._setup(w, ctx, client, db)
        if problem is not None:
            # Without its setup the round would test nothing: it fails, nothing is sent.
            self._violation({"workload": self.name, "round": n, "check": "setup",
                             "condition": "setup", "problem": problem,
                             "time": round(time.time(), 3)})
            self.round_op.requests += 1
            self.round_op.error("post:setup")
            return
        req = w.request
        base = render(req.base, ctx) if req.base else self.urls[req.service or ""]
        target = split_base(base)
        wires = self._wires(w, ctx, target)
        if wires is None:
            # Not one request of the round goes out; each counts as not sent.
            self.op.requests += w.size
            self.op.errors += w.size
            self.op.classes[UNSAFE_VALUE] = self.op.classes.get(UNSAFE_VALUE, 0) + w.size
            return
        conns = await self._open_all(w, target)
        procs = [f"{self.name}-{n}-{i}" for i in range(len(conns))]
        key = self._invoke(w, ctx, procs)
        released = _monotonic()
        for (_, writer), wire in zip(conns, wires, strict=False):
            writer.write(wire)
        await asyncio.gather(*(self._answer(r, wr, req.method, released, procs[i], key)
                               for i, (r, wr) in enumerate(conns)))
        if w.settle:
            await asyncio.sleep(w.settle)
        await self._after_round(w, n, ctx, client, db, released)

    def _wires(self, w: BurstWorkload, ctx: FlowContext,
               target: Target) -> list[bytes] | None:
        """Each request of the round, rendered with its ``{{i}}`` and ``{{sender}}``; None
        when a rendered value cannot be written safely."""
        wires: list[bytes] = []
        if not self._per_request:
            wire = self._wire(w, ctx, target)
            return None if wire is None else [wire] * w.size
        try:
            for i in range(w.size):
                ctx.vars["i"] = i
                ctx.vars["sender"] = i % w.senders
                wire = self._wire(w, ctx, target)
                if wire is None:
                    return None
                wires.append(wire)
        finally:
            ctx.vars.pop("i", None)
            ctx.vars.pop("sender", None)
        return wires

    async def _setup(self, w: BurstWorkload, ctx: FlowContext, client: HttpClient,
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
            base = render(req.base, ctx) if req.base else self.urls[req.service or ""]
            try:
                response = await client.request(
                    req.method, base.rstrip("/") + Template(req.path).render_target(ctx),
                    headers={**self.workload.headers, **render(req.headers, ctx)},
                    query=render(req.query, ctx) or None,
                    json_body=render(req.json_, ctx) if req.json_ is not None else None)
            except (OSError, TimeoutError, UnsafeValue) as exc:
                return f"setup[{i}]: request failed: {exc!r}"
            allowed = step.expect_status
            ok = (response.status < 400 if allowed is None else response.status in (
                allowed if isinstance(allowed, list) else [allowed]))
            if not ok:
                return (f"setup[{i}]: {req.method} {req.path} answered {response.status}: "
                        f"{response.text[:200]}")
        return None

    def _wire(self, w: BurstWorkload, ctx: FlowContext, target: Target) -> bytes | None:
        """One request of the round; None when a rendered value cannot be written
        safely."""
        req = w.request
        path = target.prefix + Template(req.path).render_target(ctx)
        if req.query:
            from urllib.parse import urlencode
            path += "?" + urlencode(render(req.query, ctx))
        body = b""
        content_type = None
        if req.json_ is not None:
            body = json.dumps(render(req.json_, ctx), separators=(",", ":")).encode()
            content_type = "application/json"
        elif req.body is not None:
            body = str(render(req.body, ctx)).encode()
        try:
            # Plan headers replace the defaults of the same name, in any case.
            return build_request(
                req.method, path, target.host_header,
                [*w.headers.items(), *render(req.headers, ctx).items()], body,
                content_type=content_type, close=True)
        except UnsafeValue:
            return None

    async def _open_all(self, w: BurstWorkload, target: Target) -> list[
            tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        """Every connection is open before any request goes: the barrier. A connection that
        fails counts as one request with its error."""
        opened = await asyncio.gather(
            *(asyncio.wait_for(asyncio.open_connection(
                target.host, target.port, limit=MAX_HEAD_BYTES,
                ssl=self._ssl if target.tls else None,
                server_hostname=server_hostname(w.tls, target.host) if target.tls else None),
                w.timeout)
              for _ in range(w.size)), return_exceptions=True)
        conns = [c for c in opened if isinstance(c, tuple)]
        for failure in (c for c in opened if not isinstance(c, tuple)):
            self.op.requests += 1
            self.op.error(classify(failure) if isinstance(failure, OSError | TimeoutError)
                          else "connect")
        return conns

    def _invoke(self, w: BurstWorkload, ctx: FlowContext, procs: list[str]) -> Any:
        """Record one history invocation per process; the rendered key (None without a
        history)."""
        spec = w.history if self.history is not None else None
        key = render(spec.key, ctx) if spec is not None else None
        if spec is not None and self.history is not None:
            value = None if spec.value is None or spec.value.startswith("$") \
                else render(spec.value, ctx)
            for proc in procs:
                self.history.record(proc, "invoke", spec.f, key, value)
        return key

    async def _after_round(self, w: BurstWorkload, n: int, ctx: FlowContext,
                           client: HttpClient, db: Any, released: float) -> None:
        """The post-conditions, then the round op: its latency from the release and one
        ``post:<check>`` error per failed post-condition."""
        failures = []
        for post in w.after:
            problem = await self._post(post, ctx, client, db)
            if problem is not None:
                failures.append(post.name)
                self._violation({"workload": self.name, "round": n, "check": post.name,
                                 "condition": post.check or (
                                     f"expect_error {post.expect_error}"
                                     if post.expect_error else "succeeds"),
                                 "problem": problem,
                                 "time": round(time.time(), 3)})
        self.round_op.requests += 1
        self.round_op.lat.append(int((_monotonic() - released) * 1_000_000))
        for name in failures:
            self.round_op.error(f"post:{name}")

    def _violation(self, item: dict[str, Any]) -> None:
        """Kept in memory and appended to ``bursts.jsonl`` at once, so a killed run keeps it."""
        self.violations.append(item)
        if self.violations_path is not None:
            with self.violations_path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(item, default=str) + "\n")

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      method: str, released: float, process: str, key: Any) -> None:
        c = self.op
        spec = self.workload.history
        # Still unanswered when the run is stopped: counted ``unfinished`` by close_all.
        token = self.in_flight.begin((c, released, released))
        try:
            status, headers, payload, _ = await asyncio.wait_for(
                HttpClient._read(reader, method), self.workload.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            c.requests += 1
            c.error(classify(exc) if isinstance(exc, OSError | TimeoutError) else "reset")
            if spec is not None and self.history is not None:
                self.history.record(process, "info", spec.f, key, None)
            return
        finally:
            self.in_flight.end(token)
            writer.close()
        if spec is not None and self.history is not None:
            value: Any = None
            if self._history_path is not None:
                with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
                    value = self._history_path.get(parse_json(payload))
            kind = "ok" if status < 400 else "fail" if status < 500 else "info"
            self.history.record(process, kind, spec.f, key, value)
        now = _monotonic()
        c.requests += 1
        c.lat.append(int((now - released) * 1_000_000))
        c.svc.append(int((now - released) * 1_000_000))
        if status >= 400:
            c.error("5xx" if status >= 500 else "4xx")
        for split, rule in self.workload.split.items():
            if _matches(rule, status, headers):
                self.splits[split].requests += 1

    async def _post(self, post: PostCondition, ctx: FlowContext, client: HttpClient,
                    db: Any) -> str | None:
        if post.wait:
            await asyncio.sleep(post.wait)
        if post.http is not None:
            assert post.check is not None
            req = post.http
            base = render(req.base, ctx) if req.base else self.urls[req.service or ""]
            try:
                response = await client.request(
                    req.method, base.rstrip("/") + Template(req.path).render_target(ctx),
                    headers={**self.workload.headers, **render(req.headers, ctx)},
                    query=render(req.query, ctx) or None,
                    json_body=render(req.json_, ctx) if req.json_ is not None else None)
            except (OSError, TimeoutError, UnsafeValue) as exc:
                return f"request failed: {exc!r}"
            if self._conditions[post.check].holds(Answer(response.status, response.body), ctx):
                return None
            return f"{post.check} does not hold: {response.text[:200]}"
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

    async def drain(self, grace: float) -> None:
        self.sending = False
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=grace)
        self.close_all()

    def close_all(self) -> None:
        """Stop; requests of a round still unanswered are counted, class ``unfinished``."""
        self.sending = False
        self.in_flight.close(_monotonic())
        for task in list(self.tasks):
            task.cancel()




def summarize_violations(path: Path, examples: int = 5) -> dict[str, Any]:
    """Per burst workload: failed post-conditions by check, and the first ``examples`` of them
    with what was wrong. Empty when ``path`` does not exist."""
    out: dict[str, Any] = {}
    if not path.exists():
        return out
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            with contextlib.suppress(ValueError, KeyError):
                item = json.loads(line)
                entry = out.setdefault(str(item["workload"]), {
                    "violations": 0, "rounds_failed": set(), "by_check": {}, "examples": []})
                entry["violations"] += 1
                entry["rounds_failed"].add(item["round"])
                entry["by_check"][item["check"]] = entry["by_check"].get(item["check"], 0) + 1
                if len(entry["examples"]) < examples:
                    entry["examples"].append(
                        {k: item.get(k) for k in ("round", "check", "condition", "problem")})
    for entry in out.values():
        entry["rounds_failed"] = len(entry["rounds_failed"])
        entry["file"] = path.name
    return out
