"""The demo service's endpoints on PostgreSQL (``--dsn``), shaped like what battle tests
exercise: idempotent creates, group members, ordered messages, a cache with a TTL and a
cleanup job, leaving a group, and a queue whose fetched items are leased for a grace period.

Each endpoint leans on the database for exactly-once: unique keys with ``on conflict``, one
transaction per request, an advisory lock per room for ordered timestamps, ``for update skip
locked`` for fetches, and deletes whose row count says who won. ``racy`` (the demo's
``--defect battle-races``) turns these into the check-then-act code they replace: several
creates of one key answer 201, several leaves and fetches win, and messages take their
timestamp before they take their place in line.

    POST /battle/orders                   Idempotency-Key: K; {"item": s}  201 | 200 replayed
    GET  /battle/orders/{key}
    PUT  /battle/cache/{key}              {"value": s, "ttl": seconds}
    GET  /battle/cache/{key}              404 once expired
    POST /battle/cache/cleanup            {"removed": n} (the SQL function cache_cleanup())
    POST /battle/groups/{g}               {"owner": s}                     201 | 409
    POST /battle/groups/{g}/members       {"members": [s, ...]}            {"added": n}
    GET  /battle/groups/{g}/members       {"count": n, "members": [...]}
    POST /battle/groups/{g}/leave         {"member": s}                    200 | 409
    POST /battle/rooms/{r}/messages       {"sender": s, "seq": n, "text": s}
    GET  /battle/rooms/{r}/messages
    POST /battle/queues/{q}/items         {"key": s, "payload": s}         201 | 409
    POST /battle/queues/{q}/fetch         {"consumer": s, "grace": seconds} 200 | 204
    GET  /battle/queues/{q}/items/{key}?consumer=C   re-fetch: 200 within the grace, else 410
    POST /battle/queues/{q}/items/{key}/confirm?consumer=C
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["SCHEMA", "Battle"]

SCHEMA = """
create table if not exists battle_orders (
    id bigserial primary key, idem_key text not null unique, item text,
    created_at timestamptz not null default clock_timestamp());
create table if not exists battle_cache (
    key text primary key, value text, expires_at timestamptz not null);
create table if not exists battle_groups (name text primary key, owner text not null);
create table if not exists battle_members (
    group_name text not null references battle_groups(name) on delete cascade,
    member text not null, primary key (group_name, member));
create table if not exists battle_messages (
    id bigserial primary key, room text not null, sender text not null, seq int not null,
    body text, created_at timestamptz not null);
create table if not exists battle_queue (
    key text primary key, queue text not null, payload text, consumer text,
    lease_until timestamptz, confirmed boolean not null default false);
create or replace function cache_cleanup() returns integer language sql as $$
    with gone as (delete from battle_cache where expires_at <= clock_timestamp() returning 1)
    select count(*)::int from gone $$;
"""

Answer = tuple[int, Any]
_Handler = Callable[..., Awaitable[Answer]]


class Battle:
    """The battle endpoints over a small pool of PostgreSQL connections."""

    def __init__(self, dsn: str, pool: int = 10, *, racy: bool = False) -> None:
        self.dsn = dsn
        self.size = pool
        self.racy = racy
        self._pool: asyncio.Queue[Any] = asyncio.Queue()
        self.routes: list[tuple[str, re.Pattern[str], _Handler]] = [
            ("POST", re.compile(r"^/battle/orders$"), self.create_order),
            ("GET", re.compile(r"^/battle/orders/([^/]+)$"), self.get_order),
            ("POST", re.compile(r"^/battle/cache/cleanup$"), self.cleanup),
            ("PUT", re.compile(r"^/battle/cache/([^/]+)$"), self.put_cache),
            ("GET", re.compile(r"^/battle/cache/([^/]+)$"), self.get_cache),
            ("POST", re.compile(r"^/battle/groups/([^/]+)$"), self.create_group),
            ("POST", re.compile(r"^/battle/groups/([^/]+)/members$"), self.add_members),
            ("GET", re.compile(r"^/battle/groups/([^/]+)/members$"), self.members),
            ("POST", re.compile(r"^/battle/groups/([^/]+)/leave$"), self.leave),
            ("POST", re.compile(r"^/battle/rooms/([^/]+)/messages$"), self.post_message),
            ("GET", re.compile(r"^/battle/rooms/([^/]+)/messages$"), self.messages),
            ("POST", re.compile(r"^/battle/queues/([^/]+)/items$"), self.enqueue),
            ("POST", re.compile(r"^/battle/queues/([^/]+)/fetch$"), self.fetch),
            ("GET", re.compile(r"^/battle/queues/([^/]+)/items/([^/]+)$"), self.refetch),
            ("POST", re.compile(r"^/battle/queues/([^/]+)/items/([^/]+)/confirm$"),
             self.confirm),
        ]

    async def open(self) -> None:
        """Connect the pool and create the tables (idempotent)."""
        import psycopg
        for _ in range(self.size):
            self._pool.put_nowait(await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True))
        async with self._conn() as db:
            await db.execute("select pg_advisory_lock(hashtext('enduro-battle-schema'))")
            try:
                await db.execute(SCHEMA)
            finally:
                await db.execute("select pg_advisory_unlock(hashtext('enduro-battle-schema'))")

    async def close(self) -> None:
        while not self._pool.empty():
            await self._pool.get_nowait().close()

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        db = await self._pool.get()
        try:
            yield db
        finally:
            self._pool.put_nowait(db)

    async def handle(self, method: str, target: str, headers: dict[str, str],
                     body: bytes) -> Answer:
        """The status and JSON document answering one request."""
        import psycopg
        url = urlsplit(target)
        known = False
        for m, pattern, handler in self.routes:
            match = pattern.match(url.path)
            if match is None:
                continue
            known = True
            if m != method:
                continue
            try:
                doc = json.loads(body) if body else {}
                if not isinstance(doc, dict):
                    return 400, {"error": "expected a JSON object"}
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                return await handler(*(unquote(g) for g in match.groups()), doc=doc,
                                     query=query, headers=headers)
            except (ValueError, KeyError, TypeError) as exc:
                return 400, {"error": f"bad request: {exc!r}"}
            except psycopg.Error as exc:
                return 500, {"error": str(exc), "sqlstate": exc.sqlstate}
        return (405, {"error": f"{method} not allowed"}) if known else \
            (404, {"error": f"no route {url.path}"})

    # -- orders: one row and one cache entry per idempotency key ---------------------------
    async def create_order(self, *, doc: dict[str, Any], headers: dict[str, str],
                           **_: Any) -> Answer:
        key = headers.get("idempotency-key")
        if not key:
            return 400, {"error": "Idempotency-Key is required"}
        if self.racy:
            return await self._racy_order(key, doc)
        async with self._conn() as db, db.transaction():
            cur = await db.execute(
                "insert into battle_orders (idem_key, item) values (%s, %s) "
                "on conflict (idem_key) do nothing returning id", (key, doc.get("item")))
            row = await cur.fetchone()
            if row is not None:
                # In the same transaction: the cache entry exists exactly when the row does.
                await db.execute(
                    "insert into battle_cache (key, value, expires_at) values (%s, %s, "
                    "clock_timestamp() + interval '1 hour')", (f"order:{key}", str(row[0])))
                return 201, {"id": row[0]}
            cur = await db.execute("select id from battle_orders where idem_key = %s", (key,))
            row = await cur.fetchone()
            return 200, {"id": row[0] if row else None, "replayed": True}

    async def _racy_order(self, key: str, doc: dict[str, Any]) -> Answer:
        """The defect: look, wait (validation), then write; every request that looked before
        the first write answers 201."""
        async with self._conn() as db:
            cur = await db.execute("select id from battle_orders where idem_key = %s", (key,))
            row = await cur.fetchone()
            if row is not None:
                return 200, {"id": row[0], "replayed": True}
            await asyncio.sleep(0.05)
            await db.execute("insert into battle_orders (idem_key, item) values (%s, %s) "
                             "on conflict (idem_key) do nothing", (key, doc.get("item")))
            await db.execute("insert into battle_cache (key, value, expires_at) values (%s, "
                             "'', clock_timestamp() + interval '1 hour') on conflict do nothing",
                             (f"order:{key}",))
        return 201, {"created": True}

    async def get_order(self, key: str, **_: Any) -> Answer:
        async with self._conn() as db:
            cur = await db.execute("select id, item from battle_orders where idem_key = %s",
                                   (key,))
            row = await cur.fetchone()
        return (200, {"id": row[0], "item": row[1]}) if row else (404, {"error": "no order"})

    # -- a cache with a TTL and its cleanup job --------------------------------------------
    async def put_cache(self, key: str, *, doc: dict[str, Any], **_: Any) -> Answer:
        ttl = float(doc["ttl"])
        async with self._conn() as db:
            await db.execute(
                "insert into battle_cache (key, value, expires_at) values (%s, %s, "
                "clock_timestamp() + make_interval(secs => %s)) on conflict (key) do update "
                "set value = excluded.value, expires_at = excluded.expires_at",
                (key, doc.get("value"), ttl))
        return 200, {"key": key, "ttl": ttl}

    async def get_cache(self, key: str, **_: Any) -> Answer:
        async with self._conn() as db:
            cur = await db.execute("select value from battle_cache where key = %s and "
                                   "expires_at > clock_timestamp()", (key,))
            row = await cur.fetchone()
        return (200, {"key": key, "value": row[0]}) if row else (404, {"error": "expired"})

    async def cleanup(self, **_: Any) -> Answer:
        async with self._conn() as db:
            cur = await db.execute("select cache_cleanup()")
            row = await cur.fetchone()
        return 200, {"removed": row[0] if row else 0}

    # -- groups: members added once, left once ---------------------------------------------
    async def create_group(self, group: str, *, doc: dict[str, Any], **_: Any) -> Answer:
        owner = str(doc["owner"])
        async with self._conn() as db, db.transaction():
            cur = await db.execute("insert into battle_groups (name, owner) values (%s, %s) "
                                   "on conflict (name) do nothing returning name",
                                   (group, owner))
            if await cur.fetchone() is None:
                return 409, {"error": "the group exists"}
            await db.execute("insert into battle_members (group_name, member) values (%s, %s)",
                             (group, owner))
        return 201, {"group": group, "owner": owner}

    async def add_members(self, group: str, *, doc: dict[str, Any], **_: Any) -> Answer:
        import psycopg
        members = [str(m) for m in doc["members"]]
        async with self._conn() as db:
            try:
                cur = await db.execute(
                    "insert into battle_members (group_name, member) "
                    "select %s, unnest(%s::text[]) on conflict do nothing", (group, members))
            except psycopg.errors.ForeignKeyViolation:
                return 404, {"error": "no such group"}
        return 200, {"added": cur.rowcount}

    async def members(self, group: str, **_: Any) -> Answer:
        async with self._conn() as db:
            cur = await db.execute("select member from battle_members where group_name = %s "
                                   "order by member", (group,))
            rows = await cur.fetchall()
        return 200, {"count": len(rows), "members": [r[0] for r in rows]}

    async def leave(self, group: str, *, doc: dict[str, Any], **_: Any) -> Answer:
        if self.racy:  # the defect: whoever saw the member says it left
            async with self._conn() as db:
                cur = await db.execute("select 1 from battle_members where group_name = %s "
                                       "and member = %s", (group, str(doc["member"])))
                seen = await cur.fetchone() is not None
                await asyncio.sleep(0.05)
                await db.execute("delete from battle_members where group_name = %s and "
                                 "member = %s", (group, str(doc["member"])))
            return (200, {"left": True}) if seen else (409, {"error": "not a member"})
        async with self._conn() as db:
            cur = await db.execute("delete from battle_members where group_name = %s and "
                                   "member = %s", (group, str(doc["member"])))
        # The delete's row count says which of concurrent calls removed the member.
        return (200, {"left": True}) if cur.rowcount == 1 else \
            (409, {"error": "not a member"})

    # -- messages: stored in order, with timestamps in that order --------------------------
    async def post_message(self, room: str, *, doc: dict[str, Any], **_: Any) -> Answer:
        if self.racy:  # the defect: the timestamp is taken before the place in line
            async with self._conn() as db:
                cur = await db.execute("select clock_timestamp()")
                stamp = await cur.fetchone()
                assert stamp is not None
                await asyncio.sleep(0.001 * (hash((room, doc["seq"])) % 20))
                cur = await db.execute(
                    "insert into battle_messages (room, sender, seq, body, created_at) "
                    "values (%s, %s, %s, %s, %s) returning id, created_at",
                    (room, str(doc["sender"]), int(doc["seq"]), doc.get("text"), stamp[0]))
                row = await cur.fetchone()
            assert row is not None
            return 201, {"id": row[0], "created_at": row[1].isoformat()}
        async with self._conn() as db, db.transaction():
            # One writer per room at a time: ids and timestamps are taken in commit order.
            await db.execute("select pg_advisory_xact_lock(hashtext(%s))", (room,))
            cur = await db.execute(
                "insert into battle_messages (room, sender, seq, body, created_at) "
                "values (%s, %s, %s, %s, clock_timestamp()) returning id, created_at",
                (room, str(doc["sender"]), int(doc["seq"]), doc.get("text")))
            row = await cur.fetchone()
        assert row is not None
        return 201, {"id": row[0], "created_at": row[1].isoformat()}

    async def messages(self, room: str, **_: Any) -> Answer:
        async with self._conn() as db:
            cur = await db.execute("select id, sender, seq, created_at from battle_messages "
                                   "where room = %s order by id", (room,))
            rows = await cur.fetchall()
        return 200, {"count": len(rows), "messages": [
            {"id": r[0], "sender": r[1], "seq": r[2], "created_at": r[3].isoformat()}
            for r in rows]}

    # -- a queue whose fetched items are leased for a grace period -------------------------
    async def enqueue(self, queue: str, *, doc: dict[str, Any], **_: Any) -> Answer:
        async with self._conn() as db:
            cur = await db.execute("insert into battle_queue (key, queue, payload) values "
                                   "(%s, %s, %s) on conflict (key) do nothing returning key",
                                   (str(doc["key"]), queue, doc.get("payload")))
            row = await cur.fetchone()
        return (201, {"key": row[0]}) if row else (409, {"error": "the key exists"})

    async def fetch(self, queue: str, *, doc: dict[str, Any], **_: Any) -> Answer:
        if self.racy:  # the defect: pick, wait, take; no lock, no second look
            async with self._conn() as db:
                cur = await db.execute(
                    "select key, payload from battle_queue where queue = %s and not confirmed "
                    "and (lease_until is null or lease_until <= clock_timestamp()) order by key "
                    "limit 1", (queue,))
                row = await cur.fetchone()
                if row is None:
                    return 204, None
                await asyncio.sleep(0.05)
                await db.execute("update battle_queue set consumer = %s, lease_until = "
                                 "clock_timestamp() + make_interval(secs => %s) where key = %s",
                                 (str(doc["consumer"]), float(doc.get("grace", 30.0)), row[0]))
            return 200, {"key": row[0], "payload": row[1]}
        async with self._conn() as db:
            cur = await db.execute(
                "update battle_queue set consumer = %s, "
                "lease_until = clock_timestamp() + make_interval(secs => %s) "
                "where key = (select key from battle_queue where queue = %s and not confirmed "
                "and (lease_until is null or lease_until <= clock_timestamp()) order by key "
                "limit 1 for update skip locked) returning key, payload",
                (str(doc["consumer"]), float(doc.get("grace", 30.0)), queue))
            row = await cur.fetchone()
        return (200, {"key": row[0], "payload": row[1]}) if row else (204, None)

    async def refetch(self, queue: str, key: str, *, query: dict[str, str],
                      **_: Any) -> Answer:
        async with self._conn() as db:
            cur = await db.execute(
                "select payload from battle_queue where queue = %s and key = %s and "
                "consumer = %s and not confirmed and lease_until > clock_timestamp()",
                (queue, key, query.get("consumer", "")))
            row = await cur.fetchone()
        return (200, {"key": key, "payload": row[0]}) if row else \
            (410, {"error": "no lease of yours on this item (expired, confirmed or never)"})

    async def confirm(self, queue: str, key: str, *, query: dict[str, str],
                      **_: Any) -> Answer:
        async with self._conn() as db:
            cur = await db.execute(
                "update battle_queue set confirmed = true where queue = %s and key = %s and "
                "consumer = %s and not confirmed and lease_until > clock_timestamp()",
                (queue, key, query.get("consumer", "")))
        return (200, {"confirmed": True}) if cur.rowcount == 1 else \
            (410, {"error": "no lease of yours on this item"})
