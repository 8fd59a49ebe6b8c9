"""Resource sampling: each managed service's whole process tree and the generator itself
(RSS, USS, open fds, threads, CPU, TCP connections), and the generator's event-loop lag."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field

import psutil

__all__ = ["CpuRate", "LoopLag", "sample_tree"]


def sample_tree(pid: int, *, uss: bool = True,
                children: str | None = None) -> dict[str, float] | None:
    """Summed figures of ``pid`` and its descendants (only those whose command line holds
    ``children``, when given); None when it is gone. ``pid`` itself is among the figures:
    trend tests split a restarted service's series into its incarnations by it."""
    try:
        root = psutil.Process(pid)
        kids = root.children(recursive=True)
        if children is not None:
            kids = [k for k in kids if _cmdline_has(k, children)]
        procs = [root, *kids]
    except psutil.Error:
        return None
    rss = uss_total = cpu = 0.0
    fds = threads = conns = 0
    counted = 0
    for proc in procs:
        try:
            with proc.oneshot():
                mem = proc.memory_info()
                rss += mem.rss
                if uss:
                    with contextlib.suppress(psutil.Error):
                        uss_total += proc.memory_full_info().uss
                times = proc.cpu_times()
                cpu += times.user + times.system
                with contextlib.suppress(psutil.Error):
                    fds += proc.num_fds()
                threads += proc.num_threads()
                with contextlib.suppress(psutil.Error):
                    conns += len(proc.net_connections(kind="tcp"))
            counted += 1
        except psutil.Error:
            continue
    if not counted:
        return None
    out = {"rss_mb": rss / 1e6, "fds": float(fds), "threads": float(threads),
           "connections": float(conns), "cpu_s": cpu, "processes": float(counted),
           "pid": float(pid)}
    if uss:
        out["uss_mb"] = uss_total / 1e6
    return out


def _cmdline_has(proc: psutil.Process, text: str) -> bool:
    try:
        return text in " ".join(proc.cmdline())
    except psutil.Error:
        return False


@dataclass
class CpuRate:
    """CPU percent from successive cumulative CPU seconds."""

    last: dict[str, tuple[float, float]] = field(default_factory=dict)

    def percent(self, target: str, cpu_s: float) -> float | None:
        now = time.monotonic()
        prev = self.last.get(target)
        self.last[target] = (now, cpu_s)
        if prev is None or now <= prev[0]:
            return None
        return max(0.0, (cpu_s - prev[1]) / (now - prev[0]) * 100.0)


class LoopLag:
    """How late the event loop wakes a sleeper: the generator's own saturation signal."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.interval)
            lag = max(0.0, time.monotonic() - start - self.interval)
            self.samples.append(lag)
            self.worst = max(self.worst, lag)

    def take(self) -> float:
        """The worst lag since the last call, in milliseconds."""
        worst = max(self.samples, default=0.0)
        self.samples.clear()
        return worst * 1000.0


def own_pid() -> int:
    return os.getpid()
