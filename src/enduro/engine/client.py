"""A small keep-alive HTTP/1.1 client for flows, bursts and python steps: not the hot path
(that is engine.http), but typed, with timeouts, and sharing connections per host."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from enduro.engine.request import Target, split_base
from enduro.engine.tls import client_context, server_hostname
from enduro.engine.wire import ProtocolError, request_head
from enduro.plan.tls import Tls

__all__ = ["MAX_BODY_BYTES", "MAX_HEAD_BYTES", "HttpClient", "Response"]

# A response head (status line and headers) larger than this is refused as a protocol error
# (it is the reader's buffer limit); a body announced larger than MAX_BODY_BYTES likewise,
# before any of it is read.
MAX_HEAD_BYTES = 1 << 22
MAX_BODY_BYTES = 256 << 20
_STATUS_LINE = re.compile(r"HTTP/1\.[01] (\d{3})(?: .*)?")


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
                # A garbled answer proves the server had the request: never sent again.
                if reused and attempt == 0 and not isinstance(exc, ProtocolError):
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
        while True:
            status, version, headers = await _read_head(reader)
            # An interim answer (100 Continue, 103 Early Hints) precedes the real one.
            if not 100 <= status < 200:
                break
            if status == 101:
                raise ProtocolError("the server switched protocols (101), which was not asked")
        keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        if method == "HEAD" or status in (204, 304):
            return status, headers, b"", keep
        try:
            if headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                total = 0
                while True:
                    raw = (await reader.readline()).split(b";")[0].strip()
                    if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", raw):
                        raise ProtocolError(f"bad chunk size {raw[:20]!r}")
                    size = int(raw, 16)
                    total += size
                    if total > MAX_BODY_BYTES:
                        raise ProtocolError(f"a chunked body over {MAX_BODY_BYTES} bytes")
                    if size == 0:
                        for _ in range(100):  # trailer lines, up to the blank one
                            if (await reader.readline()).strip() == b"":
                                break
                        else:
                            raise ProtocolError("more than 100 trailer lines")
                        break
                    chunks.append(await reader.readexactly(size))
                    await reader.readexactly(2)
                return status, headers, b"".join(chunks), keep
            if "content-length" in headers:
                return (status, headers,
                        await reader.readexactly(_content_length(headers["content-length"])),
                        keep)
            return status, headers, await reader.read(MAX_BODY_BYTES), False
        except (asyncio.LimitOverrunError, ValueError) as exc:
            raise ProtocolError(f"a malformed response body ({exc})") from exc

    async def close(self) -> None:
        """Close every idle connection."""
        self.close_now()

    def close_now(self) -> None:
        """``close`` for a callback, where nothing can be awaited."""
        for pool in self._idle.values():
            for conn in pool:
                conn.writer.close()
        self._idle.clear()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError("a response head larger than the reader's limit "
                            f"({MAX_HEAD_BYTES} bytes)") from exc
    lines = head[:-4].decode("latin-1").split("\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    status = int(match.group(1)) if match else 0
    if not 100 <= status <= 599:
        raise ProtocolError(f"not an HTTP/1.1 status line: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ProtocolError(f"a header line without 'name:': {line[:60]!r}")
        key = name.lower()
        value = value.strip()
        if key == "content-length" and key in headers and headers[key] != value:
            raise ProtocolError("two different Content-Length headers")
        headers[key] = value
    return status, lines[0][:8], headers


def _content_length(value: str) -> int:
    if not value.isdigit() or not value.isascii():
        raise ProtocolError(f"Content-Length {value[:30]!r} is not a number")
    length = int(value)
    if length > MAX_BODY_BYTES:
        raise ProtocolError(f"Content-Length {length} is over {MAX_BODY_BYTES} bytes")
    return length
