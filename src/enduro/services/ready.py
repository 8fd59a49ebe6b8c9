"""Readiness probes: HTTP status, TCP connect, a log line, a file that appears."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from enduro.engine.request import Target
from enduro.engine.wire import build_request, read_response
from enduro.errors import RunError, TargetUnreachable
from enduro.plan.models import Ready
from enduro.services.output import OutputLog

__all__ = ["NeverReady", "wait_ready"]


class NeverReady(TargetUnreachable):
    """A service did not become ready in time, or exited while starting."""


async def _http_status(url: str, timeout: float) -> int:
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if tls else 80)
    ctx = ssl.create_default_context() if tls else None
    if ctx is not None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    # The engine's one serializer and response framing (ProtocolError, an OSError, when the
    # answer is not HTTP/1.1). The whole answer is read, so the server sees a clean close.
    wire = build_request("GET", path, Target(parts.scheme, host, port, "").host_header,
                         [("User-Agent", "enduro-probe")], close=True)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx, server_hostname=host if ctx else None),
        timeout)
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
                     log_from: int = 0) -> float:
    """Poll a readiness probe until it passes; return the seconds it took.

    ``exited`` tells whether the process died while starting (then waiting is pointless);
    ``output`` is searched by a ``log`` probe; ``service_dir`` anchors a ``file`` probe."""
    start = time.monotonic()
    deadline = start + ready.timeout
    last = "no answer yet"
    auth_failures = 0
    seen_lines = log_from  # lines of an earlier incarnation do not count
    pattern = re.compile(ready.log) if ready.log is not None else None
    while True:
        if exited is not None and (why := exited()) is not None:
            tail = ""
            if output is not None and output.tail:
                tail = "; last output:\n    " + "\n    ".join(list(output.tail)[-10:])
            raise NeverReady(f"service {name} {why} before it was ready{tail}")
        try:
            if pattern is not None:
                if output is None:
                    raise RunError(f"service {name}: a log probe needs a managed process")
                lines = list(output.tail)
                new = min(len(lines), output.lines_seen - seen_lines)
                seen_lines = output.lines_seen
                if any(pattern.search(line) for line in lines[len(lines) - new:]):
                    return time.monotonic() - start
                last = f"no line matched {ready.log!r} yet"
            elif ready.file is not None:
                path = Path(ready.file)
                if not path.is_absolute() and service_dir is not None:
                    path = service_dir / path
                if path.exists() and path.stat().st_size > 0:
                    return time.monotonic() - start
                last = f"{path} does not exist yet"
            elif ready.http is not None:
                status = await _http_status(ready.http, min(5.0, ready.timeout))
                if status == ready.status:
                    return time.monotonic() - start
                last = f"answered {status}, expected {ready.status}"
                auth_failures = auth_failures + 1 if status in (401, 403) else 0
                if auth_failures >= ready.auth_failures:
                    raise NeverReady(
                        f"service {name}: {ready.http} answered {status} {auth_failures} times "
                        "in a row; a stale process (an old instance still holding the port) "
                        "or a stale token is likely")
            else:
                assert ready.tcp is not None
                host, _, port = ready.tcp.rpartition(":")
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host.strip("[]") or "127.0.0.1", int(port)),
                    min(5.0, ready.timeout))
                writer.close()
                return time.monotonic() - start
        except (OSError, TimeoutError, ValueError) as exc:
            last = str(exc) or type(exc).__name__
        if time.monotonic() >= deadline:
            probe = ready.http or ready.tcp or ready.log or ready.file
            raise NeverReady(
                f"service {name} was not ready within {ready.timeout:g}s ({probe}: {last})")
        if pattern is not None and output is not None:
            try:
                await asyncio.wait_for(output.changed(), ready.interval)
            except TimeoutError:
                pass
        else:
            await asyncio.sleep(ready.interval)
