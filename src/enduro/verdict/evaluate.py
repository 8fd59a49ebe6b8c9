"""Rules evaluated live (sliding windows, abort_on_fail) and at the end of a run."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from enduro.base.errors import PlanError, PlanProblem, RuleSyntaxError
from enduro.base.units import parse_duration
from enduro.observe.metrics import Metrics, MetricView
from enduro.plan.models import Plan
from enduro.plan.source import Lines, dotted
from enduro.verdict.rules import (
    FAULT_METRICS,
    SERIES_METRICS,
    Rule,
    RuleContext,
    RuleResult,
    format_value,
    ops_for,
    parse_rule,
)

__all__ = ["Abort", "AbortCondition", "RuleBook", "RuleStatus", "Verdict", "compile_abort_if",
           "compile_rules", "rule_context", "rule_problems"]


_FOR = re.compile(r"^(?P<cond>.+?)\s+for\s+(?P<for>\S+)\s*$")


@dataclass(frozen=True)
class AbortCondition:
    """``abort_if: ["availability < 50% for 30s"]``: stop the run once the condition has held
    in every window for that long."""

    text: str
    condition: Rule
    for_s: float


def rule_context(plan: Plan, ops: Mapping[str, str]) -> RuleContext:
    """What the rules of ``plan`` may name in their labels."""
    classes: set[str] = set()
    for workload in plan.workloads.values():
        if workload.flow is not None:
            classes.update(f"step:{s}" for s in workload.flow.step_names())
        if workload.burst is not None:
            classes.update(f"post:{p.name}" for p in workload.burst.after)
    scraped: dict[str, frozenset[str] | None] = {}
    for name, service in plan.services.items():
        if service.scrape is not None:
            # Prometheus figures are known only once scraped; JSON figures are named here.
            json_ = service.scrape.json_
            # A table's numeric cells are the series <table>.<field> (one per row, summed).
            scraped[name] = None if service.scrape.prometheus is not None else frozenset(
                [*json_.paths, *(f"{t}.{f}" for t, spec in json_.tables.items()
                                 for f in spec.fields)] if json_ is not None else ())
    return RuleContext(
        ops=ops, services=frozenset(plan.services),
        processes=frozenset(n for n, s in plan.services.items() if s.kind == "process"),
        scraped=scraped, fault_kinds=frozenset(f.kind for f in plan.faults),
        classes=frozenset(classes))


def _problem(lines: Lines | None, path: tuple[str | int, ...], message: str) -> PlanProblem:
    if lines is None:
        return PlanProblem(message, path=dotted(path))
    if lines.line_of(path) == 0:  # the value came from --set
        return PlanProblem(message, "--set", None, dotted(path))
    return lines.problem(path, message)


def _abort_if(plan: Plan, context: RuleContext, lines: Lines | None,
              problems: list[PlanProblem]) -> list[AbortCondition]:
    out = []
    for i, text in enumerate(plan.abort_if):
        match = _FOR.match(text)
        try:
            if not match:
                raise RuleSyntaxError([PlanProblem(
                    f"abort_if {text!r}: expected CONDITION for DURATION, such as "
                    "'availability < 50% for 30s'")])
            cond = parse_rule(match.group("cond"), context=context)
            for_s = parse_duration(match.group("for"))
            if not math.isfinite(for_s) or for_s < 0:
                raise ValueError(f"'for {match.group('for')}' must be a finite duration")
            if cond.over_s is not None or cond.trend is not None or "phase" in cond.labels \
                    or cond.metric in SERIES_METRICS or cond.metric in FAULT_METRICS:
                raise ValueError("abort_if reads the last window of the load only: no 'over', "
                                 "phase, trend, resource or fault figures")
            out.append(AbortCondition(text, cond, for_s))
        except RuleSyntaxError as exc:
            problems.extend(_problem(lines, ("abort_if", i), p.message) for p in exc.problems)
        except ValueError as exc:
            problems.append(_problem(lines, ("abort_if", i), f"abort_if {text!r}: {exc}"))
    return out


def compile_abort_if(plan: Plan, ops: Mapping[str, str],
                     lines: Lines | None = None) -> list[AbortCondition]:
    """Parse every ``abort_if`` condition, collecting all problems into one ``PlanError``."""
    problems: list[PlanProblem] = []
    out = _abort_if(plan, rule_context(plan, ops), lines, problems)
    if problems:
        raise PlanError(problems)
    return out


def rule_problems(plan: Plan, ops: Mapping[str, str],
                  lines: Lines | None = None) -> list[PlanProblem]:
    """Every problem of the plan's rules and ``abort_if`` conditions, at file:line when
    ``lines`` is given."""
    problems: list[PlanProblem] = []
    context = rule_context(plan, ops)
    _abort_if(plan, context, lines, problems)
    _rules(plan, context, lines, problems)
    return problems


def _rules(plan: Plan, context: RuleContext, lines: Lines | None,
           problems: list[PlanProblem]) -> list[Rule]:
    rules: list[Rule] = []
    for i, spec in enumerate(plan.rule_specs()):
        path: tuple[str | int, ...] = ("rules", i) if isinstance(plan.rules[i], str) \
            else ("rules", i, "rule")
        try:
            rule = parse_rule(spec.rule, abort_on_fail=spec.abort_on_fail,
                              grace_s=spec.grace, context=context)
        except RuleSyntaxError as exc:
            problems.extend(_problem(lines, path, p.message) for p in exc.problems)
            continue
        if spec.abort_on_fail and ("phase" in rule.labels or rule.trend is not None
                                   or rule.metric in SERIES_METRICS
                                   or rule.metric in FAULT_METRICS):
            problems.append(_problem(lines, ("rules", i, "abort_on_fail"), (
                f"rule {spec.rule!r} is judged at the end of the run (phase, trend, resource "
                "or fault figures), so abort_on_fail would never stop the run")))
        rules.append(rule)
    return rules


def compile_rules(plan: Plan, ops: Mapping[str, str], lines: Lines | None = None) -> list[Rule]:
    """Parse every rule of the plan, collecting all problems (of ``abort_if`` too) into one
    ``PlanError``."""
    problems: list[PlanProblem] = []
    context = rule_context(plan, ops)
    _abort_if(plan, context, lines, problems)
    rules = _rules(plan, context, lines, problems)
    if problems:
        raise PlanError(problems)
    return rules


@dataclass(frozen=True)
class Abort:
    """A rule with ``abort_on_fail`` failed for longer than its grace (or, ``reason`` set,
    the user's code raised ``enduro.Fatal``)."""

    rule: str
    observed_text: str
    at_s: float
    reason: str | None = None  # the stop reason, when it is not a failed rule


@dataclass
class _Track:
    worst: float | None = None
    failed_since: float | None = None
    failed_at: float | None = None
    checks: int = 0
    next_at: float = 0.0


Status = Literal["pass", "fail", "pending"]


@dataclass(frozen=True)
class RuleStatus:
    """A rule's status on the windows sealed so far: ``pass``, ``fail``, or ``pending`` (no
    data yet, a sliding window not full yet, or a rule judged only at the end: ``reason``
    says which). ``at_s``: the load seconds judged; ``first_failed_s``: when a failed rule
    first failed (a sliding rule's first failed window, which may be before ``at_s``)."""

    rule: str
    status: Status
    observed: str
    at_s: float
    reason: str = ""
    first_failed_s: float | None = None


def _end_only(rule: Rule) -> bool:
    """Whether ``rule`` is judged at the end of the run only: over a phase, the faults'
    detection and recovery, resource or scraped series, or a trend."""
    return "phase" in rule.labels or rule.metric in FAULT_METRICS or \
        rule.metric in SERIES_METRICS or rule.trend is not None


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
                 abort_if: list[AbortCondition] | None = None, *,
                 has_faults: bool = True) -> None:
        self.rules = rules
        self.has_faults = has_faults
        self.ops = dict(ops)
        self.abort_if = abort_if or []
        self._tracks = {id(r): _Track() for r in rules}
        self._held_since: dict[int, float | None] = {id(a): None for a in self.abort_if}
        self.fault_values: dict[str, dict[str, list[float]]] = {}
        self.store: Any = None
        self.trend_details: dict[str, Any] = {}
        self._status: dict[int, Status] = {}  # per rule, the status last told
        self._first_failed: dict[int, float] = {}  # per whole-run rule, its first live failure

    def live(self, metrics: Metrics, elapsed_s: float) -> list[Abort]:
        """Evaluate sliding and abort rules on the windows sealed so far."""
        aborts = self._held_aborts(metrics, elapsed_s)
        for rule in self.rules:
            if self._due_live(rule, elapsed_s):
                abort = self._judge_live(rule, metrics, elapsed_s)
                if abort is not None:
                    aborts.append(abort)
        return aborts

    def _held_aborts(self, metrics: Metrics, elapsed_s: float) -> list[Abort]:
        """The ``abort_if`` conditions that have held, in the last window, for their ``for``."""
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
        return aborts

    def _due_live(self, rule: Rule, elapsed_s: float) -> bool:
        """Whether ``rule`` is judged live now: a sliding or abort-on-fail rule, once its
        window is full and its next check is due."""
        if rule.over_s is None and not rule.abort_on_fail:
            return False
        if _end_only(rule):
            return False
        if rule.over_s is not None and elapsed_s + 1e-9 < rule.over_s:
            return False  # a sliding window is judged once it is full
        return elapsed_s + 1e-9 >= self._tracks[id(rule)].next_at

    def _judge_live(self, rule: Rule, metrics: Metrics, elapsed_s: float) -> Abort | None:
        """Judge ``rule`` now: keep a sliding rule's worst value and first failure, and
        abort on a rule that has failed for its grace."""
        track = self._tracks[id(rule)]
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
                    return Abort(rule.text, result.observed_text, elapsed_s)
        return None

    def status_changes(self, metrics: Metrics, elapsed_s: float) -> list[RuleStatus]:
        """Judge every rule that can be judged mid-run on the windows sealed so far (a
        whole-run rule on the run so far, a sliding rule as ``live`` last judged it) and
        return those whose status changed since the last call; the first call returns every
        rule's initial status. A whole-run rule's first failure seen here is the
        ``first_failed_s`` of its final result."""
        views: dict[frozenset[str] | None, MetricView] = {}
        changed = []
        for rule in self.rules:
            now = self._status_now(rule, metrics, elapsed_s, views)
            if self._status.get(id(rule)) != now.status:
                self._status[id(rule)] = now.status
                changed.append(now)
        return changed

    def _status_now(self, rule: Rule, metrics: Metrics, elapsed_s: float,
                    views: dict[frozenset[str] | None, MetricView]) -> RuleStatus:
        why_not = self._not_applicable(rule)
        if why_not is not None:
            return RuleStatus(rule.text, "pending", "not applicable", elapsed_s, why_not)
        if _end_only(rule):
            return RuleStatus(rule.text, "pending", "-", elapsed_s,
                              "judged at the end of the run")
        if rule.over_s is not None:
            return self._sliding_status(rule, elapsed_s)
        ops = ops_for(rule, self.ops)
        key = frozenset(ops) if ops is not None else None
        view = views.get(key)
        if view is None:  # rules over the same ops share one view (and its merged latencies)
            view = views[key] = metrics.view(ops, elapsed_s=elapsed_s)
        result = rule.judge(view)
        if result.observed is None:  # no data yet, or too little for its statistic
            return RuleStatus(rule.text, "pending", result.observed_text, elapsed_s,
                              result.reason if result.insufficient else "no data yet")
        if result.passed:
            return RuleStatus(rule.text, "pass", result.observed_text, elapsed_s)
        first = self._first_failed.setdefault(id(rule), elapsed_s)
        return RuleStatus(rule.text, "fail", result.observed_text, elapsed_s,
                          first_failed_s=first)

    def _sliding_status(self, rule: Rule, elapsed_s: float) -> RuleStatus:
        """A sliding rule fails for good once one of its windows failed (as its verdict
        will); its observed figure is the worst window so far."""
        track = self._tracks[id(rule)]
        if track.worst is None:
            return RuleStatus(rule.text, "pending", "-", elapsed_s,
                              "judged once a full window of it has data")
        worst = format_value(track.worst, rule.kind) + " (worst)"
        if track.failed_at is not None:
            return RuleStatus(rule.text, "fail", worst, elapsed_s,
                              f"first failed at t={track.failed_at:.0f}s", track.failed_at)
        return RuleStatus(rule.text, "pass", worst, elapsed_s)

    def _not_applicable(self, rule: Rule) -> str | None:
        """Why ``rule`` cannot apply to this plan at all (so it is shown as not applicable,
        not failed for want of data), or None: a rule about faults, or scoped to the chaos
        or recovery phase, in a plan without faults."""
        if self.has_faults:
            return None
        if rule.labels.get("phase") in ("chaos", "recovery"):
            return f"the plan has no faults, so no {rule.labels['phase']} phase"
        if rule.metric in ("recover_s", "detect_s"):
            return f"the plan has no faults, so nothing to {rule.metric[:-2]} from"
        return None

    def final(self, metrics: Metrics, elapsed_s: float) -> Verdict:
        """The verdict of the whole run."""
        results = []
        for rule in self.rules:
            track = self._tracks[id(rule)]
            why_not = self._not_applicable(rule)
            if why_not is not None:
                results.append(RuleResult(rule.text, None, "not applicable", True, why_not,
                                          applicable=False))
                continue
            if rule.over_s is not None and track.checks:
                assert track.worst is not None
                failed_at = track.failed_at
                reason = "" if failed_at is None else f"first failed at t={failed_at:.0f}s"
                results.append(RuleResult(rule.text, track.worst,
                                          format_value(track.worst, rule.kind) + " (worst)",
                                          failed_at is None, reason, first_failed_s=None
                                          if failed_at is None else round(failed_at, 3)))
                continue
            # A whole-run rule, or a sliding rule on a run shorter than its window.
            view = metrics.view(ops_for(rule, self.ops), elapsed_s=elapsed_s,
                                phase=rule.labels.get("phase"))
            view.fault_values = self.fault_values
            view.store = self.store
            view.trend_details = self.trend_details
            result = rule.judge(view)
            if not result.passed and result.observed is not None:
                # When the live status first saw it fail; failed only now: the end.
                first = self._first_failed.get(id(rule), elapsed_s)
                result = replace(result, first_failed_s=round(first, 3))
            results.append(result)
        return Verdict(all(r.passed for r in results), results)
