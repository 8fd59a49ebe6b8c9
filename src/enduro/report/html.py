"""``report.html``: one self-contained, interactive page per run (plotly, inlined), readable
offline: throughput, latency per op, errors, resources, scraped series, fault windows shaded
and restarts marked, and the rule table."""

from __future__ import annotations

import html
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from enduro.documents.events import Event, ServiceEvent, read_events
from enduro.documents.results import Results, StreamSummary

__all__ = ["write_report"]

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;
color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px;font-weight:600}
header .meta{opacity:.8;margin-top:4px;font-size:14px}
.verdict{display:inline-block;padding:3px 12px;border-radius:14px;font-weight:700;
margin-left:12px;font-size:15px}
.pass{background:#1f9d55;color:#fff}.fail{background:#d64545;color:#fff}
.incomplete{background:#b7791f;color:#fff}
main{padding:18px 28px;max-width:1400px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);
padding:14px 18px;margin-bottom:18px}
h2{font-size:17px;margin:4px 0 10px}
table{border-collapse:collapse;font-size:13px;width:100%}
td,th{padding:5px 8px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}
tr.bad td{background:#fdecec}.ok{color:#1f9d55;font-weight:600}.no{color:#d64545;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:10px}
.card{background:#f6f7f9;border-radius:6px;padding:10px}
.card b{display:block;font-size:20px}.card span{font-size:12px;color:#667}
"""


def _rows(db: sqlite3.Connection, query: str, *args: Any) -> list[tuple[Any, ...]]:
    try:
        return db.execute(query, args).fetchall()
    except sqlite3.Error:
        return []


def _shapes(results: Results, events: list[Event], load_start: float) -> list[dict[str, Any]]:
    shapes: list[dict[str, Any]] = []
    for f in results.faults:
        start, end = f.start_s, f.end_s
        if start is None:
            continue
        if end is None or end - start < 0.5:
            shapes.append({"type": "line", "x0": start, "x1": start, "yref": "paper", "y0": 0,
                           "y1": 1, "line": {"color": "#d64545", "dash": "dot", "width": 1}})
        else:
            shapes.append({"type": "rect", "x0": start, "x1": end, "yref": "paper", "y0": 0,
                           "y1": 1, "fillcolor": "#d64545", "opacity": 0.12, "line":
                           {"width": 0}})
    for e in events:
        if isinstance(e, ServiceEvent) and e.event in ("service_restart", "service_exit"):
            t = e.t - load_start
            shapes.append({"type": "line", "x0": t, "x1": t, "yref": "paper", "y0": 0, "y1": 1,
                           "line": {"color": "#e69500", "width": 1}})
    return shapes


def _figure(traces: list[go.Scatter], title: str, ytitle: str,
            shapes: list[dict[str, Any]]) -> str:
    fig = go.Figure(traces)
    fig.update_layout(title={"text": title, "font": {"size": 14}}, height=320,
                      margin={"l": 50, "r": 20, "t": 40, "b": 40}, shapes=shapes,
                      xaxis_title="seconds into the load", yaxis_title=ytitle,
                      legend={"orientation": "h", "y": -0.25}, template="plotly_white")
    return str(fig.to_html(full_html=False, include_plotlyjs=False))


def write_report(run_dir: Path) -> Path:
    """Build ``report.html`` from what the run directory holds; return its path."""
    results = Results.read(run_dir / "results.json")
    # A torn or corrupt line must not cost the whole page: such lines are skipped.
    events = read_events(run_dir / "events.jsonl")
    load_start = next((e.t for e in events if e.event == "load_started"), 0.0)
    shapes = _shapes(results, events, load_start)
    db = sqlite3.connect(f"file:{run_dir / 'metrics.sqlite'}?mode=ro", uri=True) \
        if (run_dir / "metrics.sqlite").exists() else sqlite3.connect(":memory:")
    windows = _rows(db, "SELECT t, span, op, requests, errors, p50_ms, p95_ms, p99_ms "
                        "FROM windows ORDER BY t")
    by_op: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in windows:
        by_op[row[2]].append(row)
    charts: list[str] = []
    # Requests are stacked; flow iterations, burst rounds and SSE events are drawn apart
    # (stacked, they would count the same requests twice).
    kinds = {op: s.kind for op, s in results.ops.items()}
    charts.append(_figure([go.Scatter(x=[r[0] for r in rows], y=[r[3] / r[1] for r in rows],
                                      name=op if kinds.get(op, "request") == "request"
                                      else f"{op} ({kinds[op]}s)", mode="lines",
                                      stackgroup="rps" if kinds.get(op, "request") == "request"
                                      else None)
                           for op, rows in by_op.items()], "Throughput", "requests/s", shapes))
    lat = []
    for op, rows in by_op.items():
        if op.endswith((":round",)) or ("." in op and op.split(".")[-1] in ("created", "replayed")):
            continue
        for col, name, dash in ((7, "p99", "dot"), (6, "p95", "dash"), (5, "p50", "solid")):
            lat.append(go.Scatter(x=[r[0] for r in rows], y=[r[col] for r in rows],
                                  name=f"{op} {name}", mode="lines",
                                  line={"dash": dash}, visible=True if name == "p95"
                                  else "legendonly"))
    charts.append(_figure(lat, "Latency per op (from the intended send time)", "ms", shapes))
    charts.append(_figure([go.Scatter(x=[r[0] for r in rows], y=[r[4] for r in rows],
                                      name=op, mode="lines") for op, rows in by_op.items()
                           if any(r[4] for r in rows)], "Errors per window", "errors",
                          shapes))
    samples = _rows(db, "SELECT target, metric, t, value FROM samples ORDER BY t")
    series: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for target, metric, t, value in samples:
        series[(target, metric)].append((t, value))
    for metric, title, unit in (("rss_mb", "Memory (RSS)", "MB"), ("fds", "Open files", "fds"),
                                ("cpu_pct", "CPU", "%"), ("threads", "Threads", "threads"),
                                ("loop_lag_ms", "Generator event-loop lag", "ms")):
        traces = [go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts],
                             name=target.replace("service:", ""), mode="lines")
                  for (target, m), pts in series.items() if m == metric]
        if traces:
            charts.append(_figure(traces, title, unit, shapes))
    scrapes = _rows(db, "SELECT service, metric, t, SUM(value) FROM scrapes "
                        "WHERE metric != 'scrape_up' GROUP BY service, metric, t ORDER BY t")
    sc: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for service, metric, t, value in scrapes:
        sc[f"{service}/{metric}"].append((t, value))
    interesting = [k for k, pts in sc.items() if len({round(v, 6) for _, v in pts}) > 1][:12]
    if interesting:
        charts.append(_figure([go.Scatter(x=[p[0] for p in sc[k]], y=[p[1] for p in sc[k]],
                                          name=k, mode="lines") for k in interesting],
                              "Scraped series (those that changed)", "value", shapes))
    db.close()
    page = _page(results, charts)
    out = run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


def _stream_row(name: str, st: StreamSummary) -> str:
    e = html.escape
    spread = st.events_per_stream
    trouble = "".join(f"<td>{st.streams_with.get(k, 0)}</td>"
                      for k in ("duplicates", "gaps", "stalls", "failed"))
    worst = ", ".join(f"w{w.worker}/#{w.stream}" for w in st.worst_streams)
    return (f"<tr class='{'bad' if any(st.streams_with.values()) else ''}'>"
            f"<td>{e(name)}</td><td>{st.streams}</td><td>{st.connects:,}</td>"
            f"<td>{st.resumed_with_last_event_id:,}</td><td>{spread.min:,} / "
            f"{spread.median:,} / {spread.max:,}</td>{trouble}<td>{e(worst)}</td></tr>")


def _page(r: Results, charts: list[str]) -> str:
    e = html.escape
    verdict = r.verdict
    total = r.total
    cards = [("requests", f"{total.requests if total else 0:,}"),
             ("rps", f"{total.rps if total else 0:,.1f}"),
             ("errors", f"{total.errors if total else 0:,}"),
             ("p95", f"{total.latency_ms.p95 if total else 0} ms"),
             ("p99", f"{total.latency_ms.p99 if total else 0} ms"),
             ("faults", str(len(r.faults)))]
    rules = "".join(
        f"<tr class='{'' if x.passed else 'bad'}'><td>{e(x.rule)}</td>"
        f"<td>{e(x.observed_text)}</td><td class="
        f"'{'ok' if x.passed else 'no'}'>{'PASS' if x.passed else 'FAIL'}</td></tr>"
        for x in r.rules)
    ops = "".join(
        f"<tr><td>{e(op)}</td><td>{s.requests:,}</td><td>{s.rps:,.1f}</td>"
        f"<td>{s.errors:,}</td><td>{s.latency_ms.p50}</td>"
        f"<td>{s.latency_ms.p95}</td><td>{s.latency_ms.p99}</td>"
        f"<td>{s.latency_ms.max}</td><td>{s.service_time_ms.p95}</td></tr>"
        for op, s in r.ops.items())
    faults = "".join(
        f"<tr><td>#{f.id} {e(f.kind)}</td><td>{e(f.target)}</td>"
        f"<td>{f.start_s}</td><td>{f.end_s}</td><td>{f.detect_s}</td>"
        f"<td>{f.recover_s}</td><td>{'' if f.errors is None else f.errors}</td>"
        f"<td>{e(f.error or '')}</td></tr>" for f in r.faults)
    errors = "".join(f"<tr><td>{e(k)}</td><td>{v:,}</td></tr>"
                     for k, v in r.errors_by_class.items())
    counts = r.checker_counts  # "checkers" holds the first examples only
    checkers = "".join(
        f"<tr class='{'bad' if vs else ''}'><td>{e(name)}</td>"
        f"<td>{counts.get(name, len(vs))}</td>"
        f"<td>{e(vs[0].message) if vs else ''}</td></tr>"
        for name, vs in r.checkers.items())
    streams = "".join(_stream_row(name, st) for name, st in r.streams.items())
    bursts = "".join(
        f"<tr class='bad'><td>{e(name)}</td><td>{b.violations}</td>"
        f"<td>{b.rounds_failed}</td>"
        f"<td>{e(', '.join(f'{k}: {v}' for k, v in b.by_check.items()))}</td>"
        f"<td>{e(b.examples[0].problem or '') if b.examples else ''}</td></tr>"
        for name, b in r.bursts.items())
    head = (f"<header><h1>{e(r.plan)}<span class='verdict {e(verdict)}'>"
            f"{e(verdict.upper())}</span></h1><div class='meta'>run {e(r.run_id)}"
            f" · {r.duration_s} s · seed {r.seed} · state {e(r.state)}"
            + (f" · {e(r.stop_reason)}" if r.stop_reason else "") + "</div></header>")
    body = ["<section><div class='grid'>" + "".join(
        f"<div class='card'><b>{v}</b><span>{k}</span></div>" for k, v in cards) + "</div>"
        "</section>",
        f"<section><h2>Rules</h2><table><tr><th>rule</th><th>observed</th><th></th></tr>"
        f"{rules}</table></section>"]
    body += [f"<section>{c}</section>" for c in charts]
    body.append("<section><h2>Ops</h2><table><tr><th>op</th><th>requests</th><th>rps</th>"
                "<th>errors</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th>"
                f"<th>service p95 ms</th></tr>{ops}</table></section>")
    if errors:
        body.append(f"<section><h2>Errors by class</h2><table>{errors}</table></section>")
    if faults:
        body.append("<section><h2>Faults</h2><table><tr><th>fault</th><th>target</th>"
                    "<th>start s</th><th>end s</th><th>detect s</th><th>recover s</th>"
                    f"<th>errors</th><th>note</th></tr>{faults}</table></section>")
    if streams:
        body.append("<section><h2>SSE streams</h2><table><tr><th>workload</th><th>streams</th>"
                    "<th>connects</th><th>resumed</th><th>events min / median / max</th>"
                    "<th>with duplicates</th><th>with gaps</th><th>stalled</th>"
                    f"<th>failed connects</th><th>worst</th></tr>{streams}</table></section>")
    if bursts:
        body.append("<section><h2>Burst post-conditions</h2><table><tr><th>burst</th>"
                    "<th>violations</th><th>rounds</th><th>by check</th><th>first</th></tr>"
                    f"{bursts}</table></section>")
    if checkers:
        body.append("<section><h2>Checkers</h2><table><tr><th>checker</th><th>violations</th>"
                    f"<th>first</th></tr>{checkers}</table></section>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>enduro · "
            f"{e(r.plan)}</title><style>{_STYLE}</style>"
            # A script error marks the page, so that a headless check can see it.
            "<script>window.addEventListener('error',function(ev){document.documentElement"
            ".setAttribute('data-js-error',String(ev.message));});</script>"
            f"<script>{get_plotlyjs()}</script></head><body>{head}<main>{''.join(body)}"
            "</main></body></html>")
