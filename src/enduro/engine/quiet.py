"""Workloads kept clear of SSE churn and faults (``not_during``).

``Quiet`` holds what is in force now, by reason (``churn``, ``faults``) and by source (an SSE
driver of this process, the fault runner, a ``--workers`` process), and wakes whoever waits
for a change. ``Avoiding`` runs a workload's driver while none of its reasons is in force: when
one comes into force, the driver stops sending and its operations in flight end (within the
grace, as at the end of a run), so nothing is sent and nothing fails while it lasts; after it,
a new driver of the same workload starts. Each pause is kept (``pauses.jsonl``) and summed up
in ``results.json`` under ``paused``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, Protocol

__all__ = ["REASONS", "Avoiding", "Pause", "Quiet", "QuietRelay", "summarize_pauses",
           "write_pauses"]

_monotonic = time.monotonic

# What a workload can stay clear of: the keys of ``not_during``.
REASONS = ("churn", "faults")


class Quiet:
    """What is in force now, by reason and source; ``listeners`` hear each source's change
    as ``(reason, source, on)``."""

    def __init__(self) -> None:
        self._holds: dict[tuple[str, str], int] = {}
        self._waiters: set[asyncio.Future[None]] = set()
        self.listeners: list[Callable[[str, str, bool], None]] = []
        # Workloads told to stop whose operations in flight have not ended yet.
        self.draining = 0
        self._settle: set[asyncio.Future[None]] = set()

    def set(self, reason: str, source: str, on: bool) -> None:
        """``source`` puts ``reason`` in force (``on``) or lifts it; holds of one source
        nest (two churn rounds of one driver overlap)."""
        key = (reason, source)
        before = self._holds.get(key, 0)
        after = before + 1 if on else max(0, before - 1)
        if after:
            self._holds[key] = after
        else:
            self._holds.pop(key, None)
        if (before > 0) == (after > 0):
            return
        for listener in list(self.listeners):
            listener(reason, source, after > 0)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def drained(self) -> None:
        """A workload told to stop has no operation in flight any more."""
        self.draining = max(0, self.draining - 1)
        if not self.draining:
            for waiter in self._settle:
                if not waiter.done():
                    waiter.set_result(None)
            self._settle.clear()

    async def settled(self, timeout: float) -> None:
        """Return once the workloads that just stopped have no operation in flight (so a
        fault applied now meets none of theirs), or after ``timeout``."""
        if not self.draining:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._settle.add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            self._settle.discard(waiter)

    def replace(self, reason: str, source: str, on: bool) -> None:
        """Set ``source``'s hold of ``reason`` to exactly on or off (a state reported by
        another process, not nested)."""
        if ((reason, source) in self._holds) != on:
            self.set(reason, source, on)

    def in_force(self, reasons: Iterable[str]) -> str | None:
        """The first of ``reasons`` in force now, or None."""
        wanted = set(reasons)
        for reason, _source in self._holds:
            if reason in wanted:
                return reason
        return None

    async def changed(self) -> None:
        """Return at the next change of any reason."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)


class QuietRelay:
    """The runner's side of ``quiet`` under ``--workers``: what comes into force anywhere
    (a fault here, churn in a worker) is sent to every worker (``send(reason, on)``); when a
    reason comes into force, each worker answers once its workloads that stay clear of it
    have nothing in flight, and ``settled`` waits for those answers from ``alive()``."""

    def __init__(self, quiet: Quiet, send: Callable[[str, bool], None],
                 alive: Callable[[], set[int]]) -> None:
        self.quiet = quiet
        self._send = send
        self._alive = alive
        self._answers: dict[str, set[int]] = {}
        self._waiters: set[asyncio.Future[None]] = set()
        quiet.listeners.append(self._changed)

    def _changed(self, reason: str, _source: str, _on: bool) -> None:
        on = self.quiet.in_force((reason,)) is not None
        if on:
            self._answers[reason] = set()
        self._send(reason, on)

    def held(self, worker: int, reason: str, on: bool) -> None:
        """Worker ``worker`` says its churn came into force or ended."""
        self.quiet.replace(reason, f"worker{worker}", on)

    def answered(self, worker: int, reason: str) -> None:
        """Worker ``worker`` has settled after ``reason`` came into force."""
        self._answers.setdefault(reason, set()).add(worker)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def settled(self, reason: str, timeout: float) -> None:
        """Return once every live worker has settled, or after ``timeout``."""
        deadline = _monotonic() + timeout
        while not self._alive() <= self._answers.get(reason, set()):
            left = deadline - _monotonic()
            if left <= 0:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.add(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, left)

    def close(self) -> None:
        self.quiet.listeners.remove(self._changed)


class Driving(Protocol):
    """What ``Avoiding`` needs of the driver it runs (every kind's driver has it)."""

    def run(self, duration: float) -> Coroutine[Any, Any, None]: ...

    def drain(self, grace: float) -> Coroutine[Any, Any, None]: ...

    def close_all(self) -> None: ...


class Pause:
    """One stretch in which a workload sent nothing: its reason and its bounds on the load's
    clock (seconds from its start)."""

    __slots__ = ("end_s", "reason", "start_s")

    def __init__(self, reason: str, start_s: float, end_s: float) -> None:
        self.reason = reason
        self.start_s = start_s
        self.end_s = end_s


class Avoiding:
    """Runs a workload's driver (``build`` makes a new one) while none of ``reasons`` is in
    force in ``quiet``; ``origin`` is the load's start on the monotonic clock."""

    def __init__(self, build: Callable[[], Driving | None], quiet: Quiet,
                 reasons: tuple[str, ...], *, grace: float, origin: float) -> None:
        self._build = build
        self.quiet = quiet
        self.reasons = reasons
        self.grace = grace
        self.origin = origin
        self.current: Driving | None = None
        self.pauses: list[Pause] = []
        self._stopped = False
        self._told = False  # counted in ``quiet.draining`` until the driver has drained
        quiet.listeners.append(self._heard)

    def _heard(self, _reason: str, _source: str, _on: bool) -> None:
        # Counted at once, so that whoever puts a reason in force can wait for the drain.
        if self.current is not None and not self._told \
                and self.quiet.in_force(self.reasons) is not None:
            self._told = True
            self.quiet.draining += 1

    async def run(self, duration: float) -> None:
        end = _monotonic() + duration
        while not self._stopped and (left := end - _monotonic()) > 0:
            reason = self.quiet.in_force(self.reasons)
            if reason is not None:
                await self._pause(reason, _monotonic(), end)
                continue
            driver = self.current = self._build()
            if driver is None:  # no share of it in this process
                await asyncio.sleep(left)
                return
            running = asyncio.ensure_future(driver.run(left))
            try:
                while not running.done() and self.quiet.in_force(self.reasons) is None:
                    change = asyncio.ensure_future(self.quiet.changed())
                    await asyncio.wait([running, change], return_when=asyncio.FIRST_COMPLETED)
                    change.cancel()
            finally:
                if not running.done():
                    running.cancel()
            if running.done() and not running.cancelled():
                running.result()  # a driver's error ends the load as before
                return
            reason = self.quiet.in_force(self.reasons) or self.reasons[0]
            began = _monotonic()
            await self._stop(driver)
            await self._pause(reason, began, end)

    async def _stop(self, driver: Driving) -> None:
        """What is in flight ends as at the end of a run; nothing new is sent."""
        try:
            await driver.drain(self.grace)
            driver.close_all()
        finally:
            self.current = None
            if self._told:
                self._told = False
                self.quiet.drained()

    async def _pause(self, reason: str, began: float, end: float) -> None:
        while self.quiet.in_force(self.reasons) is not None and _monotonic() < end \
                and not self._stopped:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.quiet.changed(), end - _monotonic())
        now = min(_monotonic(), end)
        self.pauses.append(Pause(reason, round(began - self.origin, 3),
                                 round(now - self.origin, 3)))

    async def drain(self, grace: float) -> None:
        self._stopped = True
        if self.current is not None:
            await self.current.drain(grace)

    def close_all(self) -> None:
        self._stopped = True
        if self.current is not None:
            self.current.close_all()


def write_pauses(path: Path, worker: int, drivers: list[tuple[str, Avoiding]]) -> None:
    """Append one line per workload of this process that avoids something: its pauses."""
    if not drivers:
        return
    with path.open("a", encoding="utf-8") as out:
        out.write("".join(json.dumps({
            "workload": name, "worker": worker,
            "pauses": [[p.reason, p.start_s, p.end_s] for p in d.pauses]}) + "\n"
            for name, d in drivers))


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def summarize_pauses(path: Path, keep: int = 20) -> dict[str, Any]:
    """Per workload that avoids churn or faults: how often and how long it was paused (the
    union of its processes' pauses, which the runner starts at once), by reason, and the
    first ``keep`` pauses. Empty when ``path`` does not exist."""
    if not path.exists():
        return {}
    spans: dict[str, dict[str, list[tuple[float, float]]]] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                row = json.loads(line)
                by_reason = spans.setdefault(str(row["workload"]), {})
                for reason, start, end in row["pauses"]:
                    by_reason.setdefault(str(reason), []).append((float(start), float(end)))
    out: dict[str, Any] = {}
    for name, by_reason in spans.items():
        merged = {r: _union(s) for r, s in by_reason.items()}
        every = _union([s for r in merged.values() for s in r])
        out[name] = {
            "pauses": len(every),
            "paused_s": round(sum(e - s for s, e in every), 3),
            "by_reason": {r: {"pauses": len(s), "paused_s": round(sum(e - b for b, e in s), 3)}
                          for r, s in sorted(merged.items())},
            "first": [{"start_s": s, "end_s": e} for s, e in every[:keep]],
            "file": path.name,
        }
    return out
