"""The battle endpoints for orders (one row and one cache entry per idempotency key) and for
a cache with a TTL and its cleanup job."""

from __future__ import annotations

import asyncio
from typing import Any

from enduro.demo.battle_pool import Answer, Pool

__all__ = ["Orders"]


class Orders:
    """Orders created once per idempotency key, and a cache with a TTL."""

    def __init__(self, pool: Pool, *, racy: bool = False) -> None:
        self.pool = pool
        self.racy = racy

    # -- orders: one row and one cache entry per idempotency key ---------------------------
    async def create_order(self, *, doc: dict[str, Any], headers: dict[str, str],
                           **_: Any) -> Answer:
        key = headers.get("idempotency-key")
        if not key:
            return 400, {"error": "Idempotency-Key is required"}
        if self.racy:
            return await self._racy_order(key, doc)
        async with self.pool.conn() as db, db.transaction():
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
        async with self.pool.conn() as db:
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
        async with self.pool.conn() as db:
            cur = await db.execute("select id, item from battle_orders where idem_key = %s",
                                   (key,))
            row = await cur.fetchone()
        return (200, {"id": row[0], "item": row[1]}) if row else (404, {"error": "no order"})

    # -- a cache with a TTL and its cleanup job --------------------------------------------
    async def put_cache(self, key: str, *, doc: dict[str, Any], **_: Any) -> Answer:
        ttl = float(doc["ttl"])
        async with self.pool.conn() as db:
            await db.execute(
                "insert into battle_cache (key, value, expires_at) values (%s, %s, "
                "clock_timestamp() + make_interval(secs => %s)) on conflict (key) do update "
                "set value = excluded.value, expires_at = excluded.expires_at",
                (key, doc.get("value"), ttl))
        return 200, {"key": key, "ttl": ttl}

    async def get_cache(self, key: str, **_: Any) -> Answer:
        async with self.pool.conn() as db:
            cur = await db.execute("select value from battle_cache where key = %s and "
                                   "expires_at > clock_timestamp()", (key,))
            row = await cur.fetchone()
        return (200, {"key": key, "value": row[0]}) if row else (404, {"error": "expired"})

    async def cleanup(self, **_: Any) -> Answer:
        async with self.pool.conn() as db:
            cur = await db.execute("select cache_cleanup()")
            row = await cur.fetchone()
        return 200, {"removed": row[0] if row else 0}
