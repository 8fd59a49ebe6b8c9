"""The flow client's protocol connections (engine.conn, engine.client): one parser per
connection framing every answer in turn, answers handed to the request that asked for them
only, and timeouts swept by one timer per client."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from enduro.net.client import HttpClient
from enduro.net.conn import Response
from enduro.net.wire import MAX_HEAD_BYTES, ConnectionParser, ProtocolError

OK = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Seen: %d\r\n\r\n%s"


def _feed(parser: ConnectionParser, data: bytes, *, by: int = 0, head: bool = False) -> bool:
    """Feed one answer after ``begin``, in pieces of ``by`` bytes (whole when 0)."""
    parser.begin(head)
    if not by:
        return parser.feed(data)
    done = False
    for i in range(0, len(data), by):
        done = parser.feed(data[i:i + by])
    return done


def test_one_parser_frames_every_answer_of_a_connection_in_turn() -> None:
    p = ConnectionParser()
    # Content-Length, keep-alive; the headers are read from the kept head on demand.
    assert _feed(p, OK % (3, 1, b"one"))
    assert (p.status, p.take_body(), p.keep_alive) == (200, b"one", True)
    assert Response(p.status, head=p.head_bytes).headers["x-seen"] == "1"
    # Chunked with trailers, one byte at a time.
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")
    assert _feed(p, chunked, by=1)
    assert (p.status, p.take_body(), p.keep_alive) == (200, b"abcde", True)
    # Interim answers skipped.
    interim = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
               + OK % (3, 2, b"two"))
    assert _feed(p, interim, by=7)
    assert (p.status, p.take_body()) == (200, b"two")
    # A HEAD answer has no body whatever its Content-Length says, and the next answer on the
    # same connection is read whole.
    assert _feed(p, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", head=True)
    assert (p.status, p.take_body(), p.keep_alive) == (200, b"", True)
    assert _feed(p, OK % (5, 3, b"after"))
    assert (p.status, p.take_body()) == (200, b"after")
    # 204 and 304 have no body, stray Content-Length or not.
    assert _feed(p, b"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\n")
    assert (p.status, p.take_body(), p.keep_alive) == (204, b"", True)
    assert _feed(p, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n")
    assert (p.status, p.take_body()) == (304, b"")
    # Connection: close ends the connection's use.
    assert _feed(p, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx")
    assert (p.take_body(), p.keep_alive) == (b"x", False)


def test_close_delimited_and_broken_answers() -> None:
    p = ConnectionParser()
    assert not _feed(p, b"HTTP/1.0 200 OK\r\n\r\nuntil the ", by=5)
    assert not p.feed(b"close")
    p.feed_eof()
    assert (p.done, p.status, p.take_body(), p.keep_alive) == (True, 200, b"until the close",
                                                               False)
    for bad in (b"HTTP/1.1 2OO OK\r\n\r\n", b"HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n",
                b"HTTP/1.1 101 Switching\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"):
        with pytest.raises(ProtocolError):
            _feed(ConnectionParser(), bad)
    cut = ConnectionParser()
    assert not _feed(cut, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    with pytest.raises(ConnectionResetError, match="before the response ended"):
        cut.feed_eof()
    silent = ConnectionParser()
    silent.begin(False)
    with pytest.raises(ConnectionResetError, match="without answering"):
        silent.feed_eof()
    # A head that never ends is refused past MAX_HEAD_BYTES, however it is split.
    endless = ConnectionParser()
    endless.begin(False)
    endless.feed(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Pad: " + b"p" * 4089 + b"\r\n"
    with pytest.raises(ProtocolError, match="head over"):
        for _ in range(MAX_HEAD_BYTES // len(line) + 2):  # bounded: one past the limit
            endless.feed(line)
    # A second answer to one request: the connection is not kept.
    twice = ConnectionParser()
    assert _feed(twice, OK % (1, 1, b"a") + OK % (1, 2, b"b"))
    assert twice.extra


@dataclass
class ScriptedServer:
    """A blocking raw-socket server on 127.0.0.1: each request is answered by ``answer(n,
    request line, conn)`` (n counts requests across connections). Records what it saw."""

    answer: Callable[[int, bytes, socket.socket], None]
    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    answered: list[bytes] = field(default_factory=list)
    connections: int = 0
    closed_by_client: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str) -> int:
        with self.lock:
            value: int = getattr(self, what)
            return value

    def snapshot_answered(self) -> list[bytes]:
        with self.lock:
            return list(self.answered)

    def serve(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            for _ in range(1000):  # bounded: requests on one connection
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        with self.lock:
                            self.closed_by_client += 1
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                line = head.split(b"\r\n", 1)[0]
                with self.lock:
                    self.requests.append(line)
                    n = len(self.requests)
                try:
                    self.answer(n, line, conn)
                except OSError:
                    return
                with self.lock:
                    self.answered.append(line)


@contextlib.contextmanager
def scripted(answer: Callable[[int, bytes, socket.socket], None]) -> Iterator[ScriptedServer]:
    server = ScriptedServer(answer)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server.port = listener.getsockname()[1]
    thread = threading.Thread(target=server.serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)


def _poll(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not reached within the deadline")
        time.sleep(0.01)


def test_bytes_on_an_idle_connection_are_never_read_as_the_next_answer() -> None:
    # The server answers, then sends a stray 408 on the idle connection (as servers do before
    # closing one). The connection is dropped at once: the next request goes on a new
    # connection and gets its own answer, never the stray one.
    def answer(n: int, _line: bytes, conn: socket.socket) -> None:
        conn.sendall(OK % (3, n, b"one" if n == 1 else b"two"))
        if n == 1:
            time.sleep(0.05)
            conn.sendall(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")

    async def main(server: ScriptedServer) -> list[Response]:
        client = HttpClient(timeout=5.0)
        url = f"http://127.0.0.1:{server.port}/x"
        try:
            first = await client.request("GET", url)
            # The client closes the connection that received bytes no request asked for.
            await asyncio.to_thread(_poll, lambda: server.count("closed_by_client") == 1)
            return [first, await client.request("GET", url)]
        finally:
            await client.close()

    with scripted(answer) as server:
        first, second = asyncio.run(main(server))
    assert (first.status, first.body, second.status, second.body) == (200, b"one", 200, b"two")
    assert second.headers["x-seen"] == "2"
    assert server.connections == 2 and len(server.requests) == 2


def test_a_late_answer_goes_to_nobody_and_a_short_timeout_is_kept_beside_a_long_one() -> None:
    # /slow is answered after 400 ms, /never not at all. A request given up by its caller
    # (cancelled) never hands its late answer to the next request; a 0.2 s timeout fires at
    # 0.2 s though a 5 s request is out on the same client; nothing is sent twice.
    def answer(n: int, target: bytes, conn: socket.socket) -> None:
        if b"/never" in target:
            return  # read, never answered: the connection waits for the next request
        if b"/slow" in target:
            time.sleep(0.4)
        conn.sendall(OK % (len(target), n, target))

    async def main(server: ScriptedServer) -> tuple[float, Response, Response]:
        client = HttpClient(timeout=5.0)
        base = f"http://127.0.0.1:{server.port}"
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.request("GET", base + "/slow"), 0.1)
            fresh = await client.request("GET", base + "/fresh")
            long = asyncio.ensure_future(client.request("GET", base + "/never"))
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await client.request("GET", base + "/never-short", timeout=0.2)
            took = time.monotonic() - started
            long.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await long
            # Once /slow is answered (to nobody), the next request gets its own answer.
            await asyncio.to_thread(
                _poll, lambda: b"GET /slow HTTP/1.1" in server.snapshot_answered())
            again = await client.request("GET", base + "/again")
            return took, fresh, again
        finally:
            await client.close()

    with scripted(answer) as server:
        took, fresh, again = asyncio.run(main(server))
        targets = list(server.requests)
    assert fresh.body == b"GET /fresh HTTP/1.1" and again.body == b"GET /again HTTP/1.1"
    assert 0.2 <= took < 1.0, took
    assert len(targets) == len(set(targets)) == 5, targets
