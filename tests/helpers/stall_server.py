"""A test server that answers at once, except during a stall of STALL seconds every PERIOD
seconds, when every answer waits until the stall ends (a stop-the-world pause).

    python stall_server.py PORT PERIOD STALL [CERT KEY]     # with CERT and KEY: HTTPS
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time


async def main(port: int, period: float, stall: float, cert: str | None = None,
               key: str | None = None) -> None:
    start = time.monotonic()

    def stall_left() -> float:
        phase = (time.monotonic() - start) % period
        return stall - phase if phase < stall else 0.0

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
                wait = stall_left()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    ctx = None
    if cert and key:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024, ssl=ctx)
    scheme = "https" if ctx else "http"
    print(f"listening on {scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), *sys.argv[4:6]))
