"""``${token:service}`` references, resolved once the service's token file is read."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from enduro.plan.flows import FlowWorkload
from enduro.plan.models import Plan

__all__ = ["TOKEN_REF", "Credentials", "Filled", "has_token_refs", "token_refs", "with_canaries",
           "with_tokens", "with_tokens_flow"]

T = TypeVar("T")

TOKEN_REF = re.compile(r"\$\{token:([A-Za-z0-9_.-]+)\}")


def _walk(node: Any, fn: Any) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, fn) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, fn) for v in node]
    if isinstance(node, tuple):
        return tuple(_walk(v, fn) for v in node)
    if isinstance(node, str):
        return fn(node)
    return node


def has_token_refs(value: Any) -> bool:
    """True when ``value`` (a string, a mapping, a list or a plan model) holds a
    ``${token:name}`` anywhere."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    found = False

    def look(text: str) -> str:
        nonlocal found
        found = found or TOKEN_REF.search(text) is not None
        return text

    _walk(value, look)
    return found


class Credentials:
    """The current token of each service and a version counted up at every change.

    One object per load process, shared by every driver (and the scraper): each reads it when
    it builds a request, through ``Filled``, so a token a restarted service wrote reaches
    HTTP requests, flow steps, SSE connects and reconnects, bursts, Python params and scrapes
    alike, instead of whichever parts were handed a re-copied plan."""

    __slots__ = ("tokens", "version")

    def __init__(self, tokens: Mapping[str, str] | None = None) -> None:
        self.tokens: dict[str, str] = dict(tokens or {})
        self.version = 0

    def update(self, tokens: Mapping[str, str]) -> bool:
        """Take ``tokens`` as the current ones; True (and a new version) when they changed."""
        new = dict(tokens)
        if new == self.tokens:
            return False
        self.tokens = new
        self.version += 1
        return True

    def _sub(self, text: str) -> str:
        if "${token:" not in text:
            return text
        # A token not read yet stays as written (the server will say 401, visibly).
        return TOKEN_REF.sub(lambda m: self.tokens.get(m.group(1), m.group(0)), text)

    def fill(self, value: T) -> T:
        """``value`` with every ``${token:name}`` replaced by the current token: strings,
        mappings and lists are walked; a plan model is rebuilt from its filled fields."""
        if isinstance(value, BaseModel):
            data = _walk(value.model_dump(mode="json", by_alias=True), self._sub)
            return type(value).model_validate(data)
        return _walk(value, self._sub)  # type: ignore[no-any-return]


class Filled(Generic[T]):
    """``source`` with its token references filled from ``credentials``, filled again only
    when the credentials' version changes (``get`` is an integer compare otherwise). Without
    credentials, or when ``source`` names no token, ``get`` returns ``source`` itself."""

    __slots__ = ("_refs", "_value", "_version", "credentials", "source")

    def __init__(self, source: T, credentials: Credentials | None) -> None:
        self.source = source
        self.credentials = credentials
        self._refs = credentials is not None and has_token_refs(source)
        self._version = -1
        self._value = source

    def get(self) -> T:
        creds = self.credentials
        if not self._refs or creds is None:
            return self.source
        if creds.version != self._version:
            self._value = creds.fill(self.source)
            self._version = creds.version
        return self._value


def token_refs(plan: Plan) -> set[str]:
    """Service names whose tokens the workloads use."""
    found: set[str] = set()

    def collect(text: str) -> str:
        found.update(TOKEN_REF.findall(text))
        return text

    _walk(plan.model_dump(mode="json", by_alias=True)["workloads"], collect)
    return found


def with_tokens(plan: Plan, tokens: dict[str, str]) -> Plan:
    """The plan with every ``${token:name}`` in its workloads replaced."""
    data = plan.model_dump(mode="json", by_alias=True)
    data["workloads"] = _walk(data["workloads"], lambda text: TOKEN_REF.sub(
        lambda m: tokens.get(m.group(1), m.group(0)), text))
    return Plan.model_validate(data)


def with_tokens_flow(flow: FlowWorkload, tokens: dict[str, str]) -> FlowWorkload:
    """A flow (the final phase's) with ``${token:name}`` replaced."""
    data = _walk(flow.model_dump(mode="json", by_alias=True), lambda text: TOKEN_REF.sub(
        lambda m: tokens.get(m.group(1), m.group(0)), text))
    return FlowWorkload.model_validate(data)


_CANARY_REF = re.compile(r"\{\{\s*canary(\d*)\s*\}\}")


def with_canaries(plan: Plan) -> Plan:
    """Generate the plan's canary secrets and put them in place of ``{{canary}}`` (the first)
    and ``{{canaryN}}`` (1-based) in workloads and the final phase."""
    wanted = plan.canaries.generate
    if not wanted:
        return plan
    generated = [f"enduro-canary-{secrets.token_hex(10)}" for _ in range(wanted)]

    def fill(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            n = int(m.group(1) or 1)
            return generated[n - 1] if 1 <= n <= len(generated) else m.group(0)
        return _CANARY_REF.sub(one, text)

    data = plan.model_dump(mode="json", by_alias=True)
    data["workloads"] = _walk(data["workloads"], fill)
    if data.get("final"):
        data["final"] = _walk(data["final"], fill)
    data["canaries"] = {"values": [*plan.canaries.values, *generated], "generate": 0}
    return Plan.model_validate(data)
