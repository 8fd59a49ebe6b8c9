"""The dashboard's HTTP server: the page and its JSON endpoints over one run directory.

Endpoints (GET; every answer JSON but the page, every number finite; times are load seconds):

- ``/``: the page, polling the three below every two seconds.
- ``/api/run``: state (``dead`` for a runner that died), elapsed and remaining time, verdict
  and rules once finished, the phase and the faults in force, and per op its ``kind`` and
  figures over the last ten seconds of stored windows (``rps``, ``errors``, ``error_rate``,
  ``p50_ms``, ``p95_ms``, ``p99_ms``) and since the start (``requests_total``,
  ``errors_total``); ``step_s``, the bucket length the page asks series in; ``results``, the
  tables of a finished run (faults with detection and recovery, streams, bursts, checkers).
- ``/api/series?since=T&samples_since=S&step=B``: per op, the windows with ``t > T``
  (columns ``t``, ``span``, ``phase``, ``requests``, ``errors``, ``p50_ms``, ``p95_ms``,
  ``p99_ms`` (null when no latency was measured), ``classes``); per target and figure, the
  resource samples with ``t > S`` (default T); with ``step``, in buckets of B seconds (a
  live run's last bucket once complete). ``windows_until``/``samples_until`` are the next
  request's T and S; ``more``: ask again at once.
- ``/api/scrapes?step=B``: the scraped series that changed, whole, per service and metric
  (summed over labels), in buckets of B seconds; how many others are not given.
- ``/api/events?since=T&after=N``: the events (faults applied, ended, undone; services
  started, exited, restarted; phases; aborts; stops; the run's start and end) with ``t`` in
  load seconds, ``seq``, ``category`` and ``label``; ``since``: those with ``t > T``;
  ``after``: those after line N (``last_seq``).

A request that is not allowed is answered 401 (no token, where one is required) or 403 (a
``Host`` that is not loopback, on a loopback listener); a malformed query value 400, an
unknown path 404, a store that cannot be read now 503. Every connection has a time limit and
their number is bounded, so no client can hold the server.
"""

from __future__ import annotations

import json
import math
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs

import psutil

from enduro.base.errors import Defect, RunError
from enduro.dashboard.access import Access, Listen
from enduro.dashboard.reader import RunReader, StoreUnavailable
from enduro.report.page import CONTENT_SECURITY_POLICY, page_html

__all__ = ["CONNECTION_TIMEOUT_S", "LINGER_S", "MAX_CONNECTIONS", "BadQuery", "Dashboard", "serve"]

CONNECTION_TIMEOUT_S = 10.0
"""A connection that sends or reads nothing for this long is closed."""
MAX_CONNECTIONS = 32
"""Connections served at once; more are answered 503 at once."""
_BUSY_BODY = b'{"error":"too many connections; retry"}'
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         b"Connection: close\r\nRetry-After: 2\r\nContent-Length: "
         + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


LINGER_S = 10.0
"""A dashboard started with a run serves this long after the run's end."""
MIN_STEP_S = 0.001
"""The shortest bucket ``/api/series`` folds windows into."""


class BadQuery(ValueError):
    """A query value that is not what the endpoint takes; answered 400 with the message."""


def _query(text: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query's values, each given at most once (``token`` aside: access reads it)."""
    try:
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=16)
    except ValueError as exc:
        raise BadQuery(f"query: {exc}") from None
    out: dict[str, str] = {}
    for name, values in fields.items():
        if name == "token":
            continue
        if name not in allowed:
            raise BadQuery(f"{name}: not a parameter of this endpoint (it takes "
                           f"{', '.join(allowed) or 'none'})")
        if len(values) > 1:
            raise BadQuery(f"{name}: given {len(values)} times; give it once")
        out[name] = values[0]
    return out


def _seconds(params: dict[str, str], name: str) -> float | None:
    text = params.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise BadQuery(f"{name}: expected load seconds (a finite number), got {text[:40]!r}")
    return value


def _step(params: dict[str, str]) -> float | None:
    """A bucket length: at least a millisecond (none: the windows as stored)."""
    step = _seconds(params, "step")
    if step is not None and step < MIN_STEP_S:
        raise BadQuery(f"step: expected seconds of at least {MIN_STEP_S:g}, got {step:g}")
    return step


def _count(params: dict[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 15:
        raise BadQuery(f"{name}: expected a whole number of zero or more, got {text[:40]!r}")
    return int(text)


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def _json(status: int, data: Any) -> _Answer:
    return _Answer(status, json.dumps(data, allow_nan=False, separators=(",", ":")).encode())


def _error(status: int, message: str, *headers: tuple[str, str]) -> _Answer:
    return _Answer(status, _json(status, {"error": message}).body, headers=headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, listen: Listen, reader: RunReader, access: Access,
                 sock: socket.socket | None = None) -> None:
        self.address_family = socket.AF_INET6 if listen.family_v6 else socket.AF_INET
        self.reader = reader
        self.access = access
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__((listen.host, listen.port), _Handler,
                         bind_and_activate=sock is None)
        if sock is not None:  # bound and listening already (``enduro run --dashboard``)
            self.socket.close()
            self.socket = sock
            self.server_address = sock.getsockname()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke (the client went away, timed out) is no news: no
        traceback on the terminal."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = CONNECTION_TIMEOUT_S
    server_version = "enduro-dashboard"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: the page polls every two seconds."""

    def do_GET(self) -> None:
        self._send(self._answer(), head=False)

    def do_HEAD(self) -> None:
        self._send(self._answer(), head=True)

    def _answer(self) -> _Answer:
        path, _, query = self.path.partition("?")
        access = self.server.access
        if not access.allows_host(self.headers.get("Host")):
            return _error(403, "the Host header must name a loopback address or localhost")
        if not access.allows_token(query, self.headers.get("Authorization")):
            return _error(401, "a token is required: ?token=TOKEN or 'Authorization: Bearer "
                          "TOKEN' (enduro dashboard printed it when it started)",
                          ("WWW-Authenticate", 'Bearer realm="enduro"'))
        reader = self.server.reader
        try:
            if path in ("/", "/index.html"):
                _query(query, ())
                return _Answer(200, page_html(title="dashboard").encode(),
                               "text/html; charset=utf-8",
                               (("Content-Security-Policy", CONTENT_SECURITY_POLICY),))
            if path == "/api/run":
                _query(query, ())
                return _json(200, reader.run())
            if path == "/api/series":
                params = _query(query, ("since", "samples_since", "step"))
                return _json(200, reader.series(_seconds(params, "since"),
                                                _seconds(params, "samples_since"),
                                                _step(params)))
            if path == "/api/scrapes":
                return _json(200, reader.scrapes(_step(_query(query, ("step",)))))
            if path == "/api/events":
                params = _query(query, ("since", "after"))
                return _json(200, reader.events(_seconds(params, "since"),
                                                _count(params, "after")))
            return _error(404, f"no such page: {path[:80]} (/, /api/run, /api/series, "
                          "/api/scrapes, /api/events)")
        except BadQuery as exc:
            return _error(400, str(exc))
        except StoreUnavailable as exc:
            return _error(503, str(exc), ("Retry-After", "2"))
        except Exception as exc:  # a defect: its traceback to a file, one line to the page
            try:
                message = str(Defect.saved(exc))
            except OSError:
                message = f"internal error in enduro ({type(exc).__name__})"
            return _error(500, message)

    def _send(self, answer: _Answer, *, head: bool) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(answer.body)


class Dashboard:
    """The server over one run directory, serving on a thread of its own once ``start``ed.
    With a ``token`` every request must carry it (what a listener off loopback requires)."""

    def __init__(self, run_dir: Path, listen: Listen, token: str | None = None,
                 sock: socket.socket | None = None) -> None:
        self.run_dir = run_dir
        self.listen = listen
        self.token = token
        try:
            self._server = _Server(listen, RunReader(run_dir), Access(token), sock)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise RunError(f"--listen {listen.url().removeprefix('http://').rstrip('/')}: "
                           f"cannot listen there ({reason})") from None
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2}, daemon=True,
                                        name="dashboard")

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose, for port 0)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Where the page is, with the token when one is required."""
        base = self.listen.url(self.port)
        return f"{base}?token={self.token}" if self.token else base

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()


def _ended(pid: int | None) -> Callable[[], bool]:
    """Whether process ``pid`` (as it is now: a later process given its number is not it) has
    ended; never, without one."""
    if pid is None:
        return lambda: False
    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        return lambda: True

    def ended() -> bool:
        try:
            return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            return True

    return ended


def serve(run_dir: Path, listen: Listen, token: str | None,
          say: Callable[[str], None], *, sock: socket.socket | None = None,
          until_pid: int | None = None) -> None:
    """Serve the dashboard of ``run_dir`` until SIGINT or SIGTERM: stopping is how it ends
    (as with ``enduro supervise``), so it returns normally then, for exit 0. With
    ``until_pid`` (the run's runner) it also ends ``LINGER_S`` after that process has, so an
    open page reads the verdict first. ``sock``: a socket already listening on ``listen``."""
    stop = threading.Event()
    runner_ended = _ended(until_pid)

    def stopped(signum: int, frame: FrameType | None) -> None:
        stop.set()

    dashboard = Dashboard(run_dir, listen, token, sock)
    previous = {sig: signal.signal(sig, stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        dashboard.start()
        say(f"dashboard of {run_dir.name}: {dashboard.url}")
        if token:
            say("every request must carry this token (?token= or 'Authorization: Bearer'); "
                "it is not shown again")
        say("Ctrl-C stops it" if until_pid is None else
            f"it stops {LINGER_S:g} s after the run's runner (pid {until_pid}) has ended")
        while not stop.wait(1.0):
            if runner_ended():
                stop.wait(LINGER_S)
                break
    finally:
        dashboard.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
