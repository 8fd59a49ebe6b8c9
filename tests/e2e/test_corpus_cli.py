"""Hostile command lines and files against the real ``enduro`` command: each asserts its exit
code, its message and that no traceback reaches the terminal. Also: an enduro defect exits 70
with one line naming the file that holds the traceback; service output that looks like Rich
markup is printed as it is; in CI a skipped test fails the session."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.helpers.procs import REPO, free_port, only_run

PLAN = {"name": "p", "duration": "2s", "seed": 1,
        "workloads": {"w": {"http": {"base": "http://127.0.0.1:1", "rate": "5/s",
                                     "requests": [{"name": "r"}]}}}}


@pytest.fixture()
def hostile(tmp_path: Path) -> Path:
    """A folder with a valid plan, a plain file, a directory, a FIFO and a binary 'plan'."""
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(PLAN))
    (tmp_path / "afile").write_text("not a directory\n")
    (tmp_path / "adir").mkdir()
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "bin.yaml").write_bytes(bytes(range(256)) * 4)
    return tmp_path


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout and "Traceback" not in proc.stderr, proc.stderr


# (arguments, exit code, a piece of the message) - run with the hostile folder as cwd.
CASES: list[tuple[list[str], int, str]] = [
    # unusable --out for every command that writes
    (["run", "p.yaml", "--out", "afile"], 2, "--out afile: is a file, not a directory"),
    (["run", "p.yaml", "--out", "afile/sub"], 2, "afile is a file, not a directory"),
    (["run", "p.yaml", "--out", "/proc/enduro-runs"], 2,
     "--out /proc/enduro-runs: cannot create the directory"),
    (["start", "p.yaml", "--out", "afile"], 2, "--out afile: is a file, not a directory"),
    (["supervise", "p.yaml", "--out", "afile"], 2, "--out afile: is a file"),
    (["demo", "--out", "afile/x"], 2, "afile is a file, not a directory"),
    (["suite", "p.yaml", "--out", "afile"], 2, "--out afile: is a file"),
    (["loop", "p.yaml", "--out", "afile"], 2, "--out afile: is a file"),
    (["band", "p.yaml", "--out", "afile"], 2, "--out afile: is a file"),
    (["collect", "--out", "afile"], 2, "--out afile: is a file"),
    (["gate", "snapshot", "p.yaml", "--out", "adir"], 2, "is a directory; give a file name"),
    (["gate", "compare", "--base", "nosuch.json", "--head", "p.yaml"], 2,
     "--base nosuch.json: no such file"),
    (["gate", "snapshot", "nosuch.json"], 2, "nosuch.json: no such benchmark result"),
    # plan files that are not plan files
    (["run", "adir"], 2, "adir: is a directory, not a plan file"),
    (["validate", "fifo.yaml"], 2, "fifo.yaml: is not a regular file"),
    (["start", "fifo.yaml"], 2, "fifo.yaml: is not a regular file"),
    (["band", "p.yaml", "fifo.yaml"], 2, "fifo.yaml: is not a regular file"),
    (["validate", "bin.yaml"], 2, "bin.yaml"),
    (["plan", "nosuch.yaml"], 2, "nosuch.yaml: no such plan file"),
    (["validate", "p.yaml", "--set", "nonsense"], 2, "expected path=value"),
    (["cycles", "p.yaml"], 2, "has no 'suite' section"),
    # bad values
    (["run", "p.yaml", "--duration", "0"], 2, "expected a duration above zero"),
    (["run", "p.yaml", "--duration=-5s"], 2, "expected a duration"),
    (["run", "p.yaml", "--duration", "nan"], 2, "expected a duration"),
    (["run", "p.yaml", "--duration", "1e30d"], 2, "expected a duration"),
    (["loop", "p.yaml", "--duration", "0s"], 2, "expected a duration above zero"),
    (["run", "p.yaml", "--metrics-port", "99999"], 2, "from 1 to 65535, got 99999"),
    (["run", "p.yaml", "--metrics-port", "http"], 2, "expected a TCP port number, got 'http'"),
    (["start", "p.yaml", "--metrics-port", "0"], 2, "from 1 to 65535, got 0"),
    (["run", "p.yaml", "--workers", "0"], 2, "from 1 to 1024, got 0"),
    (["run", "p.yaml", "--workers", "100000"], 2, "from 1 to 1024, got 100000"),
    (["run", "p.yaml", "--seed", "1e3"], 2, "expected a whole number, got '1e3'"),
    (["run", "p.yaml", "--seed", str(2**64)], 2, "expected a whole number from"),
    (["run", "p.yaml", "--tag", "../../x"], 2, "argument --tag"),
    (["plan", "p.yaml", "--faults", "--seed", "x"], 2, "expected a whole number"),
    (["loop", "p.yaml", "--iterations", "0"], 2, "from 1 to 1000000000, got 0"),
    (["suite", "p.yaml", "--threads=-1"], 2, "from 1 to 1024, got -1"),
    (["stop", "--grace=-1s"], 2, "expected a duration"),
    (["band", "p.yaml", "--poll", "0"], 2, "expected a duration above zero"),
    (["demo", "--plan", "nosuch"], 2, "invalid choice"),
    # runs that do not exist, or a --runs that is a file
    (["status", "nosuch"], 2, "no run 'nosuch' under runs"),
    (["stop", "nosuch"], 2, "no run 'nosuch' under runs"),
    (["report", "nosuch"], 2, "no run 'nosuch' under runs"),
    (["recover", "nosuch"], 2, "no run 'nosuch' under runs"),
    (["compare", "a", "b"], 2, "no run 'a' under runs"),
    (["triage", "nosuch"], 2, "no run 'nosuch' under runs"),
    (["status", "--runs", "afile"], 2, "--runs afile: is a file, not a directory"),
    (["runs", "--runs", "afile"], 2, "--runs afile: is a file, not a directory"),
    # no command, an unknown one, an incomplete one
    ([], 2, "usage: enduro"),
    (["nosuch"], 2, "invalid choice"),
    (["gate"], 2, "gate snapshot|compare"),
]


@pytest.mark.parametrize(("args", "code", "message"), CASES,
                         ids=[" ".join(c[0]) or "(none)" for c in CASES])
def test_hostile_invocation(hostile: Path, args: list[str], code: int, message: str) -> None:
    proc = run_cli(*args, cwd=hostile, timeout=60)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert message in proc.stdout + proc.stderr
    _no_traceback(proc)


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25


def test_checks_leave_nothing_behind(hostile: Path) -> None:
    """Proving --out usable creates no directory when the plan is then refused."""
    (hostile / "bad.yaml").write_text("name: x\nduration: soon\n")
    proc = run_cli("run", "bad.yaml", "--out", "new/runs", cwd=hostile)
    assert proc.returncode == 2
    _no_traceback(proc)
    assert not (hostile / "new").exists()


def test_help_documents_every_exit_code() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for code in ("0 ", "1 ", "2 ", "3 ", "70 ", "130", "141"):
        assert f"\n  {code}" in proc.stdout
    assert "traceback" in proc.stdout


def _handle_in_a_process(body: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """Call the one error handler of the command line, in a fresh process, on ``body``."""
    script = ("import sys\nfrom pathlib import Path\nfrom enduro.cli import handle, make_console\n"
              "def command() -> int:\n" + textwrap.indent(textwrap.dedent(body), "    ")
              + "\nsys.exit(handle(command, make_console(stderr=True)))\n")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "XDG_CACHE_HOME": str(cache)})


def test_a_defect_exits_70_with_one_line_naming_the_traceback_file(tmp_path: Path) -> None:
    proc = _handle_in_a_process("""
        def deep_inside() -> int:
            return {}["no such key"]
        return deep_inside()
    """, tmp_path / "cache")
    assert proc.returncode == 70, proc.stderr
    _no_traceback(proc)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: internal error in enduro (KeyError)")
    saved = Path(lines[0].split("The traceback is in ")[1].split(" (please")[0])
    assert saved.parent == (tmp_path / "cache" / "enduro" / "defects").resolve()
    text = saved.read_text()
    assert "Traceback (most recent call last)" in text and "deep_inside" in text
    assert "KeyError: 'no such key'" in text


def test_a_reader_that_goes_away_is_not_a_defect(tmp_path: Path) -> None:
    # `enduro runs | head`: the pipe closes while enduro writes. Exit 141, as a shell reports
    # SIGPIPE, with no defect file and no traceback.
    script = ("import sys\nfrom enduro.cli import handle, make_console\n"
              "def command() -> int:\n"
              "    for i in range(100000):\n"
              "        print('run', i, flush=True)\n"
              "    return 0\n"
              "sys.exit(handle(command, make_console(stderr=True)))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith("run 0")
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "internal error" not in err
    assert not (tmp_path / "cache" / "enduro").exists()


def test_enduro_runs_into_a_closed_pipe_exits_141(tmp_path: Path) -> None:
    # Through rich's console, which by itself ends the process with exit 1 ("a rule failed").
    for i in range(300):
        run = tmp_path / "runs" / f"p-{i:04d}"
        run.mkdir(parents=True)
        (run / "state.json").write_text('{"state": "completed", "plan": "p"}')
    proc = subprocess.Popen([sys.executable, "-m", "enduro", "runs", "--runs",
                             str(tmp_path / "runs")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err


def test_a_defect_in_a_run_names_the_run_directorys_traceback(tmp_path: Path) -> None:
    """A run saves the traceback in its run directory and says where on the exception; the
    handler names that file instead of writing another."""
    run_tb = tmp_path / "runs" / "p-1" / "logs" / "traceback.txt"
    run_tb.parent.mkdir(parents=True)
    run_tb.write_text("Traceback (most recent call last):\n  ...\nRuntimeError: boom\n")
    proc = _handle_in_a_process(f"""
        exc = RuntimeError("boom")
        exc.traceback_file = Path({str(run_tb)!r})
        raise exc
    """, tmp_path / "cache")
    assert proc.returncode == 70
    _no_traceback(proc)
    assert proc.stderr.count("\n") == 1 and str(run_tb) in proc.stderr
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(("exc", "code"), [
    ("PlanError('plan.yaml:3: workloads: [/api] is not a workload')", 2),
    ("RunError('service api exited; last output: [/api] [bold]x')", 3),
    ("Interrupted('stopped')", 130),
    ("KeyboardInterrupt()", 130),
])
def test_errors_map_to_their_codes_without_traceback(tmp_path: Path, exc: str,
                                                     code: int) -> None:
    proc = _handle_in_a_process(f"""
        from enduro.base.errors import Interrupted, PlanError, RunError
        raise {exc}
    """, tmp_path / "cache")
    assert proc.returncode == code, proc.stderr
    _no_traceback(proc)
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    if code in (2, 3):
        assert "[/api]" in proc.stderr  # markup printed as written, not interpreted


def _service_plan(tmp_path: Path, code: str, port: int) -> Path:
    plan = {"name": "markup", "duration": "2s", "seed": 1, "grace": "1s",
            "services": {"api": {"command": [sys.executable, "-u", "-c", code],
                                 "ready": {"http": f"http://127.0.0.1:{port}/", "status": 200,
                                           "timeout": "10s"}}},
            "workloads": {"w": {"http": {"base": f"http://127.0.0.1:{port}", "rate": "5/s",
                                         "requests": [{"name": "r", "path": "/"}]}}}}
    path = tmp_path / "markup.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def test_service_output_with_markup_that_never_gets_ready(tmp_path: Path) -> None:
    code = "import sys; print('[/api] [bold]boom[/bold] :smile:'); sys.exit(3)"
    path = _service_plan(tmp_path, code, free_port())
    proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"), timeout=120)
    assert proc.returncode == 3, proc.stderr
    _no_traceback(proc)
    assert "[/api] [bold]boom[/bold] :smile:" in proc.stderr


def test_service_output_with_markup_that_serves(tmp_path: Path) -> None:
    port = free_port()
    code = ("import http.server, sys\n"
            "print('[/api] [bold]ready[/bold] [link=x]', flush=True)\n"
            f"http.server.ThreadingHTTPServer(('127.0.0.1', {port}), "
            "http.server.SimpleHTTPRequestHandler).serve_forever()\n")
    path = _service_plan(tmp_path, code, port)
    proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc)
    run_dir = only_run(tmp_path / "runs")
    logs = "".join(p.read_text() for p in (run_dir / "services").rglob("*.log"))
    assert "[/api] [bold]ready[/bold] [link=x]" in logs


THROWAWAY = """
import pytest

def test_passes():
    pass

def test_needs_a_server():
    pytest.skip("redis-server is not installed")

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_known_bug():
    assert False
"""


@pytest.mark.parametrize(("ci", "code"), [("1", 1), ("true", 1), ("", 0), ("0", 0)])
def test_a_skip_fails_the_session_in_ci(tmp_path: Path, ci: str, code: int) -> None:
    module = tmp_path / "test_throwaway.py"
    module.write_text(THROWAWAY)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p",
                           "no:cacheprovider", "-q", "--rootdir", str(tmp_path), str(module)],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "CI": ci})
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "1 passed, 1 skipped, 1 xfailed" in proc.stdout
    listed = "SKIPPED IN CI: test_throwaway.py::test_needs_a_server: " \
             "Skipped: redis-server is not installed"
    assert (listed in proc.stdout) == bool(code)


def test_ci_script_sets_ci() -> None:
    text = (REPO / ".ci" / "run").read_text()
    assert "export CI=1" in text and "bash scripts/test.sh" in text


def test_test_script_refuses_an_os_managed_python(tmp_path: Path) -> None:
    """With Debian's /usr/bin/python3 first on PATH, scripts/test.sh stops before pip and
    says how to make a virtual environment; nothing is installed."""
    system = next((p for p in sorted(Path("/usr/bin").glob("python3.[0-9]*"))
                   if p.name.replace("python3.", "").isdigit()
                   and list(Path("/usr/lib").glob(f"{p.name}/EXTERNALLY-MANAGED"))), None)
    assert system is not None, "this test needs the OS's own Python 3 (apt-get install python3)"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to(system)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    env.pop("PIP_BREAK_SYSTEM_PACKAGES", None)
    proc = subprocess.run(["bash", str(REPO / "scripts" / "test.sh")], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "python3 -m venv .venv && . .venv/bin/activate" in proc.stderr
    assert "installing" not in proc.stdout


def test_errors_the_event_loop_reports_itself_are_one_line(tmp_path: Path) -> None:
    """A task exception nobody retrieved used to print asyncio's traceback on the terminal."""
    script = ("import asyncio\n"
              "from enduro.base.eventloop import run_coroutine\n"
              "async def main() -> None:\n"
              "    def fail() -> None:\n"
              "        raise ValueError('boom in a callback')\n"
              "    asyncio.get_running_loop().call_soon(fail)\n"
              "    await asyncio.sleep(0.05)\n"
              "run_coroutine(main())\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc)
    (line,) = proc.stderr.splitlines()
    assert "ValueError: boom in a callback" in line
    saved = Path(line.split("traceback in ")[1])
    assert "Traceback (most recent call last)" in saved.read_text()
