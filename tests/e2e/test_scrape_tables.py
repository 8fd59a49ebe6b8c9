"""Scraped JSON as a table of named entries: a real nats-server with JetStream, its streams
and KV buckets from /jsz?streams=1, end to end."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers.plans import write_plan
from tests.helpers.procs import free_port, only_run

OPS = '''
import nats


async def publish(ctx):
    """Create two streams and a KV bucket once, then publish an order per call."""
    state = ctx.state
    if "js" not in state:
        nc = state["nc"] = await nats.connect(ctx.params["server"])
        js = state["js"] = nc.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.*"])
        await js.add_stream(name="AUDIT", subjects=["audit.*"])
        await js.add_consumer("ORDERS", durable_name="billing")
        kv = await js.create_key_value(bucket="config")
        await kv.put("mode", b"soak")
    await state["js"].publish("orders.new", b"x" * 100)
'''


def nats_binary() -> str:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.path.exists(binary):
        if os.environ.get("CI"):
            pytest.fail("nats-server is missing; scripts/test.sh installs it")
        pytest.skip("nats-server is not installed")
    return binary


@pytest.mark.slow(10)
def test_jetstream_streams_are_a_live_table(tmp_path: Path) -> None:
    binary = nats_binary()
    pytest.importorskip("nats")
    (tmp_path / "natsops.py").write_text(OPS)
    client, monitor = free_port(), free_port()
    plan = write_plan(tmp_path, {
        "name": "jsz", "duration": "3s",
        "services": {"nats": {
            "command": [binary, "-a", "127.0.0.1", "-p", str(client), "-m", str(monitor),
                        "-js", "-sd", "{{ service_dir }}/js"],
            "ports": [client, monitor],
            "ready": {"http": f"http://127.0.0.1:{monitor}/healthz", "timeout": "20s"},
            "scrape": {"every": "500ms", "json": {
                "url": f"http://127.0.0.1:{monitor}/jsz?streams=1",
                "paths": {"js_streams": "$.streams"},
                "tables": {"streams": {
                    "rows": "$.account_details[*].stream_detail[*]",
                    "fields": {"messages": "$.state.messages", "bytes": "$.state.bytes",
                               "consumers": "$.state.consumer_count",
                               "leader": "$.cluster.leader"}}}}}}},
        "workloads": {"orders": {"python": {
            "function": "natsops:publish", "connections": 1, "think": "50ms",
            "params": {"server": f"nats://127.0.0.1:{client}"}}}},
        "rules": ["availability >= 99%", "last(scrape{service=nats, metric=streams.messages})"
                  " >= 10"]})
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run(tmp_path / "runs")
    results = json.loads((run_dir / "results.json").read_text())
    published = results["ops"]["orders"]["requests"]
    table = results["tables"]["nats"]["streams"]
    assert table["fields"] == ["messages", "bytes", "consumers", "leader"]
    # Named entries, a KV bucket among them (JetStream keeps it as the stream KV_<bucket>).
    assert set(table["rows"]) == {"ORDERS", "AUDIT", "KV_config"}
    orders = table["rows"]["ORDERS"]
    # Scraped every 0.5 s: the last scrape saw all but the last half second's orders.
    assert published - 12 <= orders["messages"] <= published, (orders, published)
    assert orders["bytes"] > 100 * orders["messages"] and orders["consumers"] == 1
    assert isinstance(orders["leader"], str) and orders["leader"]
    assert table["rows"]["AUDIT"] == {**table["rows"]["AUDIT"], "messages": 0, "consumers": 0}
    assert table["rows"]["KV_config"]["messages"] == 1
    # state.json holds the table as last scraped; the store each scrape's numeric cells.
    state = json.loads((run_dir / "state.json").read_text())
    assert set(state["tables"]["nats"]["streams"]["rows"]) == {"ORDERS", "AUDIT", "KV_config"}
    db = sqlite3.connect(run_dir / "metrics.sqlite")
    series = db.execute("SELECT t, value FROM scrapes WHERE service = 'nats' AND metric = "
                        "'streams.messages' AND labels = ? ORDER BY t",
                        (json.dumps({"row": "ORDERS"}),)).fetchall()
    assert len(series) >= 3 and series[-1][1] == orders["messages"]
    assert [v for _, v in series] == sorted(v for _, v in series)  # it only grows
    # The terminal summary shows the table: a row per stream, its fields as columns.
    assert "nats streams" in proc.stdout
    line = next(x for x in proc.stdout.splitlines() if x.strip().startswith("ORDERS"))
    assert f"{orders['messages']:,.0f}" in line and orders["leader"][:8] in line


def test_a_table_path_is_checked_at_its_line(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, {
        "name": "bad", "duration": "1s",
        "services": {"nats": {"url": "http://127.0.0.1:9", "scrape": {"json": {
            "url": "http://127.0.0.1:9/jsz",
            "tables": {"streams": {"rows": "account_details", "fields": {"m": "$.x["}}}}}}}})
    proc = run_cli("validate", str(plan))
    assert proc.returncode == 2
    assert "services.nats.scrape.json.tables.streams.rows" in proc.stderr, proc.stderr
    assert "services.nats.scrape.json.tables.streams.fields.m" in proc.stderr
