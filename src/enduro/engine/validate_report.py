"""The problems a plan check finds, each at the file:line of its field (``--set`` when the
value came from the command line)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from enduro.base.errors import PlanError, PlanProblem
from enduro.plan.source import Lines, Path_, dotted

__all__ = ["Report"]

_ANY = re.compile(r"\{\{.*?\}\}", re.DOTALL)


class Report:
    """The problems found so far; ``lines`` maps each field to its line."""

    def __init__(self, lines: Lines | None) -> None:
        self.lines = lines
        self.problems: list[PlanProblem] = []

    def add(self, path: Path_, message: str) -> None:
        """A problem at ``path``."""
        lines = self.lines
        if lines is None:
            self.problems.append(PlanProblem(message, path=dotted(path)))
        elif lines.line_of(path) == 0:  # the value came from --set
            self.problems.append(PlanProblem(message, "--set", None, dotted(path)))
        else:
            self.problems.append(lines.problem(path, message))

    def add_error(self, path: Path_, exc: PlanError) -> None:
        """The problems of ``exc`` at ``path`` (or at their own file and line)."""
        for p in exc.problems:
            if p.file is not None:  # inside a plan-side module: its own file and line
                self.problems.append(PlanProblem(p.message, p.file, p.line, dotted(path)))
            else:
                self.add(path, p.message)

    def strings(self, value: Any, path: Path_, check: Callable[[str, Path_], None]) -> None:
        """Call ``check`` on every string inside ``value`` (JSON-like data)."""
        if isinstance(value, str):
            check(value, path)
        elif isinstance(value, dict):
            for k, v in value.items():
                self.strings(v, (*path, k), check)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.strings(v, (*path, i), check)

    def not_templated(self, value: Any, path: Path_, why: str) -> None:
        """Fields sent as written: a ``{{...}}`` there would reach the server as it is."""
        def check(text: str, at: Path_) -> None:
            m = _ANY.search(text)
            if m is not None:
                self.add(at, f"{m.group(0)} is not filled in here: {why}")
        self.strings(value, path, check)
