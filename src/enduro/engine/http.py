"""The HTTP/1.1 load engine: one ``asyncio.Protocol`` per keep-alive connection, responses
parsed by httptools' C parser, and drivers for the open and closed models.

The hot path allocates little beyond what a request needs: request bytes are built once per op
when they are static, the op's counters are held for the whole run, latencies are appended to
flat arrays that the recorder folds into HDR histograms once per window, and timeouts are
swept on a 100 ms tick instead of a timer per request.
"""

from __future__ import annotations

import asyncio
import bisect
import errno
import random
import resource
import socket
import ssl
import time
from collections import deque
from typing import Any

import httptools

from enduro.engine.request import PreparedRequest
from enduro.engine.schedule import ArrivalSchedule, RateStage
from enduro.net.target import Target
from enduro.net.tls import client_context
from enduro.net.wire import ProtocolError, UnsafeValue, final_head
from enduro.observe.window import GENERATOR, UNSAFE_VALUE, OpCounter, Recorder
from enduro.plan.models import HttpWorkload
from enduro.plan.tls import Tls

__all__ = ["ClosedDriver", "Connection", "HttpDriver", "OpenDriver", "classify",
           "generator_hint", "make_driver", "raise_fd_limit", "ssl_context"]

_monotonic = time.monotonic
_SWEEP_S = 0.1
_BACKLOG_S = 0.01  # how often arrivals waiting for a connection are looked at
# The shortest timer the open model sets: the loop's timers have millisecond resolution
# (libuv, selectors), and uvloop runs a shorter one at once, which made the loop spin (a wake,
# an epoll call and one request per turn) at high rates. Arrivals due sooner go out with the
# next response the loop reads (each one looks at the schedule) or at this wake.
_MIN_WAKE_S = 0.001
# Sending each due arrival as soon as a response wakes the loop keeps the added latency to
# ~0.1 ms, but costs both ends a wake-up per request (~40% more CPU per request than sending
# the arrivals of each millisecond together). The open model measures its own CPU every
# _BUSY_EVERY_S: above _BUSY_HIGH of a core it sends per millisecond (~1-2 ms more latency,
# still counted from the intended time), below _BUSY_LOW it is prompt again.
_BUSY_EVERY_S = 0.25
_BUSY_HIGH = 0.8
_BUSY_LOW = 0.5
# The open model's pool of connections: up to _MIN_CONNS, or the arrivals of a millisecond
# at the starting rate, opened before the first arrival. It doubles (up to max_connections)
# only when arrivals have been late (late_after) with every connection in use for _GROW_S on
# end, and the generator's CPU has room. A connection the server closed is replaced at once.
# A pause of the generator itself (a garbage collection, a busy moment of the run) makes
# arrivals late too, but the pool drains them within milliseconds once the loop runs: growing
# for it (one connection per waiting arrival, or doubling after 1 ms of lateness) left the pool
# at max_connections, and with 512 connections one core fell behind at 50k/s for good.
_MIN_CONNS = 8
_GROW_S = 0.2
# A generator out of file descriptors or ports waits this long before trying again, so the
# errors it records stay few and the loop stays free.
_GENERATOR_PAUSE_S = 0.25
# The longest the open model waits for its starting pool before the first arrival.
_WARM_UP_S = 1.0

# Failures that come from this machine's limits, not from the target: too many open files
# (per process or system-wide), no local port left, no socket buffer or memory.
_GENERATOR_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.EADDRNOTAVAIL, errno.ENOBUFS,
                               errno.ENOMEM})


def classify(exc: BaseException | None) -> str:
    """The error class of a transport failure."""
    if isinstance(exc, ProtocolError):
        return "protocol"
    if isinstance(exc, OSError) and exc.errno in _GENERATOR_ERRNOS:
        return GENERATOR
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    if exc is None:
        return "reset"  # the peer closed the connection mid-response
    if isinstance(exc, OSError):
        return "connect"
    return "other"


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's soft limit on open files to its hard limit (as wrk and k6 users
    do with ``ulimit -n``); return the (soft, hard) limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit cannot be the soft one; the kernel's nr_open (2^20) can.
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft, hard


def generator_hint() -> str:
    """What to tell the user when errors of class ``generator`` appear: the limits in force
    and the fix."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def text(n: int) -> str:
        return "unlimited" if n == resource.RLIM_INFINITY else str(n)

    return (f"the load generator hit its own limits (open files, local ports or socket "
            f"buffers); those errors are counted as class 'generator', not against the "
            f"target. Open files: soft limit {text(soft)}, hard limit {text(hard)} (enduro "
            f"raises the soft limit to the hard one for its load). Fix: raise the hard limit "
            f"before the run (`ulimit -n 65536` as root, `prlimit --nofile=65536:65536`, or "
            f"LimitNOFILE= in a systemd unit), use fewer connections, or widen "
            f"net.ipv4.ip_local_port_range if local ports ran out.")


def ssl_context(verify: bool, ca: str | None) -> ssl.SSLContext:
    """A client TLS context; ``verify=False`` accepts any certificate (test targets)."""
    return client_context(Tls(verify=verify, ca=ca))


class Connection(asyncio.Protocol):
    """One keep-alive connection; sends one request at a time and reports to its driver.

    Responses are framed as ``engine.wire`` frames them (RFC 9112), with httptools called
    directly to keep the hot path lean: 1xx interim answers are skipped, HEAD/204/304 have no
    body, and an answer that will not keep the connection (``Connection: close``, HTTP/1.0,
    or no length at all) takes the rare path, which reads its head again with
    ``wire.final_head`` to learn whether its body ends at the close."""

    __slots__ = ("body", "busy", "complete", "counter", "driver", "eof_body", "head",
                 "intended", "parser", "raw", "req", "sent", "status", "transport")

    def __init__(self, driver: HttpDriver) -> None:
        self.driver = driver
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.busy = False
        self.req: PreparedRequest | None = None
        self.counter: OpCounter | None = None
        self.intended = 0.0
        self.sent = 0.0
        self.body: list[bytes] | None = None
        self.head = False
        self.status = 0
        # The bytes of the response head while it is awaited (None once it is parsed): only
        # read again on the rare path, so keeping a reference costs nothing.
        self.raw: bytes | None = None
        # The answer's body ends when the server closes the connection (no length).
        self.eof_body = False

    # asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        raw = self.raw
        if raw is not None:
            # The first read is kept as it is; later ones are copied only while the head is
            # still awaited (rare: a head split over reads), up to 64 KiB.
            self.raw = (raw + data if len(raw) < 65536 else raw) if raw else data
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._fail("protocol")
            self.close()

    def eof_received(self) -> bool | None:
        if self.busy and self.eof_body:
            # The server closed the connection: a body without length ends here.
            self._complete(self.status, False)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.busy:
            if exc is None and self.eof_body:
                self._complete(self.status, False)  # closed cleanly: the body ended
            else:
                self._fail(classify(exc))
        self.driver.lost(self)

    # httptools callbacks ----------------------------------------------------------------
    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if status < 200 and status >= 100 and status != 101:  # one compare when final
            self.status = 0
            return  # 100 Continue, 103 Early Hints: the real answer follows
        self.status = status
        if self.head or not parser.should_keep_alive():
            self._rare_head(status)
        else:
            self.raw = None

    def _rare_head(self, status: int) -> None:
        """A HEAD answer, or one that will not keep the connection: read its head again with
        the wire module to know how its body ends."""
        if not self.busy:
            return
        raw = self.raw or b""
        self.raw = None
        try:
            head = final_head(raw, "HEAD" if self.head else "GET")
        except (ProtocolError, ConnectionError):
            return  # httptools judges the rest as it comes
        if not head.head_done:
            return
        if self.head:
            # A HEAD answer has no body whatever Content-Length says; httptools cannot be
            # told, so a fresh parser reads what comes next.
            self.parser = httptools.HttpResponseParser(self)
            self._complete(status, head.keep_alive)
        elif head.framing == "eof":
            self.eof_body = True

    def on_body(self, body: bytes) -> None:
        if self.body is not None:
            self.body.append(body)

    def on_message_complete(self) -> None:
        # The hot path: _complete inlined (one Python call less per response).
        if not self.busy:
            return
        status = self.status
        parser = self.parser
        if status < 200 and status != 101 and 100 <= parser.get_status_code() < 200:
            return  # the end of an interim answer
        now = _monotonic()
        self.busy = False
        req = self.req
        c = self.counter
        assert req is not None and c is not None
        c.requests += 1
        c.lat.append(int((now - self.intended) * 1_000_000))
        c.svc.append(int((now - self.sent) * 1_000_000))
        body = b"".join(self.body) if self.body is not None else b""
        cls = req.check(status, body)
        if cls is not None:
            c.error(cls)
        if not parser.should_keep_alive():
            self.close()
            return
        self.driver.ready(self, now)

    def _complete(self, status: int, keep: bool) -> None:
        """``on_message_complete`` for the rare paths (a HEAD answer, a body ended by the
        close), which know ``keep`` themselves."""
        now = _monotonic()
        self.busy = False
        self.eof_body = False
        req = self.req
        c = self.counter
        assert req is not None and c is not None
        c.requests += 1
        c.lat.append(int((now - self.intended) * 1_000_000))
        c.svc.append(int((now - self.sent) * 1_000_000))
        body = b"".join(self.body) if self.body is not None else b""
        cls = req.check(status, body)
        if cls is not None:
            c.error(cls)
        if not keep:
            self.close()
            return
        self.driver.ready(self, now)

    # driver side ------------------------------------------------------------------------
    def usable(self) -> bool:
        """Open and not closed by the server meanwhile: a request written now is sent."""
        t = self.transport
        return t is not None and not t.is_closing()

    def send(self, req: PreparedRequest, counter: OpCounter, data: bytes, intended: float,
             now: float) -> None:
        self.req = req
        self.counter = counter
        self.intended = intended
        self.sent = now
        self.busy = True
        self.head = req.head
        self.raw = b""
        self.body = [] if req.needs_body else None
        assert self.transport is not None
        self.transport.write(data)

    def _fail(self, cls: str) -> None:
        if not self.busy:
            return
        self.busy = False
        c = self.counter
        assert c is not None
        c.requests += 1
        c.error(cls)

    def timeout(self) -> None:
        self._fail("timeout")
        self.close()

    def close(self) -> None:
        t = self.transport
        if t is not None:
            t.abort()


class HttpDriver:
    """Shared machinery of both models: connections, op choice, timeouts, stopping."""

    def __init__(self, workload: HttpWorkload, target: Target, requests: list[PreparedRequest],
                 recorder: Recorder, rng: random.Random, op_prefix: str = "") -> None:
        self.workload = workload
        self.target = target
        self.requests = requests
        self.counters = [recorder.counter(op_prefix + r.name) for r in requests]
        self.rng = rng
        total = 0.0
        self._cum: list[float] = []
        for spec in workload.requests:
            total += spec.weight
            self._cum.append(total)
        self._total_weight = total
        self._single = len(requests) == 1
        self.conns: set[Connection] = set()
        self.connecting = 0
        self.sending = False
        self.seq = 0
        # One context per workload, shared by its connections.
        self._ssl = client_context(workload.tls) if target.tls else None
        self._server_hostname = workload.tls.server_name or target.host if target.tls else None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()
        self.idle_event = asyncio.Event()

    def pick(self) -> int:
        if self._single:
            return 0
        return bisect.bisect_right(self._cum, self.rng.random() * self._total_weight)

    def dispatch(self, conn: Connection, intended: float, now: float) -> bool:
        """Send the next request on ``conn``; False when it could not be sent (a templated
        value would have put control characters on the wire: counted, never sent)."""
        i = self.pick()
        req = self.requests[i]
        self.seq += 1
        try:
            data = req.bytes_for(self.seq)
        except UnsafeValue:
            c = self.counters[i]
            c.requests += 1
            c.error(UNSAFE_VALUE)
            return False
        conn.send(req, self.counters[i], data, intended, now)
        return True

    def open_connection(self) -> None:
        self.connecting += 1
        task = self.loop.create_task(self._connect())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self) -> None:
        conn = Connection(self)
        try:
            await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: conn, self.target.host, self.target.port, ssl=self._ssl,
                    server_hostname=self._server_hostname),
                timeout=min(self.workload.timeout, 10.0))
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self.connecting -= 1
            self.connect_failed(classify(exc))
            return
        self.connecting -= 1
        self.conns.add(conn)
        self.ready(conn, _monotonic())

    def start_sweeper(self) -> None:
        self._sweeper = self.loop.call_later(_SWEEP_S, self._sweep)

    def _sweep(self) -> None:
        now = _monotonic()
        for conn in list(self.conns):
            req = conn.req
            if conn.busy and req is not None and now - conn.sent > req.timeout:
                conn.timeout()
        self._sweeper = self.loop.call_later(_SWEEP_S, self._sweep)

    def in_flight(self) -> int:
        return sum(1 for c in self.conns if c.busy)

    async def drain(self, grace: float) -> None:
        """Stop sending; wait up to ``grace`` for in-flight requests; close everything."""
        self.sending = False
        deadline = _monotonic() + grace
        while self.in_flight() and _monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.close_all()

    def close_all(self) -> None:
        """Close everything; a request still unanswered is counted, class ``unfinished``."""
        self.sending = False
        if self._sweeper is not None:
            self._sweeper.cancel()
        now = _monotonic()
        for conn in list(self.conns):
            if conn.busy and conn.counter is not None:
                conn.counter.unfinished(conn.intended, conn.sent, now)
            conn.busy = False
            conn.close()
        for task in list(self._tasks):
            task.cancel()

    # hooks ------------------------------------------------------------------------------
    def ready(self, conn: Connection, now: float) -> None:
        raise NotImplementedError

    def lost(self, conn: Connection) -> None:
        raise NotImplementedError

    def connect_failed(self, cls: str) -> None:
        raise NotImplementedError

    async def run(self, duration: float) -> None:
        raise NotImplementedError


class ClosedDriver(HttpDriver):
    """N connections, each sending its next request when the last one is answered (plus an
    optional think time). Latency here is service time: the closed model cannot see queueing
    that the clients themselves cause."""

    def __init__(self, *args: Any, connections: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.target_conns = connections
        self.think = self.workload.think

    async def run(self, duration: float) -> None:
        self.sending = True
        self.start_sweeper()
        for _ in range(self.target_conns):
            self.open_connection()
        await asyncio.sleep(duration)

    def ready(self, conn: Connection, now: float) -> None:
        if not self.sending:
            return
        if self.think > 0:
            self.loop.call_later(self.think, self._send_after_think, conn)
        elif not self.dispatch(conn, now, now):
            # Not sent: try the next request a little later rather than in a tight loop.
            self.loop.call_later(0.01, self._send_after_think, conn)

    def _send_after_think(self, conn: Connection) -> None:
        # A connection the server closed meanwhile is not written to (it is being replaced).
        if self.sending and conn.usable() and not conn.busy:
            now = _monotonic()
            if not self.dispatch(conn, now, now):
                self.loop.call_later(0.01, self._send_after_think, conn)

    def lost(self, conn: Connection) -> None:
        self.conns.discard(conn)
        if self.sending:
            self.open_connection()

    def connect_failed(self, cls: str) -> None:
        # The virtual user's next request fails with the connect error; a short pause keeps a
        # dead target from turning the generator into a busy loop.
        i = self.pick()
        c = self.counters[i]
        c.requests += 1
        c.error(cls)
        if self.sending:
            self.loop.call_later(_GENERATOR_PAUSE_S if cls == GENERATOR else 0.01,
                                 self._reconnect)

    def _reconnect(self) -> None:
        if self.sending:
            self.open_connection()


class OpenDriver(HttpDriver):
    """Arrivals at the scheduled rate whatever the target does. Each request's latency counts
    from its intended send time, so a stalled target shows in the percentiles (no coordinated
    omission). Arrivals wait in a backlog when every connection is busy and new ones are opened
    up to ``max_connections``; an arrival that waited longer than its timeout is dropped."""

    def __init__(self, *args: Any, schedule: ArrivalSchedule, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schedule = schedule
        self.idle: list[Connection] = []
        self.backlog: deque[float] = deque()
        self.start = 0.0
        self.end = float("inf")
        self.next_at = float("inf")  # no arrival before run() starts the schedule
        self.late_after = self.workload.late_after
        self.max_conns = self.workload.max_connections
        self._ticker: asyncio.TimerHandle | None = None
        self.arrivals = 0
        # Prompt (each response sends the arrivals due) or per millisecond: see _BUSY_HIGH.
        self.prompt = True
        # Above _BUSY_HIGH of a core: waiting arrivals are the generator's doing, and more
        # connections would only add to its work, so the pool does not grow.
        self.saturated = False
        self._cpu_at = (0.0, 0.0)  # (monotonic, process CPU) when last measured
        # Connections the pool may hold (open and opening), and when it may grow next.
        self.pool_cap = min(self.max_conns, max(_MIN_CONNS, int(schedule.rate_at(0.0)
                                                                 * _MIN_WAKE_S)))
        # Since when arrivals have been late with the pool full (None: they are not).
        self._short_since: float | None = None

    async def run(self, duration: float) -> None:
        self.sending = True
        await self._warm_up()
        self.start = _monotonic()
        # Arrivals are meant for [start, end): a late wake-up must not add any after it.
        self.end = self.start + duration
        self.next_at = self.start + self.schedule.next()
        self._cpu_at = (self.start, time.process_time())
        self.start_sweeper()
        self._tick()
        await asyncio.sleep(duration)
        # uvloop's clock has millisecond resolution: the sleep may end a little before
        # ``end`` on this one, and the arrivals due until then were never sent nor counted.
        while (left := self.end - _monotonic()) > 0:
            await asyncio.sleep(left)
        if self._ticker is not None:
            self._ticker.cancel()
        self._tick()  # the arrivals due since the last tick, up to the end
        if self._ticker is not None:
            self._ticker.cancel()

    async def _warm_up(self) -> None:
        """Open the starting pool before the first arrival: arrivals at the start then find
        connections instead of waiting for handshakes (which also grew the pool for a wait
        that was only the connect)."""
        for _ in range(self.pool_cap):
            self.open_connection()
        deadline = _monotonic() + min(self.workload.timeout, _WARM_UP_S)
        while self.connecting and _monotonic() < deadline:
            await asyncio.sleep(_BACKLOG_S)

    def _tick(self) -> None:
        self._ticker = None
        if not self.sending:
            return
        now = _monotonic()
        if now - self._cpu_at[0] >= _BUSY_EVERY_S:
            self._measure(now)
        self._admit(now)
        if self.next_at >= self.end:
            return  # no arrival left (past the end, a zero rate, or after the last stage)
        # Wake for the next arrival, not on a fixed tick: at 10/s the loop sleeps between
        # arrivals; at high rates it wakes once per millisecond and each wake (like each
        # response read meanwhile) takes every arrival due by then. Arrivals waiting for a
        # connection are looked at every 10 ms.
        delay = self.next_at - _monotonic()
        if self.backlog:
            delay = min(delay, _BACKLOG_S)
        self._ticker = self.loop.call_later(max(_MIN_WAKE_S, delay), self._tick)

    def _measure(self, now: float) -> None:
        """Choose prompt or per-millisecond sending from the CPU used since last time."""
        cpu = time.process_time()
        busy = (cpu - self._cpu_at[1]) / (now - self._cpu_at[0])
        self._cpu_at = (now, cpu)
        self.saturated = busy > _BUSY_HIGH
        # Arrivals waiting mean the loop is behind: a wake-up per response would only add to
        # its work.
        if self.prompt and (self.saturated or self.backlog):
            self.prompt = False
        elif not self.prompt and busy < _BUSY_LOW:
            self.prompt = True

    def _admit(self, now: float) -> None:
        """Queue the arrivals due by ``now`` and send what the connections allow."""
        backlog = self.backlog
        start = self.start
        schedule = self.schedule
        next_at = self.next_at
        end = self.end
        until = min(now, end)
        while next_at <= until and next_at < end:
            backlog.append(next_at)
            self.arrivals += 1
            next_at = start + schedule.next()
        self.next_at = next_at
        if backlog:
            self._flush(now)

    def _flush(self, now: float) -> None:
        backlog = self.backlog
        idle = self.idle
        late_after = self.late_after
        timeout = self.workload.timeout
        while backlog and idle:
            intended = backlog.popleft()
            conn = idle.pop()
            if not conn.usable():
                # Closed by the server while idle: never written to; the arrival waits for
                # another connection.
                backlog.appendleft(intended)
                continue
            if now - intended > timeout:
                self._drop()
                idle.append(conn)
                continue
            if not self.dispatch(conn, intended, now):
                idle.append(conn)
                continue
            if now - intended > late_after:
                counter = conn.counter
                assert counter is not None
                counter.late += 1
        # Expire arrivals that could not be sent within their timeout.
        while backlog and now - backlog[0] > timeout:
            backlog.popleft()
            self._drop()
        if not backlog:
            self._short_since = None  # every arrival went out: the pool was enough
            return
        # A connection for each waiting arrival, within the pool's size (see _GROW_S).
        have = len(self.conns) + self.connecting
        if have >= self.pool_cap and now - backlog[0] > late_after:
            if self._short_since is None:
                self._short_since = now
            elif (now - self._short_since >= _GROW_S and not self.saturated
                  and self.pool_cap < self.max_conns):
                self.pool_cap = min(self.max_conns, 2 * self.pool_cap)
                self._short_since = now
        else:
            self._short_since = None
        for _ in range(min(len(backlog) - self.connecting, self.pool_cap - have)):
            self.open_connection()

    def _drop(self) -> None:
        c = self.counters[self.pick()]
        c.dropped += 1
        c.requests += 1
        c.error("dropped")

    def ready(self, conn: Connection, now: float) -> None:
        # While draining, arrivals already due still go out; nothing new arrives.
        if not self.sending and not self.backlog:
            return
        self.idle.append(conn)
        if self.prompt and now >= self.next_at and self.sending:
            # The loop is awake for this response anyway: arrivals due meanwhile go out
            # now, on this connection first, rather than at the next timer.
            self._admit(now)
        elif self.backlog:
            self._flush(now)

    def in_flight(self) -> int:
        return super().in_flight() + len(self.backlog)

    def close_all(self) -> None:
        """Also count arrivals that were due but never sent, class ``unfinished``."""
        if self._ticker is not None:
            self._ticker.cancel()
        now = _monotonic()
        while self.backlog:
            self.counters[self.pick()].unfinished(self.backlog.popleft(), None, now)
        super().close_all()

    def lost(self, conn: Connection) -> None:
        self.conns.discard(conn)
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def connect_failed(self, cls: str) -> None:
        # The oldest waiting arrival fails with the connect error.
        if self.backlog:
            self.backlog.popleft()
            i = self.pick()
            c = self.counters[i]
            c.requests += 1
            c.error(cls)
        if self.backlog:
            # The next waiting arrival tries a connection of its own now, not at the next
            # wake-up: against a refusing target each arrival fails when it is due.
            self._flush(_monotonic())

    async def drain(self, grace: float) -> None:
        """As the base's, and arrivals still waiting for a connection keep trying to get one
        (nothing else would open it once the schedule has ended)."""
        self.sending = False
        deadline = _monotonic() + grace
        while self.in_flight() and (now := _monotonic()) < deadline:
            if self.backlog:
                self._flush(now)
            await asyncio.sleep(_BACKLOG_S)
        self.close_all()


def make_driver(workload: HttpWorkload, target: Target, requests: list[PreparedRequest],
                recorder: Recorder, rng: random.Random, *, share: float = 1.0,
                connections: int | None = None, op_prefix: str = "") -> HttpDriver:
    """The driver for a workload's model; ``share`` is this worker's fraction of the load."""
    if workload.connections is not None:
        n = connections if connections is not None else workload.connections
        return ClosedDriver(workload, target, requests, recorder, rng, connections=n,
                            op_prefix=op_prefix)
    stages = [RateStage(s.duration, s.target) for s in workload.stages or []]
    schedule = ArrivalSchedule(rate=workload.rate, stages=stages,
                               poisson=workload.arrivals == "poisson", rng=rng, share=share)
    return OpenDriver(workload, target, requests, recorder, rng, schedule=schedule,
                      op_prefix=op_prefix)
