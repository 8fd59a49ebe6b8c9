"""The battle endpoints for a queue whose fetched items are leased for a grace period."""

from __future__ import annotations

import asyncio
from typing import Any

from enduro.demo.battle_pool import Answer, Pool

__all__ = ["Queues"]


class Queues:
    """Queues whose fetched items are leased to one consumer for a grace period."""

    def __init__(self, pool: Pool, *, racy: bool = False) -> None:
        self.pool = pool
        self.racy = racy

    async def enqueue(self, queue: str, *, doc: dict[str, Any], **_: Any) -> Answer:
        async with self.pool.conn() as db:
            cur = await db.execute("insert into battle_queue (key, queue, payload) values "
                                   "(%s, %s, %s) on conflict (key) do nothing returning key",
                                   (str(doc["key"]), queue, doc.get("payload")))
            row = await cur.fetchone()
        return (201, {"key": row[0]}) if row else (409, {"error": "the key exists"})

    async def fetch(self, queue: str, *, doc: dict[str, Any], **_: Any) -> Answer:
        if self.racy:  # the defect: pick, wait, take; no lock, no second look
            async with self.pool.conn() as db:
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
        async with self.pool.conn() as db:
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
        async with self.pool.conn() as db:
            cur = await db.execute(
                "select payload from battle_queue where queue = %s and key = %s and "
                "consumer = %s and not confirmed and lease_until > clock_timestamp()",
                (queue, key, query.get("consumer", "")))
            row = await cur.fetchone()
        return (200, {"key": key, "payload": row[0]}) if row else \
            (410, {"error": "no lease of yours on this item (expired, confirmed or never)"})

    async def confirm(self, queue: str, key: str, *, query: dict[str, str],
                      **_: Any) -> Answer:
        async with self.pool.conn() as db:
            cur = await db.execute(
                "update battle_queue set confirmed = true where queue = %s and key = %s and "
                "consumer = %s and not confirmed and lease_until > clock_timestamp()",
                (queue, key, query.get("consumer", "")))
        return (200, {"confirmed": True}) if cur.rowcount == 1 else \
            (410, {"error": "no lease of yours on this item"})
