"""A token a restarted service wrote reaches every path that sends a request: ``http``,
``flow``, SSE reconnects, bursts, Python params and scrapes. The service (tests/helpers/
token_service.py) writes a new random token at each start and rejects the old one, and records
every request it read; after the restart's ready point it must have rejected none."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from enduro.plan.tokens import Credentials, Filled
from tests.helpers.plans import run_plan
from tests.helpers.procs import REPO, free_port, only_run

SERVICE = REPO / "tests" / "helpers" / "token_service.py"
AUTH = {"Authorization": "Bearer ${token:api}"}

PY_OP = '''
import asyncio


async def op(ctx):
    reader, writer = await asyncio.open_connection("127.0.0.1", ctx.params["port"])
    try:
        writer.write(("GET /py HTTP/1.1\\r\\nHost: t\\r\\nAuthorization: "
                      + ctx.params["auth"] + "\\r\\nConnection: close\\r\\n\\r\\n").encode())
        line = await reader.readline()
        if line.split()[1:2] != [b"200"]:
            raise PermissionError(line)
    finally:
        writer.close()
'''


def _plan(port: int, log: Path) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    return {
        "name": "creds", "duration": "7s", "seed": 3, "grace": "2s",
        "services": {"api": {
            "command": [sys.executable, str(SERVICE), "--port", str(port), "--token-file",
                        "data/api.token", "--log", str(log)],
            "url": base, "ports": [port], "token_file": "data/api.token",
            "ready": {"http": f"{base}/health", "interval": "50ms"},
            "scrape": {"prometheus": f"{base}/metrics", "every": "100ms", "headers": AUTH}}},
        "workloads": {
            "h": {"http": {"service": "api", "rate": "40/s", "headers": AUTH,
                           "requests": [{"name": "h", "path": "/http"}]}},
            "f": {"flow": {"service": "api", "rate": "20/s", "headers": AUTH,
                           "steps": [{"name": "one", "request": {"path": "/flow"}},
                                     {"name": "two", "request": {
                                         "path": "/flow2",
                                         "headers": {"X-Step": "${token:api}"}}}]}},
            "s": {"sse": {"service": "api", "path": "/sse", "clients": 4, "headers": AUTH,
                          "churn": {"every": "400ms", "fraction": 0.5},
                          "reconnect_delay": "50ms", "reconnect_jitter": "50ms"}},
            "b": {"burst": {"service": "api", "size": 3, "rounds": 1000, "every": "200ms",
                            "headers": AUTH, "request": {"path": "/burst"}}},
            "p": {"python": {"function": "cred_ops:op", "rate": "20/s",
                             "params": {"port": port, "auth": "Bearer ${token:api}"}}}},
        "faults": [{"at": "2500ms", "restart": "api"}]}


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.slow(9)
def test_a_restarted_service_token_reaches_every_path(tmp_path: Path, workers: int) -> None:
    (tmp_path / "cred_ops.py").write_text(PY_OP)
    log = tmp_path / "server.jsonl"
    run_plan(tmp_path, _plan(free_port(), log), workers=workers)
    run_dir = only_run(tmp_path / "runs")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    refreshed = [e for e in events if e["event"] == "token_refreshed"]
    assert len(refreshed) == 1, [e["event"] for e in events]
    ready = [e["wall"] for e in events if e["event"] == "service_ready"]
    assert len(ready) == 2, ready  # the first start and the restart
    records = [json.loads(line) for line in log.read_text().splitlines()]
    pids = list(dict.fromkeys(r["pid"] for r in records))
    assert len(pids) == 2, pids
    after = [r for r in records if r["pid"] == pids[1] and r["t"] > ready[1]]
    paths = ("/http", "/flow", "/flow2", "/sse", "/burst", "/py", "/metrics")
    for path in paths:
        accepted = [r for r in after if r["path"] == path and r["ok"]]
        # SSE: the reconnect after the restart, and the churn's reconnects.
        assert len(accepted) >= 2, (path, len(accepted))
        # A request already on its way at the ready point may be read a moment later.
        rejected = [r for r in after if r["path"] == path and not r["ok"]
                    and r["t"] > ready[1] + 0.1]
        assert rejected == [], (path, len(rejected), len(accepted))
    # Before the restart every path was accepted too: the token was read at the first start.
    before = [r for r in records if r["pid"] == pids[0]]
    assert {r["path"] for r in before} >= set(paths)
    assert all(r["ok"] for r in before if r["t"] > ready[0] + 0.1)


def test_filled_is_refilled_only_when_the_version_changes() -> None:
    creds = Credentials({"api": "one"})
    filled = Filled({"Authorization": "Bearer ${token:api}", "X": "${token:other}"}, creds)
    first = filled.get()
    assert first == {"Authorization": "Bearer one", "X": "${token:other}"}
    assert filled.get() is first  # cached: no work per request
    assert not creds.update({"api": "one"})  # the same tokens: no new version
    assert filled.get() is first
    assert creds.update({"api": "two"})
    assert filled.get() == {"Authorization": "Bearer two", "X": "${token:other}"}
    plain = {"Accept": "text/plain"}
    assert Filled(plain, creds).get() is plain  # nothing to fill: the source itself
