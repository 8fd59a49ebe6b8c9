"""Requests compiled once from the plan into bytes (or a cheap template), and their checks."""

from __future__ import annotations

import difflib
import json
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from enduro.base.errors import PlanError
from enduro.net.conditions import ResponseCheck, condition_problem, json_path_problem
from enduro.net.target import Target
from enduro.net.templates import (
    FUNCTIONS,
    PLACEHOLDER,
    SeqScope,
    compile_value,
    function_problem,
    is_static,
    malformed_placeholders,
    render_value,
)
from enduro.net.wire import UnsafeValue, build_request
from enduro.plan.models import Expect, HttpWorkload, RequestSpec

__all__ = ["FLOW_PLACEHOLDER", "TEMPLATE_FUNCTIONS", "Check", "PreparedRequest",
           "compile_check", "condition_problem", "flow_template_problems", "function_problem",
           "json_path_problem", "malformed_placeholders", "prepare_requests",
           "template_problems"]


# The functions an http request's templates offer (it has no variables and no VUs).
HTTP_FUNCTIONS = frozenset({"seq", "uuid", "randint", "choice"})
# Kept under their former names: the one template grammar and its functions.
FLOW_PLACEHOLDER = PLACEHOLDER
TEMPLATE_FUNCTIONS = FUNCTIONS


def _templ(value: Any, later: frozenset[str] = frozenset()) -> Any:
    return compile_value(value, variables=False, functions=HTTP_FUNCTIONS, later=later)


Check = Callable[[int, bytes], "str | None"]


class PreparedRequest:
    """One op ready to send: the wire bytes, or a template rendered per request."""

    __slots__ = ("_parts", "_scope", "check", "head", "name", "needs_body", "static_bytes",
                 "timeout")

    def __init__(self, spec: RequestSpec, workload: HttpWorkload, target: Target,
                 rng: random.Random, default_timeout: float,
                 forbidden: tuple[bytes, ...] = ()) -> None:
        self.name = spec.name
        self.head = spec.method == "HEAD"
        self.timeout = spec.timeout if spec.timeout is not None else default_timeout
        self.check, self.needs_body = compile_check(spec.expect, forbidden)
        headers = {**workload.headers, **spec.headers}
        self._scope = SeqScope(rng)
        parts = {
            "method": spec.method,
            "path": _templ(target.prefix + spec.path),
            "query": _templ({k: str(v) for k, v in spec.query.items()}),
            "headers": _templ(headers),
            "json": _templ(spec.json_) if spec.json_ is not None else None,
            "body": _templ(spec.body) if spec.body is not None else None,
            "host": target.host_header,
        }
        self._parts = parts
        try:
            self.static_bytes: bytes | None = self._build(0) if is_static(parts) else None
        except UnsafeValue as exc:
            raise PlanError(f"request {spec.name!r}: {exc}") from None

    def bytes_for(self, seq: int) -> bytes:
        """The request on the wire; ``seq`` feeds ``{{seq}}``."""
        static = self.static_bytes
        return static if static is not None else self._build(seq)

    def _build(self, seq: int) -> bytes:
        p = self._parts
        scope = self._scope
        scope.seq = seq
        path = p["path"].render_target(scope)
        query = {k: v.render(scope) for k, v in p["query"].items()}
        if query:
            path += ("&" if "?" in path else "?") + urlencode(query)
        headers = {k: v.render(scope) for k, v in p["headers"].items()}
        body = b""
        if p["json"] is not None:
            body = json.dumps(render_value(p["json"], scope), separators=(",", ":")).encode()
        elif p["body"] is not None:
            body = p["body"].render(scope).encode()
        # The one serializer: plan headers replace enduro's defaults of the same name in any
        # case, and no control character reaches the wire (UnsafeValue).
        return build_request(p["method"], path, p["host"], headers.items(), body,
                             content_type="application/json" if p["json"] is not None
                             else None)


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
                _templ(node, later)
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


def compile_check(expect: Expect, forbidden: tuple[bytes, ...] = ()) -> tuple[Check, bool]:
    """A function giving the error class of a response (None when it passes), and whether it
    needs the body. A body holding a ``forbidden`` string (a canary) is class ``canary``."""
    check = ResponseCheck.of(expect, forbidden=forbidden)
    return check.function(), check.needs_body
