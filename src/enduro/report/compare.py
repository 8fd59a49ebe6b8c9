"""``enduro compare A B``: two runs side by side, per op and in total."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text

from enduro.documents.document import DocumentError
from enduro.documents.results import Figures, Results

__all__ = ["compare_table"]


def _load(run_dir: Path) -> Results:
    try:
        return Results.read(run_dir / "results.json")
    except DocumentError as exc:
        raise DocumentError(f"{exc} (if its runner died, 'enduro report {run_dir.name}' "
                            "rebuilds it from the store)") from exc


def _delta(a: float, b: float, lower_is_better: bool) -> Text:
    if not a:
        return Text("" if not b else "new")
    change = (b - a) / a * 100
    worse = change > 0 if lower_is_better else change < 0
    color = "red" if worse and abs(change) >= 5 else "green" if abs(change) >= 5 else "dim"
    return Text(f"{change:+.1f}%", style=color)


def _figures(f: Figures) -> list[tuple[str, float, bool]]:
    """(figure, value, lower is better) of one op or the total, as the table shows them."""
    return [("rps", f.rps, False), ("error rate %", f.error_rate * 100.0, True),
            ("p50 ms", f.latency_ms.p50, True), ("p95 ms", f.latency_ms.p95, True),
            ("p99 ms", f.latency_ms.p99, True)]


def compare_table(a_dir: Path, b_dir: Path) -> Table:
    """A rich table: each op's rps, errors and latency percentiles in A and B."""
    a, b = _load(a_dir), _load(b_dir)
    # Names come from the user and results.json: Text keeps any [markup] in them literal.
    table = Table(title=Text(f"{a_dir.name} ({a.verdict})  vs  {b_dir.name} "
                             f"({b.verdict})"), header_style="bold")
    for col in ("op", "figure", "A", "B", "change"):
        table.add_column(col, justify="left" if col in ("op", "figure") else "right")
    ops = ["(total)", *sorted(set(a.ops) | set(b.ops))]
    for op in ops:
        # A run whose results could not be assembled has no total.
        sa: Figures | None = a.total if op == "(total)" else a.ops.get(op)
        sb: Figures | None = b.total if op == "(total)" else b.ops.get(op)
        if sa is None or sb is None:
            table.add_row(Text(op), "present", "yes" if sa else "no", "yes" if sb else "no",
                          "")
            continue
        for (figure, va, lower), (_, vb, _) in zip(_figures(sa), _figures(sb), strict=True):
            table.add_row(Text(op), figure, f"{va:,.3f}", f"{vb:,.3f}", _delta(va, vb, lower))
            op = ""
    return table
