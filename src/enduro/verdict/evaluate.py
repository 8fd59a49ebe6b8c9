"""Rules evaluated live (sliding windows, abort_on_fail) and at the end of a run."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from enduro.errors import PlanError, PlanProblem, RuleSyntaxError
from enduro.observe.metrics import Metrics
from enduro.plan.models import Plan
from enduro.units import parse_duration
from enduro.verdict.rules import (
    FAULT_METRICS,
    SERIES_METRICS,
    Rule,
    RuleResult,
    format_value,
    ops_for,
    parse_rule,
)

__all__ = ["Abort", "AbortCondition", "RuleBook", "Verdict", "compile_abort_if", "compile_rules"]


_FOR = re.compile(r"^(?P<cond>.+?)\s+for\s+(?P<for>\S+)\s*$")


@dataclass(frozen=True)
class AbortCondition:
    """``abort_if: ["availability < 50% for 30s"]``: stop the run once the condition has held
    in every window for that long."""

    text: str
    condition: Rule
    for_s: float


def compile_abort_if(plan: Plan, ops: Mapping[str, str]) -> list[AbortCondition]:
    out = []
    problems: list[PlanProblem] = []
    for i, text in enumerate(plan.abort_if):
        match = _FOR.match(text)
        try:
            if not match:
                raise RuleSyntaxError([PlanProblem(
                    f"abort_if {text!r}: expected CONDITION for DURATION, such as "
                    "'availability < 50% for 30s'")])
            cond = parse_rule(match.group("cond"), ops=ops)
            out.append(AbortCondition(text, cond, parse_duration(match.group("for"))))
        except RuleSyntaxError as exc:
            problems.extend(PlanProblem(p.message, path=f"abort_if[{i}]") for p in exc.problems)
        except ValueError as exc:
            problems.append(PlanProblem(f"abort_if {text!r}: {exc}", path=f"abort_if[{i}]"))
    if problems:
        raise PlanError(problems)
    return out


def compile_rules(plan: Plan, ops: Mapping[str, str]) -> list[Rule]:
    """Parse every rule of the plan, collecting all problems into one ``PlanError``."""
    compile_abort_if(plan, ops)
    rules: list[Rule] = []
    problems: list[PlanProblem] = []
    for i, spec in enumerate(plan.rule_specs()):
        try:
            rules.append(parse_rule(spec.rule, ops=ops, abort_on_fail=spec.abort_on_fail,
                                    grace_s=spec.grace))
        except RuleSyntaxError as exc:
            problems.extend(PlanProblem(p.message, path=f"rules[{i}]") for p in exc.problems)
    if problems:
        raise PlanError(problems)
    return rules


@dataclass(frozen=True)
class Abort:
    """A rule with ``abort_on_fail`` failed for longer than its grace."""

    rule: str
    observed_text: str
    at_s: float


@dataclass
class _Track:
    worst: float | None = None
    failed_since: float | None = None
    failed_at: float | None = None
    checks: int = 0
    next_at: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """Pass or fail, with the rule results that decided it."""

    passed: bool
    results: list[RuleResult] = field(default_factory=list)

    @property
    def word(self) -> str:
        return "pass" if self.passed else "fail"


class RuleBook:
    """Holds a run's rules and what live evaluation has seen of them."""

    def __init__(self, rules: list[Rule], ops: Mapping[str, str],
                 abort_if: list[AbortCondition] | None = None) -> None:
        self.rules = rules
        self.ops = dict(ops)
        self.abort_if = abort_if or []
        self._tracks = {id(r): _Track() for r in rules}
        self._held_since: dict[int, float | None] = {id(a): None for a in self.abort_if}
        self.fault_values: dict[str, dict[str, list[float]]] = {}
        self.store: Any = None
        self.trend_details: dict[str, Any] = {}

    def live(self, metrics: Metrics, elapsed_s: float) -> list[Abort]:
        """Evaluate sliding and abort rules on the windows sealed so far."""
        aborts = []
        for cond in self.abort_if:
            view = metrics.view(ops_for(cond.condition, self.ops), last_s=metrics.window_s)
            result = cond.condition.judge(view)
            if result.observed is not None and result.passed:
                since = self._held_since[id(cond)]
                if since is None:
                    since = self._held_since[id(cond)] = elapsed_s - metrics.window_s
                if elapsed_s - since >= cond.for_s:
                    aborts.append(Abort(f"abort_if {cond.text}", result.observed_text,
                                        elapsed_s))
            else:
                self._held_since[id(cond)] = None
        for rule in self.rules:
            if rule.over_s is None and not rule.abort_on_fail:
                continue
            if "phase" in rule.labels or rule.metric in FAULT_METRICS or \
                    rule.metric in SERIES_METRICS or rule.trend is not None:
                continue  # judged at the end
            if rule.over_s is not None and elapsed_s + 1e-9 < rule.over_s:
                continue  # a sliding window is judged once it is full
            track = self._tracks[id(rule)]
            if elapsed_s + 1e-9 < track.next_at:
                continue
            if rule.over_s is not None:
                # Long windows are judged 60 times per window length, not every second: each
                # judgement merges every window it covers.
                track.next_at = elapsed_s + max(metrics.window_s, rule.over_s / 60)
            view = metrics.view(ops_for(rule, self.ops), last_s=rule.over_s,
                                elapsed_s=elapsed_s)
            result = rule.judge(view)
            if result.observed is not None and rule.over_s is not None:
                track.checks += 1
                track.worst = (result.observed if track.worst is None
                               else rule.worse(track.worst, result.observed))
                if not result.passed and track.failed_at is None:
                    track.failed_at = elapsed_s
            if rule.abort_on_fail and result.observed is not None:
                if result.passed:
                    track.failed_since = None
                else:
                    if track.failed_since is None:
                        track.failed_since = elapsed_s
                    if elapsed_s - track.failed_since >= rule.grace_s:
                        aborts.append(Abort(rule.text, result.observed_text, elapsed_s))
        return aborts

    def final(self, metrics: Metrics, elapsed_s: float) -> Verdict:
        """The verdict of the whole run."""
        results = []
        for rule in self.rules:
            track = self._tracks[id(rule)]
            if rule.over_s is not None and track.checks:
                assert track.worst is not None
                passed = track.failed_at is None
                reason = "" if passed else f"first failed at t={track.failed_at:.0f}s"
                results.append(RuleResult(rule.text, track.worst,
                                          format_value(track.worst, rule.kind) + " (worst)",
                                          passed, reason))
                continue
            # A whole-run rule, or a sliding rule on a run shorter than its window.
            view = metrics.view(ops_for(rule, self.ops), elapsed_s=elapsed_s,
                                phase=rule.labels.get("phase"))
            view.fault_values = self.fault_values
            view.store = self.store
            view.trend_details = self.trend_details
            results.append(rule.judge(view))
        return Verdict(all(r.passed for r in results), results)
