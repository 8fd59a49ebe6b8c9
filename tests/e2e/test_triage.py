"""Triage of real crash output from real Python, Rust, Java and C programs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enduro.triage.report import triage
from tests.conftest import run_cli

PY = """
import sys
def load(user):
    raise KeyError(f"user {user} missing")
def handle(user):
    try:
        load(user)
    except KeyError as exc:
        raise RuntimeError(f"request {user} failed") from exc
def parse(n):
    return int(n)
mode, arg = sys.argv[1], sys.argv[2]
handle(arg) if mode == "handle" else parse(arg)
"""

# Crash output of compiled programs is recorded (tests/data/triage/record.sh builds and runs
# the sources beside it), so these tests need no compiler.
RECORDED = Path(__file__).resolve().parents[1] / "data" / "triage"


def run(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    with log.open("a") as fh:
        fh.write(time.strftime("%H:%M:%S ") + "INFO request started\n")
        fh.write(proc.stdout + proc.stderr)


def test_python_crashes_group_by_root_cause(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(PY)
    log = tmp_path / "python.log"
    for args in (["handle", "1001"], ["handle", "1002"], ["handle", "1003"],
                 ["parse", "x1"], ["parse", "x2"]):
        run([sys.executable, "app.py", *args], tmp_path, log)
    result = triage([log])
    crashes = {c["type"]: c for c in result["crashes"]}
    assert set(crashes) == {"RuntimeError", "ValueError"}
    assert crashes["RuntimeError"]["count"] == 3 and crashes["ValueError"]["count"] == 2
    assert "caused by KeyError" in crashes["RuntimeError"]["message"]
    assert crashes["RuntimeError"]["frames"][0].startswith("handle")
    assert crashes["RuntimeError"]["app_frames"] == ["handle (app.py)", "<module> (app.py)"]
    assert result["primary"]["type"] == "RuntimeError"


def test_sanitizer_reports_and_signals_group_by_root_cause() -> None:
    log = RECORDED / "native.log"
    crashes = {c["type"]: c for c in triage([log])["crashes"]}
    assert set(crashes) == {"AddressSanitizer:heap-use-after-free",
                            "AddressSanitizer:heap-buffer-overflow", "SIGSEGV"}
    assert crashes["AddressSanitizer:heap-use-after-free"]["count"] == 2
    assert crashes["AddressSanitizer:heap-use-after-free"]["frames"][0] == "use_after_free"
    assert crashes["AddressSanitizer:heap-buffer-overflow"]["count"] == 3
    assert crashes["AddressSanitizer:heap-buffer-overflow"]["frames"][0] == "overflow"
    assert crashes["SIGSEGV"]["count"] == 2 and crashes["SIGSEGV"]["kind"] == "signal"


def test_rust_panics_group_by_location_and_message() -> None:
    log = RECORDED / "rust.log"
    crashes = {c["message"][:16]: c for c in triage([log])["crashes"]}
    # Two of them panic on one source line (src/main.rs:3): `expect` and `unwrap`.
    assert {k: c["count"] for k, c in crashes.items()} == {
        "index out of bou": 2, "no value for \"a\"": 3, "port must be set": 3,
        "called `Result::": 3}
    assert all(c["kind"] == "rust" and "main.rs" in c["frames"][0] for c in crashes.values())
    assert crashes["port must be set"]["app_frames"] == ["src/main.rs:3"]


def test_java_exceptions_group_by_root_cause() -> None:
    log = RECORDED / "java.log"
    crashes = {c["type"]: c for c in triage([log])["crashes"]}
    found = triage([log])["crashes"]
    assert sorted((c["type"], c["count"]) for c in found) == [
        ("java.lang.ArithmeticException", 2), ("java.lang.IllegalStateException", 2),
        ("java.lang.NumberFormatException", 1), ("java.lang.NumberFormatException", 2)]
    assert crashes["java.lang.IllegalStateException"]["app_frames"][0] == "Crash.store"


@pytest.mark.slow(7)
def test_triage_of_a_run_from_the_cli(tmp_path: Path) -> None:
    from tests.helpers.plans import write_plan
    (tmp_path / "app.py").write_text(PY + "\nimport time\ntime.sleep(0.2)\n")
    plan = write_plan(tmp_path, {
        "name": "crashy", "duration": "4s",
        "services": {"api": {"command": [sys.executable, str(tmp_path / "app.py"), "handle",
                                         "1004"], "restart": "always"}}})
    run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    (run_dir,) = (tmp_path / "runs").iterdir()
    proc = run_cli("triage", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    (crash,) = result["crashes"]
    assert crash["service"] == "api" and crash["type"] == "RuntimeError"
    assert crash["count"] >= 2  # restarted and crashed again; crash logs not double counted
    md = run_cli("triage", str(run_dir))
    assert "Primary issue" in md.stdout and "RuntimeError" in md.stdout


def test_triage_out_writes_per_service_files_from_the_cli(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    rust = (RECORDED / "rust.log").read_text()
    (logs / "api.crash.20261122T101500Z.log").write_text(rust)
    (logs / "worker.crash.20261122T091500Z.log").write_text((RECORDED / "java.log").read_text())
    proc = run_cli("triage", str(logs), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "api.errors.txt", "api.summary.md", "summary.md", "worker.errors.txt",
        "worker.summary.md"]
    assert "reports:" in proc.stderr and "Primary issue" in proc.stdout
    errors = (tmp_path / "out" / "api.errors.txt").read_text().splitlines()
    assert len(errors) == 4 and all(line.split()[1] == "CRASH" for line in errors)
    assert sorted(int(line.split()[0]) for line in errors) == [2, 3, 3, 3]
    worker = (tmp_path / "out" / "worker.summary.md").read_text()
    assert "**Primary issue**: java.lang.IllegalStateException: disk full for 101" in worker
    assert "## Other root causes: 3" in worker


def tmp_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A TMPDIR of the test's own, to see what enduro leaves in it."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    return tmp, {"TMPDIR": str(tmp)}


def logs_tarball(tmp_path: Path, name: str, lines: int = 0) -> Path:
    import tarfile
    run = tmp_path / "collected" / "run-1"
    (run / "services" / "api").mkdir(parents=True)
    (run / "events.jsonl").write_text("")
    filler = "10:00:00 ERROR db timeout after 31ms on shard 2\n" * lines
    (run / "services" / "api" / "output.log").write_text(
        filler + (RECORDED / "rust.log").read_text())
    tarball = tmp_path / name
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(run, arcname="run-1")
    return tarball


def test_triage_of_a_tarball_leaves_no_temporary_directory(tmp_path: Path) -> None:
    tmp, env = tmp_env(tmp_path)
    proc = run_cli("triage", str(logs_tarball(tmp_path, "run.tar.gz")), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert {c["service"] for c in json.loads(proc.stdout)["crashes"]} == {"api"}
    assert list(tmp.iterdir()) == []


def test_a_corrupt_tarball_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    tmp, env = tmp_env(tmp_path)
    tarball = logs_tarball(tmp_path, "run.tar.gz", lines=20_000)
    data = tarball.read_bytes()
    tarball.write_bytes(data[:len(data) // 2])  # cut off, as by a full disk or an aborted copy
    proc = run_cli("triage", str(tarball), env=env)
    assert proc.returncode == 2, proc.stderr
    assert "not a readable tarball" in proc.stderr
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("member", ["../escaped.log", "/tmp/escaped.log", "link",
                                    "hardlink", "dir/../../escaped.log"])
def test_a_tarball_member_outside_its_folder_is_refused(tmp_path: Path, member: str) -> None:
    import io
    import tarfile
    tmp, env = tmp_env(tmp_path)
    tarball = tmp_path / "evil.tar"
    with tarfile.open(tarball, "w") as tar:
        ok = tarfile.TarInfo("run/services/api/output.log")
        ok.size = 4
        tar.addfile(ok, io.BytesIO(b"ok\n\n"))
        info = tarfile.TarInfo(member)
        if member == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "../../../etc"
        elif member == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "../outside.log"
        data = b"ERROR escaped\n"
        info.size = len(data) if info.isfile() else 0
        tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    proc = run_cli("triage", str(tarball), env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "refused to unpack" in proc.stderr and repr(member) in proc.stderr
    assert list(tmp.iterdir()) == []
    assert not (tmp_path / "escaped.log").exists()


@pytest.mark.slow(6)
def test_ctrl_c_during_triage_of_a_tarball_leaves_no_temporary_directory(
        tmp_path: Path) -> None:
    import signal

    from tests.helpers.procs import stop, wait_for
    tmp, env = tmp_env(tmp_path)
    tarball = logs_tarball(tmp_path, "big.tar.gz", lines=500_000)
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    proc = subprocess.Popen([sys.executable, "-m", "enduro", "triage", str(tarball)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**base, **env})
    try:
        # Unpacked and being read: its folder holds the log.
        wait_for(lambda: list(tmp.glob("enduro-triage-*/run-1/services/api/output.log")),
                 30, "the tarball to be unpacked")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 130, stderr
    assert list(tmp.iterdir()) == []
