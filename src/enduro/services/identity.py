"""Knowing a process is the one enduro started before signalling it, and finding the
processes a run left behind."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

__all__ = ["ProcessIdentity", "inside", "kill_group", "processes_inside"]


@dataclass(frozen=True)
class ProcessIdentity:
    """What identifies a process beyond its pid, which the kernel reuses."""

    pid: int
    create_time: float
    cmdline: list[str]
    cwd: str

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return cls(pid, proc.create_time(), proc.cmdline(), proc.cwd())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessIdentity:
        return cls(int(data["pid"]), float(data["create_time"]), list(data["cmdline"]),
                   str(data["cwd"]))

    def alive(self) -> bool:
        """True when a process with this pid exists and is the same process (same start time);
        a zombie counts as gone."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.05:
                return False
            return proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


def inside(path: str | Path, root: Path) -> bool:
    try:
        Path(path).resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


def processes_inside(root: Path, *, exclude: set[int] | None = None) -> list[psutil.Process]:
    """Processes whose working directory or command line lies inside ``root``."""
    found = []
    me = os.getpid()
    root_text = str(root.resolve())
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        pid = proc.info["pid"]
        if pid == me or (exclude and pid in exclude):
            continue
        cwd = proc.info.get("cwd") or ""
        cmdline = proc.info.get("cmdline") or []
        if (cwd and inside(cwd, root)) or any(root_text in part for part in cmdline):
            found.append(proc)
    return found


def kill_group(pid: int, sig: int, *, alone_too: bool = True) -> bool:
    """Signal the process group led by ``pid`` (enduro starts each service in its own session);
    with ``alone_too``, fall back to the process alone. False when it is gone."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        if not alone_too:
            return False
    except PermissionError:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
        return True
    return False


def signal_number(name: str) -> int:
    return int(getattr(signal, name))
