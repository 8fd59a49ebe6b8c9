"""Scraping services' monitoring endpoints: Prometheus text (parsed by the Prometheus client
library's own parser) and JSON by JSON path."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from enduro.net.client import HttpClient
from enduro.net.conditions import json_path
from enduro.net.tls import client_context
from enduro.plan.models import Scrape

__all__ = ["parse_prometheus", "scrape_client", "scrape_once"]


def scrape_client(spec: Scrape) -> HttpClient:
    """The client of one service's scrapes, with one TLS context from the scrape's ``tls``
    (built now when an endpoint is https, so an unreadable CA or certificate is said at once,
    not as scrape_up 0)."""
    urls = [u for u in (spec.prometheus, spec.json_.url if spec.json_ else None) if u]
    https = any(u.lower().startswith("https://") for u in urls)
    return HttpClient(timeout=5.0, tls=spec.tls,
                      context=client_context(spec.tls) if https else None)


def parse_prometheus(text: str) -> list[tuple[str, str, float]]:
    """(sample name, labels as JSON, value) for every sample in an exposition."""
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = json.dumps(dict(sorted(sample.labels.items()))) if sample.labels else ""
            out.append((sample.name, labels, float(sample.value)))
    return out


async def scrape_once(client: HttpClient, spec: Scrape,
                      headers: dict[str, str]) -> list[tuple[str, str, float]]:
    """One scrape of every endpoint of a service; failures yield ``scrape_up`` 0."""
    values: list[tuple[str, str, float]] = []
    ok = 1.0
    if spec.prometheus is not None:
        try:
            r = await client.request("GET", spec.prometheus, headers=headers, timeout=5.0)
            values += parse_prometheus(r.text) if r.status == 200 else []
            ok = 1.0 if r.status == 200 else 0.0
        except (OSError, TimeoutError, ValueError):
            ok = 0.0
    if spec.json_ is not None:
        try:
            r = await client.request("GET", spec.json_.url, headers=headers, timeout=5.0)
            doc: Any = r.json()
            for name, path in spec.json_.paths.items():
                try:
                    values.append((name, "", float(json_path(doc, path))))
                except (KeyError, IndexError, TypeError, ValueError):
                    continue
        except (OSError, TimeoutError, ValueError):
            ok = 0.0
    values.append(("scrape_up", "", ok))
    return values
