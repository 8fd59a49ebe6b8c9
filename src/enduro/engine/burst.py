"""Burst (battle) workloads: N requests on N connections released together by a barrier,
then post-conditions by HTTP or SQL. Op ``<name>`` is one request of a burst (latency from the
release), ``<name>:round`` one round (errors ``post:<check>`` when a post-condition failed),
``<name>.<split>`` the responses that matched a split (created, replayed, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from pathlib import Path
from typing import Any

from enduro.engine.burst_checks import RoundChecks, check_rows
from enduro.engine.burst_wire import open_all, per_request, round_wires
from enduro.engine.flow import FlowContext, HistoryLog, render
from enduro.engine.http import classify
from enduro.engine.tasks import InFlight
from enduro.net.client import HttpClient
from enduro.net.conditions import JsonPath, parse_json
from enduro.net.target import split_base
from enduro.net.tls import client_context
from enduro.observe.window import UNSAFE_VALUE, OpCounter, Recorder
from enduro.plan.bursts import BurstWorkload, SplitRule
from enduro.plan.tokens import Credentials, Filled

__all__ = ["BurstDriver", "check_rows", "summarize_violations"]

_monotonic = time.monotonic


def _matches(rule: SplitRule, status: int, headers: dict[str, str]) -> bool:
    if rule.status is not None:
        allowed = rule.status if isinstance(rule.status, list) else [rule.status]
        if status not in allowed:
            return False
    return rule.header is None or rule.header.lower() in headers


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
        self._per_request = per_request(workload)
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
        # The setup and post-conditions, and the history path, compiled once (their values
        # may hold {{var}}, filled in per round).
        self._checks = RoundChecks(workload, self.urls)
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
        problem = await self._checks.setup(w, ctx, client, db)
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
        wires = round_wires(w, ctx, target, self._per_request)
        if wires is None:
            # Not one request of the round goes out; each counts as not sent.
            self.op.requests += w.size
            self.op.errors += w.size
            self.op.classes[UNSAFE_VALUE] = self.op.classes.get(UNSAFE_VALUE, 0) + w.size
            return
        conns = await open_all(w, target, self._ssl, self.op)
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
            problem = await self._checks.post(post, w, ctx, client, db)
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
