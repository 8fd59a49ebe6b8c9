"""The page of a run, in its two modes: live (served by ``enduro dashboard``, polling its JSON
endpoints) and ``report.html`` (the same page with the data embedded, written at the end).
One document, its style and script inline, uPlot vendored (``static/``, MIT): nothing is
fetched from anywhere but the dashboard's own endpoints, so it reads offline."""

from __future__ import annotations

import html
import json
from importlib.resources import files
from typing import Any

__all__ = ["CONTENT_SECURITY_POLICY", "POLL_MS", "line_chart_html", "page_html"]

POLL_MS = 2000
"""How often the live page asks for news."""

# The page fetches its own endpoints and nothing else; the inline script and style are the
# page's own.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; "
                           "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

_BODY = """<header>
  <h1 id="title">enduro</h1>
  <span id="state" class="badge">loading</span>
  <span id="verdict" class="badge verdict" hidden></span>
  <span id="clock" class="muted"></span>
  <span id="phase" class="muted"></span>
  <span id="mode" class="muted"></span>
</header>
<div id="inforce"></div>
<main id="main">
<div id="problem"></div>
<section><div id="cards" class="cards"></div></section>
<section id="rules"></section>
<section id="timeline"><h2>Timeline</h2>
<p class="note">On every chart: faults as bands labelled with their kind and target (a
dashed line for one that took no time), service restarts and crashes as lines, phases
shaded. Drag across a chart to zoom, double-click to zoom out.</p>
<div id="legend"></div></section>
<div id="charts"></div>
<section><h2>Resources</h2><p class="note">Per service and for enduro itself (the load
generator), each series named.</p><div id="resources" class="grid"></div></section>
<section><h2>Scraped series</h2><p class="note" id="scraped-note"></p>
<div id="scraped" class="grid small" data-small="1"></div></section>
</main>
"""


def _static(name: str) -> str:
    return (files("enduro.report") / "static" / name).read_text(encoding="utf-8")


def _embedded(data: dict[str, Any]) -> str:
    """The data as a JSON script element; ``<`` escaped, so no value can end the element."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    return f'<script id="enduro-data" type="application/json">{text}</script>\n'


def page_html(data: dict[str, Any] | None = None, *, title: str = "run") -> str:
    """The page: live when ``data`` is None, else ``report.html`` with ``data`` (``run``,
    ``series``, ``scrapes``, ``events``: what the endpoints of the same names answer)
    embedded."""
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta name=\"referrer\" content=\"no-referrer\">\n"
            f"<title>enduro \u00b7 {html.escape(title)}</title>\n"
            # A script error marks the page, so that a headless check can see it.
            "<script>window.addEventListener('error',function(ev){document.documentElement"
            ".setAttribute('data-js-error',String(ev.message));});</script>\n"
            f"<style>\n{_static('uPlot.min.css')}\n{_static('page.css')}</style>\n"
            f"</head>\n<body>\n{_BODY}"
            + (_embedded(data) if data is not None else "")
            + f"<script>\n{_static('uPlot.iife.min.js')}\n</script>\n"
            f"<script>\nconst POLL_MS = {POLL_MS};\n{_static('page.js')}</script>\n"
            "</body>\n</html>\n")


def line_chart_html(title: str, x_label: str, xs: list[float],
                    lines: dict[str, list[float | None]], unit: str) -> str:
    """A page of one line chart (uPlot, inlined): ``lines`` by name over ``xs``, in
    ``unit``. For pages other than a run's (``enduro cycles``' performance over cycles)."""
    data = {"title": title, "x": x_label, "xs": xs, "lines": lines, "unit": unit}
    script = ("const D = JSON.parse(document.getElementById('enduro-data').textContent);\n"
              "const colors = ['#2f6fdf', '#e8590c', '#2b8a3e', '#9c36b5'];\n"
              "new uPlot({title: D.title, width: Math.min(1100, innerWidth - 40), height: 380,"
              " scales: {x: {time: false}}, axes: [{label: D.x}, {label: D.unit}],"
              " series: [{label: D.x}, ...Object.keys(D.lines).map((name, i) => ({label: name,"
              " stroke: colors[i % 4], width: 2}))]},"
              " [D.xs, ...Object.values(D.lines)], document.getElementById('chart'));\n")
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n"
            f"<style>\n{_static('uPlot.min.css')}\nbody {{ font: 14px system-ui, sans-serif;"
            " margin: 20px; }\n</style>\n</head>\n<body>\n<div id=\"chart\"></div>\n"
            + _embedded(data) + f"<script>\n{_static('uPlot.iife.min.js')}\n</script>\n"
            f"<script>\n{script}</script>\n</body>\n</html>\n")
