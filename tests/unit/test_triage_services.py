"""Triage per service: the crash-monitor harness's <service>.crash.<timestamp>.log files and
enduro's services/<name>/crash-*.log grouped by service, each service's primary issue, and the
files of ``--out``. The crash output in them is the recorded output of real programs."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

from enduro.triage.outputs import errors_text, write_reports
from enduro.triage.report import _overlap, triage
from enduro.triage.sources import harness_stamp, service_of

RECORDED = Path(__file__).resolve().parents[1] / "data" / "triage"


def runs(name: str) -> list[list[str]]:
    """The recorded output of each run of a program (each starts with "INFO request started")."""
    out: list[list[str]] = []
    for line in (RECORDED / name).read_text().splitlines():
        if line.endswith("INFO request started"):
            out.append([])
        out[-1].append(line)
    return out


def compose(service: str, lines: list[str]) -> str:
    """Lines as `docker compose logs` prints them."""
    return "".join(f"{service}-1  | {line}\n" for line in lines)


def harness_dir(tmp_path: Path) -> Path:
    rust, java = runs("rust.log"), runs("java.log")
    index, port = rust[0], rust[5]  # "index out of bounds", "port must be set"
    disk, div = java[0], java[2]  # IllegalStateException (Caused by), ArithmeticException
    logs = tmp_path / "logs"
    logs.mkdir()
    first = ["10:14:58 INFO listening", "10:14:59 ERROR db timeout after 31ms on shard 2", *index]
    (logs / "api.crash.20261122-101500.log").write_text(compose("api", first))
    # The next crash's last lines start with the end of the first one's.
    second = [*first[-4:], "10:19:58 ERROR db timeout after 907ms on shard 5", *port]
    (logs / "api.crash.20261122-102000.log").write_text(compose("api", second))
    (logs / "api.mon.log").write_text("10:15:00 ERROR api crashed (exit 101); restarting\n")
    # A later crash in a file whose name sorts first: the earliest crash is the primary issue.
    (logs / "worker.crash.2026-11-22T09-00-00.log").write_text("\n".join(disk) + "\n")
    (logs / "worker.crash.20261122T081500Z.log").write_text("\n".join(div) + "\n")
    return logs


def test_harness_crash_logs_group_by_service_each_with_its_primary_issue(
        tmp_path: Path) -> None:
    result = triage([harness_dir(tmp_path)])
    services = result["services"]
    assert set(services) == {"api", "worker"}  # the .mon.log is what the harness did
    api = {c["message"][:16]: c["count"] for c in result["crashes"] if c["service"] == "api"}
    assert api == {"index out of bou": 1, "port must be set": 1}  # overlap counted once
    assert services["api"]["primary"]["message"].startswith("index out of bounds")
    assert services["api"]["crashes"] == 2 and services["api"]["root_causes"] == 2
    timeouts = [g for g in result["log_groups"] if "db timeout" in g["template"]]
    assert [(g["service"], g["count"]) for g in timeouts] == [("api", 2)]
    assert timeouts[0]["template"] == "ERROR db timeout after <n>ms on shard <n>"
    assert services["worker"]["primary"]["type"] == "java.lang.ArithmeticException"
    assert services["worker"]["root_causes"] == 2
    assert result["primary"]["type"] == "java.lang.ArithmeticException"  # 08:15, before api


def test_an_enduro_run_groups_by_service_and_reads_a_crash_log_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "services" / "api").mkdir(parents=True)
    (run / "services" / "db").mkdir(parents=True)
    (run / "logs").mkdir()
    (run / "events.jsonl").write_text("")
    crash = [f"10:00:0{i % 10} {line}" if i else line
             for i, line in enumerate(runs("rust.log")[7])]
    output = ["09:59:59 INFO started", *crash]
    (run / "services" / "api" / "output.log").write_text("\n".join(output) + "\n")
    (run / "services" / "api" / "crash-20261122T100010Z.log").write_text(
        "service: api\nexit: exit code 101\n---\n" + "\n".join(output[-6:]) + "\n")
    (run / "services" / "db" / "output.log").write_text("10:00:01 WARN slow query 12ms\n")
    (run / "logs" / "enduro.log").write_text("10:00:02 ERROR probe of api failed\n")
    result = triage([run])
    assert set(result["services"]) == {"api", "db", "enduro"}
    (crash_entry,) = result["crashes"]
    assert crash_entry["service"] == "api" and crash_entry["count"] == 1
    assert result["services"]["db"]["primary"]["template"] == "WARN slow query <n>ms"
    assert result["services"]["api"]["files"] == ["services/api/output.log"]


def test_identical_crashes_in_successive_crash_logs_are_each_counted(tmp_path: Path) -> None:
    # No timestamps: the second file repeats the first one's crash, then crashes the same way.
    panic = runs("rust.log")[5]
    (tmp_path / "api.crash.1763805600.log").write_text("\n".join(panic) + "\n")
    (tmp_path / "api.crash.1763805660.log").write_text("\n".join(panic + panic) + "\n")
    (crash,) = triage([tmp_path])["crashes"]
    assert crash["count"] == 2


def test_overlap_of_successive_tails() -> None:
    assert _overlap(["a", "b", "c"], ["b", "c", "d"]) == 2
    assert _overlap(["a", "x"], ["a", "x", "a", "x"]) == 2
    assert _overlap(["a", "b"], ["c", "d"]) == 0
    assert _overlap([], ["a"]) == 0


def test_crash_log_names() -> None:
    utc = calendar.timegm(time.strptime("20261122101500", "%Y%m%d%H%M%S"))
    assert harness_stamp("20261122-101500") == utc
    assert harness_stamp("2026-11-22T10:15:00Z") == utc
    assert harness_stamp("20261122T101500Z") == utc
    assert harness_stamp(str(utc)) == utc
    assert harness_stamp(f"{utc}000") == utc
    assert harness_stamp("latest") is None
    assert service_of(Path("/x/api-gw.crash.1763805600.log"), None, run_dir=False) == "api-gw"
    assert service_of(Path("/r/services/db/crash-20261122T101500Z.log"), Path("/r"),
                      run_dir=True) == "db"
    assert service_of(Path("/r/logs/enduro.log"), Path("/r"), run_dir=True) == "enduro"
    assert service_of(Path("/d/worker.log.1"), Path("/d"), run_dir=False) == "worker"


def test_out_writes_a_summary_and_per_service_files(tmp_path: Path) -> None:
    result = triage([harness_dir(tmp_path)])
    written = write_reports(result, tmp_path / "out")
    assert sorted(p.name for p in written) == [
        "api.errors.txt", "api.summary.md", "summary.md", "worker.errors.txt",
        "worker.summary.md"]
    errors = (tmp_path / "out" / "api.errors.txt").read_text().splitlines()
    assert errors[0] == "      2 ERROR db timeout after <n>ms on shard <n>"
    assert errors[1].startswith("      1 CRASH panic: index out of bounds: the len is <n>")
    assert errors == errors_text(result, "api").splitlines()
    api = (tmp_path / "out" / "api.summary.md").read_text()
    assert api.startswith("# api: triage")
    assert "**Primary issue**: panic: index out of bounds: the len is 3 but the index is 7" in api
    assert api.index("## Primary issue") < api.index("### panic: index out of bounds") < \
        api.index("## Other root causes: 1") < api.index("### panic: port must be set")
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| api | panic: index out of bounds" in summary
    assert "| worker | java.lang.ArithmeticException: / by zero" in summary
