"""The undo journal: each fault's undo is written before the fault is applied, so that
``enduro recover`` (and ``enduro stop`` of a dead runner) can undo what a killed runner left
behind. An undo that fails stays pending, with its error, until one succeeds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enduro.base.errors import RunError
from enduro.services.identity import ProcessIdentity, kill_group

__all__ = ["Journal", "Recovery", "UndoFailed", "recover", "run_undo", "this_host"]


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


class Journal:
    """``faults.journal.jsonl`` in the run directory: ``apply`` and ``undone`` records."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _append(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def applying(self, fault_id: int, kind: str, targets: list[str],
                 undo: dict[str, Any] | None) -> None:
        self._append({"op": "apply", "id": fault_id, "kind": kind, "targets": targets,
                      "undo": undo, "host": this_host(), "wall": time.time()})

    def undone(self, fault_id: int, how: str = "undone") -> None:
        self._append({"op": how, "id": fault_id, "wall": time.time()})

    def undo_failed(self, fault_id: int, error: str) -> None:
        """The undo ran and failed: the fault stays pending, with this error."""
        self._append({"op": "undo_failed", "id": fault_id, "error": error, "wall": time.time()})

    def pending(self) -> list[dict[str, Any]]:
        """Applied faults with an undo that has not succeeded; ``last_error`` says why when
        an undo was tried and failed."""
        if not self.path.exists():
            return []
        applied: dict[int, dict[str, Any]] = {}
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line from a killed runner
            if not isinstance(record, dict) or not isinstance(record.get("id"), int):
                continue
            op, fid = record.get("op"), int(record["id"])
            if op == "apply" and record.get("undo"):
                applied[fid] = record
            elif op in ("undone", "recovered"):
                applied.pop(fid, None)
            elif op == "undo_failed" and fid in applied:
                applied[fid] = {**applied[fid], "last_error": record.get("error")}
        return list(applied.values())


def run_undo(undo: dict[str, Any], host: object = None) -> str:
    """Carry out one undo record; return what was done, or raise ``UndoFailed``. ``host``:
    the machine that wrote the record; an undo command from another machine (or from a
    journal without one) is never run."""
    kind = undo.get("type")
    if kind == "command" and host != this_host():
        raise UndoFailed(f"{undo.get('argv')!r} was written by a run on another machine (or "
                         "by a journal without a machine id), so enduro does not run it here; "
                         "run it by hand if it is yours")
    if kind == "signal":
        sig = getattr(signal, str(undo.get("signal", "SIGCONT")))
        done = []
        for data in undo.get("processes", []):
            ident = ProcessIdentity.from_json(data)
            if ident.alive() and kill_group(ident.pid, sig):
                done.append(str(ident.pid))
        return f"sent {undo.get('signal')} to {', '.join(done) or 'no live process'}"
    if kind == "command":
        argv = undo["argv"]
        shell = isinstance(argv, str)
        timeout = float(undo.get("timeout", 60))
        try:
            proc = subprocess.run(argv, shell=shell, cwd=undo.get("cwd") or None,
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
    if kind == "proxy":
        # The proxy lived in the runner's process: with the runner gone, so is the fault.
        return "proxy faults ended with the runner's proxy"
    return f"unknown undo {kind!r}; left alone"


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
    for record in journal.pending():
        what = (f"fault #{record['id']} ({record.get('kind')} "
                f"{','.join(record.get('targets') or [])})").replace(" )", ")")
        try:
            done = run_undo(record["undo"], record.get("host"))
        except (UndoFailed, KeyError, ValueError, TypeError) as exc:
            journal.undo_failed(record["id"], str(exc))
            out.failed.append(f"{what}: undo FAILED: {exc}; still pending in "
                              f"{journal.path.name}")
            continue
        journal.undone(record["id"], "recovered")
        out.undone.append(f"{what}: {done}")
    return out
