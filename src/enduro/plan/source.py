"""Reading a plan file into plain data plus a map from field path to source line.

The reader refuses, with file:line, what would make loading slow, deep or ambiguous: files
that are not regular files or are larger than ``MAX_PLAN_BYTES``, text that is not UTF-8,
duplicate keys, nesting deeper than ``MAX_DEPTH`` and aliases that expand to more than
``MAX_NODES`` values (a "billion laughs" bomb is refused without being expanded).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from enduro.base.errors import PlanError, PlanProblem

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_PLAN_BYTES", "Lines", "PlanSource", "read_bounded",
           "read_source", "read_value"]

Path_ = tuple[str | int, ...]

MAX_PLAN_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 100
MAX_NODES = 100_000


@dataclass
class Lines:
    """Source lines of fields, looked up by the longest known prefix of a field path."""

    file: str
    by_path: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        for end in range(len(path), -1, -1):
            line = self.by_path.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def problem(self, path: Path_, message: str) -> PlanProblem:
        line = self.line_of(path)
        if line == 0:  # the value came from --set, not from the file
            return PlanProblem(message, "--set", None, dotted(path))
        return PlanProblem(message, self.file, line, dotted(path))

    def replace(self, path: Path_, line: int) -> None:
        """``path`` now holds a value from elsewhere (``line``; 0 for --set): the lines of
        what it held before no longer describe it."""
        for key in [k for k in self.by_path if k[:len(path)] == path]:
            del self.by_path[key]
        self.by_path[path] = line


def dotted(path: Path_) -> str:
    """``("workloads", "a", "requests", 0)`` as ``workloads.a.requests[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if len(part) <= 40 else part[:37] + "..."  # a 300-character key
            out += f".{text}" if out else text
    return out


@dataclass
class PlanSource:
    """A plan file as data, before any override or validation."""

    path: Path
    data: dict[str, Any]
    lines: Lines


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, refusing anything else (a directory, a FIFO, a
    device such as /dev/zero) or a file larger than ``limit``, without blocking or reading
    more than ``limit`` + 1 bytes. Raises ``ValueError`` with the reason."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    _check_regular(info, limit)
    try:
        # O_NONBLOCK: should the file be swapped for a FIFO after the stat, open still returns.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    with os.fdopen(fd, "rb") as fh:
        _check_regular(os.fstat(fd), limit)
        try:
            data = fh.read(limit + 1)
        except OSError as exc:  # /proc/self/mem: EIO
            raise ValueError(exc.strerror or str(exc)) from None
    if data is None:  # a "regular" file with nothing to read yet, such as /proc/kmsg
        raise ValueError("it would block (it is not a file that holds its content)")
    if len(data) > limit:
        raise ValueError(f"larger than {_size(limit)}")
    return data


def _check_regular(info: os.stat_result, limit: int) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(os.strerror(errno.EISDIR).lower())
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("not a regular file (a FIFO, socket or device cannot be read)")
    if info.st_size > limit:
        raise ValueError(f"larger than {_size(limit)} ({info.st_size} bytes)")


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"


def read_source(path: Path | str) -> PlanSource:
    """Read a YAML or TOML plan. Syntax errors become a ``PlanError`` with file:line."""
    path = Path(path)
    try:
        raw = read_bounded(path, MAX_PLAN_BYTES)
    except ValueError as exc:
        if str(exc) == "no such file":
            raise PlanError(f"{path}: no such plan file") from None
        raise PlanError(f"{path}: cannot read the plan: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PlanError([PlanProblem(f"the plan is not UTF-8 text ({exc.reason} at byte "
                                     f"{exc.start})", str(path), line)]) from None
    lines = Lines(str(path))
    if path.suffix.lower() == ".toml":
        data = _read_toml(text, lines)
    else:
        data = _read_yaml(text, lines)
    if not isinstance(data, dict):
        raise PlanError([PlanProblem("a plan must be a mapping of keys such as name, duration, "
                                     "workloads", str(path), 1)])
    return PlanSource(path, data, lines)


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _Loader(yaml.SafeLoader):
    """A safe loader whose composer refuses nesting deeper than ``MAX_DEPTH`` (PyYAML's
    composer recurses, so 20,000 ``[`` would otherwise end in a RecursionError)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _TooDeep(event.start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _too_deep(file: str, line: int) -> PlanError:
    return PlanError([PlanProblem(f"values are nested more than {MAX_DEPTH} levels deep",
                                  file, line)])


def _read_yaml(text: str, lines: Lines) -> Any:
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader checks every character here
        node = loader.get_single_node()
    except _TooDeep as exc:
        raise _too_deep(lines.file, exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise PlanError([PlanProblem(f"invalid YAML: {exc.problem}", lines.file, line)]) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise PlanError([PlanProblem(
            f"invalid YAML: the character {exc.character!r} is not allowed in a plan",
            lines.file, line)]) from None
    except yaml.YAMLError as exc:
        raise PlanError([PlanProblem(f"invalid YAML: {exc}", lines.file)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        raise PlanError([PlanProblem("the plan is empty", lines.file, 1)])
    _measure(node, lines.file)
    duplicates = _duplicate_keys(node, lines.file)
    if duplicates:
        raise PlanError(duplicates)
    _index_node(node, (), lines.by_path)
    lines.by_path[()] = 1
    constructor = yaml.SafeLoader("")
    try:
        return constructor.construct_document(node)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise PlanError([PlanProblem(f"invalid YAML: {exc.problem}", lines.file, line)]) from None
    finally:
        constructor.dispose()


def read_value(text: str, where: str) -> Any:
    """One YAML value given on the command line (``--set path=value``), read with the plan's
    own limits: depth, alias expansion, duplicate keys. Problems are reported at ``where``."""
    lines = Lines(where)
    if not text.strip():
        return ""
    try:
        return _read_yaml(text, lines)
    except PlanError as exc:
        if [p.message for p in exc.problems] == ["the plan is empty"]:
            return None  # a comment alone, as yaml.safe_load reads it
        raise PlanError([PlanProblem(p.message, where) for p in exc.problems]) from None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _measure(root: yaml.Node, file: str) -> None:
    """Refuse a node graph whose expansion (aliases copied out) is larger than ``MAX_NODES``
    or deeper than ``MAX_DEPTH``, or that contains itself. Each node is measured once, so a
    billion-laughs bomb costs as much as its text."""
    done: dict[int, tuple[int, int]] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        line = node.start_mark.line + 1
        if finished:
            measures = [done[id(c)] for c in _children(node)]
            size = 1 + sum(m[0] for m in measures)
            depth = 1 + max((m[1] for m in measures), default=0)
            active.discard(key)
            done[key] = (size, depth)
            if size > MAX_NODES:
                raise PlanError([PlanProblem(
                    f"aliases expand to more than {MAX_NODES:,} values (an alias bomb?)",
                    file, line)])
            if depth > MAX_DEPTH:
                raise _too_deep(file, line)
            continue
        if key in done:
            continue
        if key in active:
            raise PlanError([PlanProblem("an alias refers to a value that contains it",
                                         file, line)])
        active.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in done)


def _duplicate_keys(root: yaml.Node, file: str) -> list[PlanProblem]:
    problems: list[PlanProblem] = []
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        stack.extend(_children(node))
        if not isinstance(node, yaml.MappingNode):
            continue
        first: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            ident = (key_node.tag, str(key_node.value))
            line = key_node.start_mark.line + 1
            if ident in first:
                problems.append(PlanProblem(
                    f"duplicate key {key_node.value!r} (first at line {first[ident]}); a key "
                    "may appear once in a mapping", file, line))
            else:
                first[ident] = line
    return sorted(problems, key=lambda p: p.line or 0)


def _key_text(node: yaml.Node) -> str:
    """A key as the models' errors name it: ``str()`` of the value it loads as (``~`` and
    ``null`` load as None, ``yes`` as True)."""
    text = str(node.value)
    if node.tag.endswith(":null"):
        return "None"
    if node.tag.endswith(":bool"):
        return str(text.lower() in ("yes", "true", "on", "y"))
    return text


def _index_node(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = _key_text(key_node)
            out[(*path, key)] = key_node.start_mark.line + 1
            _index_node(value_node, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*path, i)] = item.start_mark.line + 1
            _index_node(item, (*path, i), out)


# One part of a dotted TOML key: "quoted", 'literal' or bare.
_TOML_PART = r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_\-]+)"""
_TOML_TABLE = re.compile(rf"^\s*\[\[?\s*({_TOML_PART}(?:\s*\.\s*{_TOML_PART})*)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(rf"^\s*({_TOML_PART}(?:\s*\.\s*{_TOML_PART})*)\s*=")


def _toml_key(text: str) -> tuple[str, ...]:
    """``a."b.c".d`` as ``("a", "b.c", "d")``: dots inside quotes do not split."""
    parts = re.findall(rf"\s*({_TOML_PART})\s*(?:\.|$)", text)
    return tuple(p[1:-1] if p[:1] in "\"'" and len(p) > 1 else p for p in parts)


def _read_toml(text: str, lines: Lines) -> Any:
    text = text.removeprefix("\ufeff")
    deep = _toml_too_deep(text)
    if deep is not None:
        raise _too_deep(lines.file, deep)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        if line is None and "end of document" in str(exc):
            line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        raise PlanError([PlanProblem(f"invalid TOML: {exc}", lines.file, line)]) from None
    except RecursionError:
        raise _too_deep(lines.file, 1) from None
    deep = _data_too_deep(data)
    if deep:
        raise _too_deep(lines.file, 1)
    # tomllib keeps no positions; tables and keys are found by a line scan, which is exact for
    # the plain `[a.b]` / `key = value` layout plans use.
    table: Path_ = ()
    lines.by_path[()] = 1
    for number, raw in enumerate(text.splitlines(), start=1):
        if m := _TOML_TABLE.match(raw):
            table = _toml_key(m.group(1))
            lines.by_path.setdefault(table, number)
        elif m := _TOML_KEY.match(raw):
            lines.by_path.setdefault((*table, *_toml_key(m.group(1))), number)
    return data


def _toml_too_deep(text: str) -> int | None:
    """The line where ``[``/``{`` nesting first passes ``MAX_DEPTH`` outside strings and
    comments (tomllib recurses on nested arrays and inline tables), or None."""
    depth = 0
    line = 1
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in "\"'":
            quote = c * 3 if text.startswith(c * 3, i) else c
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                if c == '"' and text[j] == "\\":
                    j += 1
                elif len(quote) == 1 and text[j] == "\n":
                    break
                j += 1
            line += text.count("\n", i, j)
            i = j + len(quote)
            continue
        elif c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    return None


def _data_too_deep(data: Any) -> bool:
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return False
