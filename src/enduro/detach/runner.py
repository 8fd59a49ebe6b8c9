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


def runner_alive(state: dict[str, Any]) -> bool:
    pid = state.get("pid")
    started = state.get("started_at")
    if not isinstance(pid, int):
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
    updated = state.get("updated_at")
    age = time.time() - updated if isinstance(updated, int | float) else None
    pid = state.get("pid") if isinstance(state.get("pid"), int) else None
    return RunnerState(pid, runner_alive(state), round(age, 1) if age is not None else None)
