"""A small keep-alive HTTP/1.1 client for flows, bursts and python steps: not the hot path
(that is engine.http), but typed, with timeouts, and sharing connections per host."""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from enduro.engine.request import Target, split_base
from enduro.engine.wire import request_head

__all__ = ["HttpClient", "Response"]


@dataclass
class Response:
    """An HTTP response: status, lower-cased headers, body, and the time it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float
    url: str = ""

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass
class HttpClient:
    """Keep-alive connections per base URL. ``await client.request("GET", url)``."""

    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    verify: bool = True
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
        hdrs = {**self.headers, **(headers or {})}
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif body is not None:
            data = body.encode() if isinstance(body, str) else body
        return await asyncio.wait_for(self._send(t, method, path, hdrs, data, url),
                                      timeout if timeout is not None else self.timeout)

    async def _send(self, t: Target, method: str, path: str, hdrs: dict[str, str],
                    data: bytes, url: str) -> Response:
        key = (t.scheme, t.host, t.port)
        loop = asyncio.get_running_loop()
        lines: list[tuple[str, object]] = [("Host", t.host_header), ("User-Agent", "enduro")]
        lines += hdrs.items()
        if data or method in ("POST", "PUT", "PATCH"):
            lines.append(("Content-Length", len(data)))
        # Before any connection is taken: an unsafe value sends nothing.
        wire = request_head(method, path, lines) + data
        for attempt in range(2):
            pool = self._idle.setdefault(key, [])
            reused = bool(pool)
            conn = pool.pop() if pool else await self._open(t)
            started = loop.time()
            try:
                conn.writer.write(wire)
                status, headers, body, keep = await self._read(conn.reader, method)
            except (OSError, asyncio.IncompleteReadError) as exc:
                conn.writer.close()
                if reused and attempt == 0:
                    continue  # a kept-alive connection the server had closed: retry once
                if isinstance(exc, asyncio.IncompleteReadError):
                    raise ConnectionResetError("connection closed mid-response") from exc
                raise
            if keep:
                self._idle.setdefault(key, []).append(conn)
            else:
                conn.writer.close()
            return Response(status, headers, body, loop.time() - started, url)
        raise ConnectionResetError("connection closed")  # pragma: no cover

    async def _open(self, t: Target) -> _Conn:
        ctx = None
        if t.tls:
            ctx = ssl.create_default_context()
            if not self.verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(
            t.host, t.port, ssl=ctx, server_hostname=t.host if ctx else None, limit=1 << 22)
        return _Conn(reader, writer)

    @staticmethod
    async def _read(reader: asyncio.StreamReader,
                    method: str) -> tuple[int, dict[str, str], bytes, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        keep = headers.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return status, headers, b"", keep
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    await reader.readline()
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            return status, headers, b"".join(chunks), keep
        if "content-length" in headers:
            return status, headers, await reader.readexactly(int(headers["content-length"])), keep
        return status, headers, await reader.read(-1), False

    async def close(self) -> None:
        for pool in self._idle.values():
            for conn in pool:
                conn.writer.close()
        self._idle.clear()
