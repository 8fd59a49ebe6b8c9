"""``enduro triage``: distinct root causes per service, log-line templates, the primary issue
(overall and per service), and what is new against a baseline. The markdown and the files of
``--out`` are made by :mod:`enduro.triage.outputs`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enduro.documents.events import FaultStart, read_events
from enduro.triage.extract import Crash, extract_crashes, mask
from enduro.triage.sources import (
    FileClock,
    LogFile,
    compose_prefix,
    log_files,
    opened,
    strip_compose_prefix,
)

__all__ = ["triage"]

_LEVEL = re.compile(r"\b(ERROR|ERR|WARN|WARNING|FATAL|CRITICAL|error|warning|fatal|"
                    r"Error|Warning|Fatal)\b")


@dataclass
class Group:
    """One root cause (a crash fingerprint) or one log-line template of one service."""

    service: str
    key: str
    count: int = 0
    first: tuple[tuple[float, int], str] = ((float("inf"), 0), "")
    last: tuple[tuple[float, int], str] = ((float("-inf"), 0), "")
    example: list[str] = field(default_factory=list)
    crash: Crash | None = None


def triage(targets: list[Path], baseline: Path | None = None) -> dict[str, Any]:
    """The triage of runs, tarballs or log files, as data: every root cause and log template,
    the primary issue, and per service its files, counts and own primary issue."""
    tally = _Tally()
    for target in targets:
        tally.read(target)
    base_prints: set[str] = set()
    if baseline is not None:
        base_prints = {c["fingerprint"] for c in triage([baseline])["crashes"]}
    crash_list = [_crash_entry(g, tally.faults,
                               new=baseline is not None and g.key not in base_prints)
                  for g in sorted(tally.crashes.values(), key=lambda g: g.first[0])]
    log_list = [{"service": g.service, "template": g.key, "count": g.count,
                 "first_seen": g.first[1], "last_seen": g.last[1],
                 "example": "\n".join(g.example)}
                for g in sorted(tally.logs.values(), key=lambda g: (-g.count, g.key))]
    return {"lines": tally.lines_read, "crashes": crash_list, "log_groups": log_list,
            "primary": _primary(crash_list, log_list),
            "services": _services(tally, crash_list, log_list)}


def _primary(crashes: list[dict[str, Any]],
             logs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The earliest crash; without one, the most frequent error or warning template."""
    return crashes[0] if crashes else (logs[0] if logs else None)


def _services(tally: _Tally, crashes: list[dict[str, Any]],
              logs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(tally.files):
        own = [c for c in crashes if c["service"] == name]
        own_logs = [g for g in logs if g["service"] == name]
        out[name] = {"files": tally.files[name], "lines": tally.lines.get(name, 0),
                     "crashes": sum(c["count"] for c in own), "root_causes": len(own),
                     "error_lines": sum(g["count"] for g in own_logs),
                     "templates": len(own_logs), "primary": _primary(own, own_logs)}
    return out


@dataclass
class _Tally:
    """Crashes by fingerprint and log lines by template, per service, over every file read;
    the files and lines read per service; and the faults of the runs read."""

    crashes: dict[tuple[str, str], Group] = field(default_factory=dict)
    logs: dict[tuple[str, str], Group] = field(default_factory=dict)
    faults: list[FaultStart] = field(default_factory=list)
    files: dict[str, list[str]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    lines_read: int = 0

    def read(self, target: Path) -> None:
        """A run directory, a directory of logs, a tarball of either, or a log file."""
        with opened(target) as root:
            files, run_dir = log_files(root)
            if run_dir is not None:
                # A torn or corrupt line (even one that is not UTF-8) is skipped.
                self.faults += [e for e in read_events(run_dir / "events.jsonl")
                                if isinstance(e, FaultStart)]
            with_output = {f.service for f in files if f.role == "output"}
            tails: dict[str, list[str]] = {}
            for log in files:
                if log.role == "crash" and log.service in with_output:
                    continue  # enduro's crash log is a copy of the end of the output read
                try:
                    lines = log.path.read_text(errors="replace").splitlines()
                except OSError:
                    continue
                if compose_prefix(lines):
                    lines = strip_compose_prefix(lines)
                skip = 0
                if log.role == "harness-crash":
                    # Each holds a service's last lines when it crashed: the start of one
                    # repeats the end of the one before, already counted.
                    skip = _overlap(tails.get(log.service, []), lines)
                    tails[log.service] = lines
                self._read_lines(log, root, lines, skip)

    def _read_lines(self, log: LogFile, root: Path, lines: list[str], skip: int) -> None:
        name = str(log.path.relative_to(root)) if log.path != root else log.path.name
        self.files.setdefault(log.service, []).append(name)
        self.lines[log.service] = self.lines.get(log.service, 0) + len(lines) - skip
        self.lines_read += len(lines) - skip
        clock = FileClock(log, lines)
        covered = self._crashes(log, lines, skip, clock)
        self._log_lines(log, lines, covered | set(range(skip)), clock)

    def _crashes(self, log: LogFile, lines: list[str], skip: int, clock: FileClock) -> set[int]:
        """Count the crashes in the lines from ``skip`` on; return the lines they cover."""
        covered: set[int] = set()
        for crash in extract_crashes(lines):
            covered.update(range(crash.line, crash.line + max(1, len(crash.text))))
            if crash.line < skip:
                continue
            g = self.crashes.setdefault((log.service, crash.fingerprint),
                                        Group(log.service, crash.fingerprint, crash=crash))
            _count(g, clock.when(crash.line), f"{log.path.name}:{crash.line + 1}", crash.text)
        return covered

    def _log_lines(self, log: LogFile, lines: list[str], covered: set[int],
                   clock: FileClock) -> None:
        """Count the warning and error lines outside crashes, by template."""
        for i, line in enumerate(lines):
            if i in covered or not _LEVEL.search(line):
                continue
            key = mask(_STAMP.sub("", line, count=1))
            g = self.logs.setdefault((log.service, key), Group(log.service, key))
            _count(g, clock.when(i), f"{log.path.name}:{i + 1}", lines[max(0, i - 2):i + 3])


_STAMP = re.compile(r"^\d\d:\d\d:\d\d ")


def _overlap(before: list[str], after: list[str]) -> int:
    """How many first lines of ``after`` repeat the last lines of ``before``."""
    for k in range(min(len(before), len(after)), 0, -1):
        if after[k - 1] == before[-1] and after[:k] == before[-k:]:
            return k
    return 0


def _count(g: Group, when: tuple[float, int], where: str, text: list[str]) -> None:
    g.count += 1
    if when < g.first[0]:
        g.first = (when, where)
        g.example = list(text)
    if when > g.last[0]:
        g.last = (when, where)


def _crash_entry(g: Group, faults: list[FaultStart], *, new: bool) -> dict[str, Any]:
    c = g.crash
    assert c is not None
    return {
        "fingerprint": g.key, "service": g.service, "kind": c.kind, "type": c.type,
        "message": c.message, "count": g.count, "first_seen": g.first[1],
        "last_seen": g.last[1], "frames": c.frames[:8], "app_frames": c.app_frames,
        "example": "\n".join(g.example[:40]),
        "nearest_fault": _nearest(faults),
        "new": new}


def _nearest(faults: list[FaultStart]) -> str | None:
    if not faults:
        return None
    f = faults[-1]
    return f"#{f.id} {f.fault_kind} {','.join(f.targets)} at t={f.t}s"

