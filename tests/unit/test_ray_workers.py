"""The Ray transport's pure parts: the clock offset from readings, the bound, and the folders
a node must see."""

from __future__ import annotations

from pathlib import Path

import pytest

from enduro.engine.kinds import LoadFiles
from enduro.engine.ray_workers import (
    MAX_CLOCK_OFFSET_S,
    clock_offset,
    max_clock_offset,
    unseen_dirs,
)


def test_the_offset_is_read_at_the_middle_of_the_shortest_round_trip() -> None:
    # (sent, their clock, received) on the runner's clock: theirs runs 2 s ahead.
    reads = [(10.0, 12.3, 10.5), (20.0, 22.01, 20.02), (30.0, 32.2, 30.3)]
    reading = clock_offset(reads)
    assert reading.offset == pytest.approx(2.0)
    assert reading.uncertainty == pytest.approx(0.01)


def test_the_bound_is_documented_and_can_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENDURO_MAX_CLOCK_OFFSET_S", raising=False)
    assert max_clock_offset() == MAX_CLOCK_OFFSET_S == 0.1
    monkeypatch.setenv("ENDURO_MAX_CLOCK_OFFSET_S", "0.5")
    assert max_clock_offset() == 0.5
    monkeypatch.setenv("ENDURO_MAX_CLOCK_OFFSET_S", "soon")
    assert max_clock_offset() == MAX_CLOCK_OFFSET_S


def test_a_node_must_see_the_folders_the_load_writes_into(tmp_path: Path) -> None:
    here = tmp_path / "run"
    here.mkdir()
    elsewhere = tmp_path / "not-on-this-node"
    files = LoadFiles(plan_dir=tmp_path / "plans-elsewhere", history=here / "history.jsonl",
                      outputs=(("sse_streams.jsonl", elsewhere / "sse_streams.jsonl"),))
    # The plan's folder is read only by python workloads: not required.
    assert unseen_dirs(files) == [elsewhere]
    assert unseen_dirs(LoadFiles()) == []


def test_work_off_the_loop_is_bounded_and_never_holds_the_exit() -> None:
    import asyncio
    import threading

    from enduro.base.errors import RunError
    from enduro.engine.ray_workers import _off_the_loop

    release = threading.Event()

    async def main() -> None:
        assert await _off_the_loop(lambda: 7, 5.0, "late") == 7
        with pytest.raises(ZeroDivisionError):
            await _off_the_loop(lambda: 1 // 0, 5.0, "late")
        # ray.init on an unreachable address: given up on, its thread left behind (a daemon).
        with pytest.raises(RunError, match="no answer"):
            await _off_the_loop(lambda: release.wait(30), 0.1, "no answer")
        left = [t for t in threading.enumerate() if t.name == "enduro-ray-connect"]
        assert left and all(t.daemon for t in left)

    try:
        asyncio.run(main())
    finally:
        release.set()
