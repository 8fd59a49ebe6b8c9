"""Scraping services' monitoring endpoints: Prometheus text (parsed by the Prometheus client
library's own parser), and JSON by JSON path: figures, and tables of named entries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from enduro.documents.tables import Cell, ScrapedTable
from enduro.net.client import HttpClient
from enduro.net.conditions import JsonPath, json_path
from enduro.net.tls import client_context
from enduro.plan.models import Scrape, ScrapeTable

__all__ = ["Scraped", "parse_prometheus", "read_table", "scrape_client", "scrape_once",
           "scrape_service"]


@dataclass
class Scraped:
    """One scrape of a service: its series as (name, labels as JSON, value), ``scrape_up``
    last, and its tables by name (their numeric cells also among the series)."""

    values: list[tuple[str, str, float]] = field(default_factory=list)
    tables: dict[str, ScrapedTable] = field(default_factory=dict)


def _flatten(node: Any) -> list[Any]:
    """The rows a path with ``[*]`` steps gave (lists of lists made one list)."""
    if not isinstance(node, list):
        return [node]
    out: list[Any] = []
    for item in node:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _cell(row: Any, path: JsonPath) -> Cell:
    try:
        value = path.get(row)
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def read_table(doc: Any, spec: ScrapeTable, at_s: float) -> ScrapedTable:
    """The table ``spec`` of the JSON document ``doc``: a row per entry with a name (a row
    whose name is missing is left out; one named twice keeps its first row)."""
    try:
        found = _flatten(JsonPath(spec.rows).get(doc))
    except (KeyError, IndexError, TypeError, ValueError):
        found = []
    name_path = JsonPath(spec.name)
    paths = {f: JsonPath(p) for f, p in spec.fields.items()}
    rows: dict[str, dict[str, Cell]] = {}
    truncated = 0
    for row in found:
        name = _cell(row, name_path)
        key = name if isinstance(name, str) or name is None else f"{name:g}"
        if key is None or key in rows:
            continue
        if len(rows) >= spec.max_rows:
            truncated += 1
            continue
        rows[key] = {f: _cell(row, p) for f, p in paths.items()}
    return ScrapedTable(at_s=at_s, fields=list(spec.fields), rows=rows, truncated=truncated)


def _table_values(name: str, table: ScrapedTable) -> list[tuple[str, str, float]]:
    """The numeric cells of a table as series ``<table>.<field>{row=...}``."""
    return [(f"{name}.{f}", json.dumps({"row": row}), value)
            for row, cells in table.rows.items() for f, value in cells.items()
            if isinstance(value, float)]


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
    return (await scrape_service(client, spec, headers)).values


async def scrape_service(client: HttpClient, spec: Scrape, headers: dict[str, str],
                         at_s: float = 0.0) -> Scraped:
    """One scrape of every endpoint of a service (its tables stamped ``at_s``); failures
    yield ``scrape_up`` 0 and no tables."""
    out = Scraped()
    values = out.values
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
            if r.status != 200:
                # An error's body (JSON too) is no reading: the figures and tables stay
                # as last scraped, and the scrape counts as down.
                raise ValueError(f"HTTP {r.status}")
            doc: Any = r.json()
            for name, path in spec.json_.paths.items():
                try:
                    values.append((name, "", float(json_path(doc, path))))
                except (KeyError, IndexError, TypeError, ValueError):
                    continue
            for name, table_spec in spec.json_.tables.items():
                table = out.tables[name] = read_table(doc, table_spec, at_s)
                values += _table_values(name, table)
        except (OSError, TimeoutError, ValueError):
            ok = 0.0
    values.append(("scrape_up", "", ok))
    return out
