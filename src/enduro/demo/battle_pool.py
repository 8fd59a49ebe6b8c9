"""The battle endpoints' small pool of PostgreSQL connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["Answer", "Pool"]

# The status and JSON document answering one request.
Answer = tuple[int, Any]


class Pool:
    """``size`` autocommit connections to ``dsn``, lent one at a time."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self.size = size
        self._idle: asyncio.Queue[Any] = asyncio.Queue()

    async def open(self) -> None:
        """Connect every connection of the pool."""
        import psycopg
        for _ in range(self.size):
            self._idle.put_nowait(await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True))

    async def close(self) -> None:
        """Close the idle connections."""
        while not self._idle.empty():
            await self._idle.get_nowait().close()

    @asynccontextmanager
    async def conn(self) -> AsyncIterator[Any]:
        """A connection of the pool, waited for when all are lent, given back after."""
        db = await self._idle.get()
        try:
            yield db
        finally:
            self._idle.put_nowait(db)
