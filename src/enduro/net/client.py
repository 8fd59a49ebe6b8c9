"""A small keep-alive HTTP/1.1 client for flows, bursts, python steps, scrapes and final
reads: typed, with timeouts, sharing connections per origin, each connection an
``asyncio.Protocol`` (``engine.conn``) whose answers are framed by the engine's one wire module
(``engine.wire``). Timeouts are swept by one timer per client, not one per request.

A request is written at most once. An idle kept-alive connection that the server has already
closed is never used (the request goes on a new connection: nothing was sent); once any byte
of a request is written, a dropped connection is an error of its class, never a second send,
whatever the method.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from enduro.net.conn import Connection, Response
from enduro.net.target import Target, split_base
from enduro.net.tls import client_context, server_hostname
from enduro.net.wire import MAX_BODY_BYTES, MAX_HEAD_BYTES, build_request, read_response
from enduro.plan.tls import Tls

__all__ = ["MAX_BODY_BYTES", "MAX_HEAD_BYTES", "HttpClient", "Response", "split_url"]


def split_url(url: str) -> tuple[str, str]:
    """``scheme://host:port`` and the rest (the path and query, ``/`` at least)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not an absolute URL: {url!r}")
    hostport, slash, path = rest.partition("/")
    return f"{scheme}://{hostport}", slash + path if slash else "/"


@dataclass
class HttpClient:
    """Keep-alive connections per origin. ``await client.request("GET", url)``."""

    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    verify: bool = True
    # One TLS context for every connection of this client: the workload's ``tls``, built
    # once (by the driver, shared by its clients, or here at the first https connection).
    tls: Tls | None = None
    context: ssl.SSLContext | None = None
    _idle: dict[str, list[Connection]] = field(default_factory=dict)
    _open: set[Connection] = field(default_factory=set)
    _targets: dict[str, Target] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _timer: asyncio.TimerHandle | None = None
    _timer_at: float = 0.0

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      json_body: Any = None, body: bytes | str | None = None,
                      query: dict[str, Any] | None = None,
                      timeout: float | None = None) -> Response:
        """Send one request; raises OSError/TimeoutError on transport failures, and
        ``UnsafeValue`` (nothing sent) when a header would carry control characters."""
        origin, wire = self.prepare(method, url, headers=headers, json_body=json_body,
                                    body=body, query=query)
        return await self.send(origin, method, wire, url, timeout)

    def prepare(self, method: str, url: str, *, headers: dict[str, Any] | None = None,
                json_body: Any = None, body: bytes | str | None = None,
                query: dict[str, Any] | None = None) -> tuple[str, bytes]:
        """The origin (``scheme://host:port``) and the bytes of a request as ``request`` sends
        it: the client's headers, then ``headers`` (replacing defaults of the same name in any
        case), a JSON or raw body, ``query`` appended. ``UnsafeValue`` when it cannot be sent."""
        origin, path = split_url(url)
        t = self.target(origin)
        if query:
            path += ("&" if "?" in path else "?") + urlencode(query)
        data = b""
        content_type = None
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode()
            content_type = "application/json"
        elif body is not None:
            data = body.encode() if isinstance(body, str) else body
        # Before any connection is taken: an unsafe value sends nothing.
        return origin, build_request(method, path, t.host_header,
                                     [*self.headers.items(), *(headers or {}).items()], data,
                                     content_type=content_type)

    def target(self, origin: str) -> Target:
        """The target of ``scheme://host:port`` (parsed once per client)."""
        t = self._targets.get(origin)
        if t is None:
            t = self._targets[origin] = split_base(origin)
        return t

    def send(self, origin: str, method: str, wire: bytes, url: str = "",
             timeout: float | None = None) -> Awaitable[Response]:
        """Write ``wire`` (a whole request, built by ``wire.build_request``) to ``origin`` on an
        idle connection, or a new one; the answer, awaited. ``TimeoutError`` when it is not
        complete within ``timeout`` (the client's by default), connecting included."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout if timeout is not None else self.timeout)
        pool = self._idle.get(origin)
        while pool:
            conn = pool.pop()
            # Those the server closed meanwhile (its close already read) are dropped here,
            # before any byte is written to them.
            if conn.is_open and conn.waiter is None:
                waiter = conn.send(wire, method, deadline, url)
                if self._timer is None or deadline < self._timer_at:
                    self._arm(deadline)
                return waiter
            conn.abort()
        return self._connect_and_send(origin, method, wire, deadline, url)

    async def _connect_and_send(self, origin: str, method: str, wire: bytes, deadline: float,
                                url: str) -> Response:
        t = self.target(origin)
        loop = asyncio.get_running_loop()
        ctx = None
        name = None
        if t.tls:
            tls = self.tls or Tls(verify=self.verify)
            if self.context is None:
                self.context = client_context(tls)
            ctx = self.context
            name = server_hostname(tls, t.host)
        conn = Connection(self._idle.setdefault(origin, []), self._open)
        await asyncio.wait_for(
            loop.create_connection(lambda: conn, t.host, t.port, ssl=ctx, server_hostname=name),
            max(0.0, deadline - loop.time()))
        waiter = conn.send(wire, method, deadline, url)
        if self._timer is None or deadline < self._timer_at:
            self._arm(deadline)
        return await waiter

    # timeouts ---------------------------------------------------------------------------
    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._sweep)

    def _sweep(self) -> None:
        """Fail the requests past their deadline; wake again at the next deadline (not on a
        tick: a client whose requests all end in time wakes about once per timeout)."""
        assert self._loop is not None
        self._timer = None
        now = self._loop.time()
        nearest = float("inf")
        for conn in list(self._open):
            if conn.waiter is not None and not conn.timed_out(now):
                nearest = min(nearest, conn.deadline)
        if nearest != float("inf"):
            self._arm(max(nearest, now + 0.001))

    # compatibility ----------------------------------------------------------------------
    @staticmethod
    async def _read(reader: asyncio.StreamReader,
                    method: str) -> tuple[int, dict[str, str], bytes, bool]:
        """One response from a stream: status, headers, body, keep-alive. Raises
        ``ProtocolError`` for anything that is not HTTP/1.1 (so it is counted as class
        ``protocol``, never as a success or an enduro defect)."""
        parser = await read_response(reader, method)
        return (parser.status, parser.headers, parser.take_body(),
                parser.keep_alive and not parser.extra)

    async def close(self) -> None:
        """Close every connection."""
        self.close_now()

    def close_now(self) -> None:
        """``close`` for a callback, where nothing can be awaited."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for conn in list(self._open):
            conn.abort()
        for pool in self._idle.values():
            for conn in pool:
                conn.abort()
            pool.clear()
