"""Managed services and detached runs, end to end with real processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from enduro.services.identity import processes_inside
from tests.conftest import HELPERS, run_cli
from tests.helpers.plans import write_plan
from tests.helpers.procs import free_port, only_run, wait_for

CHATTY = [sys.executable, str(HELPERS / "chatty_service.py")]



def status(runs: Path) -> dict[str, Any]:
    proc = run_cli("status", "--json", "--runs", str(runs))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def stop_leftovers(tmp_path: Path) -> Any:
    """Whatever a failing test left running in its runs directory is stopped afterwards."""
    yield
    runs = tmp_path / "runs"
    if runs.is_dir():
        for run_dir in runs.iterdir():
            if processes_inside(run_dir) or (run_dir / "state.json").exists():
                run_cli("stop", str(run_dir), "--grace", "5s")


def start(plan: Path, runs: Path, *extra: str) -> Path:
    proc = run_cli("start", str(plan), "--out", str(runs), *extra)
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.split("run directory: ")[1].strip())
    return run_dir if run_dir.is_absolute() else Path.cwd() / run_dir


def assert_nothing_left(run_dir: Path, pids: list[int]) -> None:
    assert processes_inside(run_dir) == []
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", pid


@pytest.mark.slow(5)
def test_crashed_service_is_restarted_with_a_crash_log(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plan = write_plan(tmp_path, {
        "name": "crashy", "duration": "60s",
        "services": {"chatty": {"command": [*CHATTY, "--lines", "300"],
                                "ready": {"log": "hello line 299", "timeout": "20s"},
                                "restart": "on-failure"}}})
    run_dir = start(plan, runs)
    first = wait_for(lambda: (status(runs)["services"].get("chatty") or {}).get("state") == "up"
                     and status(runs), 30, "the service to be up")
    pid = first["services"]["chatty"]["pid"]
    os.kill(pid, signal.SIGKILL)
    after = wait_for(lambda: (s := status(runs))["services"]["chatty"]["restarts"] == 1
                     and s["services"]["chatty"]["state"] == "up" and s, 30, "a restart")
    new_pid = after["services"]["chatty"]["pid"]
    assert new_pid != pid
    (crash,) = (run_dir / "services" / "chatty").glob("crash-*.log")
    text = crash.read_text()
    assert "exit: was killed by SIGKILL" in text
    assert "hello line 299" in text and "hello line 150" in text
    assert "hello line 50\n" not in text  # only the last 200 lines are kept
    monitor = (run_dir / "services" / "chatty" / "monitor.log").read_text()
    assert "was killed by SIGKILL" in monitor and "restarting in" in monitor
    events = [json.loads(line) for line in (run_dir / "events.jsonl").open()]
    assert any(e["event"] == "service_exit" for e in events)
    proc = run_cli("stop", "--runs", str(runs))
    assert proc.returncode == 0, proc.stderr
    assert status(runs)["state"] == "stopped"
    assert_nothing_left(run_dir, [pid, new_pid])


@pytest.mark.slow(4)
def test_busy_port_fails_fast_naming_its_holder(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        plan = write_plan(tmp_path, {
            "name": "busy", "duration": "5s",
            "services": {"api": {"command": [*CHATTY, "--port", str(port)], "ports": [port]}}})
        began = time.monotonic()
        proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 3
    assert time.monotonic() - began < 20
    assert f"port {port} is busy, held by pid {os.getpid()}" in proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    state = json.loads((run_dir / "state.json").read_text())
    assert state["state"] == "failed" and "is busy" in state["stop_reason"]


@pytest.mark.slow(4)
def test_repeated_403_readiness_fails_fast(tmp_path: Path) -> None:
    port = free_port()
    plan = write_plan(tmp_path, {
        "name": "stale", "duration": "5s",
        "services": {"api": {"command": [*CHATTY, "--port", str(port), "--status", "403"],
                             "ports": [port],
                             "ready": {"http": f"http://127.0.0.1:{port}/health",
                                       "timeout": "60s", "interval": "100ms"}}}})
    began = time.monotonic()
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 3
    assert time.monotonic() - began < 30  # far less than the 60 s timeout
    assert "answered 403 5 times in a row" in proc.stderr
    assert "stale process" in proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert processes_inside(run_dir) == []


@pytest.mark.slow(4)
def test_token_file_is_waited_for_and_used(tmp_path: Path) -> None:
    port = free_port()
    plan = write_plan(tmp_path, {
        "name": "tokened", "duration": "2s",
        "services": {"api": {"command": [*CHATTY, "--port", str(port), "--token-file",
                                         "data/api.token", "--token-delay", "1.0"],
                             "url": f"http://127.0.0.1:{port}", "ports": [port],
                             "token_file": "data/api.token"}},
        "workloads": {"w": {"http": {"service": "api", "rate": "50/s",
                                     "headers": {"Authorization": "Bearer ${token:api}"},
                                     "requests": [{"name": "get", "path": "/items"}]}}},
        "rules": ["availability == 100%"]})
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["total"]["requests"] >= 90 and results["total"]["errors"] == 0
    assert results["services"]["api"]["ready_s"] >= 0.9
    # The token reached the requests, but not the run directory's plan.
    assert "tok-0123456789abcdef" not in (run_dir / "plan.resolved.yaml").read_text()


@pytest.mark.slow(4)
def test_build_stage_fresh_and_config(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    (dist / "data").mkdir(parents=True)
    (dist / "data" / "identity.keys").write_text("old identity")
    (dist / "data" / "seed.txt").write_text("seed")
    (tmp_path / "config.toml.j2").write_text(
        'port = {{ port }}\nsession = "{{ session }}"\nrun = "{{ run_id }}"\n')
    port = free_port()
    plan = write_plan(tmp_path, {
        "name": "staged", "duration": "1s",
        "services": {"api": {
            "build": "echo built > dist/BUILT",
            "stage": {"from": "dist", "fresh": ["data/identity.keys"]},
            "config": {"template": "config.toml.j2", "path": "config.toml"},
            "command": [*CHATTY], "ports": [port],
            "ready": {"file": "config.toml"}}}})
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    svc = run_dir / "services" / "api"
    assert (svc / "BUILT").read_text() == "built\n"
    assert (svc / "data" / "seed.txt").read_text() == "seed"
    assert not (svc / "data" / "identity.keys").exists()
    config = (svc / "config.toml").read_text()
    assert f"port = {port}" in config and f'run = "{run_dir.name}"' in config
    assert f"cwd {svc}" in (svc / "output.log").read_text()


def test_failed_build_reports_its_last_lines(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, {
        "name": "nobuild", "duration": "1s",
        "services": {"api": {"build": "echo compiling; echo 'error: boom' >&2; exit 2",
                             "command": [*CHATTY]}}})
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 3
    assert "build" in proc.stderr and "exited with 2" in proc.stderr
    assert "error: boom" in proc.stderr


@pytest.mark.slow(9)
def test_runner_killed_then_status_stop_collect(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    port = free_port()
    plan = write_plan(tmp_path, {
        "name": "orphan", "duration": "120s",
        "services": {"api": {"command": [*CHATTY, "--port", str(port), "--token-file",
                                         "data/api.token"],
                             "url": f"http://127.0.0.1:{port}", "ports": [port],
                             "token_file": "data/api.token"}},
        "workloads": {"w": {"http": {"service": "api", "rate": "20/s",
                                     "headers": {"Authorization": "Bearer ${token:api}"},
                                     "requests": [{"name": "get", "path": "/x"}]}}}})
    run_dir = start(plan, runs)
    s = wait_for(lambda: (st := status(runs))["state"] == "running"
                 and (st["live"] or {}).get("requests_total") and st, 30, "running with load")
    runner, service = s["runner"]["pid"], s["services"]["api"]["pid"]
    os.kill(runner, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(runner)
             or psutil.Process(runner).status() == "zombie", 10, "the runner to die")
    s = status(runs)
    assert s["state"] == "dead" and "is not running" in s["note"]
    assert psutil.pid_exists(service)  # orphaned, still holding the port
    human = run_cli("status", "--runs", str(runs))
    assert "not running" in human.stdout
    proc = run_cli("stop", "--runs", str(runs))
    assert proc.returncode == 0, proc.stderr
    assert f"stopped service process {service}" in proc.stdout
    assert status(runs)["state"] == "dead"  # the runner died: no verdict of its own
    assert_nothing_left(run_dir, [runner, service])
    out = tmp_path / "collected"
    proc = run_cli("collect", "--runs", str(runs), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (tarball,) = out.glob("*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        assert f"{run_dir.name}/state.json" in names
        for member in tar.getmembers():
            data = tar.extractfile(member)
            if data is not None:
                assert b"tok-0123456789abcdef" not in data.read(), member.name


@pytest.mark.skipif(shutil.which("redis-server") is None and not os.environ.get("CI"),
                    reason="redis-server is not installed (apt-get install -y redis-server)")
@pytest.mark.slow(5)
def test_redis_server_as_a_managed_service(tmp_path: Path) -> None:
    port = free_port()
    plan = write_plan(tmp_path, {
        "name": "redis", "duration": "60s",
        "services": {"redis": {"command": ["redis-server", "--port", str(port), "--bind",
                                           "127.0.0.1", "--save", "", "--appendonly", "no"],
                               "ports": [port], "restart": "always",
                               "ready": {"tcp": f"127.0.0.1:{port}"}}}})
    runs = tmp_path / "runs"
    run_dir = start(plan, runs)
    s = wait_for(lambda: (st := status(runs))["services"].get("redis", {}).get("state") == "up"
                 and st, 30, "redis to be up")
    with socket.create_connection(("127.0.0.1", port), 5) as conn:
        conn.sendall(b"PING\r\n")
        assert conn.recv(64) == b"+PONG\r\n"
    os.kill(s["services"]["redis"]["pid"], signal.SIGKILL)
    wait_for(lambda: status(runs)["services"]["redis"]["restarts"] == 1
             and status(runs)["services"]["redis"]["state"] == "up", 30, "redis to restart")
    assert run_cli("stop", "--runs", str(runs)).returncode == 0
    assert_nothing_left(run_dir, [s["services"]["redis"]["pid"]])


@pytest.mark.slow(4)
def test_supervise_runs_services_until_stopped(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, {
        "name": "sup", "services": {"a": {"command": [*CHATTY]}, "b": {
            "command": [*CHATTY], "depends_on": ["a"]}}})
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "enduro", "supervise", str(plan), "--out",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        def up() -> bool:
            try:
                (run_dir,) = out.iterdir()
                st = json.loads((run_dir / "state.json").read_text())
            except (ValueError, OSError):
                return False
            return st["state"] == "running" and all(
                s["state"] == "up" for s in st["services"].values()) and len(st["services"]) == 2
        wait_for(up, 30, "both services up")
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    (run_dir,) = out.iterdir()
    monitor_a = (run_dir / "services" / "a" / "monitor.log").read_text()
    monitor_b = (run_dir / "services" / "b" / "monitor.log").read_text()
    assert "stopped" in monitor_a and "stopped" in monitor_b
    assert processes_inside(run_dir) == []


@pytest.mark.slow(7)
def test_band_writes_one_row_per_scenario(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, directory = demo
    token = (directory / "demo.token").read_text().strip()
    base = {"duration": "2s",
            "profiles": {"quick": {"duration": "1s"}},
            "workloads": {"w": {"http": {"base": url, "rate": "40/s",
                                         "headers": {"Authorization": f"Bearer {token}"},
                                         "requests": [{"name": "list",
                                                       "path": "/api/v1/downloads"}]}}},
            "rules": ["availability == 100%"]}
    one = write_plan(tmp_path, {"name": "one", **base}, "one.yaml")
    two = write_plan(tmp_path, {"name": "two", **base}, "two.yaml")
    out = tmp_path / "band"
    proc = run_cli("band", str(one), f"{two}:quick", "--out", str(out), "--runs",
                   str(tmp_path / "runs"), "--poll", "0.5s", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = (out / "results.tsv").read_text().splitlines()
    assert rows[0].startswith("scenario\trun_id\tstate\tverdict")
    assert len(rows) == 3
    assert rows[1].startswith("one\t") and rows[2].startswith("two:quick\t")
    assert all("\tcompleted\tpass\t" in r for r in rows[1:])
    assert len(list(out.glob("*.tar.gz"))) == 2
    assert len((out / "status.tsv").read_text().splitlines()) >= 3
    # The token does not leave in a tarball.
    for tarball in out.glob("*.tar.gz"):
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                f = tar.extractfile(member)
                assert f is None or token.encode() not in f.read()


@pytest.mark.slow(4)
def test_fullstack_example_runs(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "fullstack" / "plan.yaml"
    proc = run_cli("run", str(example), "--profile", "smoke", "--duration", "3s", "--out",
                   str(tmp_path / "runs"), env={"API_PORT": str(free_port())})
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    api = run_dir / "services" / "api"
    assert (api / "data" / "api.token").exists()
    assert not (api / "data" / "identity.keys").exists()
    assert f"session = \"{run_dir.name}-api\"" in (api / "config.toml").read_text()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == "pass" and results["ops"]["create"]["requests"] > 5


@pytest.mark.parametrize(("driver", "message"), [
    ({"compose": {"service": "web"}}, "docker"),
    ({"systemd": {"unit": "nginx.service"}}, "systemd"),
])
@pytest.mark.slow(4)
def test_tool_drivers_say_what_is_missing(tmp_path: Path, driver: dict[str, Any],
                                          message: str) -> None:
    if driver.get("systemd") and Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs on this machine")
    plan = write_plan(tmp_path, {"name": "drv", "duration": "1s", "services": {"web": driver}})
    (plan.parent / "docker-compose.yml").write_text("services: {}\n")  # validation wants it
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 3
    assert "service web:" in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("driver", "expected"), [
    ({"compose": {"file": "compose.yaml", "project": "shop", "service": "web"}},
     ["docker info --format {{.ServerVersion}}",
      "docker compose -f {dir}/compose.yaml -p shop up -d web",
      "docker compose -f {dir}/compose.yaml -p shop restart web",
      "docker compose -f {dir}/compose.yaml -p shop stop web"]),
    ({"systemd": {"unit": "web.service", "user": True}},
     ["systemctl --user is-system-running", "systemctl --user start web.service",
      "systemctl --user restart web.service", "systemctl --user stop web.service"]),
])
@pytest.mark.slow(10)
def test_tool_drivers_start_restart_and_stop_through_their_tool(
        tmp_path: Path, driver: dict[str, Any], expected: list[str]) -> None:
    # docker and systemctl stand-ins on PATH run a real HTTP server per service.
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for tool in ("docker", "systemctl"):
        shim = bin_dir / tool
        shim.write_text(f"#!/bin/sh\nexec {sys.executable} {HELPERS / 'fake_tool.py'} "
                        f"{tool} \"$@\"\n")
        shim.chmod(0o755)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    plan = write_plan(tmp_path, {
        "name": "drv", "duration": "8s",
        "services": {"web": {**driver, "url": url,
                             "ready": {"http": f"{url}/", "status": 200, "timeout": "15s"}}},
        "workloads": {"get": {"http": {"service": "web", "rate": "20/s",
                                       "requests": [{"name": "index", "path": "/"}]}}},
        "faults": [{"at": "3s", "restart": "web"}],
        # Recovery judged on errors: the p99 of a 20-request window is its slowest request,
        # which on a shared machine is the scheduler's (a late arrival of the generator alone
        # put windows at 30-40 ms against a 17 ms band). The restart ends once the service is
        # ready, so errors stop in the next window: recover_s < 1 window.
        "fault_policy": {"baseline_band": "100000%"},
        "rules": ["max(recover_s) < 1s"]})
    (plan.parent / "compose.yaml").write_text("services: {}\n")  # validation wants it
    try:
        proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"),
                       env={"PATH": f"{bin_dir}:{os.environ['PATH']}",
                            "FAKE_TOOL_STATE": str(state), "FAKE_TOOL_PORT": str(port)})
        log = state / "calls.log"
        calls = log.read_text().splitlines() if log.exists() else []
        # The actions, in order; the state readings of the crash watch come in between.
        actions = [c for c in calls if not any(f" {w} " in f"{c} " for w in ("ps", "show"))]
        assert actions == [c.replace("{dir}", str(plan.parent)) for c in expected], proc.stderr
        assert any(" ps --all --format json web" in c or " show web.service" in c
                   for c in calls)
        assert proc.returncode == 0, proc.stderr
        assert "kinds available here: restart, command" in proc.stderr
        results = json.loads((only_run(tmp_path / "runs") / "results.json").read_text())
        (fault,) = results["faults"]
        assert fault["kind"] == "restart" and fault["recover_s"] is not None
        assert results["ops"]["index"]["requests"] > 100
        assert not list(state.glob("*.pid"))  # the stop went through the tool
    finally:
        for pid_file in state.glob("*.pid"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
