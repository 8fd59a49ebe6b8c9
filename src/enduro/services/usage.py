"""What the OS says of a service's running process: its memory, whether it is stopped."""

from __future__ import annotations

import contextlib

import psutil

from enduro.services.process import ManagedProcess

__all__ = ["is_stopped", "rss_mb"]


def is_stopped(proc: ManagedProcess | None) -> bool:
    """Whether the running process is SIGSTOPped (a pause fault, a debugger)."""
    if proc is None or proc.proc is None or proc.returncode is not None:
        return False
    try:
        status = psutil.Process(proc.proc.pid).status()
    except psutil.Error:
        return False
    return status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)


def rss_mb(proc: ManagedProcess | None) -> float | None:
    """The resident memory of the process and its children, in MiB; None when not running."""
    if proc is None or proc.proc is None or proc.returncode is not None:
        return None
    try:
        root = psutil.Process(proc.proc.pid)
        total = root.memory_info().rss
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return round(total / 2**20, 1)
    except psutil.Error:
        return None
