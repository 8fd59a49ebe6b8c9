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

import json
import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from enduro.demo.battle_groups import Groups
from enduro.demo.battle_orders import Orders
from enduro.demo.battle_pool import Answer, Pool
from enduro.demo.battle_queues import Queues
from enduro.demo.battle_rooms import Rooms

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

_Handler = Callable[..., Awaitable[Answer]]


class Battle:
    """The battle endpoints over a small pool of PostgreSQL connections: ``Orders`` (and the
    cache), ``Groups``, ``Rooms`` and ``Queues``, each in a module of its own."""

    def __init__(self, dsn: str, pool: int = 10, *, racy: bool = False) -> None:
        self.dsn = dsn
        self.size = pool
        self.racy = racy
        self.pool = Pool(dsn, pool)
        orders = Orders(self.pool, racy=racy)
        groups = Groups(self.pool, racy=racy)
        rooms = Rooms(self.pool, racy=racy)
        queues = Queues(self.pool, racy=racy)
        self.routes: list[tuple[str, re.Pattern[str], _Handler]] = [
            ("POST", re.compile(r"^/battle/orders$"), orders.create_order),
            ("GET", re.compile(r"^/battle/orders/([^/]+)$"), orders.get_order),
            ("POST", re.compile(r"^/battle/cache/cleanup$"), orders.cleanup),
            ("PUT", re.compile(r"^/battle/cache/([^/]+)$"), orders.put_cache),
            ("GET", re.compile(r"^/battle/cache/([^/]+)$"), orders.get_cache),
            ("POST", re.compile(r"^/battle/groups/([^/]+)$"), groups.create_group),
            ("POST", re.compile(r"^/battle/groups/([^/]+)/members$"), groups.add_members),
            ("GET", re.compile(r"^/battle/groups/([^/]+)/members$"), groups.members),
            ("POST", re.compile(r"^/battle/groups/([^/]+)/leave$"), groups.leave),
            ("POST", re.compile(r"^/battle/rooms/([^/]+)/messages$"), rooms.post_message),
            ("GET", re.compile(r"^/battle/rooms/([^/]+)/messages$"), rooms.messages),
            ("POST", re.compile(r"^/battle/queues/([^/]+)/items$"), queues.enqueue),
            ("POST", re.compile(r"^/battle/queues/([^/]+)/fetch$"), queues.fetch),
            ("GET", re.compile(r"^/battle/queues/([^/]+)/items/([^/]+)$"), queues.refetch),
            ("POST", re.compile(r"^/battle/queues/([^/]+)/items/([^/]+)/confirm$"),
             queues.confirm),
        ]

    async def open(self) -> None:
        """Connect the pool and create the tables (idempotent)."""
        await self.pool.open()
        async with self.pool.conn() as db:
            await db.execute("select pg_advisory_lock(hashtext('enduro-battle-schema'))")
            try:
                await db.execute(SCHEMA)
            finally:
                await db.execute("select pg_advisory_unlock(hashtext('enduro-battle-schema'))")

    async def close(self) -> None:
        await self.pool.close()

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
