"""``not_during``: the plan key, and a driver paused while what it avoids is in force."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from enduro.base.errors import PlanError
from enduro.engine.quiet import Avoiding, Quiet, summarize_pauses, write_pauses
from enduro.plan import load_plan

PLAN = """\
name: avoid
workloads:
  stream:
    sse: {base: "http://127.0.0.1:9", clients: 2}
  calls:
    not_during: [churn, faults, weather]
    http:
      base: "http://127.0.0.1:9"
      rate: 5/s
      requests: [{name: ping}]
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(PlanError) as info:
        load_plan(path, env={})
    return [str(p) for p in info.value.problems]


def test_not_during_is_checked_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    out = problems(tmp_path, PLAN)
    assert any(p.startswith(f"{path}:6: workloads.calls.not_during[2]: ") for p in out), out
    fixed = PLAN.replace(", weather", "")
    # Without faults or churn (a smoke profile without chaos) it never pauses: no error.
    path.write_text(fixed)
    assert load_plan(path, env={}).plan.workloads["calls"].not_during == ["churn", "faults"]
    sse = fixed.replace("clients: 2}", "clients: 2}\n    not_during: [faults]")
    assert any(p.startswith(f"{path}:3: workloads.stream: ") and "an sse workload holds its "
               "streams open" in p for p in problems(tmp_path, sse)), problems(tmp_path, sse)
    ramp = fixed.replace("rate: 5/s", "stages: [{duration: 1s, target: 5}]")
    assert any("a ramp ('stages') cannot pause" in p for p in problems(tmp_path, ramp))
    churning = fixed.replace("clients: 2}", "clients: 2, churn: {every: 1s}}").replace(
        "[churn, faults]", "[churn]")
    path.write_text(churning)
    assert load_plan(path, env={}).plan.workloads["calls"].not_during == ["churn"]


class Ticker:
    """A driver that counts a tick every 10 ms while it runs, as a workload sends."""

    def __init__(self, log: list[float]) -> None:
        self.log = log
        self.drained = False

    async def run(self, duration: float) -> None:
        end = time.monotonic() + duration
        while time.monotonic() < end:
            self.log.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def drain(self, grace: float) -> None:
        self.drained = True

    def close_all(self) -> None:
        pass


def test_a_driver_sends_nothing_while_what_it_avoids_is_in_force(tmp_path: Path) -> None:
    ticks: list[float] = []
    built: list[Ticker] = []

    def build() -> Ticker:
        built.append(Ticker(ticks))
        return built[-1]

    async def main() -> tuple[Avoiding, float, float]:
        quiet = Quiet()
        origin = time.monotonic()
        avoiding = Avoiding(build, quiet, ("faults",), grace=1.0, origin=origin)
        run = asyncio.ensure_future(avoiding.run(0.6))
        await asyncio.sleep(0.15)
        quiet.set("churn", "sse:x", True)  # not what it avoids
        await asyncio.sleep(0.05)
        quiet.set("faults", "runner", True)
        held = time.monotonic()
        await asyncio.sleep(0.2)
        lifted = time.monotonic()
        quiet.set("faults", "runner", False)
        await run
        return avoiding, held, lifted

    avoiding, held, lifted = asyncio.run(main())
    assert not [t for t in ticks if held + 0.005 < t < lifted - 0.005]
    assert [t for t in ticks if t > lifted] and [t for t in ticks if t < held]
    assert len(built) == 2 and built[0].drained  # stopped, then a new one after the pause
    (pause,) = avoiding.pauses
    assert pause.reason == "faults"
    assert 0.15 <= pause.end_s - pause.start_s <= 0.35
    # The summary is the union of the processes' pauses (the runner starts them at once).
    path = tmp_path / "pauses.jsonl"
    write_pauses(path, 0, [("calls", avoiding)])
    write_pauses(path, 1, [("calls", avoiding)])
    summary = summarize_pauses(path)["calls"]
    assert summary["pauses"] == 1
    assert summary["paused_s"] == round(pause.end_s - pause.start_s, 3)
    assert summary["by_reason"]["faults"]["pauses"] == 1


def test_holds_of_one_source_nest_and_a_reported_state_does_not() -> None:
    quiet = Quiet()
    heard: list[tuple[str, str, bool]] = []
    quiet.listeners.append(lambda *a: heard.append(a))
    quiet.set("churn", "sse:a", True)
    quiet.set("churn", "sse:a", True)
    quiet.set("churn", "sse:a", False)
    assert quiet.in_force(("churn",)) == "churn"
    quiet.set("churn", "sse:a", False)
    assert quiet.in_force(("churn", "faults")) is None
    quiet.replace("faults", "worker1", True)
    quiet.replace("faults", "worker1", True)
    quiet.replace("faults", "worker1", False)
    assert heard == [("churn", "sse:a", True), ("churn", "sse:a", False),
                     ("faults", "worker1", True), ("faults", "worker1", False)]
