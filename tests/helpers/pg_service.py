"""A small HTTP service over PostgreSQL for burst tests: POST /items creates a row for the
request's Idempotency-Key. ``--mode racy`` checks the key, waits, then inserts (the classic
race); ``--mode safe`` relies on a unique index.

    python pg_service.py DSN --mode racy|safe
"""

from __future__ import annotations

import argparse
import asyncio

import psycopg


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dsn")
    p.add_argument("--mode", choices=["racy", "safe"], default="safe")
    args = p.parse_args()

    async def create(key: str) -> int:
        async with await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as db:
            if args.mode == "safe":
                cur = await db.execute(
                    "insert into items (idem_key) values (%s) on conflict (idem_key) "
                    "do nothing", (key,))
                return 201 if cur.rowcount == 1 else 200
            cur = await db.execute("select count(*) from items where idem_key = %s", (key,))
            row = await cur.fetchone()
            if row is not None and row[0]:
                return 200
            await asyncio.sleep(0.02)  # a slow validation between check and insert
            await db.execute("insert into items (idem_key) values (%s)", (key,))
            return 201

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in head.split("\r\n")[1:] if line)}
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                key = headers.get("idempotency-key")
                status = await create(key) if key and head.startswith("POST ") else 400
                close = headers.get("connection", "").lower() == "close"
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n"
                             f"{'Connection: close' + chr(13) + chr(10) if close else ''}"
                             "\r\nok".encode())
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async with await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as db:
        unique = "unique" if args.mode == "safe" else ""
        await db.execute("drop table if exists items")
        await db.execute(f"create table items (id serial primary key, idem_key text {unique},"
                         " created_at timestamptz default clock_timestamp())")
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(f"listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
