"""What the proxy holds of each connection: the pair of streams it links, with the timers
armed on it, and a delay line per direction."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import struct
from dataclasses import dataclass, field

__all__ = ["LINE_BYTES", "DelayLine", "Link", "close_with_rst", "split_address"]


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) as a host and a port; no host is 127.0.0.1."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def close_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class Link:
    """A client's connection and its upstream one, closed together."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    chosen: dict[int, bool] = field(default_factory=dict)
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    closed: bool = False

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for t in self.timers:
            t.cancel()
        for w in (self.client, self.upstream):
            if reset:
                close_with_rst(w)
            else:
                w.close()


# A delay line holds at most this many bytes per direction before the reader waits.
LINE_BYTES = 32 << 20


class DelayLine:
    """Chunks stamped with their arrival time, in order, with a byte bound."""

    def __init__(self) -> None:
        self.items: collections.deque[tuple[float, bytes]] = collections.deque()
        self.size = 0
        self.ready = asyncio.Event()
        self.below = asyncio.Event()
        self.below.set()

    def put(self, arrived: float, data: bytes) -> None:
        self.items.append((arrived, data))
        self.size += len(data)
        self.ready.set()
        if self.full():
            self.below.clear()

    def full(self) -> bool:
        return self.size >= LINE_BYTES

    async def get(self) -> tuple[float, bytes]:
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        item = self.items.popleft()
        self.size -= len(item[1])
        if not self.full():
            self.below.set()
        return item
