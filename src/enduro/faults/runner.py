"""Carrying out the fault schedule on the load's clock, with every undo journaled first."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enduro.base.clock import Clock
from enduro.base.errors import EnduroError, RunError
from enduro.faults.journal import Journal, run_undo
from enduro.faults.proxy import ProxySet
from enduro.faults.timeline import ScheduledFault
from enduro.plan.faults import PROCESS_KINDS, TOXIC_KINDS, CommandFault
from enduro.plan.models import Plan
from enduro.services.identity import kill_group
from enduro.services.supervisor import ServiceSet

__all__ = ["FaultRecord", "FaultRunner", "available_kinds"]


@dataclass
class FaultRecord:
    """What happened to one scheduled fault, on the load's clock."""

    fault: ScheduledFault
    start_s: float | None = None
    end_s: float | None = None
    error: str | None = None
    undo: dict[str, Any] | None = None
    undone: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def available_kinds(plan: Plan, services: ServiceSet | None) -> dict[str, str]:
    """Which fault kinds this machine and plan can carry out, and why not the others."""
    kinds = {e.service.kind for e in services.entries.values()} if services else set()
    managed = "process" in kinds
    out = {}
    for kind in PROCESS_KINDS:
        out[kind] = "yes" if managed else "no managed process in the plan"
    if kinds & {"compose", "systemd"}:  # their tool restarts them; signals are not theirs
        out["restart"] = "yes"
    for kind in (*TOXIC_KINDS, "http"):
        out[kind] = "yes" if plan.proxies else "no proxies in the plan"
    out["command"] = "yes"
    return out


class FaultRunner:
    """Applies scheduled faults at their times; undoes them at their end, on stop and on
    error."""

    def __init__(self, plan: Plan, schedule: list[ScheduledFault], *, services: ServiceSet | None,
                 proxies: ProxySet | None, journal: Journal, clock: Clock, plan_dir: Path,
                 event: Callable[..., None], log: Callable[[str], None]) -> None:
        self.plan = plan
        self.schedule = schedule
        self.services = services
        self.proxies = proxies
        self.journal = journal
        self.clock = clock
        self.plan_dir = plan_dir
        self._event = event
        self._log = log
        self.records = {f.id: FaultRecord(f) for f in schedule}
        self._tasks: set[asyncio.Task[None]] = set()
        self._undoing: dict[int, asyncio.Task[None]] = {}
        self._origin = 0.0
        # Told when the first fault comes into force (True) and the last one ends (False),
        # for the workloads that stay clear of faults.
        self.on_force: Callable[[bool], None] | None = None
        # Awaited after ``on_force(True)``: the workloads that stay clear of faults end what
        # they have in flight before the fault is applied.
        self.settle: Callable[[], Awaitable[None]] | None = None
        self._applied = 0

    def _in_force(self, delta: int) -> None:
        before = self._applied
        self._applied += delta
        if self.on_force is not None and (before > 0) != (self._applied > 0):
            self.on_force(self._applied > 0)

    def now(self) -> float:
        return self.clock.now() - self._origin

    def active(self, t: float) -> list[FaultRecord]:
        """Faults in force at load time ``t``."""
        out = []
        for r in self.records.values():
            if r.start_s is None or r.start_s > t:
                continue
            end = r.end_s if r.end_s is not None else (
                None if r.fault.end is not None else r.start_s)
            if end is None or t <= end:
                out.append(r)
        return out

    async def run(self, origin: float) -> None:
        """Wait for each fault's time and start it; returns when every fault has ended."""
        self._origin = origin
        for fault in self.schedule:
            delay = fault.start - self.now()
            if delay > 0:
                await self.clock.sleep(delay)
            task = asyncio.get_running_loop().create_task(self._one(fault))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _one(self, fault: ScheduledFault) -> None:
        # In force from its start until it is undone (or, without ``for``, applied).
        self._in_force(1)
        try:
            if self.settle is not None:
                await self.settle()
            await self._one_applied(fault)
        finally:
            self._in_force(-1)

    async def _one_applied(self, fault: ScheduledFault) -> None:
        record = self.records[fault.id]
        record.start_s = round(self.now(), 3)
        self._event("fault_start", id=fault.id, name=fault.name, fault_kind=fault.kind,
                    targets=list(fault.targets))
        self._log(f"fault #{fault.id} {fault.kind} {','.join(fault.targets)} ({fault.name})")
        try:
            await self._apply(record)
        except asyncio.CancelledError:
            raise
        except (EnduroError, OSError) as exc:
            record.error = str(exc)
            record.end_s = round(self.now(), 3)
            self._event("fault_error", id=fault.id, error=str(exc))
            self._log(f"fault #{fault.id} failed: {exc}")
            await self._undo(record)
            return
        if fault.end is not None:
            remaining = fault.end - self.now()
            if remaining > 0:
                await self.clock.sleep(remaining)
            await self._undo(record)
            record.end_s = round(self.now(), 3)
        elif record.end_s is None:
            record.end_s = round(self.now(), 3)
        self._event("fault_end", id=fault.id, fault_kind=fault.kind, error=record.error)

    async def _apply(self, record: FaultRecord) -> None:
        fault = record.fault
        kind = fault.kind
        spec = self.plan.faults[fault.spec_index].spec
        if kind in PROCESS_KINDS:
            if self.services is None:
                raise RunError("process faults need services in the plan")
            if kind in ("kill", "terminate"):
                self._signal(fault, self.services)
            elif kind == "pause":
                self._pause(record, self.services)
            else:
                await self._restart(record, self.services)
            return
        if kind in TOXIC_KINDS or kind == "http":
            self._add_to_proxy(record, spec)
            return
        assert isinstance(spec, CommandFault)
        await self._command(record, spec)

    def _signal(self, fault: ScheduledFault, services: ServiceSet) -> None:
        """kill or terminate: journaled one target at a time, as each is signalled."""
        sig = signal.SIGKILL if fault.kind == "kill" else signal.SIGTERM
        for target in fault.targets:
            self.journal.applying(fault.id, fault.kind, [target], None)
            services.fault_signal(target, sig, f"fault #{fault.id} {fault.kind}")

    def _pause(self, record: FaultRecord, services: ServiceSet) -> None:
        """SIGSTOP, with the SIGCONT that undoes it journaled first for every process."""
        fault = record.fault
        idents = []
        for target in fault.targets:
            entry = services.entries[target]
            if entry.process is not None and entry.process.identity is not None:
                idents.append(entry.process.identity.to_json())
        record.undo = {"type": "signal", "signal": "SIGCONT", "processes": idents}
        self.journal.applying(fault.id, fault.kind, list(fault.targets), record.undo)
        for target in fault.targets:
            services.fault_signal(target, signal.SIGSTOP, f"fault #{fault.id} pause")

    async def _restart(self, record: FaultRecord, services: ServiceSet) -> None:
        """Restart the targets together, or one after another with ``rolling`` between; the
        fault ends when the last is ready again."""
        fault = record.fault
        self.journal.applying(fault.id, fault.kind, list(fault.targets), None)
        took: dict[str, float] = {}
        if fault.rolling is not None:
            for i, target in enumerate(fault.targets):
                if i:
                    await self.clock.sleep(fault.rolling)
                took[target] = await services.fault_restart(target)
        else:
            results = await asyncio.gather(
                *(services.fault_restart(t) for t in fault.targets))
            took = dict(zip(fault.targets, results, strict=True))
        record.extra["ready_s"] = {t: round(v, 3) for t, v in took.items()}
        record.end_s = round(self.now(), 3)

    def _add_to_proxy(self, record: FaultRecord, spec: Any) -> None:
        """A toxic or an HTTP fault on the target's proxy."""
        fault = record.fault
        assert self.proxies is not None
        proxy = self.proxies[fault.targets[0]]
        record.undo = {"type": "proxy"}
        self.journal.applying(fault.id, fault.kind, list(fault.targets), record.undo)
        if fault.kind == "http":
            proxy.add_http(fault.id, spec)
        else:
            proxy.add_toxic(fault.id, fault.kind, spec)

    async def _command(self, record: FaultRecord, spec: CommandFault) -> None:
        """Run the fault's command, its undo command journaled first."""
        fault = record.fault
        if spec.undo is not None:
            record.undo = {"type": "command", "argv": spec.undo, "cwd": str(self.plan_dir),
                           "timeout": spec.timeout}
        self.journal.applying(fault.id, fault.kind, [], record.undo)
        code, out = await _run_command(spec.run, self.plan_dir, spec.timeout)
        record.extra["exit_code"] = code
        if code != 0:
            raise RunError(f"command {spec.run!r} exited with {code}: {out.strip()[-300:]}")

    async def _undo(self, record: FaultRecord) -> None:
        """Undo a fault once. The undo runs in a task of its own that a stop does not cancel
        (a fault ending as the load ends is undone while the run winds down); ``undo_all``
        waits for it."""
        task = self._undoing.get(record.fault.id)
        if task is None:
            if record.undone:
                return
            record.undone = True
            task = asyncio.get_running_loop().create_task(self._carry_out_undo(record))
            self._undoing[record.fault.id] = task
        await asyncio.shield(task)

    async def _carry_out_undo(self, record: FaultRecord) -> None:
        fault = record.fault
        failed: str | None = "the undo was interrupted"
        try:
            if fault.kind in TOXIC_KINDS or fault.kind == "http":
                if self.proxies is not None:
                    proxy = self.proxies[fault.targets[0]]
                    proxy.remove_http(fault.id)
                    proxy.remove_toxic(fault.id)
            elif record.undo is not None and record.undo.get("type") == "command":
                code, out = await _run_command(record.undo["argv"], self.plan_dir,
                                               float(record.undo.get("timeout", 60)))
                if code != 0:
                    raise RunError(f"undo exited with {code}: {out.strip()[-200:]}")
            elif record.undo is not None:
                await asyncio.to_thread(run_undo, record.undo)
            failed = None
        except (EnduroError, OSError) as exc:
            failed = str(exc)
            self._log(f"fault #{fault.id}: {failed}; 'enduro recover' tries it again")
        finally:
            if record.undo is not None and failed is None:
                self.journal.undone(fault.id)
                self._event("fault_undone", id=fault.id, fault_kind=fault.kind)
            elif record.undo is not None:
                # Still in force: the journal keeps it pending for 'enduro recover'.
                self.journal.undo_failed(fault.id, failed or "the undo failed")
                record.error = record.error or f"undo failed: {failed}"
                self._event("fault_undo_failed", id=fault.id, fault_kind=fault.kind,
                            error=failed)

    async def undo_all(self) -> None:
        """Stop scheduling and undo every fault still in force (stop, error, Ctrl-C)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for undo in list(self._undoing.values()):  # undos under way finish first
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(undo)
        for record in self.records.values():
            if record.start_s is not None and not record.undone and record.undo is not None:
                await self._undo(record)
                if record.end_s is None:
                    record.end_s = round(self.now(), 3)


async def _run_command(argv: list[str] | str, cwd: Path, timeout: float) -> tuple[int, str]:
    # In a session of its own, so that a stop ends the command and everything it started.
    if isinstance(argv, str):
        proc = await asyncio.create_subprocess_shell(
            argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
    else:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        kill_group(proc.pid, signal.SIGKILL)
        await proc.wait()
        return 124, f"timed out after {timeout:g}s"
    except BaseException:
        kill_group(proc.pid, signal.SIGKILL)  # cancelled by a stop: the command ends too
        raise
    return proc.returncode or 0, out.decode(errors="replace")
