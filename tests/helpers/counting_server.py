"""An HTTP/1.1 keep-alive server that counts every request it reads, per path and status.

``/fail`` answers 500 to every ``FAIL_EVERY``-th request it reads and 200 to the others;
``/hang`` never answers; any other path answers 200 with ``{"id": <n>, "state": "done"}``.
``GET /_counts`` (not counted) answers the counts as JSON:
``{"requests": {path: n}, "statuses": {path: {status: n}}}``.

Usage: ``python counting_server.py`` prints ``listening on http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import asyncio
import json
import sys

FAIL_EVERY = 4


class Counts:
    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.statuses: dict[str, dict[str, int]] = {}

    def answer(self, path: str) -> tuple[int, bytes] | None:
        n = self.requests[path] = self.requests.get(path, 0) + 1
        if path == "/hang":
            return None
        status = 500 if path == "/fail" and n % FAIL_EVERY == 0 else 200
        by = self.statuses.setdefault(path, {})
        by[str(status)] = by.get(str(status), 0) + 1
        return status, json.dumps({"id": n, "state": "done"}).encode()


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                counts: Counts) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _method, target, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            path = target.split("?", 1)[0]
            if path == "/_counts":
                status, body = 200, json.dumps(
                    {"requests": counts.requests, "statuses": counts.statuses}).encode()
            else:
                answer = counts.answer(path)
                if answer is None:
                    await reader.read()  # until the client gives up and closes
                    return
                status, body = answer
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    counts = Counts()
    server = await asyncio.start_server(lambda r, w: serve(r, w, counts), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
