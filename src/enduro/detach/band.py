"""``enduro band``: several plans one after another, each detached and polled, with a status
log, one results row per scenario, and each run's tarball."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enduro.base.errors import EXIT_FAIL, EXIT_PASS, EXIT_RUN, EnduroError
from enduro.detach.collect import collect_run
from enduro.detach.control import run_status, start_detached
from enduro.documents.document import DocumentError
from enduro.documents.results import Results
from enduro.documents.state import FINAL_STATES

__all__ = ["Scenario", "run_band"]

STATUS_COLUMNS = ["time", "scenario", "run_id", "state", "elapsed_s", "rps", "errors_10s",
                  "p95_ms", "services_up", "restarts"]
RESULT_COLUMNS = ["scenario", "run_id", "state", "verdict", "duration_s", "requests", "rps",
                  "error_rate", "p95_ms", "p99_ms", "rules_failed", "tarball", "error"]


@dataclass(frozen=True)
class Scenario:
    """``plan.yaml`` or ``plan.yaml:profile``."""

    plan: Path
    profile: str | None

    @classmethod
    def parse(cls, text: str) -> Scenario:
        path, sep, profile = text.rpartition(":")
        if sep and path and not Path(text).exists():
            return cls(Path(path), profile or None)
        return cls(Path(text), None)

    @property
    def label(self) -> str:
        return f"{self.plan.stem}:{self.profile}" if self.profile else self.plan.stem


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
            started = start_detached(scenario.plan, out=runs_dir, plan_name=name,
                                     profile=scenario.profile, sets=[], duration=None,
                                     tag=None, workers=1, seed=None)
        except EnduroError as exc:
            row.update(state="failed", error=str(exc).splitlines()[0])
            _append(out / "results.tsv", RESULT_COLUMNS, row)
            say(f"{scenario.label}: could not start: {exc}")
            worst = max(worst, exc.exit_code if exc.exit_code in (2, 3) else EXIT_RUN)
            if fail_fast:
                break
            continue
        say(f"{scenario.label}: started {started.run_id}")
        while True:
            status = run_status(started.run_dir)
            live = status["live"]
            services = status["services"].values()
            _append(out / "status.tsv", STATUS_COLUMNS, {
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "scenario": scenario.label, "run_id": started.run_id,
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
        _append(out / "results.tsv", RESULT_COLUMNS, row)
        verdict = results.verdict if results is not None else None
        say(f"{scenario.label}: {status['state']}, verdict {verdict or 'none'}")
        if verdict != "pass":
            worst = max(worst, EXIT_FAIL if status["state"] == "completed" else EXIT_RUN)
            if fail_fast:
                break
    return worst
