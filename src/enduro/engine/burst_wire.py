"""A burst round on the wire: each of its requests rendered, and every connection opened
before any request goes (the barrier)."""

from __future__ import annotations

import asyncio
import json
import re
import ssl

from enduro.engine.flow import FlowContext, render
from enduro.engine.http import classify
from enduro.net.client import MAX_HEAD_BYTES
from enduro.net.target import Target
from enduro.net.templates import Template
from enduro.net.tls import server_hostname
from enduro.net.wire import UnsafeValue, build_request
from enduro.observe.window import OpCounter
from enduro.plan.bursts import BurstWorkload

__all__ = ["open_all", "per_request", "round_wires"]

# A template naming a per-request variable: {{i}}, {{sender}} (also inside an expression).
_PER_REQUEST = re.compile(r"\{\{[^}]*\b(i|sender)\b[^}]*\}\}")

Conns = list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]


def per_request(workload: BurstWorkload) -> bool:
    """Whether the request names ``{{i}}`` or ``{{sender}}``: a burst is otherwise N
    identical requests, rendered once per round."""
    return bool(_PER_REQUEST.search(workload.request.model_dump_json(by_alias=True)))


def round_wires(w: BurstWorkload, ctx: FlowContext, target: Target,
                each: bool) -> list[bytes] | None:
    """Each request of the round, rendered with its ``{{i}}`` and ``{{sender}}`` when
    ``each``; None when a rendered value cannot be written safely."""
    wires: list[bytes] = []
    if not each:
        wire = _wire(w, ctx, target)
        return None if wire is None else [wire] * w.size
    try:
        for i in range(w.size):
            ctx.vars["i"] = i
            ctx.vars["sender"] = i % w.senders
            wire = _wire(w, ctx, target)
            if wire is None:
                return None
            wires.append(wire)
    finally:
        ctx.vars.pop("i", None)
        ctx.vars.pop("sender", None)
    return wires


def _wire(w: BurstWorkload, ctx: FlowContext, target: Target) -> bytes | None:
    """One request of the round; None when a rendered value cannot be written safely."""
    req = w.request
    path = target.prefix + Template(req.path).render_target(ctx)
    if req.query:
        from urllib.parse import urlencode
        path += "?" + urlencode(render(req.query, ctx))
    body = b""
    content_type = None
    if req.json_ is not None:
        body = json.dumps(render(req.json_, ctx), separators=(",", ":")).encode()
        content_type = "application/json"
    elif req.body is not None:
        body = str(render(req.body, ctx)).encode()
    try:
        # Plan headers replace the defaults of the same name, in any case.
        return build_request(
            req.method, path, target.host_header,
            [*w.headers.items(), *render(req.headers, ctx).items()], body,
            content_type=content_type, close=True)
    except UnsafeValue:
        return None


async def open_all(w: BurstWorkload, target: Target, context: ssl.SSLContext | None,
                   op: OpCounter) -> Conns:
    """Every connection is open before any request goes: the barrier. A connection that
    fails counts as one request of ``op`` with its error."""
    opened = await asyncio.gather(
        *(asyncio.wait_for(asyncio.open_connection(
            target.host, target.port, limit=MAX_HEAD_BYTES,
            ssl=context if target.tls else None,
            server_hostname=server_hostname(w.tls, target.host) if target.tls else None),
            w.timeout)
          for _ in range(w.size)), return_exceptions=True)
    conns = [c for c in opened if isinstance(c, tuple)]
    for failure in (c for c in opened if not isinstance(c, tuple)):
        op.requests += 1
        op.error(classify(failure) if isinstance(failure, OSError | TimeoutError)
                 else "connect")
    return conns
