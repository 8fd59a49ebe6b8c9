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
from tests.helpers.documents import figures, results_json

HOSTILE = "[/api] [bold]x[/bold] [link=file:///etc]y"


def _console() -> tuple[Console, io.StringIO]:
    # A default console (markup on), as a library user would pass: the text must be safe anyway.
    buffer = io.StringIO()
    return Console(file=buffer, width=400, color_system=None), buffer


def _results(name: str) -> dict[str, Any]:
    return results_json(
        plan=name, verdict="fail", rules_passed=False, stop_reason=name,
        ops={name: figures(10, 1, workload="w", kind="request")}, total=figures(10, 1),
        errors_by_class={name: 1},
        faults=[{"id": 1, "name": "kill", "kind": "kill", "target": name, "start_s": 1.0,
                 "end_s": None, "error": name}],
        rules=[{"rule": f"errors{{op={name}}} == 0", "observed": 1.0, "observed_text": name,
                "passed": False}])


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
