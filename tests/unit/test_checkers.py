"""Each checker on hand-made histories: one that must pass, one that must be caught."""

from __future__ import annotations

from typing import Any

from enduro.verdict.checkers import check_history, pair


class H:
    """Builds a history: h.op("c1", "write", "k", 1, "ok") appends invoke and completion."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def _add(self, process: str, type_: str, f: str, key: Any, value: Any) -> None:
        self.records.append({"index": len(self.records), "process": process, "type": type_,
                             "f": f, "key": key, "value": value,
                             "time": len(self.records) * 0.01})

    def op(self, process: str, f: str, key: Any, value: Any, outcome: str = "ok",
           result: Any = None) -> H:
        self._add(process, "invoke", f, key, value if f != "read" else None)
        self._add(process, outcome, f, key, result if f in ("read", "create") else value)
        return self


def run(h: H, name: str) -> list[Any]:
    return check_history(h.records, [name])[name]


def test_pairing_matches_invokes_with_their_completion() -> None:
    h = H()
    h._add("a", "invoke", "write", "k", 1)
    h._add("b", "invoke", "write", "k", 2)
    h._add("b", "ok", "write", "k", 2)
    h._add("a", "info", "write", "k", 1)
    pairs = pair(h.records)
    assert [(i["value"], d["type"] if d else None) for i, d in pairs] == [(1, "info"), (2, "ok")]


def test_lost_writes() -> None:
    good = H().op("a", "write", "k", 1).op("b", "write", "k", 2) \
        .op("r", "read", "k", None, result=[1, 2])
    assert run(good, "lost_writes") == []
    # An info write may be missing; a failed one too. An acknowledged one may not.
    bad = H().op("a", "write", "k", 1).op("b", "write", "k", 2, "info") \
        .op("c", "write", "k", 3, "fail").op("d", "write", "k", 4) \
        .op("r", "read", "k", None, result=[1])
    (v,) = run(bad, "lost_writes")
    assert v.key == "k" and "4" in v.message
    assert [op["type"] for op in v.ops] == ["invoke", "ok", "invoke", "ok"]
    assert v.ops[0]["value"] == 4


def test_garbage_reads() -> None:
    good = H().op("a", "write", "k", 1).op("b", "write", "k", 2, "info") \
        .op("r", "read", "k", None, result=[1, 2])
    assert run(good, "garbage_reads") == []
    bad = H().op("a", "write", "k", 1).op("r", "read", "k", None, result=[1, 99])
    (v,) = run(bad, "garbage_reads")
    assert "99" in v.message and len(v.ops) == 2


def test_duplicate_effect() -> None:
    good = H().op("a", "create", "key-1", None, result="d1") \
        .op("b", "create", "key-1", None, result="d1").op("c", "create", "key-2", None,
                                                          result="d2")
    assert run(good, "duplicate_effect") == []
    bad = H().op("a", "create", "key-1", None, result="d1") \
        .op("b", "create", "key-1", None, result="d7") \
        .op("c", "create", "key-1", None, result="d1")
    (v,) = run(bad, "duplicate_effect")
    assert v.key == "key-1" and "2 distinct" in v.message
    assert sorted(op["value"] for op in v.ops) == ["d1", "d7"]


def test_monotonic_reads() -> None:
    good = H().op("c", "read", "n", None, result=1).op("c", "read", "n", None, result=3) \
        .op("d", "read", "n", None, result=2)  # another client may be behind
    assert run(good, "monotonic_reads") == []
    bad = H().op("c", "read", "n", None, result=[1, 2]).op("c", "read", "n", None, result=[1])
    (v,) = run(bad, "monotonic_reads")
    assert v.ops[0]["value"] == [1, 2] and v.ops[1]["value"] == [1]


def test_read_your_writes() -> None:
    good = H().op("c", "write", "k", 5).op("c", "read", "k", None, result=[5]) \
        .op("d", "read", "k", None, result=[])  # another client need not see it yet
    assert run(good, "read_your_writes") == []
    bad = H().op("c", "write", "k", 5).op("c", "read", "k", None, result=[])
    (v,) = run(bad, "read_your_writes")
    assert v.ops[0]["type"] == "ok" and v.ops[0]["value"] == 5


def test_a_checker_counts_every_violation_though_it_keeps_twenty_examples(tmp_path: Any) -> None:
    # results.json and the rule table said "20 violation(s)" when a checker found 30.
    import json

    from enduro.verdict.assemble import assemble_verdict
    from enduro.verdict.correctness import run_checkers
    from enduro.verdict.evaluate import Verdict

    h = H()
    for i in range(30):
        h.op("w", "write", f"k{i}", 1).op("r", "read", f"k{i}", None, result=[])
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in h.records))
    findings = run_checkers(tmp_path / "history.jsonl", ["lost_writes"])
    assert len(findings.violations["lost_writes"]) == 20
    assert findings.counts == {"lost_writes": 30}
    assert findings.first["lost_writes"].message
    (rule,) = assemble_verdict(Verdict(True, []), checkers=findings).results
    assert rule.observed_text == "30 violation(s)" and not rule.passed
