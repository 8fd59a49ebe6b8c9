"""``enduro triage``: distinct root causes per service, log-line templates, the primary issue,
and what is new against a baseline."""

from __future__ import annotations

import re
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enduro.documents.events import FaultStart, read_events
from enduro.triage.extract import Crash, extract_crashes, mask

__all__ = ["triage"]

_LEVEL = re.compile(r"\b(ERROR|ERR|WARN|WARNING|FATAL|CRITICAL|error|warning|fatal|"
                    r"Error|Warning|Fatal)\b")


@dataclass
class Group:
    service: str
    key: str
    count: int = 0
    first: tuple[float, str] = (float("inf"), "")
    last: tuple[float, str] = (float("-inf"), "")
    example: list[str] = field(default_factory=list)
    crash: Crash | None = None


def _sources(target: Path) -> tuple[list[tuple[str, Path]], Path | None]:
    """(service, file) pairs to read, and the run directory when there is one."""
    if target.is_file() and tarfile.is_tarfile(target):
        tmp = Path(tempfile.mkdtemp(prefix="enduro-triage-"))
        with tarfile.open(target) as tar:
            tar.extractall(tmp, filter="data")
        dirs = [p for p in tmp.iterdir() if p.is_dir()]
        target = dirs[0] if len(dirs) == 1 else tmp
    if target.is_dir():
        files = []
        for path in sorted(target.rglob("*.log*")):
            parts = path.relative_to(target).parts
            service = parts[1] if len(parts) > 2 and parts[0] == "services" else "enduro"
            if path.name.startswith(("monitor.log", "build.log")):
                continue
            files.append((service, path))
        return files, target if (target / "events.jsonl").exists() else None
    return [(target.stem, target)], None


def _when(line: str, index: int) -> float:
    m = re.match(r"^(\d\d):(\d\d):(\d\d) ", line)
    if m:
        h, mi, s = (int(x) for x in m.groups())
        return h * 3600 + mi * 60 + s + index * 1e-9
    return float(index)


def triage(targets: list[Path], baseline: Path | None = None) -> dict[str, Any]:
    """The triage of runs, tarballs or log files, as data."""
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
                for g in sorted(tally.logs.values(), key=lambda g: -g.count)]
    return {"lines": tally.lines_read, "crashes": crash_list, "log_groups": log_list,
            "primary": crash_list[0] if crash_list else (log_list[0] if log_list else None)}


@dataclass
class _Tally:
    """Crashes by fingerprint and log lines by template, per service, over every file read;
    and the faults of the runs read."""

    crashes: dict[tuple[str, str], Group] = field(default_factory=dict)
    logs: dict[tuple[str, str], Group] = field(default_factory=dict)
    faults: list[FaultStart] = field(default_factory=list)
    lines_read: int = 0

    def read(self, target: Path) -> None:
        """A run directory, a tarball of one or a log file."""
        files, run_dir = _sources(target)
        if run_dir is not None:
            # A torn or corrupt line (even one that is not UTF-8) is skipped.
            self.faults += [e for e in read_events(run_dir / "events.jsonl")
                            if isinstance(e, FaultStart)]
        seen_crash_lines: set[str] = set()
        for service, path in files:
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            self.lines_read += len(lines)
            covered = self._crashes(service, path, lines, seen_crash_lines)
            self._log_lines(service, path, lines, covered)

    def _crashes(self, service: str, path: Path, lines: list[str],
                 seen_crash_lines: set[str]) -> set[int]:
        """Count the crashes in the lines; return the lines they cover."""
        covered: set[int] = set()
        for crash in extract_crashes(lines):
            covered.update(range(crash.line, crash.line + max(1, len(crash.text))))
            text_key = "\n".join(crash.text[:3])
            # A crash log repeats the end of output.log: count each crash once.
            if path.name.startswith("crash-") and text_key in seen_crash_lines:
                continue
            seen_crash_lines.add(text_key)
            g = self.crashes.setdefault((service, crash.fingerprint),
                                        Group(service, crash.fingerprint, crash=crash))
            _count(g, lines[crash.line], crash.line, crash.text, path)
        return covered

    def _log_lines(self, service: str, path: Path, lines: list[str],
                   covered: set[int]) -> None:
        """Count the warning and error lines outside crashes, by template."""
        for i, line in enumerate(lines):
            if i in covered or not _LEVEL.search(line):
                continue
            body = re.sub(r"^\d\d:\d\d:\d\d ", "", line)
            g = self.logs.setdefault((service, mask(body)), Group(service, mask(body)))
            _count(g, line, i, lines[max(0, i - 2):i + 3], path)


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


def _count(g: Group, line: str, index: int, text: list[str], path: Path) -> None:
    when = _when(line, index)
    where = f"{path.name}:{index + 1}"
    g.count += 1
    if when < g.first[0]:
        g.first = (when, where)
        g.example = list(text)
    if when > g.last[0]:
        g.last = (when, where)


def _nearest(faults: list[FaultStart]) -> str | None:
    if not faults:
        return None
    f = faults[-1]
    return f"#{f.id} {f.fault_kind} {','.join(f.targets)} at t={f.t}s"


def markdown(result: dict[str, Any]) -> str:
    out = [f"# Triage ({result['lines']:,} lines)", ""]
    if result["primary"]:
        p = result["primary"]
        title = f"{p.get('type', '')}: {p.get('message', p.get('template', ''))}"
        out += [f"**Primary issue** ({p['service']}): {title}", ""]
    out.append(f"## Crashes: {len(result['crashes'])} distinct root cause(s)")
    for c in result["crashes"]:
        new = " **new**" if c["new"] else ""
        out += ["", f"### {c['service']}: {c['type']}: {c['message'][:200]}{new}",
                f"- {c['count']}x, first {c['first_seen']}, last {c['last_seen']}, "
                f"fingerprint `{c['fingerprint']}` ({c['kind']})"]
        if c["frames"]:
            out.append(f"- frames: {' <- '.join(c['frames'][:4])}")
        if c["nearest_fault"]:
            out.append(f"- nearest fault: {c['nearest_fault']}")
        out += ["", "```", c["example"][:2000], "```"]
    out += ["", f"## Error and warning lines: {len(result['log_groups'])} template(s)", ""]
    for g in result["log_groups"][:30]:
        out.append(f"- {g['count']}x [{g['service']}] `{g['template'][:160]}` "
                   f"(first {g['first_seen']})")
    return "\n".join(out) + "\n"
