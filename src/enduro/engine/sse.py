"""Server-Sent Events workloads: a pool of streams with churn and Last-Event-ID reconnects.

Recorded as two ops per workload:
- ``<name>:connect``: one request per connection attempt; errors are failed connects (and
  ``stall``s); latency is the time to the first event;
- ``<name>:event``: one request per event; errors of class ``duplicate`` (an id this client
  already saw, across reconnects) and ``gap`` (ids missing in a sequential stream); latency is
  the delivery latency when events carry a server timestamp, service time the gap since the
  client's previous event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from enduro.engine.http import classify
from enduro.engine.quiet import Quiet
from enduro.net.conditions import json_path, parse_json
from enduro.net.target import Target
from enduro.net.tls import client_context, server_hostname
from enduro.net.wire import StreamResponse, UnsafeValue, merge_headers, request_head
from enduro.observe.window import UNSAFE_VALUE, OpCounter, Recorder
from enduro.plan.models import SseWorkload
from enduro.plan.tokens import Credentials, Filled

__all__ = ["SseDriver", "StreamState", "StreamStats", "churn_count", "count_event", "open_stream",
           "read_events", "summarize_streams", "write_streams"]

_monotonic = time.monotonic
_SEEN_KEEP = 20_000


class StreamStats:
    """The figures of one stream over the whole run."""

    __slots__ = (
        "connects",
        "duplicates",
        "events",
        "failed",
        "gaps",
        "longest_gap_s",
        "replayed",
        "resumed",
        "stalls",
        "worst_ttfe_s",
    )

    def __init__(self) -> None:
        self.connects = 0
        self.failed = 0
        self.resumed = 0
        self.replayed = 0
        self.events = 0
        self.duplicates = 0
        self.gaps = 0
        self.stalls = 0
        self.worst_ttfe_s = 0.0
        self.longest_gap_s = 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in self.__slots__}
        out["worst_ttfe_s"] = round(self.worst_ttfe_s, 6)
        out["longest_gap_s"] = round(self.longest_gap_s, 6)
        return out


class StreamState:
    """What one subscriber keeps across the connections of its stream: its Last-Event-ID,
    the ids it saw (for duplicates), when its last event came, and its figures."""

    def __init__(self) -> None:
        self.stats = StreamStats()
        self.last_id: str | None = None
        self.seen: set[str] = set()
        self.order: deque[str] = deque()
        self.last_event_at: float | None = None
        # Wall time its current connection was answered: an event the server stamped before
        # it was generated while this client was away (a replay after a resume).
        self.connected_wall: float | None = None

    def remember(self, event_id: str) -> bool:
        """False when the id was seen before (a duplicate)."""
        if event_id in self.seen:
            return False
        self.seen.add(event_id)
        self.order.append(event_id)
        if len(self.order) > _SEEN_KEEP:
            self.seen.discard(self.order.popleft())
        return True


class _Client(StreamState):
    """One logical subscriber of the pool: its stream, and its task and churn kick."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.task: asyncio.Task[None] | None = None
        self.kick: asyncio.Event = asyncio.Event()
        self.stalled = False
        # When its connect request went out, while the response head is awaited.
        self.connecting_since: float | None = None


def churn_count(clients: int, fraction: float, max_fraction: float) -> int:
    """How many clients one churn round replaces: ``fraction`` of them, capped at
    ``max_fraction``, and never all at once."""
    return max(0, min(round(clients * fraction), int(clients * max_fraction), clients - 1))


# The longest line of an event stream enduro reads (the SSE format sets none).
MAX_LINE_BYTES = 1 << 20


class LineTooLong(ValueError):
    """A line of an event stream exceeded ``MAX_LINE_BYTES``."""


class SseDriver:
    """Drives one SSE workload in this process."""

    def __init__(self, workload: SseWorkload, name: str, target: Target, recorder: Recorder,
                 rng: random.Random, *, clients: int,
                 credentials: Credentials | None = None, quiet: Quiet | None = None) -> None:
        self.workload = workload
        self.name = name
        # Told while a churn round is in force (workloads with ``not_during: [churn]``).
        self.quiet = quiet
        # Every connect and reconnect takes the current tokens.
        self._headers = Filled(workload.headers, credentials)
        self._path = Filled(workload.path, credentials)
        self.target = target
        self.rng = rng
        self.connect: OpCounter = recorder.counter(f"{name}:connect")
        self.events: OpCounter = recorder.counter(f"{name}:event")
        self.clients = [_Client(i) for i in range(clients)]
        self.sending = False
        self._ssl: ssl.SSLContext | None = (
            client_context(workload.tls) if target.tls else None)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connected: set[int] = set()

    def _request(self, client: _Client) -> bytes:
        """The connect request; ``UnsafeValue`` when a header (such as a Last-Event-ID the
        server chose) would put control characters on the wire."""
        lines: list[tuple[str, object]] = [
            ("Host", self.target.host_header), ("Accept", "text/event-stream"),
            ("Cache-Control", "no-cache"), ("User-Agent", "enduro"),
            *self._headers.get().items()]
        if client.last_id is not None:
            lines.append(("Last-Event-ID", client.last_id))
        # Plan headers replace the defaults of the same name, in any case.
        return request_head("GET", f"{self.target.prefix}{self._path.get()}",
                            merge_headers((), lines))

    async def run(self, duration: float) -> None:
        self.sending = True
        end = _monotonic() + duration
        for c in self.clients:
            c.task = asyncio.ensure_future(self._client_loop(c, end))
        side = [asyncio.ensure_future(self._stall_watch(end))]
        if self.workload.churn is not None:
            side.append(asyncio.ensure_future(self._churn(end)))
        try:
            await asyncio.sleep(max(0.0, end - _monotonic()))
        finally:
            for t in side:
                t.cancel()

    async def _churn(self, end: float) -> None:
        churn = self.workload.churn
        assert churn is not None
        n = len(self.clients)
        while self.sending and _monotonic() < end:
            await asyncio.sleep(churn.every)
            count = churn_count(n, churn.fraction, churn.max_fraction)
            kicked = self.rng.sample(self.clients, max(0, count))
            if self.quiet is not None and kicked:
                self.quiet.set("churn", f"sse:{self.name}", True)
                task = asyncio.ensure_future(self._churn_settles(kicked))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            for client in kicked:
                client.kick.set()

    async def _churn_settles(self, kicked: list[_Client]) -> None:
        """A churn round is in force until its clients are connected again (or have had
        their reconnect delay and a connect timeout to be)."""
        w = self.workload
        assert self.quiet is not None
        limit = _monotonic() + w.reconnect_delay + w.reconnect_jitter + w.connect_timeout
        connects = [c.stats.connects for c in kicked]
        try:
            # Back: a kicked client made a new connect since, and it was answered.
            while _monotonic() < limit and self.sending:
                if all(c.stats.connects > n and c.index in self.connected
                       for c, n in zip(kicked, connects, strict=True)):
                    return
                await asyncio.sleep(0.01)
        finally:
            self.quiet.set("churn", f"sse:{self.name}", False)

    async def _stall_watch(self, end: float) -> None:
        limit = self.workload.stall_after
        while self.sending and _monotonic() < end:
            await asyncio.sleep(min(1.0, limit / 4))
            now = _monotonic()
            for c in self.clients:
                if c.index in self.connected and c.last_event_at is not None and \
                        now - c.last_event_at > limit and not c.stalled:
                    c.stalled = True
                    c.stats.stalls += 1
                    self.connect.error("stall")

    async def _client_loop(self, client: _Client, end: float) -> None:
        w = self.workload
        while self.sending and _monotonic() < end:
            await self._session(client)
            if not self.sending:
                return
            delay = w.reconnect_delay + self.rng.uniform(0, w.reconnect_jitter)
            await asyncio.sleep(delay)

    async def _session(self, client: _Client) -> None:
        """One connection: connect, read events until closed, kicked (churn) or stopped."""
        c = self.connect
        started = _monotonic()
        client.kick.clear()
        client.stats.connects += 1
        if client.last_id is not None:
            client.stats.resumed += 1
        try:
            wire = self._request(client)
        except UnsafeValue:
            c.requests += 1
            client.stats.failed += 1
            c.error(UNSAFE_VALUE)
            # An id the server chose that cannot be sent back: resume without it.
            client.last_id = None
            return
        client.connecting_since = started
        try:
            response, writer, status = await open_stream(
                self.target, wire, self._ssl, server_hostname(self.workload.tls,
                                                              self.target.host),
                self.workload.connect_timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            client.connecting_since = None
            c.requests += 1
            client.stats.failed += 1
            c.error(classify(exc))
            return
        client.connecting_since = None
        client.connected_wall = time.time()
        if status != 200:
            c.requests += 1
            client.stats.failed += 1
            c.error("4xx" if 400 <= status < 500 else "5xx" if status >= 500 else "status")
            writer.close()
            return
        self.connected.add(client.index)
        reading = asyncio.ensure_future(self._consume(client, response, started))
        kicked = asyncio.ensure_future(client.kick.wait())
        try:
            await asyncio.wait([reading, kicked], return_when=asyncio.FIRST_COMPLETED)
        finally:
            reading.cancel()
            kicked.cancel()
            self.connected.discard(client.index)
            writer.close()

    async def _consume(self, client: _Client, response: StreamResponse,
                       started: float) -> None:
        c = self.connect
        first = True
        try:
            async for event in read_events(response):
                if first:
                    first = False
                    c.requests += 1
                    ttfe = _monotonic() - started
                    c.lat.append(int(ttfe * 1_000_000))
                    client.stats.worst_ttfe_s = max(client.stats.worst_ttfe_s, ttfe)
                self._on_event(client, event)
        except LineTooLong:
            # Not an event stream this client can read: an error of the connect (before any
            # event) or of the events; the client connects again.
            op = c if first else self.events
            op.requests += 1
            op.error("protocol")
            if first:
                client.stats.failed += 1
            return
        except (OSError, ValueError):
            pass
        if first:
            c.requests += 1
            client.stats.failed += 1
            c.error("closed")  # the stream ended before its first event

    def _on_event(self, client: _Client, event: dict[str, str]) -> None:
        client.stalled = False
        w = self.workload
        count_event(client, event, self.events, w.ids, w.ts_path, w.ts_unit)

    async def drain(self, grace: float) -> None:
        """No new connects; connects awaiting their answer get up to ``grace``."""
        self.sending = False
        deadline = _monotonic() + grace
        while _monotonic() < deadline and any(
                c.connecting_since is not None for c in self.clients):
            await asyncio.sleep(0.01)
        self.close_all()

    def close_all(self) -> None:
        """Stop every stream; a connect still unanswered is counted, class ``unfinished``."""
        self.sending = False
        for task in list(self._tasks):
            task.cancel()
        now = _monotonic()
        for c in self.clients:
            if c.connecting_since is not None:
                self.connect.unfinished(c.connecting_since, c.connecting_since, now)
                c.stats.failed += 1
                c.connecting_since = None
            if c.task is not None:
                c.task.cancel()


async def open_stream(target: Target, wire: bytes, context: ssl.SSLContext | None,
                      hostname: str | None, timeout: float,
                      ) -> tuple[StreamResponse, asyncio.StreamWriter, int]:
    """Connect to ``target``, send the request ``wire`` and read the answer's head (1xx
    interim answers skipped), each within ``timeout``: the response to read events from,
    its writer (the caller closes it) and its status. The connection is closed on error."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(target.host, target.port, ssl=context,
                                server_hostname=hostname if context else None,
                                limit=1 << 20), timeout)
    try:
        writer.write(wire)
        response = StreamResponse(reader, "GET")
        head = await asyncio.wait_for(response.read_head(), timeout)
    except BaseException:
        writer.close()
        raise
    return response, writer, head.status


async def read_events(response: StreamResponse) -> AsyncIterator[dict[str, str]]:
    """Yield events as dicts (id, event, data) parsed per the SSE format, from the body
    as the wire module decodes it (chunked, by length, or up to the close)."""
    buffer = b""
    event: dict[str, str] = {}
    data_lines: list[str] = []
    async for chunk in response.body_chunks():
        buffer += chunk
        if b"\n" not in chunk:
            # A line that never ends (a server streaming without newlines) would grow
            # without bound and be searched again on every read.
            if len(buffer) > MAX_LINE_BYTES:
                raise LineTooLong(f"an event stream line over {MAX_LINE_BYTES} bytes")
            continue
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            text = line.decode("utf-8", "replace").rstrip("\r")
            if not text:
                if data_lines or "id" in event:
                    event["data"] = "\n".join(data_lines)
                    yield event
                event = {}
                data_lines = []
                continue
            if text.startswith(":"):
                continue
            field, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data_lines.append(value)
            elif field in ("id", "event", "retry"):
                event[field] = value
        if len(buffer) > MAX_LINE_BYTES:
            raise LineTooLong(f"an event stream line over {MAX_LINE_BYTES} bytes")


def count_event(client: StreamState, event: dict[str, str], e: OpCounter, ids: str,
                ts_path: str | None, ts_unit: str) -> None:
    """Count one event of ``client``'s stream in ``e``: a request; an error of class
    ``duplicate`` (an id seen before) or ``gap`` (ids missing in a ``sequential`` stream);
    its delivery latency from the server's stamp at ``ts_path`` (a replay after a resume
    kept apart); the time since the stream's previous event as its service time."""
    now = _monotonic()
    e.requests += 1
    stats = client.stats
    stats.events += 1
    if client.last_event_at is not None:
        gap = now - client.last_event_at
        e.svc.append(int(gap * 1_000_000))
        stats.longest_gap_s = max(stats.longest_gap_s, gap)
    client.last_event_at = now
    event_id = event.get("id")
    if event_id is not None:
        if not client.remember(event_id):
            stats.duplicates += 1
            e.error("duplicate")
        elif ids == "sequential" and client.last_id is not None and \
                event_id.isdigit() and client.last_id.isdigit():
            missing = int(event_id) - int(client.last_id) - 1
            if missing > 0:
                stats.gaps += missing
                e.errors += missing
                e.classes["gap"] = e.classes.get("gap", 0) + missing
        if client.last_id is None or not (event_id.isdigit() and client.last_id.isdigit()) \
                or int(event_id) > int(client.last_id):
            client.last_id = event_id
    if ts_path is not None:
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            ts = float(json_path(parse_json(event.get("data", "")), ts_path))
            if ts_unit == "ms":
                ts /= 1000.0
            if client.connected_wall is not None and ts < client.connected_wall:
                # Stamped before this connection existed: a replay of what the client
                # missed while away. Its age is the reconnect's, not the delivery's.
                stats.replayed += 1
            else:
                delay = time.time() - ts
                e.lat.append(max(1, int(delay * 1_000_000)))


def write_streams(path: Path, worker: int, drivers: list[tuple[str, SseDriver]]) -> None:
    """Append one line per stream of this worker's SSE drivers to ``path``."""
    if not drivers:
        return
    with path.open("a", encoding="utf-8") as out:
        for name, driver in drivers:
            # One write per driver keeps lines whole when workers append at once.
            out.write("".join(
                json.dumps({"workload": name, "worker": worker, "stream": c.index,
                            **c.stats.to_json()}) + "\n" for c in driver.clients))


_FLAGS = ("duplicates", "gaps", "stalls", "failed")


def _trouble(row: dict[str, Any]) -> int:
    return sum(int(row[k]) for k in _FLAGS)


def summarize_streams(path: Path, worst: int = 5) -> dict[str, Any]:
    """Per SSE workload: how figures spread over its streams, how many streams saw each kind
    of trouble, and the ``worst`` streams by trouble. Empty when ``path`` does not exist."""
    by_workload: dict[str, list[dict[str, Any]]] = {}
    if not path.exists():
        return {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            with contextlib.suppress(ValueError, KeyError):
                row = json.loads(line)
                by_workload.setdefault(str(row["workload"]), []).append(row)
    out: dict[str, Any] = {}
    for name, rows in by_workload.items():
        events = [int(r["events"]) for r in rows]
        ranked = sorted((r for r in rows if _trouble(r)), key=_trouble, reverse=True)
        connects = sum(int(r["connects"]) for r in rows)
        out[name] = {
            "streams": len(rows),
            "events_per_stream": {"min": min(events), "median": statistics.median(events),
                                  "max": max(events)},
            "connects": connects,
            "resumed_with_last_event_id": sum(int(r["resumed"]) for r in rows),
            "replayed": sum(int(r.get("replayed", 0)) for r in rows),
            "streams_with": {k: sum(1 for r in rows if r[k]) for k in _FLAGS},
            "streams_without_events": sum(1 for e in events if e == 0),
            "worst_ttfe_s": max(float(r["worst_ttfe_s"]) for r in rows),
            "longest_gap_s": max(float(r["longest_gap_s"]) for r in rows),
            "worst_streams": [{k: r[k] for k in ("worker", "stream", *_FLAGS, "events")}
                              for r in ranked[:worst]],
            "file": path.name,
        }
    return out
