"""Helpers for battle tests in a project's own test suite, and what the pytest fixtures of
``enduro.pytest_plugin`` return.

Fixtures (loaded automatically once enduro is installed):

- ``enduro_burst``: fire N identical requests released together and get their answers::

      def test_one_order_per_key(enduro_burst):
          result = enduro_burst("http://127.0.0.1:8080/orders", method="POST", size=100,
                                headers={"Idempotency-Key": "k-1"}, json={"sku": "A"})
          assert result.count(201) == 1 and result.count(200) == 99

- ``enduro_history``: record operations as invoke/ok/fail/info and run the checkers::

      def test_no_lost_writes(enduro_history):
          op = enduro_history.invoke("c1", "write", "k", 1)
          enduro_history.ok(op)
          ...
          enduro_history.assert_valid("lost_writes", "read_your_writes")
"""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from enduro.net.target import split_base
from enduro.net.wire import build_request, read_response
from enduro.verdict.checkers import CHECKERS, Violation, check_history

__all__ = ["BurstResult", "History", "burst", "burst_async"]


@dataclass
class BurstResult:
    """The answers of one burst: statuses (0 for a transport error), bodies, latencies."""

    statuses: list[int]
    bodies: list[bytes]
    latencies: list[float]
    errors: list[str] = field(default_factory=list)

    def count(self, status: int) -> int:
        return self.statuses.count(status)

    @property
    def split(self) -> dict[int, int]:
        return dict(Counter(self.statuses))


async def burst_async(url: str, *, size: int = 100, method: str = "POST",
                      headers: dict[str, str] | None = None, json_body: Any = None,
                      body: bytes | None = None, timeout: float = 30.0) -> BurstResult:
    """Open ``size`` connections, then send one request on each at the same moment."""
    scheme, rest = url.split("://", 1)
    hostport, _, path = rest.partition("/")
    target = split_base(f"{scheme}://{hostport}")
    data = body or b""
    content_type = None
    if json_body is not None:
        data = json.dumps(json_body).encode()
        content_type = "application/json"
    wire = build_request(method, f"/{path}", target.host_header, (headers or {}).items(), data,
                         content_type=content_type, close=True)
    # https is verified as curl does, with the system's certificates
    tls = ssl.create_default_context() if target.tls else None
    conns = await asyncio.gather(*(asyncio.open_connection(target.host, target.port, ssl=tls)
                                   for _ in range(size)))
    released = time.monotonic()
    for _, writer in conns:
        writer.write(wire)

    async def answer(reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> tuple[int, bytes, float, str]:
        try:
            parser = await asyncio.wait_for(read_response(reader, method), timeout)
            return parser.status, parser.take_body(), time.monotonic() - released, ""
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            # OSError includes ProtocolError: an answer that is not HTTP is status 0 here
            return 0, b"", time.monotonic() - released, repr(exc)
        finally:
            writer.close()

    answers = await asyncio.gather(*(answer(r, w) for r, w in conns))
    return BurstResult([a[0] for a in answers], [a[1] for a in answers],
                       [a[2] for a in answers], [a[3] for a in answers if a[3]])


def burst(url: str, **kwargs: Any) -> BurstResult:
    """``burst_async`` for synchronous tests."""
    if "json" in kwargs:
        kwargs["json_body"] = kwargs.pop("json")
    return asyncio.run(burst_async(url, **kwargs))


class History:
    """An operation history built by a test, checked with enduro's checkers."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._index = itertools.count()

    def _add(self, process: str, type_: str, f: str, key: Any, value: Any) -> dict[str, Any]:
        record = {"index": next(self._index), "process": process, "type": type_, "f": f,
                  "key": key, "value": value, "time": time.time()}
        self.records.append(record)
        return record

    def invoke(self, process: str, f: str, key: Any, value: Any = None) -> dict[str, Any]:
        """Start an operation; complete it with ``ok``, ``fail`` or ``info``."""
        return self._add(process, "invoke", f, key, value)

    def ok(self, op: dict[str, Any], value: Any = None) -> None:
        """It happened; for reads and creates, ``value`` is what came back."""
        self._add(op["process"], "ok", op["f"], op["key"],
                  value if value is not None or op["f"] in ("read", "create") else op["value"])

    def fail(self, op: dict[str, Any]) -> None:
        """It certainly did not happen."""
        self._add(op["process"], "fail", op["f"], op["key"], op["value"])

    def info(self, op: dict[str, Any]) -> None:
        """Nobody knows (a timeout)."""
        self._add(op["process"], "info", op["f"], op["key"], op["value"])

    def check(self, *checkers: str) -> dict[str, list[Violation]]:
        return check_history(self.records, checkers or tuple(CHECKERS))

    def assert_valid(self, *checkers: str) -> None:
        """Fail the test with the minimal operations of every violation."""
        found = {k: v for k, v in self.check(*checkers).items() if v}
        if found:
            lines = []
            for name, violations in found.items():
                for v in violations[:5]:
                    lines.append(f"{name}: {v.message}")
                    lines.extend(f"    {json.dumps(op, default=str)}" for op in v.ops)
            raise AssertionError("history violations:\n" + "\n".join(lines))
