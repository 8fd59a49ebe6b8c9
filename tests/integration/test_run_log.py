"""``logs/enduro.log``: a level on every line, rotated by size."""

from __future__ import annotations

import re
from pathlib import Path

from enduro.run.runlog import RotatingLog, level_of
from tests.helpers.plans import http_plan, run_plan

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR) +\S")


def test_a_log_rotates_by_size_and_keeps_its_last_files_whole(tmp_path: Path) -> None:
    path = tmp_path / "enduro.log"
    log = RotatingLog(path, max_bytes=1000, keep=2)
    for n in range(100):
        log.write(f"line {n:03d} " + "x" * 40)  # 50 bytes with its newline
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enduro.log", "enduro.log.1",
                                                          "enduro.log.2"]
    kept = [p.read_text().splitlines() for p in (tmp_path / "enduro.log.2",
                                                 tmp_path / "enduro.log.1", path)]
    for lines in kept:
        assert sum(len(x) + 1 for x in lines) <= 1000  # never past the limit
    # The newest lines, in order and whole, the oldest beyond the kept files dropped.
    every = [x for lines in kept for x in lines]
    numbers = [int(x.split()[1]) for x in every]
    assert numbers == list(range(numbers[0], 100)) and numbers[0] > 0
    assert all(x.endswith("x" * 40) for x in every)
    # Reopened, it goes on from the size already there.
    again = RotatingLog(path, max_bytes=1000, keep=2)
    again.write("one more")
    again.close()
    assert path.read_text().splitlines()[-1] == "one more"


def test_levels_of_lines_without_one() -> None:
    assert level_of("warning: the generator is saturated") == "WARNING"
    assert level_of("api crashed (exit 1); restarting in 1s") == "WARNING"
    assert level_of("fault #2 failed: no such proxy") == "WARNING"
    assert level_of("faults: 3 scheduled") == "INFO"


def test_a_runs_log_carries_levels_and_rotates(tmp_path: Path,
                                                demo: tuple[str, Path]) -> None:
    url, _ = demo
    plan = http_plan(url, rate="20/s", duration="3s",
                     requests=[{"name": "health", "path": "/health"}])
    plan["observe"] = {"heartbeat": "100ms", "log_max": 1024, "log_keep": 2}
    run_dir = run_plan(tmp_path, plan).run_dir
    assert run_dir is not None
    logs = run_dir / "logs"
    names = sorted(p.name for p in logs.iterdir() if p.name.startswith("enduro.log"))
    # About 30 heartbeat lines of ~100 bytes: rotated more than twice, two files kept.
    assert names == ["enduro.log", "enduro.log.1", "enduro.log.2"], names
    lines = [x for n in names for x in (logs / n).read_text().splitlines()]
    assert lines and all(LINE.match(x) for x in lines), lines[:3]
    assert any(" INFO    alive t=" in x for x in lines)
    assert all((logs / n).stat().st_size <= 1024 for n in names)
