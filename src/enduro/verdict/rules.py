"""The rule language: ``p95(latency{op=list}) < 300ms``, ``availability >= 99.9%``,
``error_rate < 0.5% over 5m``, ``rate(requests) > 50/s``, ``errors{class=timeout} == 0``.

A rule compares one measured figure with a threshold, over the whole run or over a sliding
window (``over 5m``: every window of that length must pass).
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from enduro.base.errors import PlanProblem, RuleSyntaxError
from enduro.base.units import parse_duration
from enduro.observe.metrics import MetricView
from enduro.verdict.insufficient import NotEnoughData

__all__ = ["ERROR_CLASSES", "PHASES", "Rule", "RuleContext", "RuleResult", "check_labels",
           "format_value", "parse_rule"]

_RULE = re.compile(
    r"""^\s*
    (?:(?P<func>[a-z][a-z0-9_]*)\s*\(\s*)?
    (?P<metric>[a-z][a-z0-9_]*)
    \s*(?:\{(?P<labels>[^}]*)\})?
    (?(func)\s*\))
    \s*(?P<op><=|>=|==|!=|<|>)\s*
    (?P<value>[^\s]+(?:\s*/\s*[a-z]+)?)
    (?:\s+over\s+(?P<over>\S+))?
    \s*$""",
    re.VERBOSE,
)

_OPS: Mapping[str, Callable[[float, float], bool]] = MappingProxyType({
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
})

_PERCENTILES: Mapping[str, float] = MappingProxyType({
    "p50": 50.0, "p75": 75.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9,
    "median": 50.0,
})
_HIST_FUNCS = frozenset({*_PERCENTILES, "max", "min", "mean", "avg"})

# metric -> (kind of value, functions allowed, function required)
#   kind: "time" (seconds), "fraction", "count", "rate" (per second)
_METRICS: Mapping[str, tuple[str, frozenset[str], bool]] = MappingProxyType({
    "latency": ("time", _HIST_FUNCS, True),
    "service_time": ("time", _HIST_FUNCS, True),
    "availability": ("fraction", frozenset(), False),
    "error_rate": ("fraction", frozenset(), False),
    "requests": ("count", frozenset({"rate", "count"}), False),
    "errors": ("count", frozenset({"rate", "count"}), False),
    "late": ("count", frozenset({"rate", "count"}), False),
    "dropped": ("count", frozenset({"rate", "count"}), False),
    "rps": ("rate", frozenset(), False),
    # SSE workloads (ops <name>:connect and <name>:event).
    "sse_delivery": ("time", _HIST_FUNCS, True),
    "sse_ttfe": ("time", _HIST_FUNCS, True),
    "sse_gap": ("time", _HIST_FUNCS, True),
    "sse_events": ("count", frozenset({"rate", "count"}), False),
    "sse_duplicates": ("count", frozenset({"rate", "count"}), False),
    "sse_gaps": ("count", frozenset({"rate", "count"}), False),
    "sse_stalls": ("count", frozenset({"rate", "count"}), False),
    "sse_reconnect_success": ("fraction", frozenset(), False),
    # Resource samples and scraped series (judged at the end, from metrics.sqlite).
    "rss": ("mb", frozenset({"max", "min", "mean", "avg", "last"}), False),
    "uss": ("mb", frozenset({"max", "min", "mean", "avg", "last"}), False),
    "fds": ("count", frozenset({"max", "min", "mean", "avg", "last"}), False),
    "threads": ("count", frozenset({"max", "min", "mean", "avg", "last"}), False),
    "connections": ("count", frozenset({"max", "min", "mean", "avg", "last"}), False),
    "cpu": ("percent", frozenset({"max", "min", "mean", "avg", "last"}), False),
    "loop_lag": ("time", frozenset({"max", "mean", "avg", "last"}), False),
    "scrape": ("count", frozenset({"max", "min", "mean", "avg", "last"}), False),
    "rss_drift": ("fraction", frozenset(), False),
    # Per-fault figures from recovery analysis (seconds); judged at the end of the run.
    "recover_s": ("time", frozenset({"max", "min", "mean", "avg"}), True),
    "detect_s": ("time", frozenset({"max", "min", "mean", "avg"}), True),
})
_LABELS = frozenset({"op", "workload", "class", "phase", "kind", "service", "target",
                     "incarnations",
                     "metric", "min"})
SERIES_METRICS = frozenset({"rss", "uss", "fds", "threads", "connections", "cpu", "loop_lag",
                            "scrape", "rss_drift"})
_SAMPLE_FIELD = {"rss": "rss_mb", "uss": "uss_mb", "fds": "fds", "threads": "threads",
                 "connections": "connections", "cpu": "cpu_pct", "loop_lag": "loop_lag_ms"}
_TREND = re.compile(r"^\s*(?P<trend>leak|drift)\((?P<inner>.+)\)\s*(?P<op><=|>=|==|!=|<|>)\s*"
                    r"(?P<value>\S+)\s*$")
_INNER = re.compile(r"^\s*(?:(?P<func>[a-z0-9]+)\(\s*)?(?P<metric>[a-z_]+)\s*"
                    r"(?:\{(?P<labels>[^}]*)\})?\s*\)?\s*$")
FAULT_METRICS = frozenset({"recover_s", "detect_s"})

# Error classes the engines record. Flows add ``step:<step>``, bursts ``post:<check>``,
# python ops ``error:<ExceptionName>``.
ERROR_CLASSES = frozenset({
    "4xx", "5xx", "status", "check_failed", "canary", "timeout", "refused", "tls", "dns",
    "reset", "connect", "other", "dropped", "unfinished", "template", "until_timeout",
    "eventually_failed", "capture_failed", "stall", "protocol", "closed", "duplicate", "gap",
    "generator", "unsafe_value",
})
PHASES = ("baseline", "chaos", "recovery", "final")
_RESOURCE = frozenset({"rss", "uss", "fds", "threads", "connections", "cpu", "rss_drift"})
_OP_LABELS = frozenset({"op", "workload", "phase"})


def _labels_of(metric: str, trend: str | None) -> frozenset[str]:
    """The labels that select something for ``metric`` (others would be ignored)."""
    if trend is not None and metric in ("latency", "service_time"):
        return frozenset({"op"})
    if metric in _RESOURCE:
        return frozenset({"service", "target", "min", "incarnations"} if trend == "leak"
                         else {"service", "target"})
    if metric == "loop_lag":
        return frozenset({"target"})
    if metric == "scrape":
        return frozenset({"service", "metric", "min", "incarnations"} if trend == "leak"
                         else {"service", "metric"})
    if metric in FAULT_METRICS:
        return frozenset({"kind"})
    if metric in ("errors", "error_rate", "availability"):
        return _OP_LABELS | {"class"}
    return _OP_LABELS


@dataclass(frozen=True)
class RuleContext:
    """What a plan defines that rule labels may name: ops (mapped to their workloads),
    services (and which are sampled processes, which are scraped with which JSON figures),
    fault kinds, and the error classes its workloads can record besides ``ERROR_CLASSES``."""

    ops: Mapping[str, str]
    services: frozenset[str] = frozenset()
    processes: frozenset[str] = frozenset()
    scraped: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    fault_kinds: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()


def _hint(word: str, choices: list[str]) -> str:
    folded = [c for c in choices if c.lower() == word.lower()]
    close = folded or difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fail(text: str, message: str) -> RuleSyntaxError:
    return RuleSyntaxError([PlanProblem(f"rule {text!r}: {message}")])


def check_labels(text: str, metric: str, trend: str | None, labels: Mapping[str, str],
                 ctx: RuleContext) -> None:
    """Every label key applies to ``metric`` and every value names something of the plan."""
    allowed = _labels_of(metric, trend)
    for key in labels:
        if key not in allowed:
            raise _fail(text, f"label {key!r} does not apply to {metric} (it would be ignored); "
                        f"labels of {metric}: {', '.join(sorted(allowed)) or 'none'}")
    _check_labels(text, labels, ctx.ops)
    if "class" in labels:
        _check_class(text, labels["class"], ctx)
    if "phase" in labels and labels["phase"] not in PHASES:
        raise _fail(text, f"no phase {labels['phase']!r}{_hint(labels['phase'], list(PHASES))}"
                    f"; phases: {', '.join(PHASES)}")
    if "target" in labels and labels["target"] != "generator":
        raise _fail(text, f"target={labels['target']} : the only target is 'generator' (the "
                    "load generator's own process); name services with service=NAME")
    if "service" in labels:
        _check_service(text, metric, labels["service"], ctx)
    if metric in _RESOURCE and "service" not in labels and "target" not in labels:
        raise _fail(text, f"say whose: {metric}{{service=NAME}} or {metric}{{target=generator}}")
    if metric == "loop_lag" and "target" not in labels:
        raise _fail(text, "loop_lag is the generator's: write loop_lag{target=generator}")
    if metric == "scrape":
        _check_scrape(text, labels, ctx)
    if "kind" in labels and labels["kind"] not in ctx.fault_kinds:
        kinds = sorted(ctx.fault_kinds)
        raise _fail(text, f"the plan has no fault of kind {labels['kind']!r}"
                    f"{_hint(labels['kind'], kinds)}; kinds: {', '.join(kinds) or 'no faults'}")
    if "min" in labels:
        _check_min(text, metric, labels["min"])


def _check_class(text: str, cls: str, ctx: RuleContext) -> None:
    """An error class the plan or the engine produces, or ``error:<ExceptionName>``."""
    if cls not in ctx.classes and cls not in ERROR_CLASSES and \
            not (cls.startswith("error:") and len(cls) > 6):
        known = sorted(ERROR_CLASSES | ctx.classes)
        raise _fail(text, f"no error class {cls!r}{_hint(cls, known)}; classes: "
                    f"{', '.join(known)}, error:<ExceptionName>")


def _check_service(text: str, metric: str, name: str, ctx: RuleContext) -> None:
    """A service of the plan that has the metric: resource samples only from a process enduro
    starts, scraped series only from a service with a scrape section."""
    if name not in ctx.services:
        names = sorted(ctx.services)
        raise _fail(text, f"no service {name!r}{_hint(name, names)}; services: "
                    f"{', '.join(names) or 'none defined'}")
    if metric in _RESOURCE and name not in ctx.processes:
        raise _fail(text, f"service {name!r} is not a process enduro starts ('command'), "
                    f"so it has no {metric} samples")
    if metric == "scrape" and name not in ctx.scraped:
        raise _fail(text, f"service {name!r} has no 'scrape' section, so it has no "
                    "scraped series")


def _check_scrape(text: str, labels: Mapping[str, str], ctx: RuleContext) -> None:
    """A scrape rule names its service and one of the figures that service scrapes."""
    if "service" not in labels or "metric" not in labels:
        raise _fail(text, "say which series: scrape{service=NAME, metric=FIGURE}")
    figures = ctx.scraped.get(labels["service"])
    wanted = labels["metric"]
    if figures is not None and wanted not in figures and wanted != "scrape_up":
        names = sorted(figures)
        raise _fail(text, f"service {labels['service']!r} scrapes no figure {wanted!r}"
                    f"{_hint(wanted, names)}; figures: {', '.join(names)}, scrape_up")


def _check_min(text: str, metric: str, raw: str) -> None:
    """A trend rule's ``min=`` reads as Rule._series_value reads it."""
    from enduro.base.units import parse_size
    try:
        value = (parse_size(raw) / 1e6 if metric in ("rss", "uss") and not raw.isdigit()
                 else float(raw))
    except (ValueError, TypeError):
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise _fail(text, f"min={raw} is not "
                    + ("a size such as 10MB" if metric in ("rss", "uss") else "a number"))


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule: the figure observed and whether it passed. ``insufficient``:
    the run gave too little data for the rule's statistic (``reason`` says how much); such a
    rule is not passed."""

    rule: str
    observed: float | None
    observed_text: str
    passed: bool
    reason: str = ""
    insufficient: bool = False
    applicable: bool = True  # False: the plan cannot have what the rule is about
    # Load seconds when a failed rule first failed (live); None: passed, or no time known.
    first_failed_s: float | None = None

    def to_json(self) -> dict[str, object]:
        observed = self.observed
        if observed is not None and observed in (float("inf"), float("-inf")):
            observed = None  # JSON has no infinity; observed_text says "never"
        out: dict[str, object] = {"rule": self.rule, "observed": observed,
                                  "observed_text": self.observed_text, "passed": self.passed,
                                  "first_failed_s": self.first_failed_s}
        if self.reason:
            out["reason"] = self.reason
        if self.insufficient:
            out["insufficient"] = True
        if not self.applicable:
            out["applicable"] = False
        return out


@dataclass(frozen=True)
class Rule:
    """A parsed rule."""

    text: str
    metric: str
    func: str | None
    labels: Mapping[str, str]
    op: str
    threshold: float
    over_s: float | None = None
    abort_on_fail: bool = False
    grace_s: float = 0.0
    kind: str = field(default="count")
    trend: str | None = None

    def value(self, view: MetricView) -> float | None:
        """The figure this rule reads from ``view`` (seconds, fraction, count or per second);
        None when there is no data to judge."""
        metric, func = self.metric, self.func
        if self.trend is not None or metric in SERIES_METRICS:
            return self._series_value(view)
        if metric in FAULT_METRICS:
            return self._fault_value(view)
        if metric.startswith("sse_"):
            return self._sse(view)
        if self.kind == "time":
            return self._time_value(view)
        if metric in ("availability", "error_rate"):
            if view.requests == 0:
                return None
            errors = self._errors(view)
            rate = errors / view.requests
            return 1.0 - rate if metric == "availability" else rate
        if metric == "rps":
            return view.rps
        count = {"requests": view.requests, "errors": self._errors(view), "late": view.late,
                 "dropped": view.dropped}[metric]
        if func == "rate":
            return count / view.seconds if view.seconds > 0 else 0.0
        return float(count)

    def _fault_value(self, view: MetricView) -> float | None:
        """Detection or recovery seconds over the faults (of one kind with ``kind=``)."""
        values = view.fault_values.get(self.metric, {})
        kind_filter = self.labels.get("kind")
        picked = [v for k, vs in values.items() if kind_filter in (None, k) for v in vs]
        if not picked:
            return None
        if self.func == "max":
            return max(picked)
        if self.func == "min":
            return min(picked)
        return sum(picked) / len(picked)

    def _time_value(self, view: MetricView) -> float | None:
        """A latency or service-time statistic in seconds; infinite when it falls among
        operations that never held."""
        func = self.func
        hist = view.latency if self.metric == "latency" else view.service
        if hist.get_total_count() == 0:
            return None
        if _never_held(func, hist.get_total_count(), view):
            return float("inf")
        if func is not None and func in _PERCENTILES:
            micros = hist.get_value_at_percentile(_PERCENTILES[func])
        elif func == "max":
            micros = hist.get_max_value()
        elif func == "min":
            micros = hist.get_min_value()
        else:
            micros = hist.get_mean_value()
        return float(micros) / 1e6

    def series(self, view: MetricView) -> tuple[list[float], list[float]] | None:
        """The time series this rule reads from the run's store."""
        store = view.store
        if store is None:
            return None
        if self.metric == "scrape":
            service, name = self.labels.get("service"), self.labels.get("metric")
            if service is None or name is None:
                return None
            rows = store.scrape_series(service, name)
        elif self.metric in ("latency", "service_time"):
            column = {"p50": "p50_ms", "median": "p50_ms", "p95": "p95_ms",
                      "p99": "p99_ms"}.get(self.func or "p95", "p95_ms")
            rows = store.op_series(column, self.labels.get("op"))
        else:
            target = ("generator" if self.labels.get("target") == "generator"
                      else f"service:{self.labels.get('service')}")
            name = "rss" if self.metric == "rss_drift" else self.metric
            rows = store.series(target, _SAMPLE_FIELD[name])
        if not rows:
            return None
        return [r[0] for r in rows], [r[1] for r in rows]

    def _series_value(self, view: MetricView) -> float | None:
        if self.trend is not None or self.metric == "rss_drift":
            from enduro.verdict.series import trend_value
            return trend_value(self, view)
        data = self.series(view)
        if data is None:
            return None
        values = data[1]
        if self.metric == "loop_lag":
            values = [v / 1000.0 for v in values]
        func = self.func
        if func is None:  # every sample must pass: take the worst one
            func = "max" if self.op in ("<", "<=", "==") else "min"
        if func == "max":
            return max(values)
        if func == "min":
            return min(values)
        if func == "last":
            return values[-1]
        return sum(values) / len(values)

    def _sse(self, view: MetricView) -> float | None:
        """SSE figures; ``ops_for`` has already picked the :connect or :event ops."""
        metric, func = self.metric, self.func
        if metric in ("sse_delivery", "sse_ttfe", "sse_gap"):
            hist = view.service if metric == "sse_gap" else view.latency
            if hist.get_total_count() == 0:
                return None
            if func is not None and func in _PERCENTILES:
                return float(hist.get_value_at_percentile(_PERCENTILES[func])) / 1e6
            if func == "max":
                return float(hist.get_max_value()) / 1e6
            if func == "min":
                return float(hist.get_min_value()) / 1e6
            return float(hist.get_mean_value()) / 1e6
        if metric == "sse_reconnect_success":
            if view.requests == 0:
                return None
            failed = view.errors - view.classes.get("stall", 0)
            return 1.0 - failed / view.requests
        if metric != "sse_events" and view.requests == 0:
            # No event (or no connect) at all: "0 duplicates" would be a pass for what was
            # never seen.
            return None
        count = {"sse_events": view.requests, "sse_duplicates": view.classes.get("duplicate", 0),
                 "sse_gaps": view.classes.get("gap", 0),
                 "sse_stalls": view.classes.get("stall", 0)}[metric]
        if func == "rate":
            return count / view.seconds if view.seconds > 0 else 0.0
        return float(count)

    def _errors(self, view: MetricView) -> int:
        cls = self.labels.get("class")
        return view.classes.get(cls, 0) if cls is not None else view.errors

    def judge(self, view: MetricView) -> RuleResult:
        """Evaluate against ``view``. Too little data for the rule's statistic is neither a
        pass nor a guess: the result is marked ``insufficient`` (not passed) and says why."""
        try:
            observed = self.value(view)
        except NotEnoughData as exc:
            return RuleResult(self.text, None, "not enough data", False, str(exc),
                              insufficient=True)
        if observed is None:
            return RuleResult(self.text, None, "no data", False,
                              "nothing was measured for this rule")
        passed = _OPS[self.op](observed, self.threshold)
        return RuleResult(self.text, observed, format_value(observed, self.kind), passed)

    def worse(self, a: float, b: float) -> float:
        """Of two observations, the one further on the failing side."""
        return max(a, b) if self.op in ("<", "<=") else min(a, b)


# Classes of polls and eventual expectations that never held within their deadline: their
# elapsed time is recorded as latency, but the true figure is "never".
NEVER_HELD = frozenset({"until_timeout", "eventually_failed"})


def _never_held(func: str | None, total: int, view: MetricView) -> bool:
    """Whether a latency statistic falls among operations that never held (a publish that
    never became visible has no publish-to-visible time): then the rule reads "never", so
    ``max(latency{op=f.visible}) < 10s`` cannot pass by dropping the worst cases. Their
    elapsed times are the top ``never`` values of the histogram (``total`` counts them)."""
    never = sum(view.classes.get(c, 0) for c in NEVER_HELD)
    if not never:
        return False
    if func is not None and func in _PERCENTILES:
        rank = math.ceil(round(_PERCENTILES[func] / 100.0 * total, 9))
        return rank > total - never
    if func == "min":
        return never >= total
    return True  # max, mean


def format_value(value: float, kind: str) -> str:
    """A figure as a person reads it: ``312ms``, ``99.95%``, ``1,204/s``, ``17``."""
    if value == float("inf"):
        return "never"
    if kind == "bool":
        return "true" if value else "false"
    if kind == "mb":
        return f"{value:,.1f}MB"
    if kind == "percent":
        return f"{value:.1f}%"
    if kind == "time":
        return f"{value * 1000:.1f}ms" if value < 1 else f"{value:.2f}s"
    if kind == "fraction":
        return f"{value * 100:.3g}%" if 0 < value < 0.0001 else f"{value * 100:.2f}%"
    if kind == "rate":
        return f"{value:,.1f}/s"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


# Metrics that are shares of a whole: a threshold outside 0%-100% could never decide.
_SHARES = frozenset({"availability", "error_rate", "sse_reconnect_success"})


def _threshold(raw: str, kind: str, text: str, metric: str = "") -> float:
    """The threshold of a rule in the metric's unit; finite, and not one that no measurement
    could ever cross (a negative count or time, a share above 100%)."""
    value = _threshold_value(raw, kind, text)
    shown = raw.replace(" ", "")
    if not math.isfinite(value):
        raise _fail(text, f"threshold {shown!r} is not a finite number")
    if metric in _SHARES and not 0.0 <= value <= 1.0:
        raise _fail(text, f"threshold {shown!r}: {metric} is a share from 0% to 100%")
    if value < 0 and metric not in ("", "drift", "scrape"):
        raise _fail(text, f"threshold {shown!r}: {metric} is never below zero")
    return value


# A flat list of one short branch per unit under the one except that words the message for
# all of them: split, each unit's parsing would sit apart from its message.
def _threshold_value(raw: str, kind: str, text: str) -> float:  # noqa: C901
    raw = raw.replace(" ", "")
    try:
        if kind == "time":
            if re.fullmatch(r"\d+(\.\d+)?", raw):
                return float(raw) / 1000.0  # a bare number is milliseconds, as in k6
            return parse_duration(raw)
        if kind == "fraction":
            # Rounded so that 99.9% is exactly the fraction 0.999 sums produce.
            if raw.endswith("%"):
                return round(float(raw[:-1]) / 100.0, 12)
            return float(raw)
        if kind == "bool":
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return 1.0 if raw.lower() == "true" else 0.0
        if kind == "mb":
            from enduro.base.units import parse_size
            if re.fullmatch(r"\d+(\.\d+)?", raw):
                return float(raw)  # a bare number is megabytes
            return parse_size(raw) / 1e6
        if kind == "percent":
            return float(raw.rstrip("%"))
        if kind == "rate":
            if "/" in raw:
                count, per = raw.split("/", 1)
                return float(count) / parse_duration("1" + per if per[0].isalpha() else per)
            return float(raw)
        return float(raw)
    except (ValueError, IndexError, ZeroDivisionError, OverflowError):
        expected = {"time": "a duration such as 300ms", "fraction": "a percentage such as 99.9%",
                    "rate": "a rate such as 50/s", "count": "a number",
                    "bool": "true or false", "mb": "a size such as 512MB",
                    "percent": "a percentage such as 80%"}[kind]
        raise RuleSyntaxError([PlanProblem(
            f"rule {text!r}: threshold {raw!r} is not {expected}")]) from None


def parse_rule(text: str, *, ops: Mapping[str, str] | None = None, abort_on_fail: bool = False,
               grace_s: float = 0.0, context: RuleContext | None = None) -> Rule:
    """Parse one rule. ``ops`` maps known op names to workloads, to check label values;
    ``context`` (the plan's ops, services, faults) checks every label key and value."""
    if context is not None:
        ops = context.ops
    trend = _TREND.match(text)
    if trend is not None:
        return _parse_trend(text, trend, ops, abort_on_fail, grace_s, context)
    match = _RULE.match(text)
    if not match:
        raise RuleSyntaxError([PlanProblem(
            f"rule {text!r} does not parse: expected METRIC OP VALUE [over DURATION], such as "
            "'p95(latency{op=list}) < 300ms' or 'availability >= 99.9%'")])
    metric = match.group("metric")
    func = match.group("func")
    kind = _metric_kind(text, metric, func)
    labels = _labels(text, match.group("labels"))
    if context is not None:
        check_labels(text, metric, None, labels, context)
    elif ops is not None:
        _check_labels(text, labels, ops)
    over_s = _over(text, match.group("over")) if match.group("over") else None
    threshold = _threshold(match.group("value"), kind, text, metric)
    return Rule(text=text.strip(), metric=metric, func=func, labels=MappingProxyType(labels),
                op=match.group("op"), threshold=threshold, over_s=over_s,
                abort_on_fail=abort_on_fail, grace_s=grace_s, kind=kind)


def _metric_kind(text: str, metric: str, func: str | None) -> str:
    """The kind of figure (time, fraction, rate, count...) a known metric with an allowed
    statistic reads."""
    if metric not in _METRICS:
        hint = difflib.get_close_matches(metric, list(_METRICS), n=1)
        raise RuleSyntaxError([PlanProblem(
            f"rule {text!r}: unknown metric {metric!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; known: {', '.join(_METRICS)}")])
    kind, funcs, required = _METRICS[metric]
    if func is not None and func not in funcs:
        allowed = ", ".join(sorted(funcs)) or "none"
        raise RuleSyntaxError([PlanProblem(
            f"rule {text!r}: {func}() does not apply to {metric} (allowed: {allowed})")])
    if func is None and required:
        raise RuleSyntaxError([PlanProblem(
            f"rule {text!r}: {metric} needs a statistic, such as p95({metric}) or max({metric})")])
    return "rate" if func == "rate" else kind


def _over(text: str, raw: str) -> float:
    """The duration after ``over``: positive and finite."""
    try:
        over_s = parse_duration(raw)
    except ValueError as exc:
        raise RuleSyntaxError([PlanProblem(f"rule {text!r}: after 'over': {exc}")]) from None
    if not math.isfinite(over_s) or over_s <= 0:
        raise _fail(text, f"'over {raw}' must be a positive duration")
    return over_s


def _labels(text: str, raw: str | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (raw or "").split(","))):
        if "=" not in part:
            raise RuleSyntaxError([PlanProblem(
                f"rule {text!r}: label {part!r} should be name=value, such as op=list")])
        key, value = (x.strip().strip("\"'") for x in part.split("=", 1))
        if key not in _LABELS:
            raise RuleSyntaxError([PlanProblem(
                f"rule {text!r}: unknown label {key!r} (known: {', '.join(sorted(_LABELS))})")])
        if key in labels:
            raise _fail(text, f"label {key!r} is given twice; a rule selects one value of "
                        "each label (write one rule per value)")
        labels[key] = value
    return labels


def _parse_trend(text: str, match: re.Match[str], ops: Mapping[str, str] | None,
                 abort_on_fail: bool, grace_s: float, context: RuleContext | None) -> Rule:
    """``leak(rss{service=api}) == false`` and ``drift(p95(latency{op=list})) < 20%``."""
    trend = match.group("trend")
    inner = _INNER.match(match.group("inner"))
    if inner is None:
        raise RuleSyntaxError([PlanProblem(
            f"rule {text!r}: expected {trend}(SERIES), such as leak(rss{{service=api}}) or "
            "drift(p95(latency{op=list}))")])
    metric, func = inner.group("metric"), inner.group("func")
    labels = _labels(text, inner.group("labels"))
    if context is None and ops is not None:
        _check_labels(text, labels, ops)
    if trend == "leak":
        allowed = ("rss", "uss", "fds", "threads", "connections", "scrape")
        if metric not in allowed or func is not None:
            raise RuleSyntaxError([PlanProblem(
                f"rule {text!r}: leak() takes one of {', '.join(allowed)} with labels, such as "
                "leak(rss{service=api})")])
        if match.group("op") not in ("==", "!="):
            raise RuleSyntaxError([PlanProblem(f"rule {text!r}: compare leak() with == or !=")])
        kind = "bool"
    else:
        if metric not in ("latency", "service_time", "rss", "uss", "scrape", "fds"):
            raise RuleSyntaxError([PlanProblem(
                f"rule {text!r}: drift() takes p95(latency{{...}}) or a resource series")])
        kind = "fraction"
    if metric in ("rss", "uss", "fds", "threads", "connections") and \
            "service" not in labels and labels.get("target") != "generator":
        raise RuleSyntaxError([PlanProblem(
            f"rule {text!r}: say whose: {metric}{{service=NAME}} or {metric}{{target=generator}}")])
    if trend == "drift" and metric in ("latency", "service_time") and \
            (func or "p95") not in ("p50", "median", "p95", "p99"):
        raise _fail(text, f"drift() of latency reads p50, p95 or p99, not {func}()")
    if context is not None:
        check_labels(text, metric, trend, labels, context)
    elif "min" in labels:
        _check_min(text, metric, labels["min"])
    threshold = _threshold(match.group("value"), kind, text, "drift" if trend == "drift"
                           else metric)
    return Rule(text=text.strip(), metric=metric, func=func, labels=MappingProxyType(labels),
                op=match.group("op"), threshold=threshold, abort_on_fail=abort_on_fail,
                grace_s=grace_s, kind=kind, trend=trend)


def _check_labels(text: str, labels: Mapping[str, str], ops: Mapping[str, str]) -> None:
    if "op" in labels and labels["op"] not in ops:
        hint = difflib.get_close_matches(labels["op"], list(ops), n=1)
        raise RuleSyntaxError([PlanProblem(
            f"rule {text!r}: no op named {labels['op']!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + (f"; ops: {', '.join(ops)}" if ops else "; the plan has no ops (no workloads)"))])
    workloads = set(ops.values())
    if "workload" in labels and labels["workload"] not in workloads:
        raise RuleSyntaxError([PlanProblem(
            f"rule {text!r}: no workload named {labels['workload']!r}; workloads: "
            f"{', '.join(sorted(workloads))}")])


_SSE_CONNECT = frozenset({"sse_ttfe", "sse_reconnect_success", "sse_stalls"})


def ops_for(rule: Rule, ops: Mapping[str, str]) -> set[str] | None:
    """The op names a rule's labels select (None for all). SSE metrics read the SSE ops."""
    if "op" in rule.labels:
        selected = {rule.labels["op"]}
    elif "workload" in rule.labels:
        selected = {op for op, w in ops.items() if w == rule.labels["workload"]}
    elif rule.metric.startswith("sse_"):
        selected = set(ops)
    else:
        return None
    if rule.metric.startswith("sse_"):
        suffix = ":connect" if rule.metric in _SSE_CONNECT else ":event"
        selected = {op for op in selected if op.endswith(suffix)}
    return selected
