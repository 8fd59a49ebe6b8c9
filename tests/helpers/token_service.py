"""A service for credential tests: at each start it writes a new random bearer token to its
token file (before it listens) and rejects every other token with 401, so a client that kept
the previous incarnation's token is seen at once.

    python token_service.py --port P --token-file F --log L

Every request is appended to the JSON-lines file ``--log`` as
``{"t": wall time read, "pid", "path", "ok"}``: the server's own record of what it accepted.
``/health`` needs no token; ``/sse`` is an event stream (an event every 50 ms, sequential
ids); ``/metrics`` is Prometheus text; any other path answers 200 with a short body.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import time


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[bytes, bytes]]:
    """One request's path and headers (names in lower case); its body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    path = lines[0].split(b" ")[1].decode().split("?")[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get(b"content-length", b"0") or 0)
    if length:
        await reader.readexactly(length)
    return path, headers


async def _stream(writer: asyncio.StreamWriter, after: int) -> None:
    """The ``/sse`` event stream, its ids counting on from ``after``."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Cache-Control: no-cache\r\n\r\n")
    n = after
    for _ in range(100_000):  # bounded: far longer than any test's run
        n += 1
        writer.write(f"id: {n}\ndata: {n}\n\n".encode())
        await writer.drain()
        await asyncio.sleep(0.05)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--log", required=True)
    args = p.parse_args()
    token = secrets.token_hex(12)
    os.makedirs(os.path.dirname(args.token_file) or ".", exist_ok=True)
    with open(args.token_file + ".tmp", "w") as fh:
        fh.write(token + "\n")
    os.replace(args.token_file + ".tmp", args.token_file)
    log = open(args.log, "a", buffering=1)  # noqa: SIM115 - open for the server's life
    pid = os.getpid()
    expected = f"bearer {token}".encode()

    def record(path: str, ok: bool) -> None:
        log.write(json.dumps({"t": time.time(), "pid": pid, "path": path, "ok": ok}) + "\n")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(1_000_000):
                path, headers = await _read_request(reader)
                if path == "/health":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    continue
                ok = headers.get(b"authorization", b"").lower() == expected
                record(path, ok)
                if not ok:
                    writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                if path == "/sse":
                    last = headers.get(b"last-event-id", b"0")
                    await _stream(writer, int(last) if last.isdigit() else 0)
                    return
                body = b"up 1\n" if path == "/metrics" else b'{"ok":true}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                if headers.get(b"connection", b"").lower() == b"close":
                    await writer.drain()
                    return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", args.port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
