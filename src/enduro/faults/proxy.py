"""A user-space TCP proxy with Toxiproxy-compatible toxics and HTTP-level faults.

Toxics (per direction, each applied to a connection with probability ``toxicity``):
latency (each chunk leaves ``add`` ± ``jitter`` after it arrived, as in Toxiproxy: a response
of many chunks is shifted by ``add`` once, not delayed ``add`` per chunk; a request and its
response each cross one direction), bandwidth (bytes/s), slow_close (delay the close),
timeout (drop data; close after ``after`` unless 0), reset_peer (RST after ``after``),
slicer (split chunks, ``delay`` between slices), limit_data (close after ``bytes``),
blackhole (drop data, keep the connection), down (refuse and cut every connection).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from enduro.base.errors import RunError
from enduro.plan.faults import HttpFault, Proxy, Toxic

__all__ = ["ProxySet", "TcpProxy"]


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class _ToxicState:
    id: int
    kind: str
    spec: Toxic


@dataclass
class _HttpState:
    id: int
    spec: HttpFault
    seen: int = 0


@dataclass(eq=False)
class _Link:
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
                _reset(w)
            else:
                w.close()


# A delay line holds at most this many bytes per direction before the reader waits.
_LINE_BYTES = 32 << 20


class _DelayLine:
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
        return self.size >= _LINE_BYTES

    async def get(self) -> tuple[float, bytes]:
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        item = self.items.popleft()
        self.size -= len(item[1])
        if not self.full():
            self.below.set()
        return item


class TcpProxy:
    """One proxy: a listener, its connections, and the faults active on it."""

    def __init__(self, name: str, config: Proxy, rng: random.Random) -> None:
        self.name = name
        self.config = config
        self.rng = rng
        self.toxics: dict[int, _ToxicState] = {}
        self.http_faults: dict[int, _HttpState] = {}
        self.links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self.down = False
        self.connections = 0

    async def start(self) -> None:
        host, port = _split(self.config.listen)
        try:
            self._server = await asyncio.start_server(self._handle, host, port,
                                                      reuse_address=True)
        except OSError as exc:
            raise RunError(f"proxy {self.name}: cannot listen on {self.config.listen}: "
                           f"{exc.strerror or exc}") from exc

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self.links):
            link.close()

    # -- faults --------------------------------------------------------------------------
    def add_toxic(self, fault_id: int, kind: str, spec: Toxic) -> None:
        state = _ToxicState(fault_id, kind, spec)
        self.toxics[fault_id] = state
        if kind == "down":
            self.down = True
            for link in list(self.links):
                link.close(reset=True)
        elif kind in ("reset_peer", "timeout"):
            for link in list(self.links):
                self._arm(link, state)

    def remove_toxic(self, fault_id: int) -> None:
        state = self.toxics.pop(fault_id, None)
        if state is not None and state.kind == "down":
            self.down = any(t.kind == "down" for t in self.toxics.values())

    def add_http(self, fault_id: int, spec: HttpFault) -> None:
        self.http_faults[fault_id] = _HttpState(fault_id, spec)

    def remove_http(self, fault_id: int) -> None:
        self.http_faults.pop(fault_id, None)

    def _applies(self, link: _Link, toxic: _ToxicState, direction: str) -> bool:
        if toxic.spec.direction not in (direction, "both"):
            return False
        chosen = link.chosen.get(toxic.id)
        if chosen is None:
            chosen = link.chosen[toxic.id] = self.rng.random() < toxic.spec.toxicity
        return chosen

    def _arm(self, link: _Link, toxic: _ToxicState) -> None:
        """Connection-level toxics: a reset or a timeout close after ``after`` seconds."""
        if not (self._applies(link, toxic, "downstream") or
                self._applies(link, toxic, "upstream")):
            return
        if toxic.kind == "timeout" and toxic.spec.after <= 0:
            return  # hold the data forever
        loop = asyncio.get_running_loop()
        reset = toxic.kind == "reset_peer"
        link.timers.append(loop.call_later(toxic.spec.after, link.close, reset))

    # -- data ----------------------------------------------------------------------------
    async def _handle(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        if self.down:
            _reset(client_w)
            return
        try:
            up_r, up_w = await asyncio.open_connection(*_split(self.config.upstream))
        except OSError:
            _reset(client_w)
            return
        if self.down:  # it went down while this connection was being set up
            _reset(client_w)
            up_w.close()
            return
        for w in (client_w, up_w):
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client_w, up_w)
        self.links.add(link)
        self.connections += 1
        for toxic in list(self.toxics.values()):
            if toxic.kind in ("reset_peer", "timeout"):
                self._arm(link, toxic)
        upstream = (self._http_pump(client_r, up_w, link) if self.config.http
                    else self._pump(client_r, up_w, "upstream", link))
        tasks = [asyncio.ensure_future(upstream),
                 asyncio.ensure_future(self._pump(up_r, client_w, "downstream", link))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            slow = [t.spec.delay for t in self.toxics.values()
                    if t.kind == "slow_close" and self._applies(link, t, "downstream")]
            if slow:
                await asyncio.sleep(max(slow))
        finally:
            for t in tasks:
                t.cancel()
            link.close()
            self.links.discard(link)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    direction: str, link: _Link) -> None:
        """Copy one direction through a delay line: a reader stamps each chunk with its
        arrival time, a sender delivers it (and at last the EOF) once the latency toxics'
        delay has passed since that arrival, so reading never waits on the delay."""
        line = _DelayLine()
        sender = asyncio.ensure_future(self._deliver(line, writer, direction, link))
        loop = asyncio.get_running_loop()
        try:
            with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
                while not link.closed and not sender.done():
                    data = await reader.read(65536)
                    if not data:
                        break
                    line.put(loop.time(), data)
                    if line.full():
                        # Bounded memory: a slow or delayed peer holds the reader back.
                        await asyncio.wait([asyncio.ensure_future(line.below.wait()), sender],
                                           return_when=asyncio.FIRST_COMPLETED)
            # The end (EOF, or a read error) follows the data, with the same delay.
            line.put(loop.time(), b"")
            await sender
        finally:
            sender.cancel()

    async def _deliver(self, line: _DelayLine, writer: asyncio.StreamWriter, direction: str,
                       link: _Link) -> None:
        sent = 0
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
            while not link.closed:
                arrived, data = await line.get()
                if not data:
                    await self._delay(link, direction, arrived)
                    with contextlib.suppress(OSError, RuntimeError):
                        writer.write_eof()
                    return
                sent = await self._forward(data, writer, direction, link, sent, arrived)

    async def _delay(self, link: _Link, direction: str, arrived: float) -> None:
        """Wait until the latency toxics' delay has passed since ``arrived``."""
        delay = 0.0
        for toxic in list(self.toxics.values()):
            if toxic.kind == "latency" and self._applies(link, toxic, direction):
                spec = toxic.spec
                jitter = self.rng.uniform(-spec.jitter, spec.jitter) if spec.jitter else 0.0
                delay += max(0.0, spec.add + jitter)
        if delay > 0:
            wait = arrived + delay - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)

    async def _forward(self, data: bytes, writer: asyncio.StreamWriter, direction: str,
                       link: _Link, sent: int, arrived: float | None = None) -> int:
        await self._delay(link, direction,
                          asyncio.get_running_loop().time() if arrived is None else arrived)
        slices: list[bytes] = [data]
        pace = 0.0
        slice_delay = 0.0
        for toxic in list(self.toxics.values()):
            if not self._applies(link, toxic, direction):
                continue
            spec = toxic.spec
            kind = toxic.kind
            if kind in ("blackhole", "timeout"):
                return sent  # dropped
            elif kind == "bandwidth" and spec.rate > 0:
                pace = float(spec.rate)
            elif kind == "slicer" and spec.size > 0:
                size = spec.size
                out = []
                pos = 0
                while pos < len(data):
                    var = self.rng.randint(-spec.size_variation, spec.size_variation) \
                        if spec.size_variation else 0
                    step = max(1, size + var)
                    out.append(data[pos:pos + step])
                    pos += step
                slices = out
                slice_delay = spec.delay
            elif kind == "limit_data" and spec.bytes > 0 and sent + len(data) >= spec.bytes:
                writer.write(data[: max(0, spec.bytes - sent)])
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.drain()
                link.close()
                return spec.bytes
        for i, piece in enumerate(slices):
            if pace:
                # Paced in chunks of at most 1/10 s of the allowed rate.
                step = max(1, int(pace / 10))
                for pos in range(0, len(piece), step):
                    chunk = piece[pos:pos + step]
                    writer.write(chunk)
                    await writer.drain()
                    await asyncio.sleep(len(chunk) / pace)
            else:
                writer.write(piece)
                await writer.drain()
            if slice_delay and i < len(slices) - 1:
                await asyncio.sleep(slice_delay)
        return sent + len(data)

    async def _http_pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         link: _Link) -> None:
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
                    await self._forward(bytes(buffer), writer, "upstream", link, 0)
                    buffer.clear()
                    await self._pump(reader, writer, "upstream", link)
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
                if not await self._http_fault(link):
                    await self._forward(message, writer, "upstream", link, 0)

    async def _http_fault(self, link: _Link) -> bool:
        """Apply the active HTTP faults to one request; True when it was answered here."""
        for state in list(self.http_faults.values()):
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


class ProxySet:
    """Every proxy of a plan."""

    def __init__(self, proxies: dict[str, Proxy], seed: int) -> None:
        self.proxies = {name: TcpProxy(name, cfg, random.Random(f"{seed}/proxy/{name}"))
                        for name, cfg in proxies.items()}

    async def start(self) -> None:
        for proxy in self.proxies.values():
            await proxy.start()

    async def stop(self) -> None:
        for proxy in self.proxies.values():
            await proxy.stop()

    def __getitem__(self, name: str) -> TcpProxy:
        return self.proxies[name]

    def stats(self) -> dict[str, Any]:
        return {n: {"connections": p.connections, "active_faults": len(p.toxics) +
                    len(p.http_faults)} for n, p in self.proxies.items()}
