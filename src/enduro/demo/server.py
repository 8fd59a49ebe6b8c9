"""The bundled demo service: a small, correct API shaped like the services teams soak-test.

Endpoints: ``/health``, ``/ready``, ``/metrics`` (Prometheus text), and behind a bearer token
(written to ``--token-file``) a downloads resource with parts and a lifecycle (create, list,
get, pause, resume, cancel, delete), an idempotent POST honouring ``Idempotency-Key``, and an
SSE stream of download events with ids and server timestamps that honours ``Last-Event-ID``.
With ``--dsn`` it also serves the battle endpoints on PostgreSQL (``/battle/...``, see
``enduro.demo.battle``).

It is an asyncio server with httptools' request parser, so that it keeps up with the load
enduro drives at it on a small machine. Run it with ``python -m enduro.demo.server``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httptools
from prometheus_client import generate_latest

from enduro.demo.downloads import Download, Downloads
from enduro.demo.journal import DownloadJournal
from enduro.demo.meters import DemoMeters
from enduro.demo.responses import REASONS as _REASONS
from enduro.demo.responses import Response
from enduro.demo.responses import json_response as _json

__all__ = ["DEFECTS", "DemoApp", "main", "serve"]

_EVENT_RING = 2000

DEFECTS = ("sse-duplicates", "idempotency-race", "lost-write", "queue-growth", "leak",
           "fd-leak", "slow-drift", "battle-races")


class DemoApp:
    """The state and handlers of the demo service. ``defects`` turn on realistic bugs:

    - ``sse-duplicates``: a reconnect with Last-Event-ID replays the last event it already had;
    - ``idempotency-race``: concurrent creates with one Idempotency-Key all create (the key is
      checked, then the handler yields before storing it);
    - ``lost-write``: with ``data_dir``, creates are acknowledged before they are on disk (a
      write-behind buffer flushed every 2 s), so a crash loses the last acknowledged ones;
    - ``queue-growth``: the notification queue's consumer handles one item a tick, fewer than
      arrive, so the queue grows without bound;
    - ``leak``: every create keeps 64 KB in a cache nobody reads;
    - ``fd-leak``: every create opens a file and never closes it;
    - ``slow-drift``: listing gets slower the longer the service runs (1 ms more every 2 s);
    - ``battle-races``: with ``--dsn``, the battle endpoints check, then act (see
      ``enduro.demo.battle``).
    """

    def __init__(self, token: str, *, tick_s: float = 0.1,
                 defects: frozenset[str] = frozenset(), data_dir: Path | None = None) -> None:
        self.token = token
        self.defects = defects
        self.data_dir = data_dir
        self.journal = DownloadJournal(data_dir, lost_write="lost-write" in defects)
        self.queue: deque[str] = deque()  # notifications to send, one per state change
        self.started = time.monotonic()
        self.tick_s = tick_s
        self.battle: Any = None  # the PostgreSQL endpoints (enduro.demo.battle), with --dsn
        self.downloads = Downloads(defects, self.publish, self.journal.persist)
        self.events: deque[tuple[int, str]] = deque(maxlen=_EVENT_RING)
        self.event_seq = 0
        self.subscribers: set[asyncio.Queue[tuple[int, str]]] = set()
        self.meters = DemoMeters()
        d = self.downloads
        self.routes: list[tuple[str, re.Pattern[str], str, Callable[..., Response]]] = [
            ("GET", re.compile(r"^/health$"), "health", self.health),
            ("GET", re.compile(r"^/ready$"), "ready", self.ready),
            ("GET", re.compile(r"^/metrics$"), "metrics", self.metrics),
            ("GET", re.compile(r"^/api/v1/stats$"), "stats", self.stats),
            ("GET", re.compile(r"^/api/v1/downloads$"), "list", d.list_downloads),
            ("POST", re.compile(r"^/api/v1/downloads$"), "create", d.create),
            ("GET", re.compile(r"^/api/v1/downloads/([\w-]+)$"), "get", d.get),
            ("DELETE", re.compile(r"^/api/v1/downloads/([\w-]+)$"), "delete", d.delete),
            ("GET", re.compile(r"^/api/v1/downloads/([\w-]+)/parts$"), "parts", d.parts),
            ("POST", re.compile(r"^/api/v1/downloads/([\w-]+)/(pause|resume|cancel)$"),
             "action", d.action),
        ]

    # -- plumbing ----------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str],
               body: bytes) -> Response:
        url = urlsplit(target)
        path = url.path
        started = time.perf_counter()
        route_name = "unknown"
        allowed = False
        response: Response | None = None
        for m, pattern, name, handler in self.routes:
            match = pattern.match(path)
            if not match:
                continue
            allowed = True
            if m != method:
                continue
            route_name = name
            if path.startswith("/api/") and not self._authorized(headers):
                response = _json(401, {"error": "missing or wrong bearer token"},
                                 **{"WWW-Authenticate": "Bearer"})
            else:
                try:
                    response = handler(*match.groups(), query=parse_qs(url.query),
                                       headers=headers, body=body)
                except ValueError as exc:
                    response = _json(400, {"error": str(exc)})
            break
        if response is None:
            response = (_json(405, {"error": f"{method} not allowed on {path}"}) if allowed
                        else _json(404, {"error": f"no route {path}"}))
        self.meters.requests.labels(route_name, str(response.status)).inc()
        self.meters.latency.labels(route_name).observe(time.perf_counter() - started)
        return response

    def _authorized(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        return secrets.compare_digest(auth.encode(), f"Bearer {self.token}".encode())

    def publish(self, kind: str, download: Download) -> None:
        self.event_seq += 1
        data = json.dumps({"type": kind, "download": download.id, "state": download.state,
                           "ts": time.time()}, separators=(",", ":"))
        item = (self.event_seq, data)
        self.events.append(item)
        self.queue.append(download.id)
        self.meters.events.inc()
        for queue in self.subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(item)

    # -- handlers ----------------------------------------------------------------------
    def health(self, **_: Any) -> Response:
        return _json(200, {"status": "ok"})

    def ready(self, **_: Any) -> Response:
        return _json(200, {"ready": True})

    def stats(self, **_: Any) -> Response:
        return _json(200, {"queue_depth": len(self.queue), "downloads": len(self.downloads.held),
                           "streams": len(self.subscribers)})

    def metrics(self, **_: Any) -> Response:
        counts: dict[str, int] = {}
        for d in self.downloads.held.values():
            counts[d.state] = counts.get(d.state, 0) + 1
        for state in ("queued", "downloading", "paused", "completed", "cancelled"):
            self.meters.downloads.labels(state).set(counts.get(state, 0))
        self.meters.queue.set(len(self.queue))
        return Response(200, generate_latest(self.meters.registry),
                        "text/plain; version=0.0.4; charset=utf-8")

    # -- persistence (with data_dir) ---------------------------------------------------
    def load(self) -> None:
        """Restore downloads written by an earlier run of the service."""
        self.journal.load(self.downloads)

    async def flusher(self) -> None:
        """The write-behind buffer of the lost-write defect."""
        await self.journal.flusher()

    # -- background progress -----------------------------------------------------------
    async def progress(self) -> None:
        """Advance active downloads: each part gains 16 KiB a tick."""
        while True:
            await asyncio.sleep(self.tick_s)
            # The notification consumer; the defect makes it slower than the producers.
            for _ in range(1 if "queue-growth" in self.defects else len(self.queue)):
                if self.queue:
                    self.queue.popleft()
            self.downloads.advance()


class _HttpConnection(asyncio.Protocol):
    """One client connection: parse requests with httptools, answer in order."""

    def __init__(self, app: DemoApp) -> None:
        self.app = app
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.stream_task: asyncio.Task[None] | None = None
        self.pending: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._send(_json(400, {"error": "upgrade not supported"}), keep_alive=False)
        except httptools.HttpParserError:
            self._send(_json(400, {"error": "malformed request"}), keep_alive=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.stream_task is not None:
            self.stream_task.cancel()

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = {}
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        target = self.url.decode("latin-1")
        if "slow-drift" in self.app.defects and method == "GET" and \
                target.split("?")[0] == "/api/v1/downloads":
            keep = self.parser.should_keep_alive()
            delay = (time.monotonic() - self.app.started) / 2 / 1000.0
            response = self.app.handle(method, target, self.headers, b"".join(self.body))
            asyncio.get_running_loop().call_later(delay, self._send, response, keep)
            return
        if "idempotency-race" in self.app.defects and method == "POST" and \
                target.split("?")[0] == "/api/v1/downloads":
            keep = self.parser.should_keep_alive()
            headers, body = self.headers, b"".join(self.body)
            asyncio.get_running_loop().create_task(self._racy_create(headers, body, keep))
            return
        if self.app.battle is not None and target.startswith("/battle/"):
            keep = self.parser.should_keep_alive()
            headers, body = self.headers, b"".join(self.body)
            task = asyncio.get_running_loop().create_task(
                self._battle(method, target, headers, body, keep))
            self.pending.add(task)  # held: the loop keeps only a weak reference
            task.add_done_callback(self.pending.discard)
            return
        if method == "GET" and target.split("?")[0] == "/api/v1/events":
            if not self.app._authorized(self.headers):
                self._send(_json(401, {"error": "missing or wrong bearer token"}), True)
                return
            query = parse_qs(urlsplit(target).query).get("download")
            self.stream_task = asyncio.get_running_loop().create_task(
                self._stream(query[0] if query else None))
            return
        response = self.app.handle(method, target, self.headers, b"".join(self.body))
        self._send(response, self.parser.should_keep_alive())

    async def _racy_create(self, headers: dict[str, str], body: bytes, keep: bool) -> None:
        app = self.app
        key = headers.get("idempotency-key")
        if key is not None and key not in app.downloads.keys and app._authorized(headers):
            # The bug: the key is checked, then the handler waits (a database round trip)
            # before storing it, so concurrent requests with the key all create.
            await asyncio.sleep(0.02)
            app.downloads.keys.pop(key, None)
        self._send(app.handle("POST", "/api/v1/downloads", headers, body), keep)

    async def _battle(self, method: str, target: str, headers: dict[str, str], body: bytes,
                      keep: bool) -> None:
        started = time.perf_counter()
        status, doc = await self.app.battle.handle(method, target, headers, body)
        self.app.meters.requests.labels("battle", str(status)).inc()
        self.app.meters.latency.labels("battle").observe(time.perf_counter() - started)
        self._send(Response(status) if doc is None else _json(status, doc), keep)

    def _send(self, r: Response, keep_alive: bool) -> None:
        if self.transport is None:
            return
        head = [f"HTTP/1.1 {r.status} {_REASONS.get(r.status, 'Unknown')}"]
        if r.status != 204:
            head.append(f"Content-Type: {r.content_type}")
            head.append(f"Content-Length: {len(r.body)}")
        head.extend(f"{k}: {v}" for k, v in r.headers.items())
        if not keep_alive:
            head.append("Connection: close")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + r.body)
        if not keep_alive:
            self.transport.close()

    async def _stream(self, download: str | None = None) -> None:
        """The event stream; with ``download`` (``?download=ID``), that download's events
        only (their ids keep the stream's numbering, so they are not consecutive)."""
        app = self.app
        mark = f'"download":{json.dumps(download)},' if download is not None else ""
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Cache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n"
                             b"retry: 1000\n\n")
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue(maxsize=10000)
        last = self.headers.get("last-event-id", "")
        app.subscribers.add(queue)
        app.meters.streams.inc()
        try:
            if last.isdigit():
                # The defect replays from the last id inclusive: one duplicate per reconnect.
                first = int(last) if "sse-duplicates" in app.defects else int(last) + 1
                for seq, data in list(app.events):
                    if seq >= first and mark in data:
                        self._event(seq, data)
            while self.transport is not None:
                try:
                    seq, data = await asyncio.wait_for(queue.get(), 15.0)
                except TimeoutError:
                    self.transport.write(b": keep-alive\n\n")
                    continue
                if (last.isdigit() and seq <= int(last)) or mark not in data:
                    continue
                self._event(seq, data)
        finally:
            app.subscribers.discard(queue)
            app.meters.streams.dec()

    def _event(self, seq: int, data: str) -> None:
        if self.transport is not None:
            self.transport.write(f"id: {seq}\nevent: download\ndata: {data}\n\n".encode())


async def serve(host: str, port: int, token: str, token_file: Path | None,
                ready: Callable[[int], None] | None = None,
                defects: frozenset[str] = frozenset(), data_dir: Path | None = None,
                dsn: str | None = None, db_pool: int = 10) -> None:
    """Serve until cancelled or signalled (SIGTERM/SIGINT)."""
    app = DemoApp(token, defects=defects, data_dir=data_dir)
    app.load()
    if dsn is not None:
        from enduro.demo.battle import Battle
        app.battle = Battle(dsn, db_pool, racy="battle-races" in defects)
        await app.battle.open()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _HttpConnection(app), host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    if token_file is not None:
        token_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = token_file.with_name(token_file.name + ".tmp")
        tmp.write_text(token + "\n")
        os.replace(tmp, token_file)
    progress = loop.create_task(app.progress())
    flusher = loop.create_task(app.flusher())
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopped.set)
    if ready is not None:
        ready(bound)
    try:
        await stopped.wait()
    finally:
        progress.cancel()
        flusher.cancel()
        server.close()
        if app.battle is not None:
            await app.battle.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="enduro-demo-server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token-file", type=Path, default=None)
    parser.add_argument("--token", default=None, help="default: a random token")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep downloads in DIR/downloads.jsonl across restarts")
    parser.add_argument("--defect", action="append", default=[], choices=DEFECTS,
                        help="turn on a realistic bug (repeatable)")
    parser.add_argument("--dsn", default=None,
                        help="serve the battle endpoints (/battle/...) on this PostgreSQL")
    parser.add_argument("--db-pool", type=int, default=10,
                        help="PostgreSQL connections for the battle endpoints (default 10)")
    parser.add_argument("--config", type=Path, default=None,
                        help="a TOML file with host, port and token_file (flags win)")
    args = parser.parse_args(argv)
    if args.config is not None:
        import tomllib
        try:
            config = tomllib.loads(args.config.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            parser.error(f"--config {args.config}: {exc}")
        if args.host == "127.0.0.1" and "host" in config:
            args.host = str(config["host"])
        if args.port == 0 and "port" in config:
            args.port = int(config["port"])
        if args.token_file is None and "token_file" in config:
            args.token_file = Path(config["token_file"])
    token = args.token or secrets.token_urlsafe(24)

    def ready(port: int) -> None:
        print(f"listening on http://{args.host}:{port}", flush=True)

    try:
        import uvloop
        uvloop.run(serve(args.host, args.port, token, args.token_file, ready,
                         frozenset(args.defect), args.data_dir, args.dsn, args.db_pool))
    except ImportError:  # pragma: no cover
        asyncio.run(serve(args.host, args.port, token, args.token_file, ready,
                          frozenset(args.defect), args.data_dir, args.dsn, args.db_pool))
    return 0


if __name__ == "__main__":
    sys.exit(main())
