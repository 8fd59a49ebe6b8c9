"""The battle endpoints for groups: members added once, left once."""

from __future__ import annotations

import asyncio
from typing import Any

from enduro.demo.battle_pool import Answer, Pool

__all__ = ["Groups"]


class Groups:
    """Groups whose members are added once and leave once."""

    def __init__(self, pool: Pool, *, racy: bool = False) -> None:
        self.pool = pool
        self.racy = racy

    async def create_group(self, group: str, *, doc: dict[str, Any], **_: Any) -> Answer:
        owner = str(doc["owner"])
        async with self.pool.conn() as db, db.transaction():
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
        async with self.pool.conn() as db:
            try:
                cur = await db.execute(
                    "insert into battle_members (group_name, member) "
                    "select %s, unnest(%s::text[]) on conflict do nothing", (group, members))
            except psycopg.errors.ForeignKeyViolation:
                return 404, {"error": "no such group"}
        return 200, {"added": cur.rowcount}

    async def members(self, group: str, **_: Any) -> Answer:
        async with self.pool.conn() as db:
            cur = await db.execute("select member from battle_members where group_name = %s "
                                   "order by member", (group,))
            rows = await cur.fetchall()
        return 200, {"count": len(rows), "members": [r[0] for r in rows]}

    async def leave(self, group: str, *, doc: dict[str, Any], **_: Any) -> Answer:
        if self.racy:  # the defect: whoever saw the member says it left
            async with self.pool.conn() as db:
                cur = await db.execute("select 1 from battle_members where group_name = %s "
                                       "and member = %s", (group, str(doc["member"])))
                seen = await cur.fetchone() is not None
                await asyncio.sleep(0.05)
                await db.execute("delete from battle_members where group_name = %s and "
                                 "member = %s", (group, str(doc["member"])))
            return (200, {"left": True}) if seen else (409, {"error": "not a member"})
        async with self.pool.conn() as db:
            cur = await db.execute("delete from battle_members where group_name = %s and "
                                   "member = %s", (group, str(doc["member"])))
        # The delete's row count says which of concurrent calls removed the member.
        return (200, {"left": True}) if cur.rowcount == 1 else \
            (409, {"error": "not a member"})
