"""A flow's sse step counts events as an sse workload does: duplicates, gaps, delivery
latency, and the time to the first event; against a real stream on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from enduro.engine.flow_sse import SseStep
from enduro.observe.window import OpCounter
from enduro.plan.flows import FlowSse
from enduro.plan.tls import Tls
from enduro.plan.tokens import Credentials


async def _serve(events: list[tuple[str, str, float]], seen: list[str]) -> Any:
    """A stream that sends ``events`` (id, state, stamped that many seconds before it is
    sent) then stays open; the request lines it got go to ``seen``."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.extend(line for line in head.decode().split("\r\n") if line
                    and not line.startswith(("Host", "Accept", "Cache", "User-Agent")))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        for event_id, state, age in events:
            data = json.dumps({"state": state, "ts": time.time() - age})
            writer.write(f"id: {event_id}\ndata: {data}\n\n".encode())
        await writer.drain()
        await reader.read()  # until the client goes
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_an_sse_step_counts_duplicates_gaps_and_stops_at_until() -> None:
    async def main() -> tuple[Any, OpCounter, list[str]]:
        events = [("1", "queued", 60.0),  # from before the stream opened: a replay
                  ("2", "running", 0.0), ("2", "running", 0.0),  # a duplicate
                  ("5", "done", 0.0),  # 3 and 4 never came
                  ("6", "after", 0.0)]
        seen: list[str] = []
        server = await _serve(events, seen)
        port = server.sockets[0].getsockname()[1]
        counter = OpCounter()
        step = SseStep(FlowSse.model_validate({
            "path": "/runs/{{run}}/logs", "for": "5s", "until": '$.state == "done"',
            "ts_path": "$.ts", "headers": {"Authorization": "Bearer ${token:api}"}}),
            counter, Tls(), None)
        scope = {"run": "r-42"}
        tokens = Credentials()
        tokens.update({"api": "t0ken"})  # as a (re)started service wrote it
        try:
            outcome = await step.attach(_Scope(scope), {"": f"http://127.0.0.1:{port}"},
                                        {"X-Flow": "1"}, tokens)
        finally:
            server.close()
        return outcome, counter, seen

    outcome, counter, seen = asyncio.run(main())
    # The step's path from the flow's variables; the workload's headers and the step's own,
    # its token filled in.
    assert seen == ["GET /runs/r-42/logs HTTP/1.1", "X-Flow: 1", "Authorization: Bearer t0ken"]
    assert outcome.cls is None and outcome.ttfe is not None and outcome.ttfe < 5
    # Stopped at the event where until held: four events read, the fifth never counted.
    assert outcome.events == 4 and counter.requests == 4
    assert counter.classes == {"duplicate": 1, "gap": 2} and counter.errors == 3
    # Delivery latency of the three sent live (µs); the replay's minute is not one.
    assert len(counter.lat) == 3 and max(counter.lat) < 5_000_000


class _Scope:
    """What a flow's templates read: its variables."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.vars = values
