"""The battle endpoints for messages: stored in order, with timestamps in that order."""

from __future__ import annotations

import asyncio
from typing import Any

from enduro.demo.battle_pool import Answer, Pool

__all__ = ["Rooms"]


class Rooms:
    """Rooms whose messages are stored in order, with timestamps in that order."""

    def __init__(self, pool: Pool, *, racy: bool = False) -> None:
        self.pool = pool
        self.racy = racy

    async def post_message(self, room: str, *, doc: dict[str, Any], **_: Any) -> Answer:
        if self.racy:  # the defect: the timestamp is taken before the place in line
            async with self.pool.conn() as db:
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
        async with self.pool.conn() as db, db.transaction():
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
        async with self.pool.conn() as db:
            cur = await db.execute("select id, sender, seq, created_at from battle_messages "
                                   "where room = %s order by id", (room,))
            rows = await cur.fetchall()
        return 200, {"count": len(rows), "messages": [
            {"id": r[0], "sender": r[1], "seq": r[2], "created_at": r[3].isoformat()}
            for r in rows]}
