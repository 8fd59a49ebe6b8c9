"""Checks made before load starts: each target answers, each service is ready."""

from __future__ import annotations

import asyncio
import ssl
import time
from urllib.parse import urlsplit

from enduro.engine.request import split_base
from enduro.errors import TargetUnreachable
from enduro.plan.models import Ready

__all__ = ["probe_tcp", "wait_ready"]


async def probe_tcp(base_url: str, timeout: float = 5.0) -> None:
    """Connect once to the host and port of ``base_url``; raise ``TargetUnreachable``."""
    target = split_base(base_url)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(target.host, target.port), timeout)
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise TargetUnreachable(
            f"{base_url}: cannot connect to {target.host}:{target.port} ({reason}); is the "
            "service running?") from exc
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


async def _http_status(url: str, timeout: float) -> int:
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if tls else 80)
    ctx = ssl.create_default_context() if tls else None
    if ctx is not None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx), timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
                     "User-Agent: enduro-probe\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), timeout)
        fields = line.split()
        if len(fields) < 2 or not fields[1].isdigit():
            raise OSError(f"not an HTTP answer: {line[:60]!r}")
        return int(fields[1])
    finally:
        writer.close()


async def wait_ready(name: str, ready: Ready) -> float:
    """Poll a readiness probe until it passes; return the seconds it took."""
    start = time.monotonic()
    deadline = start + ready.timeout
    last = "no answer yet"
    auth_failures = 0
    while True:
        try:
            if ready.http is not None:
                status = await _http_status(ready.http, min(5.0, ready.timeout))
                if status == ready.status:
                    return time.monotonic() - start
                last = f"answered {status}, expected {ready.status}"
                auth_failures = auth_failures + 1 if status in (401, 403) else 0
                if auth_failures >= 5:
                    raise TargetUnreachable(
                        f"service {name}: {ready.http} answered {status} five times in a row; "
                        "a stale process or a stale token is likely")
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
            probe = ready.http or ready.tcp
            raise TargetUnreachable(
                f"service {name} was not ready within {ready.timeout:g}s ({probe}: {last})")
        await asyncio.sleep(ready.interval)
