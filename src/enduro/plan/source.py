"""Reading a plan file into plain data plus a map from field path to source line."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from enduro.errors import PlanError, PlanProblem

__all__ = ["Lines", "PlanSource", "read_source"]

Path_ = tuple[str | int, ...]


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
        return PlanProblem(message, self.file, self.line_of(path), dotted(path))


def dotted(path: Path_) -> str:
    """``("workloads", "a", "requests", 0)`` as ``workloads.a.requests[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class PlanSource:
    """A plan file as data, before any override or validation."""

    path: Path
    data: dict[str, Any]
    lines: Lines


def read_source(path: Path | str) -> PlanSource:
    """Read a YAML or TOML plan. Syntax errors become a ``PlanError`` with file:line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"{path}: no such plan file") from None
    except OSError as exc:
        raise PlanError(f"{path}: cannot read the plan: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise PlanError(f"{path}: the plan is not UTF-8 text ({exc.reason})") from exc
    lines = Lines(str(path))
    if path.suffix.lower() == ".toml":
        data = _read_toml(text, lines)
    else:
        data = _read_yaml(text, lines)
    if not isinstance(data, dict):
        raise PlanError([PlanProblem("a plan must be a mapping of keys such as name, duration, "
                                     "workloads", str(path), 1)])
    return PlanSource(path, data, lines)


def _read_yaml(text: str, lines: Lines) -> Any:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise PlanError([PlanProblem(f"invalid YAML: {exc.problem}", lines.file, line)]) from exc
    except yaml.YAMLError as exc:
        raise PlanError([PlanProblem(f"invalid YAML: {exc}", lines.file)]) from exc
    if node is None:
        raise PlanError([PlanProblem("the plan is empty", lines.file, 1)])
    _index_node(node, (), lines.by_path)
    lines.by_path[()] = 1
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise PlanError([PlanProblem(f"invalid YAML: {exc.problem}", lines.file, line)]) from exc
    finally:
        loader.dispose()


def _index_node(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            out[(*path, key)] = key_node.start_mark.line + 1
            _index_node(value_node, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*path, i)] = item.start_mark.line + 1
            _index_node(item, (*path, i), out)


_TOML_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")


def _read_toml(text: str, lines: Lines) -> Any:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        raise PlanError([PlanProblem(f"invalid TOML: {exc}", lines.file, line)]) from exc
    # tomllib keeps no positions; tables and keys are found by a line scan, which is exact for
    # the plain `[a.b]` / `key = value` layout plans use.
    table: Path_ = ()
    lines.by_path[()] = 1
    for number, raw in enumerate(text.splitlines(), start=1):
        if m := _TOML_TABLE.match(raw):
            table = tuple(p.strip().strip("\"'") for p in m.group(1).split("."))
            lines.by_path.setdefault(table, number)
        elif m := _TOML_KEY.match(raw):
            key = tuple(p.strip().strip("\"'") for p in m.group(1).split("."))
            lines.by_path.setdefault((*table, *key), number)
    return data
