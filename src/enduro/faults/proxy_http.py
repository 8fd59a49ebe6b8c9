"""The proxy's HTTP-level faults: requests cut out of the client's stream one by one, each
answered by the proxy (an injected status) or forwarded."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from enduro.faults.proxy_links import Link
from enduro.plan.faults import HttpFault

__all__ = ["HttpFaults", "HttpState"]

# Forward a chunk one way through the toxics: (data, writer, direction, link, sent) -> sent.
Forward = Callable[[bytes, asyncio.StreamWriter, str, Link, int], Awaitable[int]]
# Copy the rest of one direction through the toxics.
Pump = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str, Link], Awaitable[None]]


@dataclass
class HttpState:
    """An active HTTP fault and how many requests it has seen."""

    id: int
    spec: HttpFault
    seen: int = 0


class HttpFaults:
    """The HTTP faults active on one proxy, by fault id, and the request pump."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.active: dict[int, HttpState] = {}

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   link: Link, forward: Forward, pump: Pump) -> None:
        """Requests cut out one by one (head, then Content-Length bytes of body); each may be
        answered here (a fault) or forwarded. A chunked body is passed through as it comes."""
        buffer = bytearray()
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
            while not link.closed:
                head_end = buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    data = await reader.read(65536)
                    if not data:
                        return
                    buffer += data
                    continue
                head = bytes(buffer[:head_end + 4])
                lower = head.lower()
                if b"transfer-encoding: chunked" in lower:
                    await forward(bytes(buffer), writer, "upstream", link, 0)
                    buffer.clear()
                    await pump(reader, writer, "upstream", link)
                    return
                length = 0
                for line in lower.split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1].strip() or 0)
                need = head_end + 4 + length
                while len(buffer) < need:
                    data = await reader.read(65536)
                    if not data:
                        return
                    buffer += data
                message = bytes(buffer[:need])
                del buffer[:need]
                if not await self.answer(link):
                    await forward(message, writer, "upstream", link, 0)

    async def answer(self, link: Link) -> bool:
        """Apply the active HTTP faults to one request; True when it was answered here."""
        for state in list(self.active.values()):
            spec = state.spec
            state.seen += 1
            if spec.delay:
                await asyncio.sleep(spec.delay)
            hit = (state.seen <= spec.first) if spec.first is not None \
                else self.rng.random() < spec.fraction
            if hit and spec.status:
                body = spec.body.encode()
                link.client.write(
                    f"HTTP/1.1 {spec.status} Injected\r\nContent-Type: text/plain\r\n"
                    f"Content-Length: {len(body)}\r\nX-Enduro-Fault: {state.id}\r\n\r\n"
                    .encode() + body)
                await link.client.drain()
                return True
        return False
