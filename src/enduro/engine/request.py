"""Requests compiled once from the plan into bytes (or a cheap template), and their checks."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from enduro.errors import PlanError
from enduro.plan.models import Expect, HttpWorkload, RequestSpec

__all__ = ["Check", "PreparedRequest", "Target", "compile_check", "prepare_requests",
           "split_base"]

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)(?:\(([^)]*)\))?\s*\}\}")


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


class _Template:
    """A string with ``{{seq}}``, ``{{uuid}}``, ``{{randint(1,100)}}``, ``{{choice(a|b)}}``."""

    def __init__(self, text: str, rng: random.Random) -> None:
        self.parts: list[str | Callable[[int], str]] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(text):
            self.parts.append(text[pos:m.start()])
            self.parts.append(self._function(m.group(1), m.group(2), rng, text))
            pos = m.end()
        self.parts.append(text[pos:])
        self.static = len(self.parts) == 1

    @staticmethod
    def _function(name: str, args: str | None, rng: random.Random,
                  text: str) -> Callable[[int], str]:
        if name == "seq":
            return str
        if name == "uuid":
            # Unique across runs, not seeded: keys such as Idempotency-Key must not repeat
            # when the same plan runs again against a service that remembers them.
            return lambda _n: str(uuid.uuid4())
        if name == "randint" and args:
            try:
                lo, hi = (int(a) for a in args.split(","))
            except ValueError:
                raise PlanError(f"template {text!r}: randint takes two integers, "
                                f"such as randint(1,100)") from None
            return lambda _n: str(rng.randint(lo, hi))
        if name == "choice" and args:
            options = args.split("|")
            return lambda _n: rng.choice(options)
        raise PlanError(f"template {text!r}: unknown placeholder {{{{{name}}}}} "
                        "(known: seq, uuid, randint(a,b), choice(a|b))")

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
        self.static_bytes: bytes | None = self._build(0) if _is_static(parts) else None

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
        lines = [f"{p['method']} {path} HTTP/1.1", f"Host: {p['host']}"]
        lower = {k.lower() for k in headers}
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        if body or p["method"] in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        if "user-agent" not in lower:
            lines.append("User-Agent: enduro")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def prepare_requests(workload: HttpWorkload, target: Target, rng: random.Random,
                     forbidden: tuple[bytes, ...] = ()) -> list[PreparedRequest]:
    """Compile every request of a workload."""
    return [PreparedRequest(spec, workload, target, rng, workload.timeout, forbidden)
            for spec in workload.requests]


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
