"""The one condition language, compiled once at plan load and read by every workload kind.

An expectation has the same keys wherever it stands (http requests, flow steps and their
``expect_eventually``, burst post-conditions, final reads): ``status`` (a code, a list, or
``2xx``), ``json`` (JSON path -> value), ``contains``, ``regex`` and ``that`` (conditions
``PATH OP VALUE`` such as ``$.state == "done"``, ``status == 200``, ``$.n in [1, 2]``).
A response body is parsed as JSON at most once, and only when a check reads it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from enduro.base.errors import PlanError
from enduro.net.templates import Scope, Template, compile_value, is_static, render_value
from enduro.plan.flows import CONDITION

__all__ = ["Answer", "Condition", "JsonPath", "ResponseCheck", "condition_problem",
           "json_path", "json_path_problem", "parse_json"]

_PATH_STEP = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+|\*)\]")
_NOT_JSON = object()


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


class JsonPath:
    """A small JSONPath subset, compiled: ``$.a.b[0].c``, ``$.items.length`` (the length of a
    list, string or object without a ``length`` key), ``$.items[*].id`` (a list)."""

    __slots__ = ("_steps", "text")

    def __init__(self, text: str) -> None:
        problem = json_path_problem(text)
        if problem is not None:
            raise PlanError(problem)
        self.text = text
        self._steps: tuple[tuple[str, str], ...] = tuple(
            (m.group(1) or "", m.group(2) or "") for m in _PATH_STEP.finditer(text[1:]))

    def get(self, doc: Any) -> Any:
        """The value at this path; KeyError, IndexError or TypeError when it is absent."""
        return _walk(doc, self._steps, 0)


def _walk(node: Any, steps: tuple[tuple[str, str], ...], start: int) -> Any:
    for i in range(start, len(steps)):
        name, index = steps[i]
        if index == "*":
            return [_walk(item, steps, i + 1) for item in node]
        if index:
            if not isinstance(node, list):
                raise TypeError(f"[{index}] of a {type(node).__name__}")
            node = node[int(index)]
        elif name == "length" and (isinstance(node, list | str) or
                                   (isinstance(node, dict) and "length" not in node)):
            node = len(node)
        elif isinstance(node, dict):
            node = node[name]
        else:
            raise TypeError(f".{name} of a {type(node).__name__}")
    return node


def parse_json(data: bytes | str) -> Any:
    """A response body as JSON. ValueError when it is not JSON, including a document nested
    too deeply for the parser (a hostile ``[[[[...``), which must fail its request, not the
    driver."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("the JSON document is nested too deeply") from None


def json_path(doc: Any, path: str) -> Any:
    """The value at ``path`` in ``doc`` (compiling the path; keep a ``JsonPath`` where it is
    read often). KeyError, IndexError or TypeError when absent; PlanError on a bad path."""
    return JsonPath(path).get(doc)


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.strip("'\"")


def condition_problem(text: str) -> str | None:
    """Why a condition cannot be evaluated as written, or None."""
    match = CONDITION.match(text)
    if match is None:
        return (f"condition {text!r}: expected PATH OP VALUE, such as '$.state == \"done\"' "
                "or 'status == 200'")
    path, op, raw = match.groups()
    if path != "status":
        problem = json_path_problem(path)
        if problem is not None:
            return f"condition {text!r}: {problem}"
    if "{{" in raw:
        return None  # filled in per response; the template is checked on its own
    expected = _literal(raw)
    if op == "in" and not isinstance(expected, list):
        return f"condition {text!r}: 'in' takes a list, such as in [\"done\", \"failed\"]"
    if path == "status":
        values = expected if isinstance(expected, list) else [expected]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return f"condition {text!r}: status compares with a number, such as status == 200"
    return None


def _compare(op: str, actual: Any, expected: Any) -> bool:
    try:
        if op == "==":
            return bool(actual == expected)
        if op == "!=":
            return bool(actual != expected)
        if op == "in":
            return isinstance(expected, list) and actual in expected
        if op == "<":
            return bool(actual < expected)
        if op == "<=":
            return bool(actual <= expected)
        if op == ">":
            return bool(actual > expected)
        return bool(actual >= expected)
    except TypeError:
        return False


class Answer:
    """One response as checks read it: its JSON body parsed at most once, when first read."""

    __slots__ = ("_doc", "_parsed", "body", "status")

    def __init__(self, status: int, body: bytes, doc: Any = _NOT_JSON) -> None:
        self.status = status
        self.body = body
        self._doc: Any = doc if doc is not _NOT_JSON else None
        self._parsed = doc is not _NOT_JSON

    def doc(self) -> Any:
        """The body as JSON; ValueError when it is not JSON (parsed once either way)."""
        if not self._parsed:
            self._parsed = True
            try:
                self._doc = parse_json(self.body)
            except ValueError:
                self._doc = _NOT_JSON
        if self._doc is _NOT_JSON:
            raise ValueError("the body is not JSON")
        return self._doc


class Condition:
    """``PATH OP VALUE`` compiled once. The value may hold placeholders (``$.id ==
    {{id}}``), filled in when the condition is read."""

    __slots__ = ("_expected", "_path", "_template", "op", "text")

    def __init__(self, text: str, *, templated: bool = False) -> None:
        problem = condition_problem(text)
        if problem is not None:
            raise PlanError(problem)
        match = CONDITION.match(text)
        assert match is not None
        path, self.op, raw = match.groups()
        self.text = text
        self._path = None if path == "status" else JsonPath(path)
        self._template: Template | None = None
        self._expected: Any = None
        if templated and "{{" in raw:
            self._template = Template(raw)
        else:
            self._expected = _literal(raw)

    @property
    def reads_body(self) -> bool:
        """Whether the condition reads the body (anything but ``status``)."""
        return self._path is not None

    def holds(self, answer: Answer, scope: Scope | None = None) -> bool:
        """Whether the condition holds for ``answer`` (a body that is not JSON fails it)."""
        if self._path is None:
            actual: Any = answer.status
        else:
            try:
                actual = self._path.get(answer.doc())
            except (ValueError, KeyError, IndexError, TypeError):
                return False
        expected = self._expected
        if self._template is not None:
            assert scope is not None, "a templated condition needs a scope"
            expected = _literal(self._template.render(scope))
        return _compare(self.op, actual, expected)


def _status_test(status: Any) -> Callable[[int], bool]:
    if status is None:
        return lambda code: code < 400
    if isinstance(status, int):
        return lambda code: code == status
    if isinstance(status, list):
        allowed = frozenset(status)
        return lambda code: code in allowed
    hundred = int(str(status)[0])
    return lambda code: code // 100 == hundred


class ResponseCheck:
    """An expectation compiled: called with a status and body (and, when ``templated``, the
    scope its placeholders read), it gives the error class of the response, or None when it
    passes. A body holding a ``forbidden`` string (a canary) is class ``canary``; a status
    outside 100-599 is ``protocol``; an unexpected status is ``5xx``, ``4xx`` or ``status``;
    a failed body check is ``check_failed``."""

    __slots__ = ("_contains", "_json", "_regex", "_simple", "_status_ok", "_templated",
                 "_that", "forbidden", "needs_body")

    def __init__(self, *, status: Any = None, json_: dict[str, Any] | None = None,
                 contains: str | None = None, regex: str | None = None,
                 that: list[str] | tuple[str, ...] = (), forbidden: tuple[bytes, ...] = (),
                 templated: bool = False) -> None:
        self._status_ok = _status_test(status)
        self.forbidden = forbidden
        self._templated = templated
        self._contains: Template | bytes | None = None
        if contains is not None:
            tpl = Template(contains) if templated else None
            self._contains = tpl if tpl is not None and not tpl.static else contains.encode()
        try:
            self._regex = re.compile(regex.encode()) if regex is not None else None
        except re.error as exc:
            raise PlanError(f"regex does not compile: {exc}") from exc
        self._json: list[tuple[JsonPath, Any, bool]] = []
        for key, value in (json_ or {}).items():
            compiled = compile_value(value) if templated else value
            static = is_static(compiled)
            self._json.append((JsonPath(key), value if static else compiled, static))
        self._that = [Condition(c, templated=templated) for c in that]
        reads = self._contains is not None or self._regex is not None or bool(self._json)
        # Whether the engine must keep the body (a condition on the status alone does not).
        self.needs_body = bool(reads or forbidden or any(c.reads_body for c in self._that))
        self._simple = not (reads or forbidden or self._that)

    @classmethod
    def of(cls, expect: Any, *, forbidden: tuple[bytes, ...] = (),
           templated: bool = False) -> ResponseCheck:
        """From a plan expectation (``Expect``, ``StepExpect``, ``Eventually``) or None."""
        if expect is None:
            return cls(forbidden=forbidden, templated=templated)
        return cls(status=expect.status, json_=expect.json_, contains=expect.contains,
                   regex=getattr(expect, "regex", None), that=getattr(expect, "that", ()),
                   forbidden=forbidden, templated=templated)

    def function(self) -> Callable[[int, bytes], str | None]:
        """The check as a plain function of (status, body): for a check of the status alone,
        a closure with nothing else to look at (the http engine's hot path)."""
        if not self._simple:
            return self.__call__
        status_ok = self._status_ok

        def check(code: int, _body: bytes) -> str | None:
            if not 100 <= code <= 599:
                return "protocol"
            if status_ok(code):
                return None
            return "5xx" if code >= 500 else "4xx" if code >= 400 else "status"
        return check

    def __call__(self, status: int, body: bytes, scope: Scope | None = None) -> str | None:
        if self._simple:  # the common case on the hot path: the status alone
            if not 100 <= status <= 599:
                return "protocol"
            if self._status_ok(status):
                return None
            return "5xx" if status >= 500 else "4xx" if status >= 400 else "status"
        return self.answer(Answer(status, body), scope)

    def answer(self, answer: Answer, scope: Scope | None = None) -> str | None:
        """As calling the check, with the response already wrapped (its JSON parsed once
        for every reader)."""
        code = answer.status
        if not 100 <= code <= 599:
            return "protocol"  # "HTTP/1.1 000", "999": not an answer HTTP defines
        body = answer.body
        for canary in self.forbidden:
            if canary in body:
                return "canary"
        if not self._status_ok(code):
            return "5xx" if code >= 500 else "4xx" if code >= 400 else "status"
        return None if self._body_holds(answer, scope) else "check_failed"

    def _body_holds(self, answer: Answer, scope: Scope | None) -> bool:
        """contains, regex, json and that, in this order, the first that fails ending it."""
        contains = self._contains
        if contains is not None:
            if isinstance(contains, Template):
                assert scope is not None
                contains = contains.render(scope).encode()
            if contains not in answer.body:
                return False
        if self._regex is not None and self._regex.search(answer.body) is None:
            return False
        if self._json and not self._json_holds(answer, scope):
            return False
        return all(condition.holds(answer, scope) for condition in self._that)

    def _json_holds(self, answer: Answer, scope: Scope | None) -> bool:
        """Every JSON path has its wanted value; a body that is not JSON, or lacks a path,
        does not hold."""
        try:
            doc = answer.doc()
            for path, wanted, static in self._json:
                if not static:
                    assert scope is not None
                    wanted = render_value(wanted, scope)
                if path.get(doc) != wanted:
                    return False
        except (ValueError, KeyError, IndexError, TypeError):
            return False
        return True
