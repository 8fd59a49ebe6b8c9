"""``enduro band``: several plans one after another, each detached and polled, with a status
log, one results row per scenario, and each run's tarball.

A scenario is ``plan.yaml``, ``plan.yaml:profile``, either with ``@duration``, or an entry of
a scenarios file (``--scenarios FILE``: plan, profile, duration, set, for each)."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from enduro.base.errors import EXIT_FAIL, EXIT_PASS, EXIT_RUN, EnduroError, PlanError
from enduro.base.units import parse_duration
from enduro.detach.collect import collect_run
from enduro.detach.control import run_status, start_detached
from enduro.documents.document import DocumentError
from enduro.documents.results import Results
from enduro.documents.state import FINAL_STATES
from enduro.plan.fields import Duration

# The longest a scenario may be told to run (as a plan's duration).
MAX_DURATION_S = 30 * 86400.0

__all__ = ["Scenario", "read_scenarios", "run_band"]

STATUS_COLUMNS = ["time", "scenario", "run_id", "state", "elapsed_s", "rps", "errors_10s",
                  "p95_ms", "services_up", "restarts"]
# p95_ms/p99_ms: requests only; flow_p95_ms/flow_p99_ms: whole flow iterations (the worst
# flow), kept apart so that a flow's many steps never pass for one slow request.
RESULT_COLUMNS = ["scenario", "run_id", "state", "verdict", "duration_s", "requests", "rps",
                  "error_rate", "p95_ms", "p99_ms", "flow_p95_ms", "flow_p99_ms",
                  "rules_failed", "tarball", "error"]


@dataclass(frozen=True)
class Scenario:
    """``plan.yaml[:profile][@duration]``, or an entry of a scenarios file, with its own
    ``--set`` overrides."""

    plan: Path
    profile: str | None
    duration: float | None = None
    sets: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Scenario:
        duration = None
        head, at, tail = text.rpartition("@")
        if at and head and not Path(text).exists():
            try:
                duration = parse_duration(tail)
            except ValueError as exc:
                raise PlanError(f"scenario {text!r}: @{tail}: {exc}") from None
            if not 0 < duration <= MAX_DURATION_S:
                raise PlanError(f"scenario {text!r}: @{tail}: a duration above 0 and at "
                                "most 30 days")
            text = head
        path, sep, profile = text.rpartition(":")
        if sep and path and not Path(text).exists():
            return cls(Path(path), profile or None, duration)
        return cls(Path(text), None, duration)

    def with_defaults(self, duration: float | None, sets: list[str]) -> Scenario:
        """The scenario with the command line's ``--duration`` (unless it has its own) and
        ``--set`` (before its own, which win)."""
        return replace(self, duration=self.duration if self.duration is not None else duration,
                       sets=(*sets, *self.sets))

    @property
    def label(self) -> str:
        return f"{self.plan.stem}:{self.profile}" if self.profile else self.plan.stem


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: str
    profile: str | None = None
    duration: Duration | None = None
    set: list[str] = []


def read_scenarios(path: Path) -> list[Scenario]:
    """A scenarios file: a YAML list (or ``scenarios:`` list) of ``{plan, profile,
    duration, set}``; plans are relative to the file. ``PlanError`` naming the entry."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PlanError(f"{path}: cannot read the scenarios: {exc}") from None
    if isinstance(data, dict):
        data = data.get("scenarios")
    if not isinstance(data, list) or not data:
        raise PlanError(f"{path}: expected a list of scenarios ({{plan, profile, duration, "
                        "set}), or 'scenarios:' with one")
    out = []
    for i, item in enumerate(data):
        try:
            entry = _Entry.model_validate(item if isinstance(item, dict) else {"plan": item})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise PlanError(f"{path}: scenario {i + 1}: {where}: {first['msg']}") from None
        if entry.duration is not None and not 0 < entry.duration <= MAX_DURATION_S:
            raise PlanError(f"{path}: scenario {i + 1}: duration above 0 and at most 30 days")
        out.append(Scenario((path.parent / entry.plan), entry.profile, entry.duration,
                            tuple(entry.set)))
    return out


def _append(path: Path, columns: list[str], row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, columns, delimiter="\t", extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def run_band(scenarios: list[Scenario], *, out: Path, runs_dir: Path, fail_fast: bool,
             load: Callable[[Scenario], str], poll_s: float = 2.0,
             say: Callable[[str], None] = print) -> int:
    """Run every scenario; return 0 if all passed, 1 if a verdict failed, 3 if a run could
    not proceed. ``load`` checks a scenario's plan and returns its name."""
    out.mkdir(parents=True, exist_ok=True)
    worst = EXIT_PASS
    for scenario in scenarios:
        row: dict[str, Any] = {"scenario": scenario.label}
        try:
            name = load(scenario)
            row["scenario"] = f"{name}:{scenario.profile}" if scenario.profile else name
            started = start_detached(scenario.plan, out=runs_dir, plan_name=name,
                                     profile=scenario.profile, sets=list(scenario.sets),
                                     duration=scenario.duration, tag=scenario.profile,
                                     workers=1, seed=None)
        except EnduroError as exc:
            row.update(state="failed", error=str(exc).splitlines()[0])
            _append(out / "results.tsv", RESULT_COLUMNS, row)
            say(f"{row['scenario']}: could not start: {exc}")
            worst = max(worst, exc.exit_code if exc.exit_code in (2, 3) else EXIT_RUN)
            if fail_fast:
                break
            continue
        say(f"{row['scenario']}: started {started.run_id}")
        while True:
            status = run_status(started.run_dir)
            live = status["live"]
            services = status["services"].values()
            _append(out / "status.tsv", STATUS_COLUMNS, {
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "scenario": row["scenario"], "run_id": started.run_id,
                "state": status["state"], "elapsed_s": status["elapsed_s"],
                "rps": live.get("rps", ""), "errors_10s": live.get("errors", ""),
                "p95_ms": live.get("p95_ms", ""),
                "services_up": sum(1 for s in services if s.get("state") == "up"),
                "restarts": sum(s.get("restarts", 0) for s in services)})
            if status["state"] in (*FINAL_STATES, "dead") and not status["runner"]["alive"]:
                break
            time.sleep(poll_s)
        try:
            results: Results | None = Results.read(started.run_dir / "results.json")
        except DocumentError:
            results = None  # its runner died before writing it: no figures to show
        tarball = collect_run(started.run_dir, out)
        row.update(run_id=started.run_id, state=status["state"],
                   tarball=tarball.name, error=status.get("stop_reason") or "")
        if results is not None:
            row.update(verdict=results.verdict, duration_s=results.duration_s,
                       rules_failed=sum(1 for r in results.rules if not r.passed))
            if results.total is not None:
                total = results.total
                row.update(requests=total.requests, rps=total.rps,
                           error_rate=total.error_rate, p95_ms=total.latency_ms.p95,
                           p99_ms=total.latency_ms.p99)
            flows = [op for op in results.ops.values() if op.kind == "iteration"]
            if flows:
                row.update(flow_p95_ms=max(op.latency_ms.p95 for op in flows),
                           flow_p99_ms=max(op.latency_ms.p99 for op in flows))
        _append(out / "results.tsv", RESULT_COLUMNS, row)
        verdict = results.verdict if results is not None else None
        say(f"{row['scenario']}: {status['state']}, verdict {verdict or 'none'}")
        if verdict != "pass":
            worst = max(worst, EXIT_FAIL if status["state"] == "completed" else EXIT_RUN)
            if fail_fast:
                break
    return worst
