"""Finding a run directory from what the user typed: an id, a path, or nothing (the latest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from enduro.base.errors import PlanError
from enduro.documents.document import DocumentError, read_object
from enduro.documents.state import read_state

__all__ = ["find_run", "list_runs", "read_json"]


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing, unreadable, not a regular
    file, too large, not JSON, nested too deep to parse, or not an object (one corrupt file
    must not stop a command over every run)."""
    try:
        return read_object(path)
    except DocumentError:
        return None


def _started(run_dir: Path) -> float:
    state = read_state(run_dir / "state.json")
    started = state.started_at if state is not None else None
    # No start recorded (or 0, or nan): the directory's time, so that sorting never fails.
    return started if started and started == started else run_dir.stat().st_mtime


def list_runs(runs_dir: Path) -> list[Path]:
    """Run directories under ``runs_dir``, oldest first."""
    if not runs_dir.is_dir():
        return []
    found = [p for p in runs_dir.iterdir() if p.is_dir() and (p / "state.json").exists()]
    return sorted(found, key=lambda p: (_started(p), p.name))


def find_run(run: str | None, runs_dir: Path) -> Path:
    """The run directory named by ``run`` (an id under ``runs_dir`` or a path), or the latest."""
    if run is None:
        runs = list_runs(runs_dir)
        if not runs:
            raise PlanError(f"no runs under {runs_dir} (use --runs DIR to look elsewhere)")
        return runs[-1]
    for candidate in (Path(run), runs_dir / run):
        if (candidate / "state.json").exists():
            return candidate
    matches = [p for p in list_runs(runs_dir) if p.name.startswith(run)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise PlanError(f"run {run!r} is ambiguous: {', '.join(p.name for p in matches)}")
    for candidate in (Path(run), runs_dir / run):
        if candidate.is_dir():
            raise PlanError(f"{candidate}: not a run directory (it has no state.json)")
    raise PlanError(f"no run {run!r} under {runs_dir}")
