"""Is the runner of a run alive? The pid in state.json is checked against the process's
start time and command line, since the kernel reuses pids."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psutil

__all__ = ["RunnerState", "runner_state"]


@dataclass(frozen=True)
class RunnerState:
    """The runner as seen from outside."""

    pid: int | None
    alive: bool
    heartbeat_age_s: float | None


def _pid(state: dict[str, Any]) -> int | None:
    """The runner's pid as recorded, or None when it is not a positive integer (a corrupt
    state.json must never make enduro signal pid 0 or -1, which name process groups)."""
    pid = state.get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None


def runner_alive(state: dict[str, Any]) -> bool:
    """Whether the process named by ``state["pid"]`` is this run's enduro runner."""
    pid = _pid(state)
    started = state.get("started_at")
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return False
    if isinstance(started, int | float) and not (created - 2 <= started <= created + 600):
        return False
    return "enduro" in cmd


def runner_state(state: dict[str, Any]) -> RunnerState:
    """The runner's pid, whether it is alive, and the age of its last heartbeat."""
    updated = state.get("updated_at")
    age = time.time() - updated if isinstance(updated, int | float) else None
    if age is not None and not abs(age) < 1e10:  # nan, inf, 1e308: not a time enduro wrote
        age = None
    return RunnerState(_pid(state), runner_alive(state),
                       round(age, 1) if age is not None else None)
