"""Requests compiled once from the plan into bytes (or a cheap template), and their checks."""

from __future__ import annotations

import difflib
import json
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from enduro.engine.wire import UnsafeValue, request_head
from enduro.errors import PlanError
from enduro.plan.models import Expect, HttpWorkload, RequestSpec

__all__ = ["FLOW_PLACEHOLDER", "TEMPLATE_FUNCTIONS", "Check", "PreparedRequest", "Target",
           "compile_check", "condition_problem", "flow_template_problems", "function_problem",
           "json_path_problem", "malformed_placeholders", "prepare_requests", "split_base",
           "template_problems"]

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)(?:\(([^)]*)\))?\s*\}\}")


@dataclass(frozen=True)
class Target:
    """Where a workload sends: scheme, host, port and path prefix."""

    scheme: str
    host: str
    port: int
    prefix: str

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def split_base(base: str) -> Target:
    """Split a base URL; raise ``PlanError`` on one enduro cannot use."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PlanError(f"base URL {base!r}: expected http://host[:port][/prefix]")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise PlanError(f"base URL {base!r}: {exc}") from exc
    return Target(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


_ANY_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
# The template language of flows and bursts (engine.flow.render): captured and declared
# variables besides the functions below.
FLOW_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w]*)(?:\(([^)]*)\))?\s*\}\}")
# name -> (how it is called, whether it takes arguments)
TEMPLATE_FUNCTIONS = {"seq": ("seq", False), "uuid": ("uuid", False),
                      "randint": ("randint(a,b)", True), "choice": ("choice(a|b)", True)}


def function_problem(name: str, args: str | None) -> str | None:
    """Why ``{{name(args)}}`` cannot be filled in, or None. Shared by every template
    compiler, so validation and the run agree."""
    usage, takes_args = TEMPLATE_FUNCTIONS.get(name, (name, False))
    if not takes_args:
        return None if args is None else f"{{{{{name}}}}} takes no arguments; write {usage}"
    if args is None or not args.strip():
        return f"{name} needs arguments, such as {usage}"
    if name == "randint":
        try:
            lo, hi = (int(a) for a in args.split(","))
        except ValueError:
            return "randint takes two integers, such as randint(1,100)"
        if lo > hi:
            return f"randint({lo},{hi}): the first bound must not exceed the second"
        return None
    if any(not o for o in args.split("|")):
        return f"choice({args}): an empty alternative; write choice(a|b)"
    return None


def malformed_placeholders(text: str, grammar: re.Pattern[str]) -> list[str]:
    """``{{...}}`` pieces of ``text`` that ``grammar`` does not read as a placeholder (they
    would be sent as they are)."""
    return [m.group(0) for m in _ANY_PLACEHOLDER.finditer(text)
            if not grammar.fullmatch(m.group(0))]


class _Template:
    """A string with ``{{seq}}``, ``{{uuid}}``, ``{{randint(1,100)}}``, ``{{choice(a|b)}}``.
    ``later`` names placeholders filled in before the template is compiled for the run
    (canaries); validation compiles with them left in place."""

    def __init__(self, text: str, rng: random.Random,
                 later: frozenset[str] = frozenset()) -> None:
        self.parts: list[str | Callable[[int], str]] = []
        bad = malformed_placeholders(text, _PLACEHOLDER)
        if bad:
            raise PlanError(f"template {text!r}: {bad[0]} is not a placeholder (known: seq, "
                            "uuid, randint(a,b), choice(a|b))")
        pos = 0
        for m in _PLACEHOLDER.finditer(text):
            self.parts.append(text[pos:m.start()])
            if m.group(1) in later and m.group(2) is None:
                self.parts.append(m.group(0))
            else:
                self.parts.append(self._function(m.group(1), m.group(2), rng, text))
            pos = m.end()
        self.parts.append(text[pos:])
        self.static = all(isinstance(p, str) for p in self.parts)

    @staticmethod
    def _function(name: str, args: str | None, rng: random.Random,
                  text: str) -> Callable[[int], str]:
        if name not in TEMPLATE_FUNCTIONS:
            raise PlanError(f"template {text!r}: unknown placeholder {{{{{name}}}}} "
                            "(known: seq, uuid, randint(a,b), choice(a|b))")
        problem = function_problem(name, args)
        if problem is not None:
            raise PlanError(f"template {text!r}: {problem}")
        if name == "seq":
            return str
        if name == "uuid":
            # Unique across runs, not seeded: keys such as Idempotency-Key must not repeat
            # when the same plan runs again against a service that remembers them.
            return lambda _n: str(uuid.uuid4())
        assert args is not None
        if name == "randint":
            lo, hi = (int(a) for a in args.split(","))
            return lambda _n: str(rng.randint(lo, hi))
        options = args.split("|")
        return lambda _n: rng.choice(options)

    def render(self, seq: int) -> str:
        return "".join(p if isinstance(p, str) else p(seq) for p in self.parts)


def _templ(value: Any, rng: random.Random) -> Any:
    if isinstance(value, str):
        return _Template(value, rng)
    if isinstance(value, dict):
        return {k: _templ(v, rng) for k, v in value.items()}
    if isinstance(value, list):
        return [_templ(v, rng) for v in value]
    return value


def _render(value: Any, seq: int) -> Any:
    if isinstance(value, _Template):
        return value.render(seq)
    if isinstance(value, dict):
        return {k: _render(v, seq) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, seq) for v in value]
    return value


def _is_static(value: Any) -> bool:
    if isinstance(value, _Template):
        return value.static
    if isinstance(value, dict):
        return all(_is_static(v) for v in value.values())
    if isinstance(value, list):
        return all(_is_static(v) for v in value)
    return True


Check = Callable[[int, bytes], "str | None"]


class PreparedRequest:
    """One op ready to send: the wire bytes, or a template rendered per request."""

    __slots__ = ("_parts", "check", "head", "name", "needs_body", "static_bytes", "timeout")

    def __init__(self, spec: RequestSpec, workload: HttpWorkload, target: Target,
                 rng: random.Random, default_timeout: float,
                 forbidden: tuple[bytes, ...] = ()) -> None:
        self.name = spec.name
        self.head = spec.method == "HEAD"
        self.timeout = spec.timeout if spec.timeout is not None else default_timeout
        self.check, self.needs_body = compile_check(spec.expect, forbidden)
        headers = {**workload.headers, **spec.headers}
        parts = {
            "method": spec.method,
            "path": _templ(target.prefix + spec.path, rng),
            "query": _templ({k: str(v) for k, v in spec.query.items()}, rng),
            "headers": _templ(headers, rng),
            "json": _templ(spec.json_, rng) if spec.json_ is not None else None,
            "body": _templ(spec.body, rng) if spec.body is not None else None,
            "host": target.host_header,
        }
        self._parts = parts
        try:
            self.static_bytes: bytes | None = self._build(0) if _is_static(parts) else None
        except UnsafeValue as exc:
            raise PlanError(f"request {spec.name!r}: {exc}") from None

    def bytes_for(self, seq: int) -> bytes:
        """The request on the wire; ``seq`` feeds ``{{seq}}``."""
        static = self.static_bytes
        return static if static is not None else self._build(seq)

    def _build(self, seq: int) -> bytes:
        p = self._parts
        path = _render(p["path"], seq)
        query = _render(p["query"], seq)
        if query:
            path += ("&" if "?" in path else "?") + urlencode(query)
        headers: dict[str, str] = _render(p["headers"], seq)
        body = b""
        if p["json"] is not None:
            body = json.dumps(_render(p["json"], seq), separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")
        elif p["body"] is not None:
            body = _render(p["body"], seq).encode()
        lines = [("Host", p["host"])]
        lower = {k.lower() for k in headers}
        lines.extend(headers.items())
        if body or p["method"] in ("POST", "PUT", "PATCH"):
            lines.append(("Content-Length", str(len(body))))
        if "user-agent" not in lower:
            lines.append(("User-Agent", "enduro"))
        # The one serializer: no control character reaches the wire (UnsafeValue).
        return request_head(p["method"], path, lines) + body


def prepare_requests(workload: HttpWorkload, target: Target, rng: random.Random,
                     forbidden: tuple[bytes, ...] = ()) -> list[PreparedRequest]:
    """Compile every request of a workload."""
    return [PreparedRequest(spec, workload, target, rng, workload.timeout, forbidden)
            for spec in workload.requests]


def template_problems(value: Any, later: frozenset[str] = frozenset()
                      ) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems of the request templates in ``value`` (a string, or JSON-like data), compiled
    as the run compiles them; each with the key path inside ``value`` where it was found."""
    out: list[tuple[tuple[str | int, ...], str]] = []

    def walk(node: Any, at: tuple[str | int, ...]) -> None:
        if isinstance(node, str):
            try:
                _Template(node, random.Random(0), later)
            except PlanError as exc:
                out.extend((at, p.message) for p in exc.problems)
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*at, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*at, i))
    walk(value, ())
    return out


def flow_template_problems(text: str, names: frozenset[str] | set[str], *,
                           open_scope: bool = False) -> list[str]:
    """Problems of one flow or burst template: placeholders that are neither a variable in
    scope (``names``) nor a function, and bad function calls. ``open_scope``: a python step
    ran before and may have set any variable, so unknown names cannot be judged."""
    problems = [f"{bad} is not a placeholder; write {{{{name}}}} or a function such as "
                "{{randint(1,10)}}" for bad in malformed_placeholders(text, FLOW_PLACEHOLDER)]
    for m in FLOW_PLACEHOLDER.finditer(text):
        name, args = m.group(1), m.group(2)
        if name in names and args is None:
            continue
        if name in TEMPLATE_FUNCTIONS or name == "vu":
            problem = function_problem(name, args)
            if problem is not None:
                problems.append(f"{m.group(0)}: {problem}")
            continue
        if open_scope and args is None:
            continue
        known = sorted(names)
        hint = difflib.get_close_matches(name, known, n=1)
        problems.append(
            f"{m.group(0)}: no variable {name!r} in scope here"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; in scope: {', '.join(known) or 'none'}, and seq, vu, uuid, randint(a,b), "
            "choice(a|b)")
    return problems


_PATH_STEP = re.compile(r"\.[A-Za-z0-9_\-]+|\[(?:\d+|\*)\]")


def json_path_problem(path: str) -> str | None:
    """Why ``path`` is not a JSON path enduro reads (``$.a.b[0]``, ``$.items[*].id``,
    ``$.items.length``), or None."""
    if not path.startswith("$"):
        return f"JSON path {path!r} must start with '$', such as $.items[0].id"
    rest = path[1:]
    pos = 0
    while pos < len(rest):
        m = _PATH_STEP.match(rest, pos)
        if m is None:
            return (f"JSON path {path!r}: cannot read {rest[pos:]!r}; write .name, [0] or [*] "
                    "steps, such as $.items[0].id")
        pos = m.end()
    return None


def condition_problem(text: str) -> str | None:
    """Why a condition (``$.state == "done"``, ``status == 200``, ``$.n in [1, 2]``) cannot be
    evaluated as written, or None."""
    from enduro.plan.flows import CONDITION
    match = CONDITION.match(text)
    if match is None:
        return (f"condition {text!r}: expected PATH OP VALUE, such as '$.state == \"done\"' "
                "or 'status == 200'")
    path, op, raw = match.groups()
    if path != "status":
        problem = json_path_problem(path)
        if problem is not None:
            return f"condition {text!r}: {problem}"
    try:
        expected: Any = json.loads(raw)
    except ValueError:
        expected = raw.strip("'\"")
    if op == "in" and not isinstance(expected, list):
        return f"condition {text!r}: 'in' takes a list, such as in [\"done\", \"failed\"]"
    if path == "status":
        values = expected if isinstance(expected, list) else [expected]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return f"condition {text!r}: status compares with a number, such as status == 200"
    return None


def _json_path(doc: Any, path: str) -> Any:
    """A small JSONPath subset: ``$.a.b[0].c``, ``$.items.length``, ``$.items[*].id`` (a list).
    KeyError when absent."""
    if not path.startswith("$"):
        raise KeyError(path)
    return _walk_path(doc, re.findall(r"\.([A-Za-z0-9_\-]+)|\[(\d+|\*)\]", path[1:]))


def _walk_path(node: Any, parts: list[tuple[str, str]]) -> Any:
    for i, (name, index) in enumerate(parts):
        if index == "*":
            return [_walk_path(item, parts[i + 1:]) for item in node]
        if index:
            node = node[int(index)]
        elif name == "length" and isinstance(node, list | dict | str):
            node = len(node)
        else:
            node = node[name]
    return node


def compile_check(expect: Expect, forbidden: tuple[bytes, ...] = ()) -> tuple[Check, bool]:
    """A function giving the error class of a response (None when it passes), and whether it
    needs the body. A body holding a ``forbidden`` string (a canary) is class ``canary``."""
    status = expect.status
    if status is None:
        def status_ok(code: int) -> bool:
            return code < 400
    elif isinstance(status, int):
        def status_ok(code: int) -> bool:
            return code == status
    elif isinstance(status, list):
        allowed = frozenset(status)

        def status_ok(code: int) -> bool:
            return code in allowed
    else:
        hundred = int(status[0])

        def status_ok(code: int) -> bool:
            return code // 100 == hundred

    body_checks: list[Callable[[bytes], bool]] = []
    if expect.contains is not None:
        needle = expect.contains.encode()
        body_checks.append(lambda body: needle in body)
    if expect.regex is not None:
        pattern = re.compile(expect.regex.encode())
        body_checks.append(lambda body: pattern.search(body) is not None)
    if expect.that:
        from enduro.engine.flow import condition_holds
        conditions = list(expect.that)

        def that_ok(body: bytes) -> bool:
            try:
                doc = json.loads(body)
            except ValueError:
                return False
            return all(condition_holds(c, doc, 0) for c in conditions)
        body_checks.append(that_ok)
    if expect.json_:
        wanted = dict(expect.json_)

        def json_ok(body: bytes) -> bool:
            try:
                doc = json.loads(body)
                return all(_json_path(doc, k) == v for k, v in wanted.items())
            except (ValueError, KeyError, IndexError, TypeError):
                return False
        body_checks.append(json_ok)

    def check(code: int, body: bytes) -> str | None:
        if not 100 <= code <= 599:
            return "protocol"  # "HTTP/1.1 000", "999": not an answer HTTP defines
        for canary in forbidden:
            if canary in body:
                return "canary"
        if not status_ok(code):
            if code >= 500:
                return "5xx"
            if code >= 400:
                return "4xx"
            return "status"
        for ok in body_checks:
            if not ok(body):
                return "check_failed"
        return None

    return check, bool(body_checks or forbidden)
