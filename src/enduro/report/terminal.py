"""What a person sees on the terminal: the live view, heartbeat lines, the final summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from enduro.base.units import format_duration
from enduro.documents.results import Results
from enduro.documents.service import ServiceRecord
from enduro.documents.tables import Cell, ScrapedTable
from enduro.observe.hist import percentiles_ms
from enduro.observe.metrics import EVENT, ITERATION, Metrics
from enduro.report.results import as_results, rule_note

__all__ = ["heartbeat_line", "live_view", "plain", "scraped_tables", "services_line",
           "services_view", "summary_table"]


def plain(value: object, style: str = "") -> Text:
    """``value`` as text that Rich prints exactly as written: names, paths, rule texts and
    service or server output may contain ``[bold]`` or ``[/api]``, which must never be read as
    markup (a stray closing tag would even raise)."""
    return Text(str(value), style=style)


def _ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f}s"
    return f"{value:.1f}ms" if value >= 1 else f"{value * 1000:.0f}µs"


_PLURAL = {"iteration": "iterations", "round": "rounds", "split": "split", "event": "events"}


# The heartbeat's figures when the plan does not name them.
HEARTBEAT_DEFAULT = ("rps", "errors", "err%", "p95")


def _sum_requests(metrics: Metrics, ops: list[str], last_s: float | None) -> int:
    return metrics.view(set(ops), last_s=last_s).requests if ops else 0


def heartbeat_line(metrics: Metrics, elapsed_s: float, last_s: float,
                   fields: Sequence[str] = HEARTBEAT_DEFAULT,
                   extra: Mapping[str, str] | None = None) -> str:
    """``alive t=12m rps=… errors=… p95=…`` over the last interval, over requests (not flow
    iterations, burst rounds or SSE events), then the other ``fields`` asked for: ``flows``
    (iterations started so far), ``events`` (SSE events in the interval), and what the caller
    knows in ``extra`` (``faults`` in force, ``services`` up, ``restarts``)."""
    view = metrics.view(last_s=last_s)
    pct = percentiles_ms(view.latency)
    by_kind: dict[str, list[str]] = {}
    for op, kind in metrics.kinds.items():
        by_kind.setdefault(kind, []).append(op)
    values = {
        "rps": lambda: f"{view.rps:,.0f}", "errors": lambda: str(view.errors),
        "err%": lambda: f"{view.error_rate * 100:.2f}", "p95": lambda: _ms(pct["p95"]),
        "p99": lambda: _ms(pct["p99"]),
        "flows": lambda: f"{_sum_requests(metrics, by_kind.get(ITERATION, []), None):,}",
        "events": lambda: f"{_sum_requests(metrics, by_kind.get(EVENT, []), last_s):,}",
    }
    parts = [f"alive t={format_duration(elapsed_s)}"]
    for name in fields:
        if name in values:
            parts.append(f"{name}={values[name]()}")
        elif extra is not None and name in extra:
            parts.append(f"{name}={extra[name]}")
    return " ".join(parts)


def _cell(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.3g}"
    return value


def scraped_tables(tables: Mapping[str, Mapping[str, ScrapedTable]],
                   max_rows: int = 20) -> list[Table]:
    """Each scraped table of named entries (``scrape.json.tables``), as last scraped: a row
    per entry, its fields as columns (at most ``max_rows`` rows shown)."""
    out = []
    for service, by_name in tables.items():
        for name, table in by_name.items():
            more = len(table.rows) - max_rows
            title = (f"{service} {name} (t={format_duration(table.at_s)}"
                     + (f", {more + table.truncated} more" if more + table.truncated > 0
                        else "") + ")")
            view = Table(title=plain(title), box=None, pad_edge=False, header_style="bold",
                         title_justify="left")
            view.add_column("name")
            for field in table.fields:
                view.add_column(field, justify="right")
            for row, cells in list(table.rows.items())[:max_rows]:
                view.add_row(plain(row), *(plain(_cell(cells.get(f))) for f in table.fields))
            out.append(view)
    return out


def live_view(metrics: Metrics, ops: dict[str, str], *, plan: str, elapsed_s: float,
              duration_s: float, state: str,
              resources: dict[str, dict[str, float]] | None = None,
              scraped: dict[str, dict[str, float]] | None = None,
              tables: Mapping[str, Mapping[str, ScrapedTable]] | None = None) -> Group:
    """The live table: per op, the last 5 s and the run so far."""
    left = max(0.0, duration_s - elapsed_s)
    head = Text.assemble(
        ("enduro ", "bold"), (plan, "cyan"), f"  {state}  t={format_duration(elapsed_s)}",
        f"  left={format_duration(left)}", style="")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("op", "rps (5s)", "err (5s)", "p50", "p95", "p99", "requests", "errors"):
        table.add_column(col, justify="left" if col == "op" else "right")
    for op in ops:
        recent = metrics.view({op}, last_s=5)
        total = metrics.view({op}, elapsed_s=elapsed_s)
        pct = percentiles_ms(recent.latency)
        kind = metrics.kinds.get(op)
        label = op if kind is None else f"{op} ({_PLURAL.get(kind, kind)})"
        table.add_row(plain(label), f"{recent.rps:,.0f}", f"{recent.errors:,}", _ms(pct["p50"]),
                      _ms(pct["p95"]), _ms(pct["p99"]), f"{total.requests:,}",
                      f"{total.errors:,}")
    parts: list[Any] = [head, table]
    for target, v in (resources or {}).items():
        parts.append(Text(f"{target.replace('service:', '')}: rss {v.get('rss_mb', 0):,.1f}MB"
                          f"  fds {v.get('fds', 0):.0f}  threads {v.get('threads', 0):.0f}"
                          f"  cpu {v.get('cpu_pct', 0):.0f}%"
                          + (f"  loop lag {v['loop_lag_ms']:.1f}ms" if "loop_lag_ms" in v
                             else ""), style="dim"))
    for service, values in (scraped or {}).items():
        shown = [f"{k}={val:g}" for k, val in list(values.items())[:6]]
        parts.append(Text(f"{service} scraped: " + "  ".join(shown), style="dim"))
    parts.extend(scraped_tables(tables or {}, max_rows=10))
    return Group(*parts)


def summary_table(results: Results | Mapping[str, Any], console: Console) -> None:
    """The end-of-run summary: per-op figures, errors by class, rules, verdict (for a
    ``supervise`` run: the services' final table, and no verdict word to misread)."""
    doc = as_results(results)
    if doc.supervise:
        _supervise_summary(doc, console)
        return
    table = Table(title=plain(f"{doc.plan}  ({format_duration(doc.duration_s)})"),
                  header_style="bold")
    for col in ("op", "requests", "rps", "errors", "p50", "p95", "p99", "max", "svc p95"):
        table.add_column(col, justify="left" if col == "op" else "right")
    for op, s in doc.ops.items():
        lat = s.latency_ms
        # A flow's iterations (its steps are the requests), burst rounds, SSE events.
        label = op if s.kind == "request" else f"{op} ({_PLURAL.get(s.kind, s.kind)})"
        table.add_row(plain(label), f"{s.requests:,}", f"{s.rps:,.1f}", f"{s.errors:,}",
                      _ms(lat.p50), _ms(lat.p95), _ms(lat.p99), _ms(lat.max),
                      _ms(s.service_time_ms.p95))
    console.print(table)
    total = doc.total
    if total is not None and (total.late or total.dropped):
        console.print(plain(f"late arrivals: {total.late:,}   dropped arrivals: "
                            f"{total.dropped:,}"))
    if doc.errors_by_class:
        parts = ", ".join(f"{k}={v:,}" for k, v in doc.errors_by_class.items())
        console.print(plain(f"errors by class: {parts}"))
    for name, st in doc.streams.items():
        trouble = ", ".join(f"{v} with {k}" for k, v in st.streams_with.items() if v)
        spread = st.events_per_stream
        console.print(plain(f"streams of {name}: {st.streams}, events per stream "
                            f"{spread.min:,}..{spread.max:,} (median "
                            f"{spread.median:,}), {st.resumed_with_last_event_id:,} "
                            "resumed with Last-Event-ID"
                            + (f"; {trouble}" if trouble else "; none in trouble")))
    for name, b in doc.bursts.items():
        console.print(plain(f"burst {name}: {b.violations} failed post-condition(s) in "
                            f"{b.rounds_failed} round(s)"))
        for ex in b.examples[:3]:
            console.print(plain(f"  round {ex.round}: {ex.check} ({ex.condition}): "
                                f"{ex.problem}"))
    _faults_table(doc, console)
    for view in scraped_tables(doc.tables):
        console.print(view)
    if doc.rules:
        rules = Table(header_style="bold", box=None)
        rules.add_column("")
        rules.add_column("rule")
        rules.add_column("observed", justify="right")
        rules.add_column("when / why")
        for r in doc.rules:
            mark = (plain("N/A ", "dim") if not r.applicable
                    else plain("PASS", "green") if r.passed else plain("FAIL", "red"))
            rules.add_row(mark, plain(r.rule), plain(r.observed_text), plain(rule_note(r)))
        console.print(rules)
    style = "bold green" if doc.verdict == "pass" else "bold red"
    reason = f"  ({doc.stop_reason})" if doc.stop_reason else ""
    console.print(Text(f"verdict: {doc.verdict}{reason}", style=style))


def _services_table(statuses: Mapping[str, ServiceRecord | Mapping[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("service", "kind", "state", "pid", "restarts", "last exit", "last crash", "rss"):
        table.add_column(col)
    for name, status in statuses.items():
        s = status if isinstance(status, ServiceRecord) else ServiceRecord.salvage(status)
        style = {"up": "green", "down": "red", "failed": "bold red",
                 "restarting": "yellow"}.get(str(s.state), "")
        table.add_row(plain(name), plain(s.kind), plain(s.state, style),
                      str(s.pid or ""), str(s.restarts),
                      plain(s.last_exit or ""), plain(s.last_crash or ""),
                      f"{s.rss_mb} MB" if s.rss_mb is not None else "")
    return table


def services_view(statuses: Mapping[str, ServiceRecord | Mapping[str, Any]], *, plan: str,
                  elapsed_s: float) -> Group:
    """The live table of ``enduro supervise``: per service up/down, restarts, last crash, RSS."""
    head = Text.assemble(("enduro supervise ", "bold"), (plan, "cyan"),
                         f"  t={format_duration(elapsed_s)}  (Ctrl-C stops)")
    return Group(head, _services_table(statuses))


def services_line(statuses: dict[str, dict[str, Any]], elapsed_s: float) -> str:
    """The heartbeat line of ``enduro supervise`` (no load, so no rps): each service's state,
    restarts and RSS."""
    parts = [f"{name} {s.get('state')} restarts={s.get('restarts', 0)}"
             + (f" rss={s['rss_mb']}MB" if s.get("rss_mb") is not None else "")
             for name, s in statuses.items()]
    return f"alive t={format_duration(elapsed_s)} " + ("; ".join(parts) or "no services")


def _supervise_summary(doc: Results, console: Console) -> None:
    """The end of ``enduro supervise``: the services as they ended, the faults, and a last
    line that says nothing was judged (no verdict word a reader could take for a pass)."""
    table = _services_table(doc.services)
    table.title = plain(f"{doc.plan}: services, supervised for "
                        f"{format_duration(doc.duration_s)}")
    console.print(table)
    _faults_table(doc, console)
    reason = f"; {doc.stop_reason}" if doc.stop_reason else ""
    console.print(plain(f"supervise: no load ran and no rule was judged (results.json verdict "
                        f"{doc.verdict}, mode supervise){reason}", "bold yellow"))


def _faults_table(doc: Results, console: Console) -> None:
    if not doc.faults:
        return
    faults = Table(title="faults", header_style="bold")
    for col in ("#", "kind", "target", "start", "end", "detect", "recover", "errors",
                "worst p99", "note"):
        faults.add_column(col, justify="left" if col in ("kind", "target", "note")
                          else "right")

    def secs(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}s"

    for f in doc.faults:
        faults.add_row(str(f.id), plain(f.kind), plain(f.target),
                       secs(f.start_s), secs(f.end_s), secs(f.detect_s), secs(f.recover_s),
                       str(f.errors if f.errors is not None else ""),
                       _ms(f.worst_p99_ms) if f.worst_p99_ms else "",
                       plain(f.error or f.skipped or ""))
    console.print(faults)
