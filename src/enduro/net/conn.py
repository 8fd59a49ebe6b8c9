"""One keep-alive HTTP/1.1 connection as an ``asyncio.Protocol``, for the client of flows,
bursts, python steps, scrapes and final reads (``engine.client``): a request is written
once, its answer framed by the wire module's ``ConnectionParser`` (one httptools parser kept
for the connection), and handed over on a future, with no stream buffers and no task or timer
per request (the client sweeps timeouts).

A connection the server closed, or that received bytes while idle, is never written to again;
once a request is written, whatever happens to the connection is that request's outcome (the
future's exception), never a reason to write it again.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from enduro.net.wire import ConnectionParser, ProtocolError, final_head

__all__ = ["Connection", "Response"]

_monotonic = time.monotonic


class Response:
    """An HTTP response: status, lower-cased headers, body, and the time it took. The headers
    are read from the head's bytes when first asked for (most flow steps never ask)."""

    __slots__ = ("_head", "_headers", "_method", "body", "elapsed", "status", "url")

    def __init__(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"",
                 elapsed: float = 0.0, url: str = "", *, head: bytes = b"",
                 method: str = "GET") -> None:
        self.status = status
        self._headers = headers
        self.body = body
        self.elapsed = elapsed
        self.url = url
        self._head = head
        self._method = method

    @property
    def headers(self) -> dict[str, str]:
        """The headers, names lower-cased; repeated ones joined by ``, `` (``Set-Cookie`` by
        a newline)."""
        if self._headers is None:
            try:
                self._headers = final_head(self._head, self._method).headers
            except (ProtocolError, ConnectionError):  # parsed once already: cannot happen
                self._headers = {}
        return self._headers

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` when it is not)."""
        from enduro.net.conditions import parse_json
        return parse_json(self.body)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"Response(status={self.status}, body={self.body[:60]!r}, url={self.url!r})"


class Connection(asyncio.Protocol):
    """One connection of a client. ``send`` writes a request and returns the future of its
    answer; when the answer is complete and keeps the connection, the connection goes back
    to ``pool`` (the client's idle connections for its host)."""

    __slots__ = ("_loop", "deadline", "is_open", "method", "open_set", "parser", "pool", "sent",
                 "transport", "url", "waiter")

    def __init__(self, pool: list[Connection], open_set: set[Connection]) -> None:
        self._loop = asyncio.get_running_loop()
        self.pool = pool
        # The client's open connections (for its timeout sweeper and its close).
        self.open_set = open_set
        self.transport: asyncio.Transport | None = None
        self.parser = ConnectionParser()
        self.waiter: asyncio.Future[Response] | None = None
        self.deadline = 0.0
        self.sent = 0.0
        self.method = "GET"
        self.url = ""
        # False once the server closed it, sent bytes while idle, or it was aborted.
        self.is_open = False

    # asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.is_open = True
        self.open_set.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            # Bytes no request asked for (a late answer, a 408 before closing): the
            # connection's state is unknown, so it is never written to again.
            self.abort()
            return
        try:
            done = self.parser.feed(data)
        except ProtocolError as exc:
            self._fail(exc)
            return
        if done:
            self._done()

    def eof_received(self) -> bool | None:
        self.is_open = False
        if self.waiter is not None:
            self._ended(None)
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_open = False
        self.transport = None
        self.open_set.discard(self)
        if self.waiter is not None:
            self._ended(exc)

    def _ended(self, exc: Exception | None) -> None:
        """The connection closed while an answer was awaited: a close-delimited body ends
        here; anything else is this request's error."""
        if exc is None:
            try:
                self.parser.feed_eof()
            except ConnectionError as err:
                self._fail(err)
                return
            self._done()
        else:
            self._fail(exc)

    # the request ------------------------------------------------------------------------
    def usable(self) -> bool:
        """Open, idle and not closed by the server meanwhile: a request written now is sent."""
        return self.is_open and self.waiter is None

    def send(self, data: bytes, method: str, deadline: float, url: str = ""
             ) -> asyncio.Future[Response]:
        """Write one request; the future of its answer. ``deadline`` (the loop's clock) is
        when the client's sweeper fails it with ``TimeoutError``."""
        assert self.transport is not None
        waiter: asyncio.Future[Response] = self._loop.create_future()
        self.waiter = waiter
        self.deadline = deadline
        self.method = method
        self.url = url
        self.parser.begin(method == "HEAD")
        self.sent = _monotonic()
        self.transport.write(data)
        return waiter

    def _done(self) -> None:
        waiter = self.waiter
        assert waiter is not None
        self.waiter = None
        parser = self.parser
        response = Response(parser.status, None, parser.take_body(),
                            _monotonic() - self.sent, self.url, head=parser.head_bytes,
                            method=self.method)
        if parser.keep_alive and not parser.extra and self.is_open:
            self.pool.append(self)
        else:
            self.abort()
        if not waiter.done():  # not cancelled by its caller
            waiter.set_result(response)

    def _fail(self, exc: BaseException) -> None:
        waiter = self.waiter
        self.waiter = None
        self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def timed_out(self, now: float) -> bool:
        """Fail the request out past its deadline (and close the connection); whether it
        was."""
        if self.waiter is None or now < self.deadline:
            return False
        self._fail(TimeoutError(f"no complete answer within the timeout ({self.url})"))
        return True

    def abort(self) -> None:
        """Close now, never to be used again."""
        self.is_open = False
        t = self.transport
        if t is not None:
            t.abort()
