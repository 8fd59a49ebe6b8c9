"""The watchdog's decisions, with a real event loop in a thread and a recorded exit; and the
run's end it writes, bounded in time."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from enduro.plan import load_plan
from enduro.run.run import Run, RunOptions
from enduro.run.rundir import RunDir
from enduro.run.watchdog import Watchdog
from enduro.verdict.evaluate import Verdict
from tests.helpers.plans import write_plan
from tests.helpers.procs import wait_for


@dataclass
class Harness:
    """A loop running in a thread, and what the watchdog did to it."""

    loop: asyncio.AbstractEventLoop
    overruns: list[str] = field(default_factory=list)
    emergencies: list[str] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)
    exited: threading.Event = field(default_factory=threading.Event)

    def emergency(self, why: str) -> int:
        self.emergencies.append(why)
        return 130

    def exit(self, code: int) -> None:
        self.exits.append(code)
        self.exited.set()

    def block(self, seconds: float) -> None:
        """Hold the loop's thread, as a plan-side op that calls time.sleep would."""
        self.loop.call_soon_threadsafe(time.sleep, seconds)


@pytest.fixture()
def harness() -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    h = Harness(loop)
    yield h
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _watchdog(h: Harness) -> Watchdog:
    dog = Watchdog(h.loop, on_overrun=h.overruns.append, emergency=h.emergency, exit=h.exit,
                   stall_s=0.3, poll_s=0.02)
    dog.start()
    return dog


def test_a_responsive_loop_is_asked_to_stop_and_then_left_to_end(harness: Harness) -> None:
    dog = _watchdog(harness)
    dog.arm(0.05, "the load")
    wait_for(lambda: harness.overruns, 5, "the overrun to reach the loop")
    assert harness.overruns == ["the load"]
    dog.arm(5.0, "the teardown")  # the loop moved on, within a new bound
    time.sleep(0.5)  # longer than the stall: nothing more may happen
    dog.stop()
    assert not harness.emergencies and not harness.exits


def test_a_blocked_loop_past_its_deadline_is_ended_from_the_thread(harness: Harness) -> None:
    dog = _watchdog(harness)
    harness.block(1.0)
    dog.arm(0.05, "the load")
    assert harness.exited.wait(5)
    assert harness.exits == [130] and not harness.overruns
    assert "the load overran its deadline" in harness.emergencies[0]
    assert "blocked" in harness.emergencies[0]


def test_a_second_overrun_after_a_forced_stop_ends_the_run(harness: Harness) -> None:
    dog = _watchdog(harness)
    dog.arm(0.05, "the load")
    wait_for(lambda: harness.overruns, 5, "the overrun to reach the loop")
    dog.arm(0.05, "the teardown")
    assert harness.exited.wait(5)
    assert "again after a forced stop" in harness.emergencies[0]


def test_a_signal_the_loop_answers_ends_nothing(harness: Harness) -> None:
    dog = _watchdog(harness)
    dog.noted_signal()
    harness.loop.call_soon_threadsafe(dog.answered_signal)
    time.sleep(0.6)
    dog.stop()
    assert not harness.emergencies


@pytest.mark.parametrize("signals", [1, 2])
def test_a_signal_a_blocked_loop_cannot_answer_ends_the_run(harness: Harness,
                                                            signals: int) -> None:
    dog = _watchdog(harness)
    harness.block(1.0)
    began = time.monotonic()
    for _ in range(signals):
        dog.noted_signal()
    assert harness.exited.wait(5)
    took = time.monotonic() - began
    if signals == 2:
        assert "a second signal" in harness.emergencies[0] and took < 0.3
    else:
        assert "did not answer within 0.3s" in harness.emergencies[0] and took >= 0.3


def test_writing_results_is_not_cut_short_by_a_signal(harness: Harness) -> None:
    dog = _watchdog(harness)
    dog.arm(5.0, "writing the results", patient=True)
    harness.block(1.0)
    dog.noted_signal()
    time.sleep(0.7)
    dog.stop()
    assert not harness.emergencies


# -- the run's end when the watchdog ends it --------------------------------------------


class SlowEnd(Run):
    """A run whose verdict takes as long as the test says (a scipy import or a day's
    trend analysis on a loaded machine), with its run directory set up as ``execute`` would."""

    def __init__(self, tmp_path: Path, budget_s: float) -> None:
        plan = {"name": "slow-end", "duration": "60s", "seed": 1,
                "workloads": {"w": {"http": {"base": "http://127.0.0.1:9", "rate": "1/s",
                                             "requests": [{"name": "a", "path": "/"}]}}},
                "rules": ["availability >= 99%"]}
        super().__init__(load_plan(write_plan(tmp_path, plan)),
                         RunOptions(out=tmp_path / "runs", live=False, handle_signals=False))
        self.release = threading.Event()
        self._open(RunDir.create(tmp_path / "runs", "slow-end", None, time.time()))
        self.watchdog_end.budget_s = budget_s
        self.stops.status.interrupted = True
        self.stops.status.stop_reason = "interrupted by SIGTERM"
        verdict = self.end.verdict

        def slow_verdict(elapsed: float) -> Verdict:
            self.release.wait(30)
            return verdict(elapsed)

        self.end.verdict = slow_verdict  # type: ignore[method-assign]

    def events(self) -> list[dict[str, Any]]:
        assert self.rundir is not None
        return [json.loads(line) for line in
                self.rundir.file("events.jsonl").read_text().splitlines()]


def test_the_watchdogs_end_writes_the_results_within_its_budget(tmp_path: Path) -> None:
    run = SlowEnd(tmp_path, budget_s=0.5)
    assert run.rundir is not None
    began = time.monotonic()
    code = run.watchdog_end.end_within(run.watchdog_end.budget_s)
    took = time.monotonic() - began
    assert code == 130 and 0.5 <= took < 10.0  # the verdict alone would take 30 s
    results_file = run.rundir.file("results.json")
    results = json.loads(results_file.read_text())
    assert results["verdict"] == "incomplete" and results["complete"] is False
    assert results["state"] == "stopped" and results["stop_reason"] == "interrupted by SIGTERM"
    assert "the run completed" in run.rundir.file("junit.xml").read_text()
    assert json.loads(run.rundir.file("state.json").read_text())["state"] == "stopped"
    finished = [e for e in run.events() if e["event"] == "run_finished"]
    assert finished == [{**finished[0], "by": "watchdog", "problems": ["report.html"]}]
    # The abandoned end goes on, but never replaces what the watchdog wrote.
    written = results_file.read_bytes()
    run.release.set()
    wait_for(lambda: not [t for t in threading.enumerate() if t.name == "enduro-finish"], 10,
             "the abandoned end to finish")
    assert results_file.read_bytes() == written
    assert not run.rundir.file("report.html").exists()


def test_the_watchdogs_end_within_its_budget_is_the_full_end(tmp_path: Path) -> None:
    run = SlowEnd(tmp_path, budget_s=30.0)
    assert run.rundir is not None
    run.release.set()
    assert run.watchdog_end.end_within(run.watchdog_end.budget_s) == 130
    results = json.loads(run.rundir.file("results.json").read_text())
    assert results["verdict"] == "incomplete" and [r["rule"] for r in results["rules"]] == [
        "availability >= 99%"]
    assert run.rundir.file("report.html").exists()
    finished = [e for e in run.events() if e["event"] == "run_finished"]
    assert len(finished) == 1 and "by" not in finished[0] and finished[0]["problems"] == []
