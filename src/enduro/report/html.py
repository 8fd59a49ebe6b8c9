"""``report.html``: the dashboard's page with the run's data embedded, written at the end of
every run (``enduro report`` writes it again): one self-contained file, readable offline,
that shows what the live page showed. Its series are folded into buckets (``series.py``), so
an hour's report stays well under 2 MB and a day's opens as fast."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from enduro.documents.events import Event, events_in
from enduro.documents.results import Results
from enduro.report.page import page_html
from enduro.report.pagedata import event_rows, finite_object, pausing, run_from_results
from enduro.report.series import (
    choose_step,
    has_table,
    op_columns,
    sample_columns,
    scrape_columns,
)

__all__ = ["report_data", "write_report"]


@contextlib.contextmanager
def _store(run_dir: Path) -> Iterator[sqlite3.Connection]:
    path = run_dir / "metrics.sqlite"
    db = (sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) if path.is_file()
          else sqlite3.connect(":memory:"))
    try:
        yield db
    finally:
        db.close()


def _records(run_dir: Path) -> list[tuple[int, Event]]:
    """events.jsonl with line numbers; a torn or corrupt line is skipped, not the page."""
    try:
        lines = (run_dir / "events.jsonl").read_text(encoding="utf-8",
                                                     errors="replace").splitlines()
    except OSError:
        return []
    return [(n, event) for n, line in enumerate(lines, 1) for event in events_in([line])]


def _window_s(db: sqlite3.Connection) -> float:
    if not has_table(db, "windows"):
        return 1.0
    span = db.execute("SELECT MIN(span) FROM windows").fetchone()[0]
    return float(span) if span else 1.0


def report_data(run_dir: Path) -> dict[str, Any]:
    """What ``report.html`` embeds: ``run`` (as ``/api/run`` answers for a finished run),
    ``series``, ``scrapes`` and ``events`` (as their endpoints answer), from the run
    directory's results.json, metrics.sqlite and events.jsonl."""
    results = Results.read(run_dir / "results.json")
    everything = (-math.inf, math.inf)
    with _store(run_dir) as db:
        window = _window_s(db)
        step = choose_step(results.duration_s, window)
        fold = step if step > window else None
        ops = op_columns(db, *everything, fold) if has_table(db, "windows") else {}
        resources = sample_columns(db, *everything, fold) if has_table(db, "samples") else {}
        scrapes = scrape_columns(db, *everything, fold)
    run = run_from_results(results, step)
    run["pausing"] = pausing(run_dir)
    for name in ops:  # an op the results do not list (a rebuilt run): drawn all the same
        run["kinds"].setdefault(name, "request")
    return finite_object({"run": run, "series": {"ops": ops, "resources": resources,
                                          "windows_until": None, "samples_until": None,
                                          "more": False},
                   "scrapes": scrapes, "events": event_rows(_records(run_dir))})


def write_report(run_dir: Path) -> Path:
    """Build ``report.html`` from what the run directory holds; return its path."""
    data = report_data(run_dir)
    out = run_dir / "report.html"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page_html(data, title=f"{data['run']['plan']} \u00b7 "
                                         f"{data['run']['verdict']}"), encoding="utf-8")
    tmp.replace(out)
    return out
