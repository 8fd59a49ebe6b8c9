"""The undo journal: an undo command runs only on the machine whose run wrote it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from enduro.faults.journal import Journal, recover, this_host


def _marker_undo(marker: Path) -> dict[str, object]:
    return {"type": "command", "argv": [sys.executable, "-c",
                                       f"open({str(marker)!r}, 'w').write('undone')"],
            "timeout": 30}


def test_an_undo_written_here_runs(tmp_path: Path) -> None:
    marker = tmp_path / "undone"
    Journal(tmp_path / "faults.journal.jsonl").applying(1, "command", [], _marker_undo(marker))
    recovery = recover(tmp_path)
    assert recovery.undone and not recovery.failed
    assert marker.read_text() == "undone"
    assert Journal(tmp_path / "faults.journal.jsonl").pending() == []


def test_an_undo_from_another_machine_or_without_one_is_never_run(tmp_path: Path) -> None:
    # A run directory copied from elsewhere (a collected tarball) must not run its commands.
    marker = tmp_path / "undone"
    path = tmp_path / "faults.journal.jsonl"
    records = [{"op": "apply", "id": 1, "kind": "command", "targets": [],
                "undo": _marker_undo(marker), "host": "another-" + this_host(), "wall": 0.0},
               {"op": "apply", "id": 2, "kind": "command", "targets": [],
                "undo": _marker_undo(marker), "wall": 0.0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    recovery = recover(tmp_path)
    assert not recovery.undone and len(recovery.failed) == 2
    assert all("another machine" in line for line in recovery.failed)
    assert not marker.exists()
    assert sorted(r["id"] for r in Journal(path).pending()) == [1, 2]  # still pending
