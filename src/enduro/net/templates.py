"""The one template engine: ``{{name}}``, ``{{seq}}``, ``{{vu}}``, ``{{uuid}}``,
``{{randint(a,b)}}`` and ``{{choice(a|b)}}``, compiled once at plan load and rendered per
request by every workload kind (http requests, flow steps, bursts, final reads, conditions).

A template is compiled into literal parts and slots. A string that is exactly one placeholder
keeps its value's type when rendered as a value (a captured number stays a number in a JSON
body); inside a request target each substituted value is percent-encoded for where it stands
(``render_target``).
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from enduro.base.errors import PlanError
from enduro.net.wire import encode_path, encode_path_value, encode_query_value

__all__ = ["FUNCTIONS", "PLACEHOLDER", "MissingVariable", "Scope", "SeqScope", "Template",
           "compile_value", "function_problem", "is_static", "malformed_placeholders",
           "render_value"]

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w]*)(?:\(([^)]*)\))?\s*\}\}")
_ANY_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
# name -> (how it is called, whether it takes arguments)
FUNCTIONS = {"seq": ("seq", False), "vu": ("vu", False), "uuid": ("uuid", False),
             "randint": ("randint(a,b)", True), "choice": ("choice(a|b)", True)}
_MISSING = object()


class Scope(Protocol):
    """What a template reads when it is rendered."""

    seq: int
    vu: int
    rng: random.Random
    vars: dict[str, Any]


class SeqScope:
    """A scope with no variables (http requests): ``seq`` set before each rendering."""

    __slots__ = ("rng", "seq", "vars", "vu")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seq = 0
        self.vu = 0
        self.vars: dict[str, Any] = {}


class MissingVariable(LookupError):
    """A template named a variable that is not set (a python step did not set it)."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no variable {name!r} (set: {', '.join(known) or 'none'})")
        self.name = name


def function_problem(name: str, args: str | None) -> str | None:
    """Why ``{{name(args)}}`` cannot be filled in, or None."""
    usage, takes_args = FUNCTIONS.get(name, (name, False))
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


def malformed_placeholders(text: str, grammar: re.Pattern[str] = PLACEHOLDER) -> list[str]:
    """``{{...}}`` pieces of ``text`` that ``grammar`` does not read as a placeholder."""
    return [m.group(0) for m in _ANY_PLACEHOLDER.finditer(text)
            if not grammar.fullmatch(m.group(0))]


Slot = Callable[[Scope], Any]


def _function(name: str, args: str | None) -> Slot:
    if name == "seq":
        return lambda s: s.seq
    if name == "vu":
        return lambda s: s.vu
    if name == "uuid":
        # Unique across runs, not seeded: keys such as Idempotency-Key must not repeat when
        # the same plan runs again against a service that remembers them.
        return lambda _s: str(uuid.uuid4())
    assert args is not None
    if name == "randint":
        lo, hi = (int(a) for a in args.split(","))
        return lambda s: s.rng.randint(lo, hi)
    options = args.split("|")
    return lambda s: s.rng.choice(options)


def _variable(name: str, fallback: Slot | None) -> Slot:
    def slot(s: Scope) -> Any:
        value = s.vars.get(name, _MISSING)
        if value is not _MISSING:
            return value
        if fallback is not None:
            return fallback(s)
        raise MissingVariable(name, sorted(s.vars))
    return slot


class Template:
    """One string compiled. ``variables``: names other than the functions are variables read
    from the scope (flows, bursts); otherwise they are refused (http requests). ``functions``:
    the functions this kind offers. ``later`` names placeholders left as written (canaries,
    filled in before the run compiles the plan)."""

    __slots__ = ("_first", "parts", "slots", "static", "text", "whole")

    def __init__(self, text: str, *, variables: bool = True,
                 functions: frozenset[str] = frozenset(FUNCTIONS),
                 later: frozenset[str] = frozenset()) -> None:
        self.text = text
        known = ", ".join(FUNCTIONS[f][0] for f in FUNCTIONS if f in functions)
        bad = malformed_placeholders(text)
        if bad:
            raise PlanError(f"template {text!r}: {bad[0]} is not a placeholder (known: "
                            f"{'variables, ' if variables else ''}{known})")
        parts: list[str] = []
        slots: list[tuple[Slot, int]] = []  # (slot, where it starts in the template)
        pos = 0
        for m in PLACEHOLDER.finditer(text):
            name, args = m.group(1), m.group(2)
            if name in later and args is None:
                continue  # stays part of the literal text
            parts.append(text[pos:m.start()])
            if name in FUNCTIONS and (name in functions or args is not None):
                problem = function_problem(name, args)
                if problem is not None:
                    raise PlanError(f"template {text!r}: {problem}")
                fn = _function(name, args)
                # A variable of the same name shadows a function without arguments.
                slots.append((_variable(name, fn) if variables and args is None else fn,
                              m.start()))
            elif variables and args is None:
                slots.append((_variable(name, None), m.start()))
            else:
                hint = f"; write {{{{{name.lower()}}}}}" if name.lower() in functions else ""
                raise PlanError(f"template {text!r}: unknown placeholder {m.group(0)}: "
                                f"{m.group(0)} is not a placeholder here (known: {known}){hint}")
            pos = m.end()
        parts.append(text[pos:])
        self.parts = parts
        self.slots = slots
        self.static = not slots
        self.whole = len(slots) == 1 and parts[0].strip() == "" and parts[1].strip() == ""
        self._first = text.find("?")

    def render(self, scope: Scope) -> str:
        """The text with every placeholder filled in."""
        if self.static:
            return self.parts[0]
        out = [self.parts[0]]
        for (slot, _), after in zip(self.slots, self.parts[1:], strict=True):
            out.append(str(slot(scope)))
            out.append(after)
        return "".join(out)

    def value(self, scope: Scope) -> Any:
        """As ``render``, but a template that is one placeholder keeps the value's type."""
        if self.whole:
            return self.slots[0][0](scope)
        return self.render(scope)

    def render_target(self, scope: Scope) -> str:
        """A path template (``/items/{{id}}?after={{cursor}}``) rendered for the request
        line: every substituted value is percent-encoded, as one path segment before the
        ``?`` and as a query value after it, so a value from a response can neither add a
        path segment or a query parameter nor reach the wire with CR/LF. A placeholder that
        begins the template (``{{location}}``) stands for a whole path: its slashes and query
        are kept, and only what cannot stand in a request target is encoded."""
        if self.static:
            return self.parts[0]
        out = [self.parts[0]]
        query_at = self._first
        for (slot, at), after in zip(self.slots, self.parts[1:], strict=True):
            value = slot(scope)
            if at == 0:
                out.append(encode_path(value))
            elif 0 <= query_at < at:
                out.append(encode_query_value(value))
            else:
                out.append(encode_path_value(value))
            out.append(after)
        return "".join(out)


def compile_value(value: Any, **options: Any) -> Any:
    """JSON-like data with every string compiled into a ``Template`` (``options`` as
    ``Template`` takes them)."""
    if isinstance(value, str):
        return Template(value, **options)
    if isinstance(value, dict):
        return {k: compile_value(v, **options) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_value(v, **options) for v in value]
    return value


def render_value(value: Any, scope: Scope) -> Any:
    """Compiled data filled in; a string that is one placeholder keeps the value's type."""
    if isinstance(value, Template):
        return value.value(scope)
    if isinstance(value, dict):
        return {k: render_value(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, scope) for v in value]
    return value


def is_static(value: Any) -> bool:
    """Whether compiled data renders the same every time."""
    if isinstance(value, Template):
        return value.static
    if isinstance(value, dict):
        return all(is_static(v) for v in value.values())
    if isinstance(value, list):
        return all(is_static(v) for v in value)
    return True
