"""``results.json`` (versioned by ``schema``) and ``junit.xml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from enduro.base.files import write_json_atomic
from enduro.observe.metrics import REQUEST, Metrics
from enduro.verdict.evaluate import Verdict

__all__ = ["MODES", "SCHEMA", "SUPERVISE_REASON", "VERDICTS", "build_results", "write_junit",
           "write_results"]

# 2: ``verdict`` may be "incomplete" (a run that ended early: interrupted, crashed, or its
# runner died); ``complete`` and ``rules_passed`` added; ``error`` when the run crashed.
# ``mode`` added (a key, not a new verdict): "run", or "supervise" for services without load,
# whose verdict is always "incomplete" (nothing was judged) and ``rules_passed`` null.
SCHEMA = 2
VERDICTS = ("pass", "fail", "incomplete")
MODES = ("run", "supervise")
SUPERVISE_REASON = "supervise runs only the services: no load ran and no rule was judged"


def build_results(*, run_id: str, plan_name: str, verdict: Verdict, metrics: Metrics,
                  ops: dict[str, str], elapsed_s: float, seed: int, state: str,
                  started_wall: float, stop_reason: str | None, workers: int,
                  profile: str | None, extra: dict[str, Any] | None = None,
                  incomplete: bool = False, mode: str = "run") -> dict[str, Any]:
    """The results document of a run. ``incomplete``: the run ended early (interrupted,
    crashed, overran its deadline), so its verdict is ``incomplete`` whatever its rules said
    of the part that ran (kept as ``rules_passed``). ``mode="supervise"``: services only,
    nothing judged: the verdict is ``incomplete`` however it ended, ``rules_passed`` null
    (an empty rule list passes vacuously; no tool may read that as a pass)."""
    supervise = mode == "supervise"
    incomplete = incomplete or supervise
    per_op: dict[str, Any] = {}
    for op in ops:
        view = metrics.view({op}, elapsed_s=elapsed_s)
        summary = view.summary()
        summary["workload"] = ops[op]
        # What ``requests`` counts here: requests, or a figure of its own (a flow's
        # iterations, a burst's rounds or splits, SSE events), never part of ``total``.
        summary["kind"] = metrics.kinds.get(op, REQUEST)
        per_op[op] = summary
    # Requests only: what the servers saw (flow steps, not their iterations).
    total = metrics.view(elapsed_s=elapsed_s).summary()
    # Arrivals late or dropped are counted on whatever the workload starts (a flow: its
    # iterations), so they are summed over every op.
    total["late"] = sum(w.late for w in metrics.totals.values())
    total["dropped"] = sum(w.dropped for w in metrics.totals.values())
    return {
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
        "workers": workers,
        "total": total,
        "ops": per_op,
        "errors_by_class": total["errors_by_class"],
        "rules": [r.to_json() for r in verdict.results],
        "faults": [],
        "services": {},
        **(extra or {}),
    }


def write_results(path: Path, results: dict[str, Any]) -> None:
    write_json_atomic(path, results)


def write_junit(path: Path, results: dict[str, Any]) -> None:
    """One test case per rule, so CI systems show which rule failed; a run that did not
    complete adds a failed case saying why, so that CI never reads it as green."""
    rules = list(results.get("rules", []))
    if results.get("mode") == "supervise":
        # Never green: a CI step must not take services that merely ran for a passed test.
        why = results.get("error") or results.get("stop_reason") or "supervision ended"
        rules.append({"rule": "a load was run and judged", "passed": False,
                      "observed_text": "nothing judged",
                      "reason": f"{SUPERVISE_REASON} ({why})"})
    elif results.get("verdict") == "incomplete":
        why = results.get("error") or results.get("stop_reason") or "the run ended early"
        rules.append({"rule": "the run completed", "passed": False,
                      "observed_text": "incomplete", "reason": f"incomplete: {why}"})
    failures = sum(1 for r in rules if not r["passed"])
    suite = ET.Element("testsuite", name=f"enduro.{results['plan']}", tests=str(len(rules)),
                       failures=str(failures),
                       time=f"{float(results.get('duration_s') or 0.0):.3f}")
    for rule in rules:
        case = ET.SubElement(suite, "testcase", classname=f"enduro.{results['plan']}",
                             name=rule["rule"], time="0")
        if not rule["passed"]:
            failure = ET.SubElement(case, "failure", message=f"observed {rule['observed_text']}")
            failure.text = rule.get("reason") or f"observed {rule['observed_text']}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
