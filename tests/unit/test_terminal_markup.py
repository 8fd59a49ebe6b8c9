"""Text from users and servers reaches the terminal exactly as written: Rich markup in op names,
rule texts, fault notes, service states or stop reasons is never interpreted (a stray closing
tag such as ``[/api]`` used to raise MarkupError, and ``[bold]`` silently vanished)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from enduro.cli import make_console
from enduro.report.compare import compare_table
from enduro.report.terminal import services_view, summary_table

HOSTILE = "[/api] [bold]x[/bold] [link=file:///etc]y"


def _console() -> tuple[Console, io.StringIO]:
    # A default console (markup on), as a library user would pass: the text must be safe anyway.
    buffer = io.StringIO()
    return Console(file=buffer, width=400, color_system=None), buffer


def _results(name: str) -> dict[str, Any]:
    latency = {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0}
    return {"plan": name, "duration_s": 3.0, "verdict": "fail", "stop_reason": name,
            "ops": {name: {"requests": 10, "rps": 3.3, "errors": 1, "latency_ms": latency,
                           "service_time_ms": latency, "error_rate": 0.1}},
            "total": {"late": 0, "dropped": 0, "requests": 10, "rps": 3.3, "error_rate": 0.1,
                      "latency_ms": latency},
            "errors_by_class": {name: 1},
            "faults": [{"id": 1, "kind": "kill", "target": name, "error": name}],
            "rules": [{"rule": f"errors{{op={name}}} == 0", "observed_text": name,
                       "passed": False}]}


def test_summary_table_prints_markup_literally() -> None:
    console, buffer = _console()
    summary_table(_results(HOSTILE), console)
    text = buffer.getvalue()
    assert text.count(HOSTILE) >= 6  # title, op, class, fault target and note, rule, reason
    assert "FAIL" in text


def test_services_view_prints_a_crash_line_literally() -> None:
    console, buffer = _console()
    console.print(services_view({HOSTILE: {"kind": "process", "state": "down",
                                           "last_crash": HOSTILE}}, plan=HOSTILE, elapsed_s=1))
    assert buffer.getvalue().count(HOSTILE) == 3


def test_compare_table_prints_op_names_literally(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(_results(HOSTILE)))
    console, buffer = _console()
    console.print(compare_table(tmp_path / "a", tmp_path / "b"))
    assert HOSTILE in buffer.getvalue() and "+0.0%" in buffer.getvalue()


def test_the_cli_console_never_reads_markup_or_emoji() -> None:
    console = make_console()
    buffer = io.StringIO()
    console.file = buffer
    console.print(f"{HOSTILE} :smile:")
    assert buffer.getvalue().strip() == f"{HOSTILE} :smile:"
