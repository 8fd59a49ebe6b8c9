"""The exception tree of enduro.

    EnduroError                 root of everything enduro raises on purpose
    ├── PlanError               the user's input is wrong (plan file, flags): exit code 2
    │   └── RuleSyntaxError     a rule string does not parse
    ├── RunError                the world broke: the run could not proceed: exit code 3
    │   ├── TargetUnreachable   a target did not answer when the run started
    │   └── FatalWorkerError    a worker failed in a way that retrying cannot mend
    ├── Interrupted             the user stopped the run (SIGINT/SIGTERM): exit code 130
    └── Defect                  a bug in enduro itself: exit code 70 (EX_SOFTWARE); the
                                traceback is saved to a file, never printed

    Fatal                       raised by the user's python op or flow step: stop the run
                                now, as failed (exit code 1); not an EnduroError

Exit codes: 0 pass, 1 a rule failed (``EXIT_FAIL``), 2 plan or usage error, 3 the run could not
proceed, 70 an enduro defect, 130 interrupted. Any exception that is not an ``EnduroError`` is a
defect: ``enduro.cli`` saves its traceback with :func:`save_traceback` and prints one line.

Errors carry their context; wrap lower-level errors with ``raise ... from exc``.
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EXIT_DEFECT",
    "EXIT_FAIL",
    "EXIT_INTERRUPTED",
    "EXIT_PASS",
    "EXIT_PLAN",
    "EXIT_RUN",
    "FATAL_CLASS",
    "Defect",
    "EnduroError",
    "Fatal",
    "FatalWorkerError",
    "Interrupted",
    "PlanError",
    "PlanProblem",
    "RuleSyntaxError",
    "RunError",
    "TargetUnreachable",
    "defects_dir",
    "fatal_class",
    "is_user_error",
    "save_traceback",
]

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_PLAN = 2
EXIT_RUN = 3
EXIT_DEFECT = 70  # EX_SOFTWARE from sysexits.h: an internal software error
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


class Fatal(Exception):
    """Raise it in a python op or a python flow step to stop the run at once, as failed:
    what the code saw makes going on pointless (the service lost data, a key invariant
    broke). The message becomes the run's stop reason; the op counts an error of class
    ``fatal:<message>``."""


# The error class a ``Fatal`` is counted as (followed by its message).
FATAL_CLASS = "fatal"


def fatal_class(exc: Fatal) -> str:
    """The error class of a ``Fatal``: ``fatal:`` and its message, on one line, bounded."""
    message = " ".join(str(exc).split())[:120]
    return f"{FATAL_CLASS}:{message}" if message else FATAL_CLASS


class Interrupted(EnduroError):
    """The user stopped the run."""

    exit_code = EXIT_INTERRUPTED


class Defect(EnduroError):
    """A bug in enduro itself; ``traceback_file`` holds the traceback."""

    exit_code = EXIT_DEFECT

    def __init__(self, traceback_file: Path, summary: str = "") -> None:
        self.traceback_file = traceback_file
        what = f" ({summary})" if summary else ""
        super().__init__(f"internal error in enduro{what}; this is a bug. The traceback is in "
                         f"{traceback_file} (please attach it to a bug report)")

    @classmethod
    def saved(cls, exc: BaseException, directory: Path | None = None) -> Defect:
        """Save the traceback of ``exc`` (see :func:`save_traceback`) and describe it."""
        return cls(save_traceback(exc, directory), type(exc).__name__)


def is_user_error(exc: BaseException) -> bool:
    """True for mistakes the user must fix (plan, flags): retrying them cannot help."""
    return isinstance(exc, PlanError)


def defects_dir() -> Path:
    """Where tracebacks go when no run directory exists: ``$XDG_CACHE_HOME/enduro/defects``
    (``~/.cache/enduro/defects``), else the temporary directory."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "enduro" / "defects"


def save_traceback(exc: BaseException, directory: Path | None = None) -> Path:
    """Write the traceback of ``exc`` to a new file in ``directory`` (``traceback.txt``) or,
    without one, in :func:`defects_dir`; fall back to the temporary directory when the first
    choice cannot be written. Returns the file's path."""
    text = "".join(traceback.format_exception(exc))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    header = f"enduro defect at {stamp} (pid {os.getpid()})\n\n"
    candidates: list[tuple[Path, str]] = []
    if directory is not None:
        candidates.append((directory, "traceback"))
    candidates.append((defects_dir(), f"defect-{stamp}-{os.getpid()}"))
    candidates.append((Path(tempfile.gettempdir()), f"enduro-defect-{stamp}-{os.getpid()}"))
    for where, stem in candidates:
        try:
            where.mkdir(parents=True, exist_ok=True)
            path = where / f"{stem}.txt"
            n = 1
            while path.exists():  # never overwrite an earlier traceback
                n += 1
                path = where / f"{stem}-{n}.txt"
            path.write_text(header + text, encoding="utf-8")
            return path.resolve()
        except OSError:
            continue
    raise OSError("no writable place for the traceback") from exc
