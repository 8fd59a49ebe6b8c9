"""A small keep-alive HTTP/1.1 client for flows, bursts, python steps, scrapes and final
reads: not the hot path (that is engine.http), but typed, with timeouts, sharing connections
per host, and framing responses with the engine's one wire module (``engine.wire``).

A request is written at most once. An idle kept-alive connection that the server has already
closed is never used (the request goes on a new connection: nothing was sent); once any byte
of a request is written, a dropped connection is an error of its class, never a second send,
whatever the method.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from enduro.engine.conditions import parse_json
from enduro.engine.request import Target, split_base
from enduro.engine.tls import client_context, server_hostname
from enduro.engine.wire import MAX_BODY_BYTES, MAX_HEAD_BYTES, build_request, read_response
from enduro.plan.tls import Tls

__all__ = ["MAX_BODY_BYTES", "MAX_HEAD_BYTES", "HttpClient", "Response"]


@dataclass
class Response:
    """An HTTP response: status, lower-cased headers, body, and the time it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float
    url: str = ""

    def json(self) -> Any:
        return parse_json(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def open(self) -> bool:
        """Neither closed by us nor by the server (no close or error read while idle)."""
        return not (self.writer.is_closing() or self.reader.at_eof()
                    or self.reader.exception() is not None)


@dataclass
class HttpClient:
    """Keep-alive connections per base URL. ``await client.request("GET", url)``."""

    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    verify: bool = True
    # One TLS context for every connection of this client: the workload's ``tls``, built
    # once (by the driver, shared by its clients, or here at the first https connection).
    tls: Tls | None = None
    context: ssl.SSLContext | None = None
    _idle: dict[tuple[str, str, int], list[_Conn]] = field(default_factory=dict)

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      json_body: Any = None, body: bytes | str | None = None,
                      query: dict[str, Any] | None = None,
                      timeout: float | None = None) -> Response:
        """Send one request; raises OSError/TimeoutError on transport failures, and
        ``UnsafeValue`` (nothing sent) when a header would carry control characters."""
        scheme, rest = url.split("://", 1)
        hostport, _, path = rest.partition("/")
        t = split_base(f"{scheme}://{hostport}")
        path = "/" + path
        if query:
            path += ("&" if "?" in path else "?") + urlencode(query)
        data = b""
        content_type = None
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode()
            content_type = "application/json"
        elif body is not None:
            data = body.encode() if isinstance(body, str) else body
        # Before any connection is taken: an unsafe value sends nothing. Plan headers
        # replace the defaults of the same name in any case.
        wire = build_request(method, path, t.host_header,
                             [*self.headers.items(), *(headers or {}).items()], data,
                             content_type=content_type)
        return await asyncio.wait_for(self._send(t, method, wire, url),
                                      timeout if timeout is not None else self.timeout)

    async def _send(self, t: Target, method: str, wire: bytes, url: str) -> Response:
        key = (t.scheme, t.host, t.port)
        loop = asyncio.get_running_loop()
        conn = self._take(key)
        if conn is None:
            conn = await self._open(t)
        started = loop.time()
        try:
            conn.writer.write(wire)
            parser = await read_response(conn.reader, method)
        except BaseException:
            # Written once: whatever happened next is this request's outcome, not a reason to
            # send it again (the server may have acted on it).
            conn.writer.close()
            raise
        if parser.keep_alive and not parser.extra:
            self._idle.setdefault(key, []).append(conn)
        else:
            conn.writer.close()
        return Response(parser.status, parser.headers, parser.take_body(),
                        loop.time() - started, url)

    def _take(self, key: tuple[str, str, int]) -> _Conn | None:
        """An idle connection still open, or None; those the server closed meanwhile (its
        close already read) are dropped here, before any byte is written to them."""
        pool = self._idle.get(key)
        while pool:
            conn = pool.pop()
            if conn.open():
                return conn
            conn.writer.close()
        return None

    async def _open(self, t: Target) -> _Conn:
        ctx = None
        tls = self.tls or Tls(verify=self.verify)
        if t.tls:
            if self.context is None:
                self.context = client_context(tls)
            ctx = self.context
        reader, writer = await asyncio.open_connection(
            t.host, t.port, ssl=ctx, server_hostname=server_hostname(tls, t.host) if ctx else None,
            limit=MAX_HEAD_BYTES)
        return _Conn(reader, writer)

    @staticmethod
    async def _read(reader: asyncio.StreamReader,
                    method: str) -> tuple[int, dict[str, str], bytes, bool]:
        """One response: status, headers, body, keep-alive. Raises ``ProtocolError`` for
        anything that is not HTTP/1.1 (so it is counted as class ``protocol``, never as a
        success or an enduro defect)."""
        parser = await read_response(reader, method)
        return (parser.status, parser.headers, parser.take_body(),
                parser.keep_alive and not parser.extra)

    async def close(self) -> None:
        """Close every idle connection."""
        self.close_now()

    def close_now(self) -> None:
        """``close`` for a callback, where nothing can be awaited."""
        for pool in self._idle.values():
            for conn in pool:
                conn.writer.close()
        self._idle.clear()

