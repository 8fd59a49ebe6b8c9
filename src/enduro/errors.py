"""The exception tree of enduro.

    EnduroError                 root of everything enduro raises on purpose
    ├── PlanError               the user's input is wrong (plan file, flags): exit code 2
    │   └── RuleSyntaxError     a rule string does not parse
    ├── RunError                the world broke: the run could not proceed: exit code 3
    │   ├── TargetUnreachable   a target did not answer when the run started
    │   └── FatalWorkerError    a worker failed in a way that retrying cannot mend
    └── Interrupted             the user stopped the run (SIGINT/SIGTERM): exit code 130

Errors carry their context; wrap lower-level errors with ``raise ... from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "EXIT_FAIL",
    "EXIT_INTERRUPTED",
    "EXIT_PASS",
    "EXIT_PLAN",
    "EXIT_RUN",
    "EnduroError",
    "FatalWorkerError",
    "Interrupted",
    "PlanError",
    "PlanProblem",
    "RuleSyntaxError",
    "RunError",
    "TargetUnreachable",
]

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_PLAN = 2
EXIT_RUN = 3
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class PlanProblem:
    """One problem found in a plan: where it is and what was expected."""

    message: str
    file: str | None = None
    line: int | None = None
    path: str = ""

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        field = f"{self.path}: " if self.path else ""
        return f"{where}{field}{self.message}"


class EnduroError(Exception):
    """Root of every error enduro raises on purpose."""

    exit_code = EXIT_RUN


class PlanError(EnduroError):
    """The plan or the command line is wrong; the user can fix it."""

    exit_code = EXIT_PLAN

    def __init__(self, problems: list[PlanProblem] | str) -> None:
        if isinstance(problems, str):
            problems = [PlanProblem(problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RuleSyntaxError(PlanError):
    """A rule string does not parse."""


class RunError(EnduroError):
    """The run could not proceed for a reason outside the plan."""

    exit_code = EXIT_RUN


class TargetUnreachable(RunError):
    """A target did not answer when the run started."""


class FatalWorkerError(RunError):
    """A worker failed in a way that retrying cannot mend; the run stops as failed."""


class Interrupted(EnduroError):
    """The user stopped the run."""

    exit_code = EXIT_INTERRUPTED
