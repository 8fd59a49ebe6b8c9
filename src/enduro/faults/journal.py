"""The undo journal: each fault's undo is written before the fault is applied, so that
``enduro recover`` can undo what a killed runner left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from enduro.services.identity import ProcessIdentity, kill_group

__all__ = ["Journal", "recover"]


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
                      "undo": undo, "wall": time.time()})

    def undone(self, fault_id: int, how: str = "undone") -> None:
        self._append({"op": how, "id": fault_id, "wall": time.time()})

    def pending(self) -> list[dict[str, Any]]:
        """Applied faults with an undo that has not run."""
        if not self.path.exists():
            return []
        applied: dict[int, dict[str, Any]] = {}
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line from a killed runner
            if record.get("op") == "apply" and record.get("undo"):
                applied[record["id"]] = record
            elif record.get("op") in ("undone", "recovered"):
                applied.pop(record.get("id"), None)
        return list(applied.values())


def run_undo(undo: dict[str, Any]) -> str:
    """Carry out one undo record; return what was done."""
    kind = undo.get("type")
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
        proc = subprocess.run(argv, shell=shell, cwd=undo.get("cwd") or None,
                              capture_output=True, text=True, timeout=undo.get("timeout", 60),
                              check=False)
        return f"ran {argv!r}: exit {proc.returncode}"
    if kind == "proxy":
        return "proxy faults ended with the runner's proxy"
    return f"unknown undo {kind!r}; left alone"


def recover(run_dir: Path) -> list[str]:
    """Undo every fault the journal says is still applied."""
    journal = Journal(run_dir / "faults.journal.jsonl")
    actions = []
    for record in journal.pending():
        try:
            what = run_undo(record["undo"])
        except (OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
            what = f"failed: {exc}"
        journal.undone(record["id"], "recovered")
        actions.append(f"fault #{record['id']} ({record['kind']} "
                       f"{','.join(record.get('targets') or [])}): {what}")
    return actions
