"""``${token:service}`` references, resolved once the service's token file is read."""

from __future__ import annotations

import re
import secrets
from typing import Any

from enduro.plan.flows import FlowWorkload
from enduro.plan.models import Plan

__all__ = ["TOKEN_REF", "token_refs", "with_canaries", "with_tokens", "with_tokens_flow"]

TOKEN_REF = re.compile(r"\$\{token:([A-Za-z0-9_.-]+)\}")


def _walk(node: Any, fn: Any) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, fn) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, fn) for v in node]
    if isinstance(node, str):
        return fn(node)
    return node


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
