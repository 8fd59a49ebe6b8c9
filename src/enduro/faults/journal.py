"""The undo journal: each fault's undo is written before the fault is applied, so that
``enduro recover`` (and ``enduro stop`` of a dead runner) can undo what a killed runner left
behind. An undo that fails stays pending, with its error, until one succeeds. The records are
``enduro.documents.journal``'s models, written from them and read through them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from enduro.base.errors import RunError
from enduro.documents.document import Document, problem
from enduro.documents.journal import (
    Applied,
    Closed,
    CommandUndo,
    JournalRecord,
    OtherUndo,
    ProxyUndo,
    SignalUndo,
    Undo,
    UndoFailedRecord,
    UndoRecord,
)
from enduro.services.identity import ProcessIdentity, kill_group

__all__ = ["Journal", "Pending", "Recovery", "UndoFailed", "as_undo", "recover", "run_undo",
           "this_host"]


class UndoFailed(RunError):
    """An undo did not do its job (its command failed, timed out or could not start)."""


def this_host() -> str:
    """This machine's identity, written with every applied fault: an undo command is run only
    on the machine whose run wrote it, never from a run directory copied from elsewhere."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            ident = Path(path).read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            continue
        if ident:
            return ident
    return f"host:{socket.gethostname()}"


@dataclass(frozen=True)
class Pending:
    """A fault whose undo has not succeeded; ``last_error``: why the last try failed."""

    record: Applied
    last_error: str | None = None

    @property
    def undo(self) -> Undo:
        assert self.record.undo is not None  # only faults with an undo are pending
        return self.record.undo


class Journal:
    """``faults.journal.jsonl`` in the run directory: ``apply``, ``undone``, ``recovered``
    and ``undo_failed`` records."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _append(self, record: Document) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record.to_json()) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def applying(self, fault_id: int, kind: str, targets: list[str],
                 undo: Undo | Mapping[str, Any] | None) -> None:
        """Record the fault's undo (None: nothing to undo) before the fault is applied."""
        self._append(Applied(op="apply", id=fault_id, kind=kind, targets=targets,
                             undo=None if undo is None else as_undo(undo), host=this_host(),
                             wall=time.time()))

    def undone(self, fault_id: int, how: str = "undone") -> None:
        """The undo succeeded: ``undone`` by the runner, ``recovered`` by recover/stop."""
        op: Literal["undone", "recovered"] = "recovered" if how == "recovered" else "undone"
        self._append(Closed(op=op, id=fault_id, wall=time.time()))

    def undo_failed(self, fault_id: int, error: str) -> None:
        """The undo ran and failed: the fault stays pending, with this error."""
        self._append(UndoFailedRecord(op="undo_failed", id=fault_id, error=error,
                                      wall=time.time()))

    def records(self) -> Iterator[Applied | Closed | UndoFailedRecord]:
        """Every readable record; a torn last line (a killed runner) or a line of another
        shape is skipped."""
        try:
            text = self.path.read_text(errors="replace")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            try:
                yield JournalRecord.model_validate(json.loads(line)).root
            except (ValueError, RecursionError):  # ValidationError is a ValueError
                continue

    def pending_records(self) -> list[Pending]:
        """Applied faults with an undo that has not succeeded, in the order applied."""
        applied: dict[int, Pending] = {}
        for record in self.records():
            if isinstance(record, Applied):
                if record.undo is not None:
                    applied[record.id] = Pending(record)
            elif isinstance(record, Closed):
                applied.pop(record.id, None)
            elif record.id in applied:
                applied[record.id] = Pending(applied[record.id].record, record.error)
        return list(applied.values())

    def pending(self) -> list[dict[str, Any]]:
        """``pending_records`` as plain data (each apply record, with ``last_error`` when an
        undo was tried and failed)."""
        return [{**p.record.to_json(), **({"last_error": p.last_error}
                                         if p.last_error is not None else {})}
                for p in self.pending_records()]


def as_undo(undo: Undo | Mapping[str, Any]) -> Undo:
    """An undo record as its model (a mapping is read through it)."""
    if isinstance(undo, SignalUndo | CommandUndo | ProxyUndo | OtherUndo):
        return undo
    try:
        return UndoRecord.model_validate(dict(undo)).root
    except ValidationError as exc:
        raise UndoFailed(f"the undo record cannot be read: {problem(exc)}") from exc


def run_undo(undo: Undo | Mapping[str, Any], host: object = None) -> str:
    """Carry out one undo record; return what was done, or raise ``UndoFailed``. ``host``:
    the machine that wrote the record; an undo command from another machine (or from a
    journal without one) is never run."""
    undo = as_undo(undo)
    if isinstance(undo, CommandUndo) and host != this_host():
        raise UndoFailed(f"{undo.argv!r} was written by a run on another machine (or "
                         "by a journal without a machine id), so enduro does not run it here; "
                         "run it by hand if it is yours")
    if isinstance(undo, SignalUndo):
        sig = getattr(signal, undo.signal)
        done = []
        for data in undo.processes:
            ident = ProcessIdentity.from_json(data)
            if ident.alive() and kill_group(ident.pid, sig):
                done.append(str(ident.pid))
        return f"sent {undo.signal} to {', '.join(done) or 'no live process'}"
    if isinstance(undo, CommandUndo):
        argv = undo.argv
        shell = isinstance(argv, str)
        timeout = undo.timeout
        try:
            proc = subprocess.run(argv, shell=shell, cwd=undo.cwd or None,
                                  capture_output=True, text=True, timeout=timeout,
                                  check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise UndoFailed(f"{argv!r} timed out after {timeout:g}s") from exc
        except OSError as exc:
            raise UndoFailed(f"{argv!r} could not start: {exc.strerror or exc}") from exc
        if proc.returncode != 0:
            said = (proc.stderr or proc.stdout or "").strip()[-300:]
            raise UndoFailed(f"{argv!r} exited with {proc.returncode}"
                             + (f": {said}" if said else ""))
        return f"ran {argv!r}: exit 0"
    if isinstance(undo, ProxyUndo):
        # The proxy lived in the runner's process: with the runner gone, so is the fault.
        return "proxy faults ended with the runner's proxy"
    return f"unknown undo {undo.type!r} (or one this enduro cannot read); left alone"


@dataclass
class Recovery:
    """What ``recover`` did: one line per fault undone, and per fault whose undo failed."""

    undone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return [*self.undone, *self.failed]

    def __iter__(self) -> Iterator[str]:  # callers that printed the former list of lines
        return iter(self.lines)

    def __bool__(self) -> bool:
        return bool(self.undone or self.failed)


def recover(run_dir: Path) -> Recovery:
    """Undo every fault the journal says is still applied. A failed undo stays pending in
    the journal (``undo_failed``, with its error), so a later ``recover`` tries it again."""
    journal = Journal(run_dir / "faults.journal.jsonl")
    out = Recovery()
    for pending in journal.pending_records():
        record = pending.record
        what = (f"fault #{record.id} ({record.kind} "
                f"{','.join(record.targets)})").replace(" )", ")")
        try:
            done = run_undo(pending.undo, record.host)
        except (UndoFailed, KeyError, ValueError, TypeError, AttributeError) as exc:
            journal.undo_failed(record.id, str(exc))
            out.failed.append(f"{what}: undo FAILED: {exc}; still pending in "
                              f"{journal.path.name}")
            continue
        journal.undone(record.id, "recovered")
        out.undone.append(f"{what}: {done}")
    return out
