"""A flow step's request on the wire: its bytes built once for a step without templates,
the target alone rendered into bytes built once for a step whose target alone varies, and
built in full otherwise."""

from __future__ import annotations

from collections.abc import Awaitable
from urllib.parse import urlencode

from enduro.engine.flow_context import FlowContext, FlowFailed
from enduro.engine.flow_steps import Step
from enduro.net.client import Response, split_url
from enduro.net.templates import MissingVariable, render_value
from enduro.net.wire import request_target
from enduro.plan.tokens import Credentials, Filled

__all__ = ["StepSender"]


class StepSender:
    """Sends flow steps' requests with the workload's current headers. ``step_tokens``: the
    credentials to fill in per request when the steps name a token; ``cache_sends``: whether
    bytes built once may be kept (no token refreshed during the run is in them)."""

    def __init__(self, headers: Filled[dict[str, str]], step_tokens: Credentials | None,
                 cache_sends: bool) -> None:
        self._headers = headers
        self._step_tokens = step_tokens
        self._cache_sends = cache_sends

    def send(self, plan: Step, ctx: FlowContext) -> Awaitable[Response]:
        """Send the step's request (its bytes built once when it has no template); its
        answer, to await."""
        req = plan.request
        assert req is not None
        sent = plan.sent
        if sent is None:
            if plan.shaped and self._cache_sends:
                sent = self.shaped(plan, ctx)
            else:
                sent = self.build(plan, ctx)
                if plan.static and self._cache_sends:
                    plan.sent = sent
        # Counted as sent before it goes: a poll's every attempt is a request the server saw.
        ctx.sends += 1
        origin, url, wire = sent
        return ctx.client.send(origin, req.method, wire, url, req.timeout)

    def build(self, plan: Step, ctx: FlowContext) -> tuple[str, str, bytes]:
        req = plan.request
        assert req is not None
        try:
            base = req.base.render(ctx) if req.base is not None else ctx.urls[req.service]
            url = base.rstrip("/") + req.path.render_target(ctx)
            headers = {**self._headers.get(),
                       **{k: v.render(ctx) for k, v in req.headers.items()}}
            json_body = render_value(req.json, ctx) if req.json is not None else None
            body = req.body.render(ctx) if req.body is not None else None
            query = {k: render_value(v, ctx) for k, v in req.query.items()} or None
        except MissingVariable as exc:
            raise FlowFailed(plan.name, "template", str(exc)) from None
        creds = self._step_tokens
        if creds is not None:
            url, headers, json_body, body, query = creds.fill(
                (url, headers, json_body, body, query))
        origin, wire = ctx.client.prepare(req.method, url, headers=headers,
                                          json_body=json_body, body=body, query=query)
        return origin, url, wire

    def shaped(self, plan: Step, ctx: FlowContext) -> tuple[str, str, bytes]:
        """As ``build`` for a step whose target alone varies: the request line's target
        rendered into bytes built once (the same bytes ``build`` makes)."""
        req = plan.request
        assert req is not None
        try:
            path = req.path.render_target(ctx)
            query = {k: render_value(v, ctx) for k, v in req.query.items()}
        except MissingVariable as exc:
            raise FlowFailed(plan.name, "template", str(exc)) from None
        if not path.startswith("/"):
            return self.build(plan, ctx)  # a whole URL from a capture: parsed in full
        shape = plan.shape
        if shape is None:
            base = req.base.render(ctx) if req.base is not None else ctx.urls[req.service]
            origin, prefix = split_url(base.rstrip("/") + "/")
            _, wire = ctx.client.prepare(
                req.method, origin + "/",
                headers={**self._headers.get(),
                         **{k: v.render(ctx) for k, v in req.headers.items()}},
                json_body=render_value(req.json, ctx) if req.json is not None else None,
                body=req.body.render(ctx) if req.body is not None else None)
            start = f"{req.method} ".encode()
            assert wire.startswith(start + b"/ HTTP/1.1\r\n")
            shape = plan.shape = (origin, prefix[:-1], start, wire[len(start) + 1:])
        origin, prefix, start, rest = shape
        path = prefix + path
        url = origin + path
        if query:
            path += ("&" if "?" in path else "?") + urlencode(query)
        return origin, url, start + request_target(path) + rest
