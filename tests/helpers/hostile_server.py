"""A small HTTP/1.1 server on 127.0.0.1 that misbehaves on purpose, run on a thread of the
test process so that a test reads what it received directly.

Modes:

- ``ok``: answers every request ``200 {}``.
- ``silent``: reads every request and never answers any.
- ``drop10``: answers every request except each 10th it receives, which it never answers (the
  connection stays open and silent).
- ``inject``: ``/items`` answers ``{"id": INJECTED}``, a value carrying CR/LF that, pasted raw
  into a request line or a header, would smuggle a ``DELETE /admin/everything`` and a forged
  header; everything else answers ``200 {}``.

- ``garbage``, ``status0``, ``status999``, ``hugelength``, ``neglength``, ``nocolon``,
  ``badchunk``, ``twolengths``, ``bighead``: answers every request with a response that is not
  HTTP/1.1 (``RAW[mode]``: a garbled status line, status 000 or 999, a Content-Length of 10^23
  or -5, a header line without a colon, a chunk size that is not hex, two different
  Content-Lengths, a 5 MiB header) and keeps the connection open.

The server parses what arrives byte by byte as HTTP/1.1, so a smuggled request shows up in
``methods`` and a forged header in ``header_names``, exactly as a real server would see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["INJECTED", "RAW", "HostileServer", "hostile_server"]

INJECTED = "1 HTTP/1.1\r\nX-Forged: 1\r\n\r\nDELETE /admin/everything"

# Answers that are not HTTP/1.1, by mode.
RAW: dict[str, bytes] = {
    "garbage": b"GARBAGE\r\n\r\n",
    "status0": b"HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\n{}",
    "status999": b"HTTP/1.1 999 Weird\r\nContent-Length: 2\r\n\r\n{}",
    "hugelength": b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n{}",
    "neglength": b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n{}",
    "nocolon": b"HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 2\r\n\r\n{}",
    "badchunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n{}\r\n0\r\n\r\n",
    "twolengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}",
    "bighead": (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (5 << 20)
                + b"\r\nContent-Length: 2\r\n\r\n{}"),
}
# Valid HTTP whose JSON body is nested deeper than any parser's recursion limit.
_DEEP = b'{"id":' * 100_000 + b"1" + b"}" * 100_000
DEEP_JSON = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
             + str(len(_DEEP)).encode() + b"\r\n\r\n" + _DEEP)

_MODES = ("ok", "silent", "drop10", "inject", "deepjson", "endless_line", *RAW)


@dataclass
class HostileServer:
    """What the server saw. Read the counters only through ``snapshot`` (thread-safe)."""

    mode: str
    url: str = ""
    received: int = 0
    answered: int = 0
    methods: Counter[str] = field(default_factory=Counter)
    targets: list[str] = field(default_factory=list)
    header_names: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> dict[str, object]:
        """A copy of the counters."""
        with self._lock:
            return {"received": self.received, "answered": self.answered,
                    "methods": dict(self.methods), "targets": list(self.targets),
                    "header_names": dict(self.header_names), "connections": self.connections}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head[:-4].split(b"\r\n")
                method, _, rest = lines[0].partition(b" ")
                target = rest.rpartition(b" ")[0]
                length = 0
                names = []
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    names.append(name.strip().decode("latin-1").lower())
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                with self._lock:
                    self.received += 1
                    n = self.received
                    self.methods[method.decode("latin-1")] += 1
                    self.targets.append(target.decode("latin-1"))
                    self.header_names.update(names)
                if self.mode == "silent" or (self.mode == "drop10" and n % 10 == 0):
                    # Never answer; the client's request stays unanswered for good.
                    await reader.read()
                    return
                if self.mode == "endless_line":
                    # An event stream whose first line never ends (bounded: 30 s at most).
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                 b"\r\ndata: ")
                    chunk = b"a" * 65536
                    until = time.monotonic() + 30
                    while time.monotonic() < until:
                        writer.write(chunk)
                        await writer.drain()
                    return
                if self.mode in RAW or self.mode == "deepjson":
                    writer.write(RAW.get(self.mode, DEEP_JSON))
                    await writer.drain()
                    with self._lock:
                        self.answered += 1
                    continue
                body = b"{}"
                if self.mode == "inject" and target.startswith(b"/items"):
                    body = json.dumps({"id": INJECTED}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                with self._lock:
                    self.answered += 1
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                ValueError):
            pass
        finally:
            writer.close()


@contextlib.contextmanager
def hostile_server(mode: str) -> Iterator[HostileServer]:
    """Serve ``mode`` on a free loopback port for the ``with`` block; yield the server."""
    if mode not in _MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(_MODES)}")
    server = HostileServer(mode)
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
        # Handlers still waiting on silent connections end with the loop.
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the hostile server did not start within 10 s")
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stopping[0].set_result, None)
        thread.join(10)
        with contextlib.suppress(RuntimeError):
            loop.close()
