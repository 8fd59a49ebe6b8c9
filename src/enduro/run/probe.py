"""Checks made before load starts: each target answers, each service is ready."""

from __future__ import annotations

import asyncio

from enduro.base.errors import TargetUnreachable
from enduro.net.target import split_base

__all__ = ["probe_tcp"]


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


