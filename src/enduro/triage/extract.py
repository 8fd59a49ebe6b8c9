"""Crash extraction from log text: Python tracebacks (with chained causes), Rust panics, Go
panics and fatal errors, Java exceptions (with Caused by), sanitizer reports, fatal signals and
OOM kills. Each crash gets a fingerprint: its type, its message template and its first in-app
frames, so that two panics on one source line with different messages are two root causes, and
one panic with different numbers in its message stays one."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["Crash", "extract_crashes", "in_app", "mask"]

_PY_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)')
_PY_EXC = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Fault)\w*)"
                     r"(?::\s*(.*))?$")
_RUST_NEW = re.compile(r"^thread '([^']*)'(?: \(\d+\))? panicked at ([^:]+):(\d+):\d+:?$")
_RUST_OLD = re.compile(r"^thread '([^']*)'(?: \(\d+\))? panicked at '(.*)', ([^:]+):(\d+):\d+")
_RUST_FRAME = re.compile(r"^\s+\d+: ([\w:<>]+)")
_GO_PANIC = re.compile(r"^(panic|fatal error): (.*)$")
_GO_FRAME = re.compile(r"^([\w./-]+\.[\w.*()]+)\(")
_JAVA_HEAD = re.compile(r'^(?:Exception in thread "[^"]*" )?([a-z][\w$]*(?:\.[\w$]+)+'
                        r"(?:Exception|Error|Throwable))(?::\s*(.*))?$")
_JAVA_CAUSE = re.compile(r"^Caused by: ([\w$.]+)(?::\s*(.*))?$")
_JAVA_FRAME = re.compile(r"^\s+at (?:[\w.]+/)?([\w$.<>]+)\(")
_SAN = re.compile(r"^==\d+==ERROR: (\w+Sanitizer): (\S+)")
_SAN_END = re.compile(r"^==\d+==ABORTING")
_SAN_FRAME = re.compile(r"^\s+#\d+ 0x[0-9a-f]+ in (\S+)")
_SIGNAL = re.compile(r"(?:was killed by|signal|received signal) (SIG(?:SEGV|BUS|ABRT|ILL|FPE))"
                     # a shell's report, alone or as "bash: line 1:  3040 Segmentation fault"
                     r"|(?:^|\s\d+\s+)(Segmentation fault|Bus error|Aborted)"
                     r"(?: \(core dumped\))?(?:\s|$)")
_OOM = re.compile(r"Out of memory: Killed process (\d+)|oom-kill|OOMKilled|invoked oom-killer")

_MASKS = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<uuid>"),
    (re.compile(r"0x[0-9a-f]+", re.I), "<hex>"),
    (re.compile(r"\b[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}\b", re.I), "<hex>"),
    (re.compile(r"(?<![\w])/[\w.@%+-]+(?:/[\w.@%+-]+)+"), "<path>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?Z?"), "<time>"),
    (re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?(?![\w.])"), "<ip>"),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"'[^']{1,80}'|\"[^\"]{1,80}\""), "<str>"),
]


def mask(text: str) -> str:
    """A template of a line: ids, numbers, hex, paths, times and quoted values masked."""
    for pattern, repl in _MASKS:
        text = pattern.sub(repl, text)
    return text.strip()


# Frames of the runtime and of libraries, per kind of crash: a root cause is named by the
# first frames that are the application's own.
_NOT_APP: dict[str, re.Pattern[str]] = {
    # A Python frame is "func (path)": the standard library, installed packages, the importer.
    "python": re.compile(r"\((?:<frozen |.*[/\\](?:site-packages|dist-packages)[/\\]"
                         r"|.*[/\\]lib[/\\]python\d[\d.]*[/\\]|.*[/\\]Lib[/\\])"),
    # Rust symbols of std/core/alloc and the unwinder; a location in the toolchain's library or
    # in a dependency's source (~/.cargo/registry, ~/.cargo/git).
    "rust": re.compile(r"^<?(?:std|core|alloc|__rustc|backtrace|panic_unwind)::"
                       r"|^(?:rust_begin_unwind|__rust|_start|__libc|main$)"
                       r"|^/rustc/|/\.cargo/(?:registry|git)/|^library/(?:std|core|alloc)/"),
    "java": re.compile(r"^(?:java|javax|jdk|sun|com\.sun|kotlin|scala)\."),
    # Go's standard library has no dot in its first path element (main aside).
    "go": re.compile(r"^(?!main\.)[a-z0-9_]+(?:/[a-z0-9_]+)*\.[^/]*$"),
    "sanitizer": re.compile(r"^(?:__interceptor_|__asan|__sanitizer|__libc|_start$|"
                            r"__GI_|operator (?:new|delete))"),
}
_APP_FRAMES = 3


def in_app(kind: str, frame: str) -> bool:
    """Whether a frame (as a crash of that kind lists it) is the application's own code."""
    pattern = _NOT_APP.get(kind)
    return pattern is None or pattern.search(frame) is None


@dataclass
class Crash:
    """One crash occurrence."""

    kind: str  # python | rust | go | java | sanitizer | signal | oom
    type: str
    message: str
    frames: list[str]
    line: int
    text: list[str] = field(default_factory=list)

    @property
    def app_frames(self) -> list[str]:
        """The first in-app frames, innermost first: those the fingerprint holds."""
        app = [f for f in self.frames if in_app(self.kind, f)]
        if self.kind == "python":
            # "func (path)" as "func (file.py)": where the code is deployed is no part of it.
            app = [re.sub(r"\(.*[/\\]", "(", f) for f in app]
        if self.kind == "rust" and app:
            # A panic's location is its innermost in-app frame; the symbols of a backtrace
            # (present or not, as RUST_BACKTRACE was set) must not split one root cause.
            return app[:1]
        return app[:_APP_FRAMES]

    @property
    def fingerprint(self) -> str:
        """Type, message template and first in-app frames (or first frames when none is the
        application's), hashed."""
        top = self.app_frames or self.frames[:_APP_FRAMES]
        key = "|".join([self.kind, self.type, mask(self.message), *top])
        return hashlib.sha1(key.encode()).hexdigest()[:12]


def extract_crashes(lines: list[str]) -> Iterator[Crash]:
    """Every crash in the lines, in order."""
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        s = line.rstrip("\n")
        body = _strip_stamp(s)
        if "Traceback (most recent call last)" in body:
            crash, i = _python(lines, i)
            if crash is not None:
                yield crash
            continue
        if "panicked at" in body:
            crash, i = _rust(lines, i, body)
            yield crash
            continue
        if body.startswith(("panic: ", "fatal error: ")) and (m := _GO_PANIC.match(body)):
            crash, i = _go(lines, i, m)
            yield crash
            continue
        if ("Exception" in body or "Error" in body) and (m := _JAVA_HEAD.match(body)) and \
                i + 1 < n and _JAVA_FRAME.match(_strip_stamp(lines[i + 1])):
            crash, i = _java(lines, i, m)
            yield crash
            continue
        if "Sanitizer" in body and (m := _SAN.match(body)):
            crash, i = _sanitizer(lines, i, m)
            yield crash
            continue
        if (one := _one_line(line, body, i)) is not None:
            yield one
        i += 1


def _go(lines: list[str], i: int, m: re.Match[str]) -> tuple[Crash, int]:
    """A Go panic or fatal error: the function frames of the next 60 lines."""
    frames = []
    j = i + 1
    while j < len(lines) and j < i + 60:
        fm = _GO_FRAME.match(_strip_stamp(lines[j]).strip())
        if fm:
            frames.append(fm.group(1))
        j += 1
    return Crash("go", m.group(1), m.group(2), frames, i, lines[i:j]), j


def _sanitizer(lines: list[str], i: int, m: re.Match[str]) -> tuple[Crash, int]:
    frames = []
    j = i + 1
    # A report ends with "==PID==ABORTING"; the cap keeps a truncated one from
    # swallowing what follows it.
    while j < len(lines) and j < i + 120:
        text = _strip_stamp(lines[j])
        if text.startswith("==") and (_SAN_END.match(text) or _SAN.match(text)):
            j += 1 if _SAN_END.match(text) else 0
            break
        fm = _SAN_FRAME.match(text)
        if fm:
            frames.append(fm.group(1))
        j += 1
    return Crash("sanitizer", f"{m.group(1)}:{m.group(2)}", m.group(2), frames, i,
                 lines[i:j]), j


def _one_line(line: str, body: str, i: int) -> Crash | None:
    """An OOM kill or a fatal signal, each told in one line."""
    if _OOM.search(body) is not None:
        return Crash("oom", "OOM kill", body.strip(), [], i, [line])
    if (m := _SIGNAL.search(body)) is not None:
        sig = m.group(1) or {"Segmentation fault": "SIGSEGV", "Bus error": "SIGBUS",
                             "Aborted": "SIGABRT"}[m.group(2)]
        return Crash("signal", sig, body.strip(), [], i, [line])
    return None


_STAMP = re.compile(r"^\d\d:\d\d:\d\d ")


def _strip_stamp(line: str) -> str:
    """enduro's output logs prefix each line with HH:MM:SS."""
    return _STAMP.sub("", line.rstrip("\n"), count=1)


def _python(lines: list[str], i: int) -> tuple[Crash | None, int]:
    frames: list[str] = []
    start = i
    last: Crash | None = None
    i += 1
    while i < len(lines):
        body = _strip_stamp(lines[i])
        if (m := _PY_FRAME.match(body)) is not None:
            frames.insert(0, f"{m.group(3)} ({m.group(1)})")
            i += 1
            continue
        if body.startswith(" ") or not body:
            i += 1
            continue
        if (m := _PY_EXC.match(body)) is not None:
            last = Crash("python", m.group(1), m.group(2) or "", frames, start,
                         lines[start:i + 1])
            i += 1
            # A chained exception follows: the outermost one is reported, with its cause.
            j = i
            while j < len(lines) and not _strip_stamp(lines[j]).strip():
                j += 1
            if j < len(lines) and ("direct cause" in lines[j] or "During handling" in lines[j]):
                k = j + 1
                while k < len(lines) and "Traceback (most recent call last)" not in lines[k]:
                    k += 1
                if k < len(lines):
                    outer, end = _python(lines, k)
                    if outer is not None:
                        outer.message = f"{outer.message} (caused by {last.type}: " \
                            f"{last.message})"
                        outer.text = lines[start:end]
                        outer.line = start
                        return outer, end
            return last, i
        break
    return last, max(i, start + 1)


def _rust(lines: list[str], i: int, body: str) -> tuple[Crash, int]:
    start = i
    if (m := _RUST_OLD.match(body)) is not None:
        message, where = m.group(2), f"{m.group(3)}:{m.group(4)}"
    elif (m := _RUST_NEW.match(body)) is not None:
        where = f"{m.group(2)}:{m.group(3)}"
        message = _strip_stamp(lines[i + 1]).strip() if i + 1 < len(lines) else ""
        i += 1
    else:
        where, message = "?", body
    frames = [where]
    i += 1
    while i < len(lines) and i < start + 80:
        b = _strip_stamp(lines[i])
        if (fm := _RUST_FRAME.match(b)) is not None:
            frames.append(fm.group(1))
        elif not (b.startswith(" ") or b.startswith("note:") or b.startswith("stack")):
            break
        i += 1
    return Crash("rust", "panic", message, frames, start, lines[start:i]), i


_JAVA_MORE = re.compile(r"^\s+\.\.\. (\d+) (?:more|common frames omitted)")


def _java(lines: list[str], i: int, head: re.Match[str]) -> tuple[Crash, int]:
    start = i
    etype, message = head.group(1), head.group(2) or ""
    frames: list[str] = []
    enclosing: list[str] = []
    i += 1
    while i < len(lines):
        b = _strip_stamp(lines[i])
        if (fm := _JAVA_FRAME.match(b)) is not None:
            frames.append(fm.group(1))
        elif (cm := _JAVA_CAUSE.match(b)) is not None:
            # The root cause decides the root cause: its frames replace the wrapper's.
            etype, message, enclosing, frames = cm.group(1), cm.group(2) or "", frames, []
        elif (more := _JAVA_MORE.match(b)) is not None:
            # "... N more": the cause's last N frames are the enclosing trace's last N, and
            # may be the only application frames it has.
            n = int(more.group(1))
            frames += enclosing[len(enclosing) - n:] if 0 < n <= len(enclosing) else []
        else:
            break
        i += 1
    return Crash("java", etype, message, frames, start, lines[start:i]), i
