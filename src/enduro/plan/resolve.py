"""From plan source to a validated ``Plan``: profile, ``--set`` overrides, substitution,
validation, with every problem located at file:line."""

from __future__ import annotations

import copy
import difflib
import os
import re
import stat
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from enduro.base.errors import PlanError, PlanProblem
from enduro.plan.models import Plan
from enduro.plan.source import Lines, Path_, dotted, read_bounded, read_source, read_value

__all__ = ["MAX_FILE_BYTES", "LoadedPlan", "PlanSchemaError", "apply_set", "load_plan",
           "sort_problems", "substitute"]

# ${file:...} reads at most this much (a secret or a token, not a data set).
MAX_FILE_BYTES = 1024 * 1024

# ${env:NAME}, ${env:NAME:-default}, ${file:path}. Other namespaces (${token:api}) are resolved
# at run time and left as they are.
_SUBST = re.compile(r"\$\{(env|file):([^}:]+)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class LoadedPlan:
    """A validated plan with the data it came from (secrets from files left as references)."""

    plan: Plan
    resolved: dict[str, Any]
    source: Path
    profile: str | None
    # Where each field came from, for problems found after validation (rules, templates).
    lines: Lines | None = None

    def resolved_yaml(self) -> str:
        return yaml.safe_dump(self.resolved, sort_keys=False, allow_unicode=True)


def load_plan(
    path: Path | str,
    *,
    profile: str | None = None,
    sets: list[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadedPlan:
    """Load, override and validate a plan; raise ``PlanError`` listing every problem."""
    source = read_source(path)
    env = os.environ if env is None else env
    data = copy.deepcopy(source.data)
    lines = source.lines
    if profile is not None:
        data = _apply_profile(data, profile, lines)
    for item in sets or []:
        apply_set(data, item, lines)
    problems: list[PlanProblem] = []
    display = _walk_substitute(data, (), env, source.path.parent, lines, problems, secrets=False)
    resolved = _walk_substitute(data, (), env, source.path.parent, lines, problems, secrets=True)
    if problems:
        raise PlanError(problems)
    base_dir = source.path.parent
    for tree in (display, resolved):
        _anchor_inputs(tree, base_dir)
    try:
        plan = Plan.model_validate(resolved, context={"defer_references": True})
    except ValidationError as exc:
        problems = _problems_from(exc, lines, resolved)
        partial = _partial(resolved, exc)
        if partial is not None:
            # The sections left out define no names: what remains is checked as it would be
            # once the schema problems are fixed, so the user sees every problem at once.
            more = [lines.problem(loc, message)
                    for loc, message in partial.reference_problems()]
            more += _check_paths(partial, base_dir, lines)
            problems += more
            loaded = None if more else LoadedPlan(partial, display, source.path, profile, lines)
            raise PlanSchemaError(sort_problems(problems), loaded) from None
        raise PlanSchemaError(sort_problems(problems), None) from None
    problems = [lines.problem(loc, message) for loc, message in plan.reference_problems()]
    problems += _check_paths(plan, base_dir, lines)
    if problems:
        raise PlanError(sort_problems(problems))
    return LoadedPlan(plan, display, source.path, profile, lines)


class PlanSchemaError(PlanError):
    """The plan does not fit the models. ``partial`` is the plan with the failing top-level
    sections left out, when those define no names that the rest may refer to (so that the
    checks made after validation can still run on it soundly), else None."""

    def __init__(self, problems: list[PlanProblem], partial: LoadedPlan | None) -> None:
        super().__init__(problems)
        self.partial = partial


def sort_problems(problems: list[PlanProblem]) -> list[PlanProblem]:
    """Problems in reading order: by file, then line (problems without a line first)."""
    return sorted(problems, key=lambda p: (p.file or "", p.line or 0))


# Top-level keys nothing else in a plan refers to: a plan without them (or with their
# defaults) is still checked soundly for everything else.
_NAME_FREE = frozenset({"name", "description", "duration", "seed", "window", "grace",
                        "observe", "rules", "abort_if", "checkers", "fault_policy",
                        "on_worker_loss"})


def _partial(source: dict[str, Any], exc: ValidationError) -> Plan | None:
    """The plan without its failing top-level sections, or None when a failing section is one
    that others refer to (services, workloads, faults...) or no valid plan remains."""
    fields = {str(f.alias or n) for n, f in Plan.model_fields.items()}
    data: dict[Any, Any] = dict(source)
    for _ in range(5):  # each pass drops at least one key
        tops = {e["loc"][0] if e["loc"] else None for e in exc.errors()}
        if None in tops or any(t in fields and t not in _NAME_FREE for t in tops):
            return None
        for top in tops:
            if top == "name":
                data["name"] = "plan"  # required; never referred to
            else:
                data.pop(top, None)
        try:
            return Plan.model_validate(data, context={"defer_references": True})
        except ValidationError as again:
            exc = again
    return None


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "${" in text


def _anchor_inputs(data: dict[str, Any], base_dir: Path) -> None:
    """Make ``tls.ca`` relative to the plan's folder, like every other input path (the TLS
    code would otherwise read it relative to whatever directory enduro was started in)."""
    specs: list[Any] = []
    workloads = data.get("workloads")
    for workload in workloads.values() if isinstance(workloads, dict) else ():
        if isinstance(workload, dict):
            specs += [workload.get(kind) for kind in ("http", "sse", "flow", "burst")]
    # A service's readiness probe and scrapes take the same options.
    services = data.get("services")
    for service in services.values() if isinstance(services, dict) else ():
        if isinstance(service, dict):
            specs += [service.get("ready"), service.get("scrape")]
    for spec in specs:
        tls = spec.get("tls") if isinstance(spec, dict) else None
        for key in ("ca", "cert", "key"):
            value = tls.get(key) if isinstance(tls, dict) else None
            if isinstance(tls, dict) and isinstance(value, str) and value \
                    and not _is_template(value):
                path = Path(value).expanduser()
                tls[key] = str(path if path.is_absolute() else (base_dir / path).absolute())


def _input_paths(plan: Plan) -> Iterator[tuple[Path_, str, str]]:
    """Every input path the plan names: where, the value, and "file", "dir" or "any"."""
    for name, service in plan.services.items():
        at: Path_ = ("services", name)
        if service.stage is not None:
            yield (*at, "stage", "from"), service.stage.from_, "any"
        for i, cfg in enumerate(service.configs()):
            loc = (*at, "config", i) if isinstance(service.config, list) else (*at, "config")
            yield (*loc, "template"), cfg.template, "file"
        if service.cwd is not None and service.cwd.startswith(("/", "~")):
            yield (*at, "cwd"), service.cwd, "dir"
        if service.compose is not None:
            yield (*at, "compose", "file"), service.compose.file, "file"
        for part, tls in (("ready", service.ready.tls if service.ready else None),
                          ("scrape", service.scrape.tls if service.scrape else None)):
            yield from _tls_paths((*at, part, "tls"), tls)
    for wname, workload in plan.workloads.items():
        for kind in ("http", "sse", "flow", "burst"):
            spec = getattr(workload, kind)
            if spec is not None:
                yield from _tls_paths(("workloads", wname, kind, "tls"), spec.tls)


def _tls_paths(at: Path_, tls: Any) -> Iterator[tuple[Path_, str, str]]:
    for key in ("ca", "cert", "key"):
        value = getattr(tls, key) if tls is not None else None
        if value is not None:
            yield (*at, key), value, "file"


_KIND_TESTS: dict[str, tuple[Callable[[int], bool], str]] = {
    "file": (stat.S_ISREG, "is not a regular file"),
    "dir": (stat.S_ISDIR, "is not a directory"),
    "any": (lambda m: stat.S_ISREG(m) or stat.S_ISDIR(m), "is not a file or a directory"),
}


def _check_paths(plan: Plan, base_dir: Path, lines: Lines) -> list[PlanProblem]:
    """Input files and directories the run will read must exist now, not at minute 40."""
    problems: list[PlanProblem] = []
    for loc, value, kind in _input_paths(plan):
        if _is_template(value):
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            problems.append(lines.problem(loc, f"{path}: {exc.strerror or 'cannot be read'}"))
            continue
        test, message = _KIND_TESTS[kind]
        if not test(mode):
            problems.append(lines.problem(loc, f"{path} {message}"))
    return problems


def _apply_profile(data: dict[str, Any], profile: str, lines: Lines) -> dict[str, Any]:
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict) or profile not in profiles:
        names = sorted(profiles) if isinstance(profiles, dict) else []
        hint = _did_you_mean(profile, names)
        known = ", ".join(names) or "none defined"
        raise PlanError([lines.problem(("profiles",),
                                       f"no profile {profile!r}{hint} (profiles: {known})")])
    override = profiles[profile]
    if not isinstance(override, dict):
        raise PlanError([lines.problem(("profiles", profile), "a profile must be a mapping")])
    # Problems in the merged values point at the profile's lines, where they came from.
    prefix = ("profiles", profile)
    for key, line in list(lines.by_path.items()):
        if key[:2] == prefix and len(key) > 2:
            lines.by_path[key[2:]] = line
    override = dict(override)
    add, remove = override.pop("add_rules", None), override.pop("remove_rules", None)
    merged = _deep_merge(data, override)
    assert isinstance(merged, dict)
    if add is not None or remove is not None:
        _edit_rules(merged, profile, add, remove, lines)
    return merged


def _rule_text(rule: Any) -> Any:
    return rule.get("rule") if isinstance(rule, dict) else rule


def _edit_rules(merged: dict[str, Any], profile: str, add: Any, remove: Any,
                lines: Lines) -> None:
    """A profile's ``remove_rules`` (rule texts) and ``add_rules`` (rules) applied to the
    plan's rules, each rule keeping the line it was written on."""
    at = ("profiles", profile)
    problems = []
    for key, value in (("add_rules", add), ("remove_rules", remove)):
        if value is not None and not isinstance(value, list):
            problems.append(lines.problem((*at, key), f"{key} must be a list of rules"))
    rules = merged.get("rules") or []
    if not isinstance(rules, list):
        problems.append(lines.problem(("rules",), "rules must be a list"))
    if problems:
        raise PlanError(problems)
    # Each rule with the lines of its parts, to move along with it.
    entries = [(rule, {k[2:]: v for k, v in lines.by_path.items() if k[:2] == ("rules", i)})
               for i, rule in enumerate(rules)]
    for j, text in enumerate(remove or []):
        found = next((i for i, (rule, _) in enumerate(entries) if _rule_text(rule) == text),
                     None)
        if found is None:
            known = "; ".join(str(_rule_text(r)) for r, _ in entries) or "none"
            problems.append(lines.problem((*at, "remove_rules", j),
                                          f"no rule {text!r} to remove (rules: {known})"))
        else:
            del entries[found]
    for j, rule in enumerate(add or []):
        source = (*at, "add_rules", j)
        entries.append((rule, {k[len(source):]: v for k, v in lines.by_path.items()
                               if k[:len(source)] == source}))
    if problems:
        raise PlanError(problems)
    for stale in [k for k in lines.by_path if k[:1] == ("rules",) and len(k) > 1]:
        del lines.by_path[stale]
    for i, (_, parts) in enumerate(entries):
        for rest, line in parts.items():
            lines.by_path[("rules", i, *rest)] = line
    merged["rules"] = [rule for rule, _ in entries]


def _deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _deep_merge(base.get(key), value) if key in base else value
        return out
    return copy.deepcopy(over)


def apply_set(data: dict[str, Any], item: str, lines: Lines) -> None:
    """Apply one ``path=value`` override; the value is read as a YAML scalar or flow value."""
    if "=" not in item:
        raise PlanError(f"--set {item!r}: expected path=value, such as "
                        "workloads.browse.http.rate=20/s")
    raw_path, raw_value = item.split("=", 1)
    try:
        value = read_value(raw_value, f"--set {raw_path}")
    except PlanError as exc:
        raise PlanError([PlanProblem(f"the value does not parse: {p.message}", p.file)
                         for p in exc.problems]) from None
    parts: list[str | int] = []
    for piece in re.findall(r"[^.\[\]]+|\[\d+\]", raw_path.strip()):
        parts.append(int(piece[1:-1]) if piece.startswith("[") else piece)
    if not parts:
        raise PlanError(f"--set {item!r}: empty path")
    node = _set_parent(data, parts, raw_path)
    _set_last(node, parts, value, raw_path)
    lines.replace(tuple(parts), 0)  # 0 marks "from the command line"


def _set_parent(data: dict[str, Any], parts: list[str | int], raw_path: str) -> Any:
    """The node that holds the path's last part, with missing mappings (or lists, before an
    index) made on the way."""
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(node, dict):
            if not isinstance(part, str):
                part = str(part)
            if part not in node or node[part] is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif isinstance(node, list) and part.isdigit() if isinstance(part, str) else False:
            node = node[int(part)]
        else:
            raise PlanError(f"--set {raw_path}: {dotted(tuple(parts[: i + 1]))} is not a "
                            "mapping or list index that exists")
    return node


def _set_last(node: Any, parts: list[str | int], value: Any, raw_path: str) -> None:
    """Set the path's last part in its parent: a key of a mapping, an existing list index."""
    last = parts[-1]
    if isinstance(node, dict):
        node[str(last)] = value
    elif isinstance(node, list):
        if isinstance(last, str) and not last.isdigit():
            raise PlanError(f"--set {raw_path}: {dotted(tuple(parts[:-1]))} is a list; "
                            f"index it with a number, such as {dotted(tuple(parts[:-1]))}[0]")
        index = int(last)
        if index >= len(node):
            raise PlanError(f"--set {raw_path}: index {index} is past the end of a list of "
                            f"{len(node)}")
        node[index] = value
    else:
        raise PlanError(f"--set {raw_path}: the parent is not a mapping or list")


def substitute(text: str, env: Mapping[str, str], base_dir: Path) -> str:
    """Replace ``${env:...}`` and ``${file:...}`` references in ``text``."""
    problems: list[PlanProblem] = []
    out = _subst_one(text, env, base_dir, Lines(""), (), problems, secrets=True)
    if problems:
        raise PlanError(problems)
    return out


def _subst_one(text: str, env: Mapping[str, str], base_dir: Path, lines: Lines, path: Path_,
               problems: list[PlanProblem], *, secrets: bool) -> str:
    def repl(match: re.Match[str]) -> str:
        kind, name, default = match.group(1), match.group(2), match.group(3)
        if kind == "env":
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(lines.problem(
                path, f"environment variable {name} is not set (write ${{env:{name}:-default}} "
                "to give a default)"))
            return match.group(0)
        file_path = Path(name).expanduser()
        if not file_path.is_absolute():
            file_path = base_dir / file_path
        try:
            content = read_bounded(file_path, MAX_FILE_BYTES).decode("utf-8").strip()
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
            problems.append(lines.problem(path, f"${{file:{name}}}: cannot read {file_path}: "
                                          f"{reason}"))
            return match.group(0)
        # Secrets read from files stay references in what is printed or stored.
        return content if secrets else match.group(0)

    return _SUBST.sub(repl, text)


def _walk_substitute(node: Any, path: Path_, env: Mapping[str, str], base_dir: Path,
                     lines: Lines, problems: list[PlanProblem], *, secrets: bool) -> Any:
    if isinstance(node, dict):
        return {k: _walk_substitute(v, (*path, k), env, base_dir, lines, problems,
                                    secrets=secrets) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk_substitute(v, (*path, i), env, base_dir, lines, problems, secrets=secrets)
                for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        sub_problems: list[PlanProblem] = []
        out = _subst_one(node, env, base_dir, lines, path, sub_problems, secrets=secrets)
        if secrets:
            problems.extend(sub_problems)
        return out
    return node


def _problems_from(exc: ValidationError, lines: Lines,
                   data: Any = None) -> list[PlanProblem]:
    """One problem per mistake, in the plan's own words: pydantic's tags for the members of a
    union (``constrained-int``, ``list[...]``, ``function-after[...]``) are dropped from the
    path, and of a union's members only the one of the input's type speaks (a list is judged
    by the list member); when none has that type, one message names the types allowed."""
    problems: list[PlanProblem] = []
    seen: set[tuple[Path_, str]] = set()
    errors = _pick([_split(e, data) for e in exc.errors()])
    deeper = {err.path[:i] for err in errors for i in range(len(err.path))}
    for err in errors:
        loc, raw = err.path, err.raw
        kind = raw["type"]
        if kind.endswith("_type") and loc in deeper:
            continue  # a union's other member explains the problem better, deeper down
        if err.message is not None:
            message = err.message
        elif kind == "extra_forbidden":
            key = str(loc[-1])
            choices = _fields_at(loc[:-1])
            message = f"unknown key {key!r}{_did_you_mean(key, choices)}"
            if choices:
                message += f" (allowed: {', '.join(choices)})"
        elif kind == "missing":
            message = "required key is missing"
        elif kind in ("value_error", "assertion_error"):
            message = str(raw["msg"]).removeprefix("Value error, ")
        else:
            message = f"{raw['msg'].lower()} (got {_shown(raw.get('input'))})"
        if (loc, message) in seen:
            continue
        seen.add((loc, message))
        problem = lines.problem(loc, message)
        if lines.line_of(loc) == 0:
            problem = PlanProblem(message, "--set", None, dotted(loc))
        problems.append(problem)
    return problems


def _shown(value: Any) -> str:
    return repr(value) if not isinstance(value, dict | list) else type(value).__name__


@dataclass(frozen=True)
class _Err:
    """A validation error with its location split into the plan's path and pydantic's union
    tags (each with where in the path it stood and the kind of the input there)."""

    path: Path_
    tags: tuple[tuple[int, str, str], ...]
    raw: Any
    message: str | None = None


_MISSING = object()


def _kind_of(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool | int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return "?"


def _split(raw: Any, data: Any) -> _Err:
    """Walk the error's location through the data: a part that names a key or index of the
    data is the plan's path, any other part is a tag pydantic added (or, last, a missing key)."""
    loc: tuple[int | str, ...] = raw["loc"]
    path: list[str | int] = []
    tags: list[tuple[int, str, str]] = []
    node: Any = data
    for i, part in enumerate(loc):
        name = "json" if part == "json_" else part
        if (isinstance(node, dict) and name in node) or (
                isinstance(node, list) and isinstance(name, int) and 0 <= name < len(node)):
            # A key that is not text (`~`, `yes`, `1.5`) is indexed by its text, as the
            # plan's lines are.
            path.append(name if isinstance(name, str | int) and not isinstance(name, bool)
                        else str(name))
            node = node[name]  # type: ignore[index]  # an int when node is a list
        elif isinstance(node, dict) and isinstance(name, str) and (
                key := next((k for k in node if str(k) == name), _MISSING)) is not _MISSING:
            # Pydantic names a key that is not text (`~`, `yes`) by its text: a path, not a tag.
            path.append(name)
            node = node[key]
        elif isinstance(name, str) and _is_tag(name) and not (
                i == len(loc) - 1 and raw["type"] in ("missing", "extra_forbidden")):
            tags.append((len(path), name, _kind_of(node) if node is not _MISSING else "?"))
        else:
            path.append(name)
            node = _MISSING
    return _Err(tuple(path), tuple(tags), raw)


def _is_tag(part: str) -> bool:
    return (part in ("str", "int", "float", "bool", "none", "list", "dict")
            or "[" in part or part.startswith(("constrained-", "function-", "lax-or-strict",
                                               "json-or-python", "literal", "nullable"))
            or part[:1].isupper())


# What a union member accepts, read from its tag; None: cannot tell.
_TAG_KINDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("list[", "tuple[", "set[", "frozenset[", "list", "tuple"), "list"),
    (("dict[", "dict"), "dict"),
    (("str", "constrained-str"), "str"),
    (("int", "float", "bool", "constrained-int", "constrained-float", "decimal"), "number"),
    (("none",), "none"),
)
_KIND_WORDS = {"list": "a list", "dict": "a mapping", "str": "a string", "number": "a number",
               "none": "nothing"}


def _tag_kind(tag: str) -> str | None:
    # function-after[check(), constrained-int]: the inner type decides
    for _ in range(5):
        wrapped = re.fullmatch(r"function-(?:after|before|wrap)\[[^,]*\(\), (.*)\]", tag)
        if wrapped is None:
            break
        tag = wrapped.group(1)
    if tag[:1].isupper():
        return "dict"  # a model
    for prefixes, kind in _TAG_KINDS:
        if any(tag == p or (p.endswith("[") and tag.startswith(p)) for p in prefixes):
            return kind
    return None


def _pick(errors: list[_Err], depth: int = 0) -> list[_Err]:
    """Of each union's members, keep the errors of the member the input's type chose."""
    out = [e for e in errors if not e.tags]
    groups: dict[Path_, list[_Err]] = {}
    for err in errors:
        if err.tags:
            groups.setdefault(err.path[:err.tags[0][0]], []).append(err)
    for at, members in groups.items():
        branches: dict[str, list[_Err]] = {}
        for err in members:
            branches.setdefault(err.tags[0][1], []).append(err)
        got = members[0].tags[0][2]
        kinds = {tag: _tag_kind(tag) for tag in branches}
        matching = [tag for tag in branches if kinds[tag] == got]
        if len(branches) > 1 and not matching and None not in kinds.values() and got != "?":
            allowed = [_KIND_WORDS[k] for k in dict.fromkeys(
                k for k in kinds.values() if k is not None and k != "none")]
            words = ", ".join(allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 \
                else "".join(allowed)
            first = members[0]
            out.append(_Err(at, (), first.raw, f"expected {words} (got "
                            f"{_shown(first.raw.get('input'))})"))
            continue
        candidates = matching or list(branches)
        # Of several fitting members, the one validation went furthest into.
        best = max(candidates, key=lambda t: (max(len(e.path) for e in branches[t]),
                                              not all(e.raw["type"].endswith("_type")
                                                      for e in branches[t]),
                                              -len(branches[t])))
        rest = [_Err(e.path, e.tags[1:], e.raw) for e in branches[best]]
        out += _pick(rest, depth + 1) if depth < 20 else rest
    return out


def _fields_at(loc: Path_) -> list[str]:
    """Names of the keys allowed at ``loc``, walking the plan's models."""
    current: Any = Plan
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            name = "json_" if part == "json" else str(part)
            info = current.model_fields.get(name)
            if info is None:
                return []
            current = info.annotation
        elif typing.get_origin(current) in (dict, list):
            args = typing.get_args(current)
            current = args[-1] if args else Any
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [str(f.alias or n) for n, f in current.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            models = [a for a in typing.get_args(tp)
                      if isinstance(a, type) and issubclass(a, BaseModel)]
            containers = [a for a in typing.get_args(tp) if typing.get_origin(a) in (dict, list)]
            if models:
                tp = models[0]
            elif containers:
                tp = containers[0]
            else:
                return tp
        else:
            return tp


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = [c for c in choices if c.startswith(word) or word.startswith(c)]
    close = close or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
