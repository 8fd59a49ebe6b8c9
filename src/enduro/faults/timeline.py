"""The fault schedule: every fault of the plan expanded onto the load's timeline, reproducibly
from the seed, within the policy's minimum gap and concurrency cap."""

from __future__ import annotations

import random
from dataclasses import dataclass

from enduro.base.units import format_duration
from enduro.plan.faults import PROCESS_KINDS, FaultSpec, ProcessTarget
from enduro.plan.models import Plan

__all__ = ["ScheduledFault", "expand", "format_schedule"]


@dataclass(frozen=True)
class ScheduledFault:
    """One fault occurrence: when it starts, when its undo runs, and what it hits."""

    id: int
    spec_index: int
    name: str
    kind: str
    targets: tuple[str, ...]
    start: float
    end: float | None  # None: instantaneous (kill, terminate, restart)
    rolling: float | None = None

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "kind": self.kind,
                "targets": list(self.targets), "start_s": round(self.start, 3),
                "end_s": None if self.end is None else round(self.end, 3)}


def _times(spec: FaultSpec, duration: float, rng: random.Random) -> list[float]:
    lo, hi = spec.between if spec.between is not None else (0.0, duration)
    hi = min(hi, duration)
    out: list[float] = []
    if spec.at is not None:
        out = [spec.at]
    elif spec.every is not None:
        t = lo + spec.every if spec.between is None else lo
        while t < hi:
            out.append(t + (rng.uniform(-spec.jitter, spec.jitter) if spec.jitter else 0.0))
            t += spec.every
    else:
        assert spec.random is not None
        t = lo
        while True:
            t += rng.expovariate(1.0 / spec.random)
            if t >= hi:
                break
            out.append(t)
    out = [t for t in out if lo <= t < hi and t < duration]
    if spec.count is not None:
        out = out[: spec.count]
    return out


def _targets(plan: Plan, spec: FaultSpec, rng: random.Random, fixed: dict[int, str],
             index: int) -> tuple[tuple[str, ...], float | None]:
    kind = spec.kind
    value = spec.spec
    if kind not in PROCESS_KINDS:
        proxy = getattr(value, "proxy", None)
        return ((proxy,) if proxy else ()), None
    target = value if isinstance(value, ProcessTarget) else ProcessTarget(target=value)
    members = plan.groups.get(target.target)
    if members is None:
        return (target.target,), None
    if target.choose == "all":
        return tuple(members), target.rolling
    if target.choose == "one":
        if index not in fixed:
            fixed[index] = rng.choice(members)
        return (fixed[index],), None
    return (rng.choice(members),), None


def expand(plan: Plan, duration: float, seed: int) -> tuple[list[ScheduledFault], int]:
    """The schedule, and how many occurrences the policy skipped."""
    rng = random.Random(f"{seed}/faults")
    fixed: dict[int, str] = {}
    candidates: list[tuple[float, int, FaultSpec]] = []
    for i, spec in enumerate(plan.faults):
        candidates.extend((t, i, spec) for t in _times(spec, duration, rng))
    candidates.sort(key=lambda c: (c[0], c[1]))
    policy = plan.fault_policy
    schedule: list[ScheduledFault] = []
    skipped = 0
    last_start = None
    for t, i, spec in candidates:
        if last_start is not None and t - last_start < policy.min_gap:
            skipped += 1
            continue
        end = t + spec.for_ if spec.for_ is not None else None
        if spec.kind not in PROCESS_KINDS and end is None:
            end = duration  # a network or command fault without `for` lasts to the end
        if policy.max_concurrent is not None:
            active = sum(1 for f in schedule if f.start <= t < (f.end if f.end is not None
                                                                   else f.start + 1e-9))
            if active >= policy.max_concurrent:
                skipped += 1
                continue
        targets, rolling = _targets(plan, spec, rng, fixed, i)
        schedule.append(ScheduledFault(len(schedule) + 1, i, spec.label(i), spec.kind,
                                       targets, t, min(end, duration) if end else end,
                                       rolling))
        last_start = t
    return schedule, skipped


def format_schedule(schedule: list[ScheduledFault], skipped: int, seed: int) -> str:
    lines = [f"seed {seed}: {len(schedule)} fault(s)"
             + (f", {skipped} skipped by fault_policy" if skipped else "")]
    for f in schedule:
        until = "" if f.end is None else f" until {format_duration(f.end)} ({f.end - f.start:g}s)"
        roll = f" rolling every {f.rolling:g}s" if f.rolling else ""
        lines.append(f"  t={format_duration(f.start):>7}  #{f.id:<3} {f.kind:<10} "
                     f"{','.join(f.targets):<20} {f.name}{until}{roll}")
    return "\n".join(lines)
