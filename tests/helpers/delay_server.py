"""An HTTP/1.1 keep-alive server with a known delay distribution, recording what it did.

    python delay_server.py --port P --log L [--seed S] [--zero] [--scale F]

Each request waits a delay drawn with a seeded RNG, in arrival order: 80% 5 ms, 15% 50 ms,
5% 200 ms, each times ``--scale`` (``--zero``: no delay). The time the server actually held
each request (from having read it to having written the answer, measured by the server) is
appended to ``--log`` as one number of seconds per line: the true distribution a load tool's
figures must match.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time

DELAYS = ((0.80, 0.005), (0.95, 0.050), (1.0, 0.200))


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--zero", action="store_true")
    p.add_argument("--scale", type=float, default=1.0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    log = open(args.log, "a", buffering=1)  # noqa: SIM115 - open for the server's life
    body = b'{"ok":true}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def delay() -> float:
        if args.zero:
            return 0.0
        x = rng.random()
        return next(d for share, d in DELAYS if x < share) * args.scale

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(10_000_000):
                await reader.readuntil(b"\r\n\r\n")
                started = time.perf_counter()
                wait = delay()
                if wait:
                    await asyncio.sleep(wait)
                writer.write(answer)
                log.write(f"{time.perf_counter() - started:.7f}\n")
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
