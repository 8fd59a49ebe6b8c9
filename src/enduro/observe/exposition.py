"""``--metrics-port``: the live run's figures in the Prometheus text format on loopback.

The collector reads a snapshot the run refreshes every couple of seconds (swapped whole), so
the exporter's thread never touches the run's live structures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Exporter"]


class Exporter(Collector):
    """Serves the latest snapshot; ``update`` replaces it."""

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] = {}

    def update(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot

    def start(self, port: int, host: str = "127.0.0.1") -> None:
        registry = CollectorRegistry()
        registry.register(self)
        start_http_server(port, addr=host, registry=registry)

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        info = GaugeMetricFamily("enduro_run_info", "The run", labels=["plan", "run_id",
                                                                         "state"])
        info.add_metric([snap.get("plan", ""), snap.get("run_id", ""), snap.get("state", "")], 1)
        yield info
        yield GaugeMetricFamily("enduro_run_elapsed_seconds", "Seconds of load so far",
                                value=snap.get("elapsed_s", 0.0))
        requests = CounterMetricFamily("enduro_requests", "Requests completed", labels=["op"])
        errors = CounterMetricFamily("enduro_errors", "Errors", labels=["op", "class"])
        latency = GaugeMetricFamily("enduro_latency_seconds",
                                    "Latency over the last 10 s", labels=["op", "quantile"])
        rps = GaugeMetricFamily("enduro_rps", "Requests per second over the last 10 s",
                                labels=["op"])
        for op, s in snap.get("ops", {}).items():
            requests.add_metric([op], s["requests"])
            for cls, n in s["errors_by_class"].items():
                errors.add_metric([op, cls], n)
            rps.add_metric([op], s["rps_10s"])
            for q, v in s["latency_10s_ms"].items():
                latency.add_metric([op, q], v / 1000.0)
        yield requests
        yield errors
        yield latency
        yield rps
        resources = GaugeMetricFamily("enduro_resource", "Sampled resources",
                                      labels=["target", "metric"])
        for target, values in snap.get("resources", {}).items():
            for metric, value in values.items():
                resources.add_metric([target, metric], value)
        yield resources
