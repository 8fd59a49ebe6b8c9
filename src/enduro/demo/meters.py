"""The demo service's Prometheus metrics, served at ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["DemoMeters"]


class DemoMeters:
    """The demo service's counters, gauges and histogram, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("demo_http_requests_total", "HTTP requests",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("demo_http_request_seconds", "Handler time", ["route"],
                                 registry=self.registry)
        self.downloads = Gauge("demo_downloads", "Downloads held", ["state"],
                               registry=self.registry)
        self.streams = Gauge("demo_sse_streams", "Open SSE streams", registry=self.registry)
        self.events = Counter("demo_events_total", "Events published", registry=self.registry)
        self.queue = Gauge("demo_queue_depth", "Notifications waiting", registry=self.registry)
