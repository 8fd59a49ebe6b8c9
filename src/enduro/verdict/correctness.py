"""What a run's records say of correctness: the history checkers' violations (from
``history.jsonl``) and where leak canaries appeared (responses and service logs)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enduro.observe.window import WindowStats
from enduro.verdict.checkers import Violation, check_history

__all__ = ["EXAMPLES", "CheckerFindings", "canary_hits", "run_checkers"]

EXAMPLES = 20  # violations kept per checker in results.json (all are counted)


@dataclass
class CheckerFindings:
    """Per checker: its first ``EXAMPLES`` violations, and how many it found."""

    violations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    first: dict[str, Violation] = field(default_factory=dict)  # each checker's first


def run_checkers(history: Path | None, checkers: Iterable[str]) -> CheckerFindings:
    """Run ``checkers`` over the operations recorded in ``history`` (lines that are not
    JSON, such as one cut short by a kill, are skipped)."""
    records: list[dict[str, Any]] = []
    if history is not None and history.exists():
        for line in history.read_text().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    found = check_history(records, checkers)
    return CheckerFindings(
        violations={name: [v.to_json() for v in vs[:EXAMPLES]] for name, vs in found.items()},
        counts={name: len(vs) for name, vs in found.items()},
        first={name: vs[0] for name, vs in found.items() if vs})


def canary_hits(values: list[str], totals: Mapping[str, WindowStats],
                run_dir: Path | None) -> list[dict[str, Any]]:
    """Where a canary appeared: responses (ops with errors of class canary) and service
    logs (file:line). The canaries themselves are never written out."""
    if not values:
        return []
    hits: list[dict[str, Any]] = []
    for op, w in totals.items():
        if w.classes.get("canary"):
            hits.append({"where": f"responses of op {op}", "count": w.classes["canary"]})
    if run_dir is not None:
        for log in sorted(run_dir.glob("services/*/output.log*")):
            with log.open("rb") as fh:
                for number, line in enumerate(fh, start=1):
                    for i, value in enumerate(values):
                        if value.encode() in line:
                            hits.append({"where": f"{log.relative_to(run_dir)}:{number}",
                                         "canary": f"canary#{i}"})
    return hits
