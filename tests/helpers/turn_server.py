"""A test server that answers 200 until TURN seconds after the first request it reads, then
500 to every request: a service that starts failing in the middle of a run.

    python turn_server.py PORT TURN
"""

from __future__ import annotations

import asyncio
import sys
import time


async def main(port: int, turn: float) -> None:
    first: list[float] = []  # when the first request was read

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                if not first:
                    first.append(time.monotonic())
                if time.monotonic() - first[0] < turn:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                else:
                    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n"
                                 b"\r\nfail")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print(f"listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
