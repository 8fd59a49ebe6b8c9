"""Per-window recording on the hot path, and the frozen window summaries it hands out."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from enduro.observe.hist import decode, encode, fold, new_histogram

__all__ = ["GENERATOR", "UNFINISHED", "UNSAFE_VALUE", "OpCounter", "Recorder", "WindowStats"]

# Error classes the engine records beside the transport and response classes.
UNFINISHED = "unfinished"  # still unanswered when the run ended (after the grace)
GENERATOR = "generator"  # the load generator's own limit (open files, ports, buffers)
UNSAFE_VALUE = "unsafe_value"  # not sent: a value would have put CR/LF/controls on the wire


class OpCounter:
    """What one op did in the current window. Mutated on the hot path: plain slots only."""

    __slots__ = ("classes", "dropped", "errors", "lat", "late", "requests", "svc")

    def __init__(self) -> None:
        self.lat: array[int] = array("q")  # µs from the intended send time
        self.svc: array[int] = array("q")  # µs from the actual send time
        self.requests = 0
        self.errors = 0
        self.late = 0
        self.dropped = 0
        self.classes: dict[str, int] = {}

    def reset(self) -> None:
        self.lat = array("q")
        self.svc = array("q")
        self.requests = self.errors = self.late = self.dropped = 0
        self.classes = {}

    def error(self, cls: str) -> None:
        self.errors += 1
        self.classes[cls] = self.classes.get(cls, 0) + 1

    def unfinished(self, intended: float, sent: float | None, now: float) -> None:
        """Count an operation still unanswered at the end of the run: an error of class
        ``unfinished`` whose latency is the time it waited so far (from ``intended``), and
        whose service time counts from ``sent`` (None: it never left the queue)."""
        self.requests += 1
        self.lat.append(max(0, int((now - intended) * 1_000_000)))
        if sent is not None:
            self.svc.append(max(0, int((now - sent) * 1_000_000)))
        self.error(UNFINISHED)


@dataclass
class WindowStats:
    """One op over one window: counts and latency histograms. Mergeable across workers."""

    op: str
    index: int
    requests: int = 0
    errors: int = 0
    late: int = 0
    dropped: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    latency: HdrHistogram = field(default_factory=new_histogram)
    service: HdrHistogram = field(default_factory=new_histogram)

    def merge(self, other: WindowStats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.late += other.late
        self.dropped += other.dropped
        for cls, n in other.classes.items():
            self.classes[cls] = self.classes.get(cls, 0) + n
        if other.latency.get_total_count():
            self.latency.add(other.latency)
        if other.service.get_total_count():
            self.service.add(other.service)

    def to_wire(self) -> dict[str, Any]:
        return {
            "op": self.op, "index": self.index, "requests": self.requests,
            "errors": self.errors, "late": self.late, "dropped": self.dropped,
            "classes": self.classes, "latency": encode(self.latency),
            "service": encode(self.service),
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> WindowStats:
        return cls(
            op=data["op"], index=data["index"], requests=data["requests"],
            errors=data["errors"], late=data["late"], dropped=data["dropped"],
            classes=dict(data["classes"]), latency=decode(data["latency"]),
            service=decode(data["service"]),
        )


class Recorder:
    """Counters for the current window of every op; ``rotate`` seals them into ``WindowStats``.

    The engine holds each op's ``OpCounter`` for the whole run (rotation resets it in place) and
    appends to it; nothing on that path allocates beyond the array growth.
    """

    def __init__(self, ops: list[str]) -> None:
        self.ops = list(ops)
        self.current: dict[str, OpCounter] = {op: OpCounter() for op in self.ops}
        self.index = 0

    def counter(self, op: str) -> OpCounter:
        return self.current[op]

    def rotate(self, next_index: int) -> list[WindowStats]:
        """Seal the current window (numbered ``self.index``) and start ``next_index``."""
        index, self.index = self.index, next_index
        out = []
        for op, c in self.current.items():
            out.append(WindowStats(
                op=op, index=index, requests=c.requests, errors=c.errors, late=c.late,
                dropped=c.dropped, classes=c.classes, latency=fold(c.lat),
                service=fold(c.svc),
            ))
            c.reset()
        return out
