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
import contextlib
import random
import socket
from typing import Any

from enduro.base.errors import RunError
from enduro.faults.proxy_http import HttpFaults, HttpState
from enduro.faults.proxy_links import DelayLine, Link, close_with_rst, split_address
from enduro.faults.toxics import Toxics, ToxicState
from enduro.plan.faults import HttpFault, Proxy, Toxic

__all__ = ["ProxySet", "TcpProxy"]


class TcpProxy:
    """One proxy: a listener, its connections, and the faults active on it (``Toxics`` on
    the data, ``HttpFaults`` on the requests)."""

    def __init__(self, name: str, config: Proxy, rng: random.Random) -> None:
        self.name = name
        self.config = config
        self.rng = rng
        self._toxics = Toxics(rng)
        self._http = HttpFaults(rng)
        self.toxics: dict[int, ToxicState] = self._toxics.active
        self.http_faults: dict[int, HttpState] = self._http.active
        self.links: set[Link] = set()
        self._server: asyncio.Server | None = None
        self.down = False
        self.connections = 0

    async def start(self) -> None:
        host, port = split_address(self.config.listen)
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
        state = ToxicState(fault_id, kind, spec)
        self.toxics[fault_id] = state
        if kind == "down":
            self.down = True
            for link in list(self.links):
                link.close(reset=True)
        elif kind in ("reset_peer", "timeout"):
            for link in list(self.links):
                self._toxics.arm(link, state)

    def remove_toxic(self, fault_id: int) -> None:
        state = self.toxics.pop(fault_id, None)
        if state is not None and state.kind == "down":
            self.down = any(t.kind == "down" for t in self.toxics.values())

    def add_http(self, fault_id: int, spec: HttpFault) -> None:
        self.http_faults[fault_id] = HttpState(fault_id, spec)

    def remove_http(self, fault_id: int) -> None:
        self.http_faults.pop(fault_id, None)

    # -- data ----------------------------------------------------------------------------
    async def _handle(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        if self.down:
            close_with_rst(client_w)
            return
        try:
            up_r, up_w = await asyncio.open_connection(*split_address(self.config.upstream))
        except OSError:
            close_with_rst(client_w)
            return
        if self.down:  # it went down while this connection was being set up
            close_with_rst(client_w)
            up_w.close()
            return
        for w in (client_w, up_w):
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = Link(client_w, up_w)
        self.links.add(link)
        self.connections += 1
        for toxic in list(self.toxics.values()):
            if toxic.kind in ("reset_peer", "timeout"):
                self._toxics.arm(link, toxic)
        upstream = (self._http.pump(client_r, up_w, link, self._toxics.forward, self._pump)
                    if self.config.http else self._pump(client_r, up_w, "upstream", link))
        tasks = [asyncio.ensure_future(upstream),
                 asyncio.ensure_future(self._pump(up_r, client_w, "downstream", link))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            slow = [t.spec.delay for t in self.toxics.values()
                    if t.kind == "slow_close" and self._toxics.applies(link, t, "downstream")]
            if slow:
                await asyncio.sleep(max(slow))
        finally:
            for t in tasks:
                t.cancel()
            link.close()
            self.links.discard(link)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    direction: str, link: Link) -> None:
        """Copy one direction through a delay line: a reader stamps each chunk with its
        arrival time, a sender delivers it (and at last the EOF) once the latency toxics'
        delay has passed since that arrival, so reading never waits on the delay."""
        line = DelayLine()
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

    async def _deliver(self, line: DelayLine, writer: asyncio.StreamWriter, direction: str,
                       link: Link) -> None:
        sent = 0
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
            while not link.closed:
                arrived, data = await line.get()
                if not data:
                    await self._toxics.delay(link, direction, arrived)
                    with contextlib.suppress(OSError, RuntimeError):
                        writer.write_eof()
                    return
                sent = await self._toxics.forward(data, writer, direction, link, sent, arrived)


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
