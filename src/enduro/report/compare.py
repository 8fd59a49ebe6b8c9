"""``enduro compare A B``: two runs side by side, per op and in total."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from enduro.base.errors import RunError

__all__ = ["compare_table"]


def _load(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "results.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise RunError(f"{run_dir}: no readable results.json (if its runner died, "
                       f"'enduro report {run_dir.name}' rebuilds it from the store)") from exc


def _delta(a: float, b: float, lower_is_better: bool) -> Text:
    if not a:
        return Text("" if not b else "new")
    change = (b - a) / a * 100
    worse = change > 0 if lower_is_better else change < 0
    color = "red" if worse and abs(change) >= 5 else "green" if abs(change) >= 5 else "dim"
    return Text(f"{change:+.1f}%", style=color)


def _get(summary: dict[str, Any], path: tuple[str, ...]) -> float:
    node: Any = summary
    for key in path:
        node = node[key]
    return float(node)


def compare_table(a_dir: Path, b_dir: Path) -> Table:
    """A rich table: each op's rps, errors and latency percentiles in A and B."""
    a, b = _load(a_dir), _load(b_dir)
    # Names come from the user and results.json: Text keeps any [markup] in them literal.
    table = Table(title=Text(f"{a_dir.name} ({a['verdict']})  vs  {b_dir.name} "
                             f"({b['verdict']})"), header_style="bold")
    for col in ("op", "figure", "A", "B", "change"):
        table.add_column(col, justify="left" if col in ("op", "figure") else "right")
    ops = ["(total)", *sorted(set(a.get("ops", {})) | set(b.get("ops", {})))]
    for op in ops:
        sa = a["total"] if op == "(total)" else a.get("ops", {}).get(op)
        sb = b["total"] if op == "(total)" else b.get("ops", {}).get(op)
        if sa is None or sb is None:
            table.add_row(Text(op), "present", "yes" if sa else "no", "yes" if sb else "no",
                          "")
            continue
        for figure, path, scale, lower in (
                ("rps", ("rps",), 1.0, False),
                ("error rate %", ("error_rate",), 100.0, True),
                ("p50 ms", ("latency_ms", "p50"), 1.0, True),
                ("p95 ms", ("latency_ms", "p95"), 1.0, True),
                ("p99 ms", ("latency_ms", "p99"), 1.0, True)):
            va, vb = _get(sa, path) * scale, _get(sb, path) * scale
            table.add_row(Text(op), figure, f"{va:,.3f}", f"{vb:,.3f}", _delta(va, vb, lower))
            op = ""
    return table
