"""``results.json`` (versioned by ``schema``: ``enduro.documents.results``) and ``junit.xml``.
Both are written from the ``Results`` model; a mapping handed in is read through it first."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from enduro.base.files import write_json_atomic
from enduro.base.units import format_duration
from enduro.documents.results import MODES, SCHEMA, VERDICTS, Results, RuleOutcome
from enduro.observe.metrics import REQUEST, Metrics
from enduro.verdict.evaluate import Verdict

__all__ = ["MODES", "SCHEMA", "SUPERVISE_REASON", "VERDICTS", "as_results", "build_results",
           "results_document", "rule_note", "write_junit", "write_results"]

SUPERVISE_REASON = "supervise runs only the services: no load ran and no rule was judged"


def results_document(*, run_id: str, plan_name: str, verdict: Verdict, metrics: Metrics,
                     ops: dict[str, str], elapsed_s: float, seed: int, state: str,
                     started_wall: float, stop_reason: str | None, worker_count: int,
                     profile: str | None, extra: Mapping[str, Any] | None = None,
                     incomplete: bool = False, mode: str = "run") -> Results:
    """The results document of a run. ``incomplete``: the run ended early (interrupted,
    crashed, overran its deadline), so its verdict is ``incomplete`` whatever its rules said
    of the part that ran (kept as ``rules_passed``). ``mode="supervise"``: services only,
    nothing judged: the verdict is ``incomplete`` however it ended, ``rules_passed`` null
    (an empty rule list passes vacuously; no tool may read that as a pass). ``extra``: the
    sections beyond the figures and rules, by their key in results.json (``services``,
    ``faults``, ``resources``...); each must be a field of ``Results``."""
    unknown = sorted(set(extra or {}) - {f.alias or name for name, f in
                                         Results.model_fields.items()})
    if unknown:
        raise TypeError(f"results.json has no section {', '.join(unknown)}: add it to "
                        "enduro.documents.results.Results first")
    supervise = mode == "supervise"
    incomplete = incomplete or supervise
    per_op: dict[str, Any] = {}
    for op in ops:
        view = metrics.view({op}, elapsed_s=elapsed_s)
        summary: dict[str, Any] = dict(view.summary())
        summary["workload"] = ops[op]
        # What ``requests`` counts here: requests, or a figure of its own (a flow's
        # iterations, a burst's rounds or splits, SSE events), never part of ``total``.
        summary["kind"] = metrics.kinds.get(op, REQUEST)
        per_op[op] = summary
    # Requests only: what the servers saw (flow steps, not their iterations).
    total: dict[str, Any] = dict(metrics.view(elapsed_s=elapsed_s).summary())
    # Arrivals late or dropped are counted on whatever the workload starts (a flow: its
    # iterations), so they are summed over every op.
    total["late"] = sum(w.late for w in metrics.totals.values())
    total["dropped"] = sum(w.dropped for w in metrics.totals.values())
    return Results.model_validate({
        "schema": SCHEMA,
        "run_id": run_id,
        "plan": plan_name,
        "profile": profile,
        "verdict": "incomplete" if incomplete else verdict.word,
        "complete": not incomplete,
        "rules_passed": None if supervise else verdict.passed,
        "mode": mode,
        "state": state,
        "stop_reason": stop_reason,
        "started_at": started_wall,
        "duration_s": round(elapsed_s, 3),
        "seed": seed,
        "worker_count": worker_count,
        "total": total,
        "ops": per_op,
        "errors_by_class": total["errors_by_class"],
        "rules": [r.to_json() for r in verdict.results],
        "faults": [],
        "services": {},
        **(extra or {}),
    })


def build_results(*, run_id: str, plan_name: str, verdict: Verdict, metrics: Metrics,
                  ops: dict[str, str], elapsed_s: float, seed: int, state: str,
                  started_wall: float, stop_reason: str | None, worker_count: int,
                  profile: str | None, extra: Mapping[str, Any] | None = None,
                  incomplete: bool = False, mode: str = "run") -> dict[str, Any]:
    """``results_document(...)`` as plain data, for callers that still add keys to it (they
    go through the model again when written)."""
    return results_document(
        run_id=run_id, plan_name=plan_name, verdict=verdict, metrics=metrics, ops=ops,
        elapsed_s=elapsed_s, seed=seed, state=state, started_wall=started_wall,
        stop_reason=stop_reason, worker_count=worker_count, profile=profile, extra=extra,
        incomplete=incomplete, mode=mode).to_json()


def as_results(results: Results | Mapping[str, Any]) -> Results:
    """The model of a results document handed in either way; ``DocumentError`` when a
    mapping is not one."""
    return results if isinstance(results, Results) else Results.from_json(dict(results),
                                                                           "results.json")


def write_results(path: Path, results: Results | Mapping[str, Any]) -> None:
    """Write results.json atomically, from the model (a mapping is read through it first,
    so that nothing reaches the file that readers could not read back)."""
    write_json_atomic(path, as_results(results).to_json())


def first_failed_text(rule: RuleOutcome) -> str:
    """``first failed at t=…`` (load time) for a failed rule that has ``first_failed_s``."""
    if rule.passed or rule.first_failed_s is None:
        return ""
    return f"first failed at t={format_duration(rule.first_failed_s)}"


def rule_note(rule: RuleOutcome) -> str:
    """What to say of a rule beyond its figure: when a failed rule first failed, then its
    reason (a sliding rule's reason, which says when too, is left out then)."""
    when = first_failed_text(rule)
    why = "" if when and rule.reason.startswith("first failed at") else rule.reason
    return "; ".join(part for part in (when, why) if part)


def write_junit(path: Path, results: Results | Mapping[str, Any]) -> None:
    """One test case per rule, so CI systems show which rule failed; a run that did not
    complete adds a failed case saying why, so that CI never reads it as green."""
    doc = as_results(results)
    rules = list(doc.rules)
    if doc.supervise:
        # Never green: a CI step must not take services that merely ran for a passed test.
        why = doc.error or doc.stop_reason or "supervision ended"
        rules.append(RuleOutcome(rule="a load was run and judged", observed=None,
                                 observed_text="nothing judged", passed=False,
                                 reason=f"{SUPERVISE_REASON} ({why})"))
    elif doc.verdict == "incomplete":
        why = doc.error or doc.stop_reason or "the run ended early"
        rules.append(RuleOutcome(rule="the run completed", observed=None,
                                 observed_text="incomplete", passed=False,
                                 reason=f"incomplete: {why}"))
    failures = sum(1 for r in rules if not r.passed)
    suite = ET.Element("testsuite", name=f"enduro.{doc.plan}", tests=str(len(rules)),
                       failures=str(failures), time=f"{doc.duration_s:.3f}")
    for rule in rules:
        case = ET.SubElement(suite, "testcase", classname=f"enduro.{doc.plan}",
                             name=rule.rule, time="0")
        if not rule.passed:
            when = first_failed_text(rule)
            failure = ET.SubElement(case, "failure", message=f"observed {rule.observed_text}"
                                    + (f", {when}" if when else ""))
            failure.text = rule_note(rule) or f"observed {rule.observed_text}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
