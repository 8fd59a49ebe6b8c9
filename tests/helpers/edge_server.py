"""A raw-socket HTTP/1.1 server on 127.0.0.1 that answers in one of the edge framings RFC 9112
allows (or one it does not), run on a thread of the test process so a test reads directly
what it received.

Modes (every answer carries the same body, ``BODY``, or an SSE stream on ``/events``, or a
Prometheus exposition on ``/metrics``):

- ``length``: Content-Length, keep-alive (the plain case).
- ``chunked``: chunked body in several chunks, with trailers.
- ``eof11``: HTTP/1.1 without Content-Length or chunking: the body ends when the server closes.
- ``eof10``: HTTP/1.0 without Content-Length: the body ends when the server closes.
- ``interim``: ``100 Continue`` and ``103 Early Hints`` before each answer.
- ``nocontent``: ``204 No Content`` (with a stray Content-Length, which must be ignored).
- ``notmodified``: ``304 Not Modified`` (with a Content-Length of the unsent body).
- ``close``: ``Connection: close`` on every answer, then the server closes.
- ``commit_reset``: every 3rd request is read whole, counted as committed, then the connection
  is reset without an answer; the others are answered normally (keep-alive).
- ``malformed``: a status line that is not HTTP (``HTTP/1.1 2OO OK``).
- ``idle_close``: like ``length``, but a connection idle for 100 ms is closed by the server
  (a short keep-alive timeout, as many servers have).

A HEAD request gets the headers of the answer and never a body, in every mode. Every request's
target is recorded, so a test asserts that no request reached the server twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BODY", "MODES", "EdgeServer", "edge_server"]

BODY = b'{"state":"completed","pad":"' + b"x" * 200 + b'"}'
MODES = ("length", "chunked", "eof11", "eof10", "interim", "nocontent", "notmodified", "close",
         "commit_reset", "malformed", "idle_close")
IDLE_CLOSE_S = 0.1
METRICS = b"# TYPE edge_up gauge\nedge_up 1\n# TYPE edge_total counter\nedge_total 42\n"
EVENTS = 3


@dataclass
class EdgeServer:
    """What the server saw. Read it only through ``snapshot`` (thread-safe)."""

    mode: str
    url: str = ""
    received: int = 0
    answered: int = 0
    resets: int = 0
    connections: int = 0
    targets: Counter[str] = field(default_factory=Counter)
    methods: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> dict[str, Any]:
        """A copy of the counters."""
        with self._lock:
            return {"received": self.received, "answered": self.answered,
                    "resets": self.resets, "connections": self.connections,
                    "targets": Counter(self.targets), "methods": dict(self.methods)}

    def duplicates(self) -> dict[str, int]:
        """Targets received more than once."""
        with self._lock:
            return {t: n for t, n in self.targets.items() if n > 1}

    def _answer(self, method: bytes, target: bytes) -> tuple[bytes, bool]:
        """The bytes of the answer and whether the connection closes after it."""
        mode = self.mode
        if target.startswith(b"/events"):
            body = b"".join(b"id: %d\ndata: {\"n\": %d}\n\n" % (i, i) for i in range(EVENTS))
            ctype = b"text/event-stream"
        elif target.startswith(b"/metrics"):
            body, ctype = METRICS, b"text/plain; version=0.0.4"
        else:
            body, ctype = BODY, b"application/json"
        head_only = method == b"HEAD"
        if mode == "malformed":
            return b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}", False
        if mode == "nocontent":
            return b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", False
        if mode == "notmodified":
            return (b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: %d\r\n\r\n"
                    % len(body)), False
        payload = b"" if head_only else body
        if mode == "chunked":
            head = (b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n"
                    b"Trailer: X-Checksum\r\n\r\n" % ctype)
            if head_only:
                return head, False
            chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(payload[i:i + 50]), payload[i:i + 50])
                              for i in range(0, len(payload), 50))
            return head + chunks + b"0\r\nX-Checksum: 1234\r\n\r\n", False
        if mode in ("eof11", "eof10"):
            version = b"HTTP/1.1" if mode == "eof11" else b"HTTP/1.0"
            return (b"%s 200 OK\r\nContent-Type: %s\r\n\r\n%s" % (version, ctype, payload),
                    True)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
            ctype, len(body))
        if mode == "interim":
            head = (b"HTTP/1.1 100 Continue\r\n\r\n"
                    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                    + head)
        if mode == "close":
            return head + b"Connection: close\r\n\r\n" + payload, True
        return head + b"\r\n" + payload, False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
        try:
            while True:
                if self.mode == "idle_close" and self.received:
                    try:
                        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                                      IDLE_CLOSE_S)
                    except TimeoutError:
                        return  # idle too long: closed (the finally below)
                else:
                    head = await reader.readuntil(b"\r\n\r\n")
                lines = head[:-4].split(b"\r\n")
                method, _, rest = lines[0].partition(b" ")
                target = rest.rpartition(b" ")[0]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                with self._lock:
                    self.received += 1
                    n = self.received
                    self.targets[target.decode("latin-1")] += 1
                    self.methods[method.decode("latin-1")] += 1
                if self.mode == "commit_reset" and n % 3 == 0:
                    # Committed (counted above), then the connection is reset unanswered.
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                    with self._lock:
                        self.resets += 1
                    writer.transport.abort()
                    return
                data, close = self._answer(method, target)
                writer.write(data)
                await writer.drain()
                with self._lock:
                    self.answered += 1
                if close:
                    return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                ValueError):
            pass
        finally:
            writer.close()


@contextlib.contextmanager
def edge_server(mode: str) -> Iterator[EdgeServer]:
    """Serve ``mode`` on a free loopback port for the ``with`` block; yield the server."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    server = EdgeServer(mode)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stopping: list[asyncio.Future[None]] = []

    async def main() -> None:
        srv = await asyncio.start_server(server._handle, "127.0.0.1", 0, backlog=1024)
        server.url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
        done: asyncio.Future[None] = loop.create_future()
        stopping.append(done)
        started.set()
        await done
        srv.close()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise TimeoutError("the edge server did not start")
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stopping[0].set_result, None)
        thread.join(10)
        loop.close()
