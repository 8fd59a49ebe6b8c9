"""Rules evaluated live (sliding windows, abort_on_fail) and at the end of a run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from enduro.errors import PlanError, PlanProblem, RuleSyntaxError
from enduro.observe.metrics import Metrics
from enduro.plan.models import Plan
from enduro.verdict.rules import Rule, RuleResult, format_value, ops_for, parse_rule

__all__ = ["Abort", "RuleBook", "Verdict", "compile_rules"]


def compile_rules(plan: Plan, ops: Mapping[str, str]) -> list[Rule]:
    """Parse every rule of the plan, collecting all problems into one ``PlanError``."""
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

    def __init__(self, rules: list[Rule], ops: Mapping[str, str]) -> None:
        self.rules = rules
        self.ops = dict(ops)
        self._tracks = {id(r): _Track() for r in rules}

    def live(self, metrics: Metrics, elapsed_s: float) -> list[Abort]:
        """Evaluate sliding and abort rules on the windows sealed so far."""
        aborts = []
        for rule in self.rules:
            if rule.over_s is None and not rule.abort_on_fail:
                continue
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
            view = metrics.view(ops_for(rule, self.ops), elapsed_s=elapsed_s)
            results.append(rule.judge(view))
        return Verdict(all(r.passed for r in results), results)
