"""The verdict of a run, assembled from what judged it: the rules, the iterations of a loop
job, an abort, the canaries and the history checkers."""

from __future__ import annotations

from typing import Any

from enduro.verdict.correctness import CheckerFindings
from enduro.verdict.evaluate import Verdict
from enduro.verdict.rules import RuleResult

__all__ = ["assemble_verdict"]


def assemble_verdict(rules: Verdict, *, loop: list[dict[str, Any]] | None = None,
                     aborted: bool = False, canaries: bool = False,
                     canary_hits: list[dict[str, Any]] | None = None,
                     checkers: CheckerFindings | None = None,
                     workers_lost: list[dict[str, Any]] | None = None,
                     on_worker_loss: str = "fail") -> Verdict:
    """``rules`` (the plan's rules judged over the figures) with, each as a rule result of
    its own: ``loop`` (every iteration of ``enduro loop`` passes), ``canaries`` (the plan has
    canaries: they never appear, ``canary_hits`` says where they did) and each history
    checker, ``workers_lost`` (load workers that died mid-run: named; the verdict fails
    unless ``on_worker_loss`` is "continue"). An ``aborted`` run fails."""
    verdict = rules
    if loop is not None:
        failed = sum(1 for row in loop if not row.get("passed"))
        verdict = Verdict(verdict.passed and not failed, [*verdict.results, RuleResult(
            "every loop iteration passes", float(failed),
            f"{failed} of {len(loop)} failed", not failed)])
    if aborted:
        verdict = Verdict(False, verdict.results)
    if canaries:
        hits = canary_hits or []
        where = ", ".join(h["where"] for h in hits[:5])
        verdict = Verdict(verdict.passed and not hits, [*verdict.results, RuleResult(
            "canaries never appear", float(len(hits)),
            f"{len(hits)} place(s)" + (f": {where}" if where else ""), not hits)])
    if checkers is not None:
        verdict = _with_checkers(verdict, checkers)
    if workers_lost:
        verdict = _with_lost_workers(verdict, workers_lost, on_worker_loss)
    return verdict


def _with_lost_workers(verdict: Verdict, lost: list[dict[str, Any]], policy: str) -> Verdict:
    names = "; ".join(f"worker {w['index']} on {w.get('node') or '?'}: {w['lost']}"
                      for w in lost)
    passed = policy == "continue"
    return Verdict(verdict.passed and passed, [*verdict.results, RuleResult(
        "no load worker is lost", float(len(lost)), f"{len(lost)} lost ({names})", passed,
        "the load went on without them (on_worker_loss: continue)" if passed
        else "on_worker_loss: fail")])


def _with_checkers(verdict: Verdict, findings: CheckerFindings) -> Verdict:
    violations, counts = findings.violations, findings.counts
    if any(violations.values()):
        # The lists hold only the first examples; the counts hold them all.
        results = [RuleResult(f"checker {name}", float(counts.get(name, len(vs))),
                              f"{counts.get(name, len(vs))} violation(s)", not vs,
                              vs[0]["message"] if vs else "")
                   for name, vs in violations.items()]
        return Verdict(False, [*verdict.results, *results])
    if violations:
        return Verdict(verdict.passed, [*verdict.results, *(
            RuleResult(f"checker {name}", 0.0, "0 violations", True) for name in violations)])
    return verdict
