"""The one place where HTTP/1.1 meets the wire: requests become bytes (``build_request``,
``request_head``), responses are framed by RFC 9112 (``ResponseParser``, ``read_response``,
``StreamResponse``), and values substituted into a path or a query are encoded.

Responses are read by httptools' C parser (llhttp) as curl and nginx read them: a body ends at
its Content-Length, at the last chunk of a chunked body (trailers read and kept apart), or, with
neither, when the server closes the connection (HTTP/1.0 servers, CGI); interim 1xx answers
(100 Continue, 103 Early Hints) are skipped; HEAD, 204 and 304 answers have no body; after
``Connection: close`` (or an HTTP/1.0 answer without keep-alive) the connection is closed and
the next request opens a new one. Anything else that is not HTTP/1.1 is ``ProtocolError``
(class ``protocol``).

Every serializer of the engine (the load engine's compiled requests, the flow/burst client,
SSE connects) goes through ``request_head``, so nothing from a template or a response can put
CR, LF, NUL or another control character on the wire: in the request target such characters
(and spaces and non-ASCII) are percent-encoded; in a method, a header name or a header value
they make the request unsendable (``UnsafeValue``), and the engine counts it as an error of
class ``unsafe_value`` instead of sending it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable
from urllib.parse import quote

import httptools

__all__ = ["IDEMPOTENT", "MAX_BODY_BYTES", "MAX_HEAD_BYTES", "ConnectionParser", "ProtocolError",
           "ResponseParser", "StreamResponse", "UnsafeValue", "body_framing", "build_request",
           "encode_path", "encode_path_value", "encode_query_value", "final_head",
           "keep_alive_of", "merge_headers", "read_response", "request_head", "request_target"]

# RFC 9110 token (methods, header names).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A header value may hold visible characters, spaces and tabs, and obs-text; nothing else.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Printable ASCII but space: what may stand in a request target as it is.
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7f))
_BAD_TARGET = re.compile(r"[^\x21-\x7e]")
# RFC 3986: a path segment keeps unreserved characters (quote keeps them always), sub-delims
# and ":" "@"; "/" "?" "#" and "%" are encoded so a value stays one segment.
_PATH_SAFE = "!$&'()*+,;=:@"
# A query value also keeps "/" "?" but encodes "&" "=" "#" "+" (read as a space by many).
_QUERY_SAFE = "!$'()*,;:@/?"
# A whole path (with its query) keeps its structure and existing escapes; "#" starts a
# fragment, which is never sent.
_WHOLE_PATH_SAFE = "!$&'()*+,;=:@/?%"


class UnsafeValue(ValueError):
    """A request could not be sent as it stood: a method, header name or header value holds a
    character (CR, LF, NUL, another control) that would change the request on the wire."""


class ProtocolError(OSError):
    """A response that is not HTTP/1.1 as RFC 9112 writes it (a garbled status line, a
    status outside 100-599, a header line without a colon, a bad Content-Length or chunk
    size, a head too large): the engine counts it as an error of class ``protocol``."""


def encode_path_value(value: object) -> str:
    """``value`` percent-encoded to stand inside one path segment."""
    return quote(str(value), safe=_PATH_SAFE)


def encode_path(value: object) -> str:
    """``value`` as a whole path and query (a captured ``Location``): slashes, ``?`` and
    existing ``%XX`` kept; controls, spaces, ``#`` and non-ASCII encoded."""
    return quote(str(value), safe=_WHOLE_PATH_SAFE)


def encode_query_value(value: object) -> str:
    """``value`` percent-encoded to stand as (part of) one query value."""
    return quote(str(value), safe=_QUERY_SAFE)


def request_target(target: str) -> bytes:
    """``target`` as it stands in the request line: spaces, controls and non-ASCII
    percent-encoded (``request_head`` writes its target so)."""
    if _BAD_TARGET.search(target):
        target = quote(target, safe=_TARGET_SAFE)
    return target.encode("ascii")


def request_head(method: str, target: str, headers: Iterable[tuple[str, object]]) -> bytes:
    """``METHOD target HTTP/1.1`` and the header lines, ending with the blank line. The
    target's spaces, controls and non-ASCII are percent-encoded; a method or header that
    would carry control characters raises ``UnsafeValue`` (nothing is sent)."""
    if not _TOKEN.fullmatch(method):
        raise UnsafeValue(f"method {method!r} is not an HTTP token")
    if _BAD_TARGET.search(target):
        target = quote(target, safe=_TARGET_SAFE)
    lines = [f"{method} {target} HTTP/1.1"]
    for name, raw in headers:
        value = raw if isinstance(raw, str) else str(raw)
        if not _TOKEN.fullmatch(name):
            raise UnsafeValue(f"header name {name!r} is not an HTTP token")
        if _BAD_VALUE.search(value):
            raise UnsafeValue(f"header {name}: the value holds a control character "
                              f"(CR, LF, NUL or another): {value[:60]!r}")
        lines.append(f"{name}: {value}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:
        raise UnsafeValue(f"a header holds a character outside latin-1: {exc.object[:60]!r}"
                          ) from exc


# -- request headers ---------------------------------------------------------------------------

# Methods RFC 9110 §9.2.2 calls idempotent (TRACE left out: enduro never sends it).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Methods whose request always carries a Content-Length, even an empty one (as curl does).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def merge_headers(defaults: Iterable[tuple[str, object]],
                  plan: Iterable[tuple[str, object]]) -> list[tuple[str, object]]:
    """``defaults`` then ``plan`` headers, where a plan header replaces every default of the
    same name in any case (``content-type`` replaces ``Content-Type``), as curl's ``-H`` does;
    among plan headers of one name in different cases the last wins."""
    chosen: dict[str, tuple[str, object]] = {}
    for name, value in plan:
        chosen[name.lower()] = (name, value)
    out = [(n, v) for n, v in defaults if n.lower() not in chosen]
    out.extend(chosen.values())
    return out


def build_request(method: str, target: str, host: str, headers: Iterable[tuple[str, object]],
                  body: bytes = b"", *, content_type: str | None = None,
                  close: bool = False) -> bytes:
    """A whole request: enduro's default headers (Host, User-Agent, Content-Type when a JSON
    body is sent, Content-Length when there is a body or the method carries one, and
    ``Connection: close`` when asked), then the plan's ``headers``, which replace defaults of
    the same name in any case. ``UnsafeValue`` when a value cannot be sent."""
    defaults: list[tuple[str, object]] = [("Host", host), ("User-Agent", "enduro")]
    if content_type is not None:
        defaults.append(("Content-Type", content_type))
    if body or method in _BODY_METHODS:
        defaults.append(("Content-Length", len(body)))
    if close:
        defaults.append(("Connection", "close"))
    return request_head(method, target, merge_headers(defaults, headers)) + body


# -- response framing --------------------------------------------------------------------------

# A response head (status line and headers) larger than this is refused as a protocol error;
# a body larger than MAX_BODY_BYTES likewise, as soon as it is known.
MAX_HEAD_BYTES = 1 << 22
MAX_BODY_BYTES = 256 << 20
_READ_SIZE = 1 << 16


def body_framing(method: str, status: int, headers: dict[str, str]) -> str:
    """How a response's body ends, by RFC 9112 §6.3: ``none`` (a HEAD answer, 1xx, 204,
    304), ``chunked``, ``length`` (Content-Length) or ``eof`` (the body is everything up to
    the connection's close: HTTP/1.0 servers, or an HTTP/1.1 answer with neither)."""
    if method == "HEAD" or status < 200 or status in (204, 304):
        return "none"
    te = headers.get("transfer-encoding")
    if te is not None:
        return "chunked" if te.rsplit(",", 1)[-1].strip().lower() == "chunked" else "eof"
    if "content-length" in headers:
        return "length"
    return "eof"


# Parser errors that stand even after a complete answer (others then mean trailing bytes).
_RAISED = (httptools.HttpParserCallbackError, httptools.HttpParserUpgrade)


def _protocol_error(exc: Exception) -> ProtocolError:
    """The ``ProtocolError`` for what httptools raised while framing an answer: a callback's
    own ProtocolError as it is, else one that says what was wrong."""
    if isinstance(exc, httptools.HttpParserUpgrade):
        return ProtocolError("the server switched protocols, which was not asked")
    if isinstance(exc, httptools.HttpParserCallbackError):
        cause = exc.__context__
        if isinstance(cause, ProtocolError):
            return cause
        return ProtocolError(f"a malformed response ({cause or exc})")
    return ProtocolError(f"a malformed response ({exc})")


class ResponseParser:
    """One response read by httptools' C parser (llhttp), fed bytes as they arrive: interim
    1xx answers skipped, HEAD/204/304 without a body, chunked bodies with their trailers,
    close-delimited bodies ended by ``feed_eof``. Anything else that is not HTTP/1.1 raises
    ``ProtocolError``; a connection closed before the response ended raises
    ``ConnectionResetError`` (class ``reset``)."""

    __slots__ = ("_head_size", "_interim", "_parser", "body", "done", "extra", "framing",
                 "head_done", "headers", "is_head", "keep_alive", "max_body", "size", "status",
                 "trailers", "version")

    def __init__(self, method: str = "GET", *, keep_body: bool = True,
                 max_body: int = MAX_BODY_BYTES) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.is_head = method == "HEAD"
        self.status = 0
        self.version = ""
        self.headers: dict[str, str] = {}
        self.trailers: dict[str, str] = {}
        self.body: list[bytes] | None = [] if keep_body else None
        self.size = 0
        self.max_body = max_body
        self.head_done = False
        self.done = False
        self.keep_alive = False
        self.framing = ""
        # Bytes arrived after the response was complete (they belong to no request).
        self.extra = False
        self._interim = False
        self._head_size = 0

    # httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.done:
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.done:
            return
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip()
        into = self.trailers if self.head_done else self.headers
        if key in into:
            text = f"{into[key]}, {text}" if key != "set-cookie" else f"{into[key]}\n{text}"
        into[key] = text

    def on_headers_complete(self) -> None:
        if self.done:
            return
        p = self._parser
        status = p.get_status_code()
        if not 100 <= status <= 599:
            raise ProtocolError(f"status {status:03d} is not an HTTP status (100-599)")
        if status == 101:
            raise ProtocolError("the server switched protocols (101), which was not asked")
        if status < 200:
            # 100 Continue, 103 Early Hints: an interim answer; the real one follows.
            self._interim = True
            self.headers = {}
            return
        self._interim = False
        self.status = status
        self.version = p.get_http_version()
        self.head_done = True
        self.framing = body_framing("HEAD" if self.is_head else "GET", status, self.headers)
        if self.is_head:
            # llhttp cannot be told the request was HEAD: the answer ends with its head.
            self._finish(keep_alive_of(self.version, self.headers))

    def on_body(self, data: bytes) -> None:
        if self.done:
            return
        self.size += len(data)
        if self.size > self.max_body:
            raise ProtocolError(f"a body over {self.max_body} bytes")
        if self.body is not None:
            self.body.append(data)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self.done or not self.head_done:
            return
        self._finish(self._parser.should_keep_alive())

    def _finish(self, keep_alive: bool) -> None:
        self.done = True
        self.keep_alive = keep_alive

    # feeding ----------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Parse ``data``; raises ``ProtocolError`` when it is not HTTP/1.1."""
        if not self.head_done:
            # Reads are small (64 KiB), so this is the head's size give or take one read.
            self._head_size += len(data)
            if self._head_size > MAX_HEAD_BYTES:
                raise ProtocolError(f"a response head over {MAX_HEAD_BYTES} bytes")
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self.done and not isinstance(exc, _RAISED):
                self.extra = True  # bytes after a `Connection: close` answer
                return
            raise _protocol_error(exc) from None

    def feed_eof(self) -> None:
        """The connection was closed by the server: a close-delimited body ends here;
        anything unfinished raises ``ConnectionResetError``."""
        if self.done:
            return
        if self.head_done and self.framing == "eof":
            self._finish(False)
            return
        raise ConnectionResetError("the server closed the connection before the response "
                                   "ended" if self.head_done or self._head_size else
                                   "the server closed the connection without answering")

    def take_body(self) -> bytes:
        """The body received so far (and forget it)."""
        if not self.body:
            return b""
        data = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        return data


class ConnectionParser:
    """The responses of one keep-alive connection, one at a time, framed as ``ResponseParser``
    frames them but by one httptools parser kept for the connection's life, without a Python
    call per header: the head's bytes are kept (``head_bytes``) and read again by
    ``final_head`` only when someone asks for the headers, or on the rare paths (a HEAD
    answer, one that will not keep the connection) to learn how the body ends.

    Call ``begin`` before each request is written, ``feed`` with what arrives (True once the
    response is complete) and ``feed_eof`` when the server closes the connection."""

    __slots__ = ("_head_size", "_parser", "_raw", "body", "done", "eof_body", "extra",
                 "head_bytes", "is_head", "keep_alive", "max_body", "size", "status")

    def __init__(self, max_body: int = MAX_BODY_BYTES) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.max_body = max_body
        self.is_head = False
        self.status = 0
        self.body: list[bytes] = []
        self.size = 0
        # The reads while the head is awaited (None once it is parsed), joined only when a
        # head is split over reads (a head trickled byte by byte costs no quadratic copy).
        self._raw: list[bytes] | None = []
        self._head_size = 0
        self.head_bytes = b""
        self.done = False
        self.eof_body = False
        self.keep_alive = False
        self.extra = False

    def begin(self, is_head: bool) -> None:
        """Expect the answer to the request about to be written (``is_head``: to a HEAD)."""
        self.is_head = is_head
        self.status = 0
        self.body = []
        self.size = 0
        self._raw = []
        self._head_size = 0
        self.done = False
        self.eof_body = False
        self.keep_alive = False
        self.extra = False

    # httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.done:
            self.extra = True  # a second answer to one request: the connection is not kept

    def on_headers_complete(self) -> None:
        if self.done:
            return
        p = self._parser
        status = p.get_status_code()
        if not 100 <= status <= 599:
            raise ProtocolError(f"status {status:03d} is not an HTTP status (100-599)")
        if status < 200:
            if status == 101:
                raise ProtocolError("the server switched protocols (101), which was not asked")
            return  # 100 Continue, 103 Early Hints: the real answer follows
        self.status = status
        raw = self._raw or [b""]
        head = raw[0] if len(raw) == 1 else b"".join(raw)
        self._raw = None
        self.head_bytes = head
        if self.is_head or not p.should_keep_alive():
            self._rare(head)

    def _rare(self, head: bytes) -> None:
        """A HEAD answer, or one that will not keep the connection: its head read again to
        know how its body ends."""
        try:
            parsed = final_head(head, "HEAD" if self.is_head else "GET")
        except (ProtocolError, ConnectionError):
            return  # httptools judges the rest as it comes
        if not parsed.head_done:
            return
        if self.is_head:
            # A HEAD answer has no body whatever Content-Length says; httptools cannot be
            # told, so a fresh parser reads the next answer (this one ignores the rest).
            self._parser = httptools.HttpResponseParser(self)
            self.done = True
            self.keep_alive = parsed.keep_alive
        elif parsed.framing == "eof":
            self.eof_body = True

    def on_body(self, data: bytes) -> None:
        if self.done:
            return
        self.size += len(data)
        if self.size > self.max_body:
            raise ProtocolError(f"a body over {self.max_body} bytes")
        self.body.append(data)

    def on_message_complete(self) -> None:
        if self.done or not self.status:
            return  # after the answer, or the end of an interim one
        self.done = True
        self.keep_alive = self._parser.should_keep_alive()

    # feeding ----------------------------------------------------------------------------
    def feed(self, data: bytes) -> bool:
        """Parse ``data``; True once the response is complete. ``ProtocolError`` when it is
        not HTTP/1.1."""
        raw = self._raw
        if raw is not None:
            raw.append(data)
            self._head_size += len(data)
            if self._head_size > MAX_HEAD_BYTES:
                # Reads are small (64 KiB): this is the head's size give or take one read.
                raise ProtocolError(f"a response head over {MAX_HEAD_BYTES} bytes")
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self.done and not isinstance(exc, _RAISED):
                self.extra = True  # bytes after a `Connection: close` answer
                return True
            raise _protocol_error(exc) from None
        return self.done

    def feed_eof(self) -> None:
        """The server closed the connection: a close-delimited body ends here; anything
        unfinished raises ``ConnectionResetError`` (class ``reset``)."""
        if self.done:
            return
        if self.status and self.eof_body:
            self.done = True
            self.keep_alive = False
            return
        raise ConnectionResetError(
            "the server closed the connection before the response ended" if self.status
            or self._head_size else "the server closed the connection without answering")

    def take_body(self) -> bytes:
        """The body received (and forget it)."""
        body = self.body
        if not body:
            return b""
        data = body[0] if len(body) == 1 else b"".join(body)
        self.body = []
        return data


def keep_alive_of(version: str, headers: dict[str, str]) -> bool:
    """Whether a connection stays open after a framed response: HTTP/1.1 unless
    ``Connection: close``; HTTP/1.0 only with ``Connection: keep-alive``."""
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if version == "1.1":
        return "close" not in tokens
    return "keep-alive" in tokens and "close" not in tokens


def final_head(raw: bytes, method: str = "GET") -> ResponseParser:
    """The final (non-1xx) response head at the start of ``raw``, parsed as ``read_head``
    would: for the load engine's rare paths (a close-delimited body) where it needs the
    headers its fast parser did not keep."""
    parser = ResponseParser(method, keep_body=False)
    parser.feed(raw)
    return parser


class StreamResponse:
    """Read one response from an asyncio stream: ``await read_head()``, then
    ``await read_body()`` or ``async for chunk in body_chunks()`` (decoded body bytes)."""

    def __init__(self, reader: asyncio.StreamReader, method: str = "GET", *,
                 max_body: int = MAX_BODY_BYTES) -> None:
        self.reader = reader
        self.parser = ResponseParser(method, max_body=max_body)

    async def _more(self) -> bool:
        data = await self.reader.read(_READ_SIZE)
        if not data:
            self.parser.feed_eof()
            return False
        self.parser.feed(data)
        return True

    async def read_head(self) -> ResponseParser:
        """Up to the final response's head (1xx interim answers skipped)."""
        parser = self.parser
        while not parser.head_done and await self._more():
            pass
        return parser

    async def read_body(self) -> bytes:
        """The whole body, however it is framed."""
        parser = self.parser
        while not parser.done and await self._more():
            pass
        return parser.take_body()

    async def body_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, decoded from its framing (for streams such as SSE)."""
        parser = self.parser
        while True:
            data = parser.take_body()
            if data:
                yield data
            if parser.done or not await self._more():
                data = parser.take_body()
                if data:
                    yield data
                return


async def read_response(reader: asyncio.StreamReader, method: str = "GET", *,
                        max_body: int = MAX_BODY_BYTES) -> ResponseParser:
    """One whole response from ``reader`` (``parser.status``, ``.headers``, ``.keep_alive``,
    the body with ``parser.take_body()``)."""
    stream = StreamResponse(reader, method, max_body=max_body)
    while not stream.parser.done and await stream._more():
        pass
    return stream.parser
