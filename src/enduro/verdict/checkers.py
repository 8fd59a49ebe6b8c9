"""Checkers over operation histories, in the manner of Jepsen: each looks at every
invoke/ok/fail/info record and reports violations with the minimal operations that show them.

A history is a list of records (``history.jsonl``, one per line)::

    {"index": 7, "process": "c3", "type": "invoke"|"ok"|"fail"|"info",
     "f": "write"|"read"|"create", "key": "k1", "value": ..., "time": 1.25}

``ok`` means the effect happened, ``fail`` that it certainly did not, ``info`` that nobody
knows (a timeout): an info write may or may not have happened, so it is never counted lost and
may legitimately appear in reads. Reads carry the whole current value (a list for set-like
keys, a number for counters) in their ``ok`` record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["CHECKERS", "Violation", "check_history", "pair"]

Record = dict[str, Any]


@dataclass(frozen=True)
class Violation:
    """One anomaly and the operations that show it."""

    checker: str
    key: Any
    message: str
    ops: list[Record] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"checker": self.checker, "key": self.key, "message": self.message,
                "ops": self.ops}


def pair(history: Iterable[Record]) -> list[tuple[Record, Record | None]]:
    """Each invoke with its completion by the same process (None if it never completed)."""
    open_by_process: dict[Any, Record] = {}
    pairs: list[tuple[Record, Record | None]] = []
    index: dict[int, int] = {}
    for rec in history:
        if rec["type"] == "invoke":
            if rec["process"] in open_by_process:
                earlier = open_by_process[rec["process"]]
                pairs[index[id(earlier)]] = (earlier, None)
            open_by_process[rec["process"]] = rec
            index[id(rec)] = len(pairs)
            pairs.append((rec, None))
        else:
            inv = open_by_process.pop(rec["process"], None)
            if inv is not None:
                pairs[index[id(inv)]] = (inv, rec)
    return pairs


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple | set) else [value]


def lost_writes(history: list[Record]) -> list[Violation]:
    """An acknowledged write whose value is missing from the last read of its key."""
    pairs = pair(history)
    final: dict[Any, tuple[Record, Record]] = {}
    for inv, done in pairs:
        if inv["f"] == "read" and done is not None and done["type"] == "ok":
            final[inv["key"]] = (inv, done)  # later reads replace earlier ones
    out = []
    for inv, done in pairs:
        if inv["f"] != "write" or done is None or done["type"] != "ok":
            continue
        read = final.get(inv["key"])
        if read is None or _when(read[0]) < _when(done):
            continue  # the last read began before the write was acknowledged: no judgement
        if inv.get("value") not in _values(read[1].get("value")):
            out.append(Violation("lost_writes", inv["key"],
                                 f"write of {inv.get('value')!r} was acknowledged but the final "
                                 "read does not have it", [inv, done, read[0], read[1]]))
    return out


def garbage_reads(history: list[Record]) -> list[Violation]:
    """A read returning a value nobody ever tried to write."""
    attempted: dict[Any, set[Any]] = defaultdict(set)
    for rec in history:
        if rec["type"] == "invoke" and rec["f"] in ("write", "create"):
            attempted[rec["key"]].add(_hashable(rec.get("value")))
    out = []
    for inv, done in pair(history):
        if inv["f"] != "read" or done is None or done["type"] != "ok":
            continue
        for value in _values(done.get("value")):
            if _hashable(value) not in attempted[inv["key"]]:
                out.append(Violation("garbage_reads", inv["key"],
                                     f"read returned {value!r}, which was never written",
                                     [inv, done]))
                break
    return out


def duplicate_effect(history: list[Record]) -> list[Violation]:
    """One idempotency key (the op's ``key``) that produced more than one effect: ``create``
    operations acknowledged with different resulting values (ids)."""
    effects: dict[Any, dict[Any, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for inv, done in pair(history):
        if inv["f"] == "create" and done is not None and done["type"] == "ok":
            effects[inv["key"]][_hashable(done.get("value"))].extend([inv, done])
    out = []
    for key, by_value in effects.items():
        if len(by_value) > 1:
            ops = [ops[1] for ops in by_value.values()]  # one completion per distinct effect
            out.append(Violation("duplicate_effect", key,
                                 f"one key created {len(by_value)} distinct results: "
                                 f"{', '.join(repr(v) for v in by_value)}", ops))
    return out


def monotonic_reads(history: list[Record]) -> list[Violation]:
    """One client's reads of a key never go backwards (numbers, or the size of a set)."""
    last: dict[tuple[Any, Any], tuple[Any, Record]] = {}
    out = []
    for inv, done in pair(history):
        if inv["f"] != "read" or done is None or done["type"] != "ok":
            continue
        value = done.get("value")
        measure = len(value) if isinstance(value, list) else value
        k = (inv["process"], inv["key"])
        if k in last:
            before, rec = last[k]
            try:
                if measure < before:
                    out.append(Violation("monotonic_reads", inv["key"],
                                         f"client {inv['process']} read {value!r} after "
                                         f"{rec.get('value')!r}", [rec, done]))
            except TypeError:
                pass
        last[k] = (measure, done)
    return out


def read_your_writes(history: list[Record]) -> list[Violation]:
    """After a client's acknowledged write, that client's reads of the key include it."""
    written: dict[tuple[Any, Any], list[tuple[Any, Record]]] = defaultdict(list)
    out = []
    for inv, done in pair(history):
        if done is None or done["type"] != "ok":
            continue
        k = (inv["process"], inv["key"])
        if inv["f"] == "write":
            written[k].append((inv.get("value"), done))
        elif inv["f"] == "read":
            have = _values(done.get("value"))
            for value, wdone in written[k]:
                if value not in have:
                    out.append(Violation("read_your_writes", inv["key"],
                                         f"client {inv['process']} wrote {value!r} and then "
                                         "read without it", [wdone, inv, done]))
                    break
    return out


def _when(rec: Record) -> Any:
    """Records order by ``time`` (wall clock, comparable across processes), else ``index``."""
    return rec.get("time", rec.get("index"))


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


CHECKERS: Mapping[str, Callable[[list[Record]], list[Violation]]] = MappingProxyType({
    "lost_writes": lost_writes,
    "garbage_reads": garbage_reads,
    "duplicate_effect": duplicate_effect,
    "monotonic_reads": monotonic_reads,
    "read_your_writes": read_your_writes,
})


def check_history(history: list[Record], checkers: Iterable[str]) -> dict[str, list[Violation]]:
    """Run the named checkers; unknown names raise ``KeyError``."""
    return {name: CHECKERS[name](history) for name in checkers}
