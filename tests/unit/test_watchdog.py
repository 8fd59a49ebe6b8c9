"""The watchdog's decisions, with a real event loop in a thread and a recorded exit."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from enduro.run.watchdog import Watchdog
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
