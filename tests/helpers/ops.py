"""Python workload ops used by the fault tests: a Redis PING and a NATS publish/consume."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def redis_ping(ctx: Any) -> None:
    """PING over a kept connection; a lost connection is reopened on the next op."""
    conn = ctx.state.get("conn")
    if conn is None:
        conn = ctx.state["conn"] = await asyncio.open_connection("127.0.0.1",
                                                                 ctx.params["port"])
    reader, writer = conn
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        line = await reader.readline()
        if line != b"+PONG\r\n":
            raise ConnectionResetError(f"unexpected answer {line!r}")
    except BaseException:
        ctx.state.pop("conn", None)
        writer.close()
        raise


async def nats_roundtrip(ctx: Any) -> None:
    """Publish through one cluster node and wait for the message on a subscription held
    through another: delivery across the cluster."""
    import nats

    state = ctx.state
    if "pub" not in state:
        urls = ctx.params["servers"]
        async def quiet(_exc: Exception) -> None:
            return None  # reconnects are expected while nodes restart

        opts = {"allow_reconnect": True, "max_reconnect_attempts": -1,
                "reconnect_time_wait": 0.1, "connect_timeout": 1, "error_cb": quiet}
        state["queue"] = asyncio.Queue()
        offset = ctx.vu % len(urls)
        state["sub_conn"] = await nats.connect(urls[offset:] + urls[:offset], **opts)
        state["pub"] = await nats.connect(urls[offset + 1:] + urls[:offset + 1], **opts)
        subject = f"enduro.test.{ctx.worker}.{ctx.vu}"
        state["subject"] = subject

        async def on_message(msg: Any) -> None:
            state["queue"].put_nowait(msg.data)

        await state["sub_conn"].subscribe(subject, cb=on_message)
        await state["sub_conn"].flush(timeout=2)
    payload = str(ctx.seq).encode()
    await state["pub"].publish(state["subject"], payload)
    while True:
        data = await asyncio.wait_for(state["queue"].get(), timeout=1.0)
        if data == payload:
            return


async def close_all(state: dict[str, Any]) -> None:
    for key in ("pub", "sub_conn"):
        with contextlib.suppress(Exception):
            await state[key].close()
