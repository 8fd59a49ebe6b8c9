"""A service for tests: prints numbered lines, may write a token file after a delay, and may
serve HTTP answering a fixed status (401 without the bearer token once one is written).

    python chatty_service.py [--lines N] [--port P] [--status 200] [--token-file F]
                             [--token-delay S] [--token T]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lines", type=int, default=10)
    p.add_argument("--port", type=int)
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--token-file")
    p.add_argument("--token-delay", type=float, default=0.0)
    p.add_argument("--token", default="tok-0123456789abcdef")
    p.add_argument("--exit-after", type=float)
    args = p.parse_args()
    for i in range(args.lines):
        print(f"hello line {i}", flush=True)
    print(f"cwd {os.getcwd()}", flush=True)
    token: list[str] = []

    async def write_token() -> None:
        await asyncio.sleep(args.token_delay)
        os.makedirs(os.path.dirname(args.token_file) or ".", exist_ok=True)
        with open(args.token_file + ".tmp", "w") as fh:
            fh.write(args.token + "\n")
        os.replace(args.token_file + ".tmp", args.token_file)
        token.append(args.token)
        print("token written", flush=True)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                status = args.status
                if token and f"authorization: bearer {token[0]}" not in head.lower() \
                        and " /health " not in head.split("\r\n")[0] + " ":
                    status = 401
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    tasks = []
    if args.token_file:
        tasks.append(asyncio.create_task(write_token()))
    if args.port:
        server = await asyncio.start_server(handle, "127.0.0.1", args.port)
        print(f"listening on {args.port}", flush=True)
        tasks.append(asyncio.create_task(server.serve_forever()))
    if args.exit_after is not None:
        await asyncio.sleep(args.exit_after)
        print("exiting on purpose", flush=True)
        sys.exit(3)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
