"""Readiness probes: HTTP status, TCP connect, a log line, a file that appears; and a service's
token file, which counts only once it was written after the launch."""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from enduro.base.errors import RunError, TargetUnreachable
from enduro.net.target import Target
from enduro.net.tls import client_context, server_hostname
from enduro.net.wire import build_request, read_response
from enduro.plan.models import Ready, Tls
from enduro.plan.tokens import TOKEN_REF, Credentials
from enduro.services.output import OutputLog

__all__ = ["FileMark", "NeverReady", "TokenWait", "probe_context", "wait_ready"]

# A token file is a token, not a data set: this much is read of it (and compared).
_TOKEN_MAX = 1 << 20


class NeverReady(TargetUnreachable):
    """A service did not become ready in time, or exited while starting."""


@dataclass(frozen=True)
class FileMark:
    """What a file was at one moment: identity, modification time, size and content digest."""

    dev: int
    ino: int
    mtime_ns: int
    size: int
    digest: bytes

    @classmethod
    def of(cls, path: Path) -> FileMark | None:
        """The mark of ``path``, or None when it does not exist (or cannot be read)."""
        try:
            st = path.stat()
            with path.open("rb") as fh:
                data = fh.read(_TOKEN_MAX)
        except OSError:
            return None
        return cls(st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size,
                   hashlib.sha256(data).digest())


@dataclass
class TokenWait:
    """A service's token file, read only once it was written after the launch.

    ``before`` is the file as it was before the process started: after a restart the previous
    incarnation's file is still there, and reading it would hand every request a token the new
    process rejects. A file that differs from it in inode, modification time, size or content
    was written by the new process. With ``fresh`` false a file left from before counts too."""

    path: Path
    before: FileMark | None
    fresh: bool = True
    token: str | None = None

    @classmethod
    def before_launch(cls, path: Path, *, fresh: bool = True) -> TokenWait:
        """Note what ``path`` is now, before the process that writes it starts."""
        return cls(path, FileMark.of(path), fresh)

    def poll(self) -> str | None:
        """Read the token when it is there and new: None once read, else why not yet."""
        if self.token is not None:
            return None
        mark = FileMark.of(self.path)
        if mark is None:
            return f"token file {self.path} does not exist yet"
        if self.fresh and mark == self.before:
            return (f"token file {self.path} was not written since the launch (the previous "
                    "start's file; fresh_token: false accepts it)")
        try:
            with self.path.open("rb") as fh:
                text = fh.read(_TOKEN_MAX).decode("utf-8", "replace").strip()
        except OSError as exc:
            return f"token file {self.path}: {exc.strerror or exc}"
        if not text:
            return f"token file {self.path} is empty"
        self.token = text
        return None


def probe_context(ready: Ready) -> ssl.SSLContext | None:
    """The one TLS context of an https probe: the plan's ``tls``; without it, none of the
    certificate is checked, as Kubernetes httpGet probes (the workloads check it)."""
    if ready.http is None or urlsplit(ready.http).scheme != "https":
        return None
    return client_context(ready.tls if ready.tls is not None else Tls(verify=False))


async def _http_status(ready: Ready, ctx: ssl.SSLContext | None, headers: Mapping[str, str],
                       timeout: float) -> int:
    assert ready.http is not None
    parts = urlsplit(ready.http)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    # The engine's one serializer and response framing (ProtocolError, an OSError, when the
    # answer is not HTTP/1.1). The whole answer is read, so the server sees a clean close.
    # Plan headers replace the defaults of the same name (Host, User-Agent).
    wire = build_request("GET", path, Target(parts.scheme, host, port, "").host_header,
                         [("User-Agent", "enduro-probe"), *headers.items()], close=True)
    sni = server_hostname(ready.tls or Tls(), host) if ctx is not None else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx, server_hostname=sni), timeout)
    try:
        writer.write(wire)
        answer = await asyncio.wait_for(read_response(reader, "GET", max_body=1 << 20),
                                        timeout)
        return answer.status
    finally:
        writer.close()


async def wait_ready(name: str, ready: Ready, *, service_dir: Path | None = None,
                     output: OutputLog | None = None,
                     exited: Callable[[], str | None] | None = None,
                     log_from: int = 0, token: TokenWait | None = None,
                     tokens: Mapping[str, str] | None = None) -> float:
    """Poll a readiness probe until it passes; return the seconds it took.

    ``exited`` tells whether the process died while starting (then waiting is pointless);
    ``output`` is searched by a ``log`` probe; ``service_dir`` anchors a ``file`` probe.
    With ``token`` the service is ready only once its token file was written after the launch
    as well (``token.token`` then holds it); ``tokens`` are the other services' current tokens
    for ``${token:name}`` in the probe's headers. A probe whose headers name this service's
    own token is sent once that token is read. ``ready.timeout`` bounds the whole wait."""
    start = time.monotonic()
    deadline = start + ready.timeout
    probe = _Probe(name, ready, service_dir, output, token, tokens,
                   seen_lines=log_from)  # lines of an earlier incarnation do not count
    passed = False
    while True:
        if exited is not None and (why := exited()) is not None:
            tail = ""
            if output is not None and output.tail:
                tail = "; last output:\n    " + "\n    ".join(list(output.tail)[-10:])
            raise NeverReady(f"service {name} {why} before it was ready{tail}")
        waiting = token.poll() if token is not None else None
        if not passed:
            passed = await probe.attempt()
        if passed and token is not None and token.token is None:
            waiting = token.poll()  # the probe took a while: look again before sleeping
        if passed and waiting is None:
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            what = ready.http or ready.tcp or ready.log or ready.file
            why_not = "; ".join(w for w in ("" if passed else probe.last, waiting or "") if w)
            raise NeverReady(
                f"service {name} was not ready within {ready.timeout:g}s ({what}: {why_not})")
        await probe.pause(passed)


class _Probe:
    """One service's readiness probe across its attempts: what the last attempt saw, the log
    lines already searched and the authentication failures in a row."""

    def __init__(self, name: str, ready: Ready, service_dir: Path | None,
                 output: OutputLog | None, token: TokenWait | None,
                 tokens: Mapping[str, str] | None, *, seen_lines: int) -> None:
        self.name = name
        self.ready = ready
        self.service_dir = service_dir
        self.output = output
        self.token = token
        self.tokens = tokens
        self.seen_lines = seen_lines
        self.pattern = re.compile(ready.log) if ready.log is not None else None
        self.ctx = probe_context(ready)  # one context for every attempt
        self.own_token = name in TOKEN_REF.findall(" ".join(ready.headers.values()))
        self.last = "no answer yet"
        self.auth_failures = 0

    async def attempt(self) -> bool:
        """One attempt: whether it passed; when not, ``last`` says why."""
        try:
            if self.pattern is not None:
                return self._log(self.pattern)
            if self.ready.file is not None:
                return self._file(self.ready.file)
            if self.ready.http is not None:
                return await self._http(self.ready.http)
            return await self._tcp()
        except (OSError, TimeoutError, ValueError) as exc:
            self.last = str(exc) or type(exc).__name__
            return False

    def _log(self, pattern: re.Pattern[str]) -> bool:
        """A line printed since the last attempt matches."""
        output = self.output
        if output is None:
            raise RunError(f"service {self.name}: a log probe needs a managed process")
        lines = list(output.tail)
        new = min(len(lines), output.lines_seen - self.seen_lines)
        self.seen_lines = output.lines_seen
        passed = any(pattern.search(line) for line in lines[len(lines) - new:])
        self.last = "" if passed else f"no line matched {self.ready.log!r} yet"
        return passed

    def _file(self, name: str) -> bool:
        path = Path(name)
        if not path.is_absolute() and self.service_dir is not None:
            path = self.service_dir / path
        passed = path.exists() and path.stat().st_size > 0
        self.last = "" if passed else f"{path} does not exist yet"
        return passed

    async def _http(self, url: str) -> bool:
        """The expected status; a run of 401/403 answers ends the wait early."""
        ready, token = self.ready, self.token
        if self.own_token and (token is None or token.token is None):
            self.last = "its headers need the token it has not written yet"
            return False
        own = {self.name: token.token} if token is not None and token.token else {}
        headers = Credentials({**(self.tokens or {}), **own}).fill(dict(ready.headers))
        status = await _http_status(ready, self.ctx, headers, min(5.0, ready.timeout))
        passed = status == ready.status
        self.last = "" if passed else f"answered {status}, expected {ready.status}"
        self.auth_failures = self.auth_failures + 1 if status in (401, 403) else 0
        if self.auth_failures >= ready.auth_failures:
            raise NeverReady(
                f"service {self.name}: {url} answered {status} {self.auth_failures} "
                "times in a row; a stale process (an old instance still holding "
                "the port) or a stale token is likely")
        return passed

    async def _tcp(self) -> bool:
        assert self.ready.tcp is not None
        host, _, port = self.ready.tcp.rpartition(":")
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]") or "127.0.0.1", int(port)),
            min(5.0, self.ready.timeout))
        writer.close()
        return True

    async def pause(self, passed: bool) -> None:
        """Until the next attempt: a log probe looks again as soon as there is new output."""
        if self.pattern is not None and self.output is not None and not passed:
            try:
                await asyncio.wait_for(self.output.changed(), self.ready.interval)
            except TimeoutError:
                pass
        else:
            await asyncio.sleep(self.ready.interval)
