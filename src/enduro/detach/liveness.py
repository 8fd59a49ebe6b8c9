"""Is the runner of a run alive? The pid in state.json is checked against the process's
start time and command line, since the kernel reuses pids."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

from enduro.documents.state import State

__all__ = ["RunnerState", "runner_state"]


@dataclass(frozen=True)
class RunnerState:
    """The runner as seen from outside."""

    pid: int | None
    alive: bool
    heartbeat_age_s: float | None


def runner_alive(state: State) -> bool:
    """Whether the process named by ``state.pid`` is this run's enduro runner. (The model
    holds only a positive pid: a corrupt state.json must never make enduro signal pid 0
    or -1, which name process groups.)"""
    pid = state.pid
    started = state.started_at
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
    if started is not None and not (created - 2 <= started <= created + 600):
        return False
    return "enduro" in cmd


def runner_state(state: State) -> RunnerState:
    """The runner's pid, whether it is alive, and the age of its last heartbeat."""
    updated = state.updated_at
    age = time.time() - updated if updated is not None else None
    if age is not None and not abs(age) < 1e10:  # nan, inf, 1e308: not a time enduro wrote
        age = None
    return RunnerState(state.pid, runner_alive(state),
                       round(age, 1) if age is not None else None)
