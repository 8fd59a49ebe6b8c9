"""A flow step that attaches a Server-Sent Events stream to what the flow made (``sse:``).

It reads the stream with the SSE workload's own pieces (``engine.sse``: the connect, the event
parser and the per-event figures), so an event here counts exactly as one of an ``sse``
workload: in ``<flow>.<step>:event``, with duplicate and gap errors and delivery latency. The
step's own op ``<flow>.<step>`` has the time from the step's start to the first event as its
latency."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from enduro.base.errors import PlanError
from enduro.engine.http import classify
from enduro.engine.sse import LineTooLong, StreamState, count_event, open_stream, read_events
from enduro.net.conditions import Answer, Condition
from enduro.net.target import Target, split_base
from enduro.net.templates import MissingVariable, Template, compile_value, render_value
from enduro.net.tls import client_context, server_hostname
from enduro.net.wire import UnsafeValue, merge_headers, request_head
from enduro.observe.window import OpCounter
from enduro.plan.flows import FlowSse
from enduro.plan.tls import Tls
from enduro.plan.tokens import Credentials

__all__ = ["SseStep", "StreamOutcome"]

_monotonic = time.monotonic


class StreamOutcome:
    """What one attach of the stream gave: the time to its first event (None: no event), and
    the error class that fails the step (None: it passed) with its detail."""

    __slots__ = ("cls", "detail", "events", "ttfe")

    def __init__(self, ttfe: float | None, events: int, cls: str | None = None,
                 detail: str = "") -> None:
        self.ttfe = ttfe
        self.events = events
        self.cls = cls
        self.detail = detail


class SseStep:
    """A flow's ``sse`` step, compiled once; ``attach`` runs it for one iteration."""

    def __init__(self, spec: FlowSse, events: OpCounter, tls: Tls,
                 context: ssl.SSLContext | None) -> None:
        self.spec = spec
        self.counter = events
        self.tls = tls
        self.context = context
        self.base = Template(spec.base) if spec.base is not None else None
        self.path = Template(spec.path)
        self.query = compile_value(spec.query)
        self.headers = {k: Template(v) for k, v in spec.headers.items()}
        self.until = Condition(spec.until, templated=True) if spec.until is not None else None

    def _request(self, scope: Any, urls: Mapping[str, str], headers: Mapping[str, str],
                 tokens: Credentials | None) -> tuple[Target, bytes]:
        spec = self.spec
        base = self.base.render(scope) if self.base is not None else urls[spec.service or ""]
        target = split_base(base)
        path = target.prefix + self.path.render_target(scope)
        query = {k: render_value(v, scope) for k, v in self.query.items()}
        own = {k: v.render(scope) for k, v in self.headers.items()}
        if tokens is not None:  # ``${token:name}`` in the step: the current token
            path, query, own = tokens.fill((path, query, own))
        if query:
            path += ("&" if "?" in path else "?") + urlencode(query)
        lines: list[tuple[str, object]] = [
            ("Host", target.host_header), ("Accept", "text/event-stream"),
            ("Cache-Control", "no-cache"), ("User-Agent", "enduro"), *headers.items(),
            *own.items()]
        return target, request_head("GET", path, merge_headers((), lines))

    async def attach(self, scope: Any, urls: Mapping[str, str], headers: Mapping[str, str],
                     tokens: Credentials | None = None) -> StreamOutcome:
        """Connect (``scope`` fills the templates; ``urls`` by service name, "" the flow's
        base; ``headers`` the workload's; ``tokens`` the ``${token:name}`` of the step),
        read events for up to ``for``, until ``until`` held or ``events`` came; its events
        counted in ``counter``."""
        spec = self.spec
        started = _monotonic()
        # An event stamped before the request went out is a replay of what came before
        # (a log's backlog): counted, its age kept out of the delivery latency.
        asked = time.time()
        try:
            target, wire = self._request(scope, urls, headers, tokens)
        except MissingVariable as exc:
            return StreamOutcome(None, 0, "template", str(exc))
        except (UnsafeValue, PlanError) as exc:
            return StreamOutcome(None, 0, "unsafe_value", str(exc))
        try:
            context = (self.context or client_context(self.tls)) if target.tls else None
            response, writer, status = await open_stream(
                target, wire, context,
                server_hostname(self.tls, target.host), spec.connect_timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            return StreamOutcome(None, 0, classify(exc))
        try:
            if status != 200:
                cls = "4xx" if 400 <= status < 500 else "5xx" if status >= 500 else "status"
                return StreamOutcome(None, 0, cls, f"status {status}")
            state = StreamState()
            state.connected_wall = asked
            return await self._read(scope, state, response, started)
        finally:
            writer.close()

    async def _read(self, scope: Any, state: StreamState, response: Any,
                    started: float) -> StreamOutcome:
        spec = self.spec
        first: list[float] = []
        held = False

        async def consume() -> None:
            nonlocal held
            async for event in read_events(response):
                if not first:
                    first.append(_monotonic() - started)
                count_event(state, event, self.counter, spec.ids, spec.ts_path, spec.ts_unit)
                if self.until is not None and self.until.holds(
                        Answer(200, event.get("data", "").encode()), scope):
                    held = True
                    return
                if spec.events is not None and state.stats.events >= spec.events:
                    return

        cls: str | None = None
        detail = ""
        try:
            await asyncio.wait_for(consume(), max(0.0, started + spec.for_ - _monotonic()))
        except TimeoutError:
            pass  # attached for its whole 'for'
        except LineTooLong as exc:
            self.counter.requests += 1
            self.counter.error("protocol")
            cls, detail = "protocol", str(exc)
        except (OSError, ValueError):
            pass  # the server closed the stream: judged on what came
        ttfe = first[0] if first else None
        events = state.stats.events
        if cls is None and events < spec.min_events:
            cls, detail = "no_events", f"{events} events in {spec.for_:g}s"
        elif cls is None and self.until is not None and not held:
            cls, detail = "until_timeout", (f"{spec.until} held for none of {events} events "
                                            f"in {spec.for_:g}s")
        return StreamOutcome(ttfe, events, cls, detail)
