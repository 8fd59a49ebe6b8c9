"""What triage reads: the log files of a run directory, a directory of logs, a tarball of either
or single files, each with the service it belongs to and a clock that orders its lines.

A tarball is unpacked into a temporary directory that :func:`opened` removes however reading
ends (an error, a corrupt archive, Ctrl-C); a member whose path would land outside it is
refused before anything is unpacked."""

from __future__ import annotations

import calendar
import re
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from enduro.base.errors import PlanError

__all__ = ["FileClock", "LogFile", "compose_prefix", "harness_stamp", "log_files", "opened",
           "service_of", "strip_compose_prefix"]

# The crash-monitor harness saves a crashed compose service's last lines as
# <service>.crash.<timestamp>.log beside <service>.mon.log; enduro as services/<name>/crash-*.log.
_HARNESS_CRASH = re.compile(r"^(?P<service>.+?)\.crash\.(?P<stamp>.+)\.log$")
_ENDURO_CRASH = re.compile(r"^crash-(?P<stamp>\d{8}T\d{6}Z)(?:-\d+)?\.log$")
_TAR_NAMES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
# `docker compose logs` prefixes each line with the container's name.
_COMPOSE_PREFIX = re.compile(r"^[\w.-]+-\d+\s+\| ")
_HMS = re.compile(r"^(\d\d):(\d\d):(\d\d) ")
_ISO = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)")


@dataclass(frozen=True)
class LogFile:
    """One file to read and the service whose output it holds."""

    service: str
    path: Path
    # output: what a service printed; crash: enduro's copy of the last lines before a crash;
    # harness-crash: the crash-monitor harness's copy, one file per crash.
    role: str
    stamp: float | None  # when the file was written, from its name (epoch seconds)


def service_of(path: Path, root: Path | None, run_dir: bool) -> str:
    """The service a log file belongs to: services/<name>/ in a run, <service>.crash.* of the
    harness, enduro's own logs in a run, else the file's name up to its first dot."""
    if (m := _HARNESS_CRASH.match(path.name)) is not None:
        return m.group("service")
    parts = path.relative_to(root).parts if root is not None else (path.name,)
    if len(parts) > 2 and parts[0] == "services":
        return parts[1]
    if run_dir:
        return "enduro"
    return path.name.split(".", 1)[0] or path.name


def harness_stamp(text: str) -> float | None:
    """Epoch seconds of a crash log's timestamp: epoch seconds or milliseconds, or a UTC date
    and time in any punctuation (20240315T101500Z, 2024-03-15_10-15-00, 20240315-1015)."""
    digits = re.sub(r"\D", "", text)
    if digits == text and len(digits) in (10, 13):
        return int(digits) / (1000 if len(digits) == 13 else 1)
    for width, fmt in ((14, "%Y%m%d%H%M%S"), (12, "%Y%m%d%H%M"), (8, "%Y%m%d")):
        if len(digits) >= width:
            try:
                return calendar.timegm(time.strptime(digits[:width], fmt))
            except ValueError:
                continue
    return None


def _log_file(path: Path, root: Path | None, run_dir: bool) -> LogFile | None:
    name = path.name
    if name.startswith(("monitor.log", "build.log")) or ".mon.log" in name:
        return None  # what enduro or the harness did, not what the service said
    service = service_of(path, root, run_dir)
    if (m := _HARNESS_CRASH.match(name)) is not None:
        return LogFile(service, path, "harness-crash", harness_stamp(m.group("stamp")))
    if (m := _ENDURO_CRASH.match(name)) is not None:
        return LogFile(service, path, "crash", harness_stamp(m.group("stamp")))
    return LogFile(service, path, "output", None)


def log_files(target: Path) -> tuple[list[LogFile], Path | None]:
    """The files to read under an unpacked target, and the run directory when it is one. Per
    service, its output logs come before its crash logs (those repeat the output's end), and
    crash logs come in the order they were written."""
    if not target.is_dir():
        # A file named on the command line is read whatever its name.
        found = _log_file(target, None, run_dir=False)
        return [found or LogFile(service_of(target, None, False), target, "output", None)], None
    run_dir = (target / "events.jsonl").exists()
    files = [f for path in sorted(target.rglob("*.log*")) if path.is_file()
             and (f := _log_file(path, target, run_dir)) is not None]
    files.sort(key=lambda f: (f.service, f.role != "output", f.stamp or 0.0, str(f.path)))
    return files, target if run_dir else None


@contextmanager
def opened(target: Path) -> Iterator[Path]:
    """The target itself, or a tarball unpacked into a temporary directory (its one top
    folder when it has one) that is removed when the block ends, however it ends."""
    if not _is_tarball(target):
        yield target
        return
    with tempfile.TemporaryDirectory(prefix="enduro-triage-") as tmp:
        root = Path(tmp)
        _unpack(target, root)
        dirs = [p for p in root.iterdir() if p.is_dir()]
        yield dirs[0] if len(dirs) == 1 and len(list(root.iterdir())) == 1 else root


def _is_tarball(target: Path) -> bool:
    if not target.is_file():
        return False
    if target.name.endswith(_TAR_NAMES):
        return True  # named one: a corrupt one is an error, not a log file to read
    try:
        return tarfile.is_tarfile(target)
    except OSError:
        return False


def _unpack(tarball: Path, dest: Path) -> None:
    try:
        with tarfile.open(tarball) as tar:
            members = tar.getmembers()
            for member in members:
                _refuse_escape(tarball, member)
            # The "data" filter refuses what the check above lets through by mistake, and
            # device files and modes that do not belong in logs.
            tar.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as exc:
        raise PlanError(f"{tarball}: refused to unpack: {exc}") from exc
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        # Truncated or corrupt archives surface as any of these, depending on the compression.
        raise PlanError(f"{tarball}: not a readable tarball: {exc}") from exc


def _refuse_escape(tarball: Path, member: tarfile.TarInfo) -> None:
    """A member whose path, or whose link's target, points outside the unpack folder."""
    def escapes(name: str, base: PurePosixPath) -> bool:
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            return True
        depth = len(base.parts)
        for part in PurePosixPath(name).parts:
            depth += -1 if part == ".." else (0 if part == "." else 1)
            if depth < 0:
                return True
        return False

    bad = escapes(member.name, PurePosixPath())
    if not bad and member.issym():
        bad = escapes(member.linkname, PurePosixPath(member.name).parent)
    elif not bad and member.islnk():
        bad = escapes(member.linkname, PurePosixPath())
    if bad:
        link = f" -> {member.linkname}" if member.issym() or member.islnk() else ""
        raise PlanError(f"{tarball}: refused to unpack: member {member.name!r}{link} would be "
                        "written outside the folder it is unpacked into")


def compose_prefix(lines: list[str]) -> bool:
    """Whether the lines carry `docker compose logs` prefixes (api-1  | ...)."""
    first = next((line for line in lines[:20] if line.strip()), "")
    return _COMPOSE_PREFIX.match(first) is not None


def strip_compose_prefix(lines: list[str]) -> list[str]:
    """The lines without their `docker compose logs` prefix."""
    return [_COMPOSE_PREFIX.sub("", line, count=1) for line in lines]


class FileClock:
    """Orders the lines of one file in time: by the file's stamp when its name has one, else
    by the nearest HH:MM:SS (UTC, as enduro stamps output) or ISO time at or before a line, on
    the day the file was last written."""

    def __init__(self, log: LogFile, lines: list[str]) -> None:
        self.lines = lines
        self.stamp = log.stamp
        try:
            mtime = log.path.stat().st_mtime
        except OSError:
            mtime = 0.0
        self.mtime = mtime
        self.midnight = mtime - mtime % 86400
        self._memo: dict[int, float] = {}

    def when(self, index: int) -> tuple[float, int]:
        """Epoch seconds of line ``index``, and the index to break ties."""
        if self.stamp is not None:
            return self.stamp, index
        return self._seconds(index), index

    def _seconds(self, index: int) -> float:
        # Remembered per line asked about, so that many unstamped error lines in a row do not
        # each scan back over the same lines.
        for j in range(index, max(-1, index - 200), -1):
            if (known := self._memo.get(j)) is not None:
                self._memo[index] = known
                return known
            line = self.lines[j]
            if (m := _HMS.match(line)) is not None:
                h, mi, s = (int(x) for x in m.groups())
                self._memo[index] = self.midnight + h * 3600 + mi * 60 + s
                return self._memo[index]
            if (iso := _ISO.match(line)) is not None:
                y, mo, d, h, mi, s = (int(x) for x in iso.groups())
                self._memo[index] = float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))
                return self._memo[index]
        return self.mtime
