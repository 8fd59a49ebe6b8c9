"""A stand-in for ``docker``, ``systemctl`` and ``journalctl`` that runs a real HTTP server
per service.

Installed on PATH by the tests under those names (``fake_tool.py docker ...``). It records
every call in ``$FAKE_TOOL_STATE/calls.log``. Start runs a keeper in its own session, which
runs ``python3 -m http.server $FAKE_TOOL_PORT`` with its output in ``NAME.log``, keeps the
server's pid in ``NAME.pid`` while it runs and its exit code (128 + signal, as docker and
systemd report a killed process) in ``NAME.exit`` once it has ended. Stop ends exactly that
server; restart does both. State is answered as the real tools answer it (``docker compose
ps --format json``: one JSON object per line; ``systemctl show``: ``Key=Value`` lines), logs
as ``docker compose logs`` and ``journalctl -o cat`` print them. With
``FAKE_TOOL_SELF_RESTART=1`` the keeper restarts a server that died on its own, as systemd
does with ``Restart=on-failure``, and counts it in ``NRestarts``. So the drivers and the crash
supervision are tested against real processes, without a Docker engine or a running systemd.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.environ.get("FAKE_TOOL_STATE", "."))
PORT = os.environ.get("FAKE_TOOL_PORT", "0")
SELF_RESTART = os.environ.get("FAKE_TOOL_SELF_RESTART") == "1"


def path(name: str, what: str) -> Path:
    return STATE / f"{name}.{what}"


def alive(pid: int) -> bool:
    """False once the process is gone or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def running_pid(name: str) -> int | None:
    try:
        pid = int(path(name, "pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def keep(name: str) -> None:
    """The keeper: run the server, note its pid and how it ended (restart it if asked)."""
    path(name, "keeper").write_text(str(os.getpid()))
    while True:
        with path(name, "log").open("a") as log:
            proc = subprocess.Popen(
                [sys.executable, "-u", "-m", "http.server", PORT, "--bind", "127.0.0.1"],
                stdout=log, stderr=subprocess.STDOUT, cwd=STATE)
        path(name, "exit").unlink(missing_ok=True)
        path(name, "pid").write_text(str(proc.pid))
        code = proc.wait()
        code = 128 - code if code < 0 else code
        path(name, "exit").write_text(str(code))
        path(name, "pid").unlink(missing_ok=True)
        if not SELF_RESTART or path(name, "stopping").exists():
            path(name, "keeper").unlink(missing_ok=True)
            return
        restarts = path(name, "restarts")
        restarts.write_text(str(int(restarts.read_text() or 0) + 1 if restarts.exists() else 1))


def start(name: str) -> None:
    if running_pid(name) is not None:
        return
    path(name, "stopping").unlink(missing_ok=True)
    subprocess.Popen([sys.executable, __file__, "_keep", name], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                     start_new_session=True)
    deadline = time.monotonic() + 10
    while running_pid(name) is None and time.monotonic() < deadline:
        time.sleep(0.02)


def stop(name: str) -> None:
    path(name, "stopping").write_text("")
    pid = running_pid(name)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while path(name, "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def exit_code(name: str) -> int | None:
    try:
        return int(path(name, "exit").read_text())
    except (OSError, ValueError):
        return None


def end_all(state: Path) -> None:
    """For a test's cleanup: end every keeper (first, so none restarts its server) and
    server the stand-in started under ``state``, by pid."""
    for suffix in ("keeper", "pid"):
        for pid_file in state.glob(f"*.{suffix}"):
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError, OSError):
                pass


def tail(name: str, lines: int) -> list[str]:
    try:
        return path(name, "log").read_text().splitlines()[-lines:]
    except OSError:
        return []


def compose_ps(name: str) -> None:
    pid, code = running_pid(name), exit_code(name)
    if pid is None and code is None:
        return  # no container yet: docker compose prints nothing
    state = "running" if pid is not None else "exited"
    print(json.dumps({"Name": f"shop-{name}-1", "Service": name, "State": state,
                      "ExitCode": 0 if pid is not None else code}))


def systemctl_show(name: str) -> None:
    pid, code = running_pid(name), exit_code(name)
    restarts = path(name, "restarts")
    stopping = path(name, "stopping").exists()
    active, sub = (("active", "running") if pid is not None
                   else ("inactive", "dead") if stopping or code in (None, 0)
                   else ("failed", "failed"))
    print(f"ActiveState={active}\nSubState={sub}\nMainPID={pid or 0}\n"
          f"ExecMainStatus={code or 0}\nExecMainCode={2 if (code or 0) > 128 else 1}\n"
          f"NRestarts={restarts.read_text() if restarts.exists() else 0}")


def positional(args: list[str]) -> list[str]:
    """The arguments that are not options or option values."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-f", "-p", "--tail", "--format", "-n", "-u", "-o"):
            skip = True
        elif not arg.startswith("-"):
            out.append(arg)
    return out


def main(argv: list[str]) -> int:
    tool, args = argv[0], argv[1:]
    if tool == "_keep":
        keep(args[0])
        return 0
    with (STATE / "calls.log").open("a") as log:
        log.write(" ".join([tool, *args]) + "\n")
    if tool == "journalctl":
        unit = args[args.index("-u") + 1]
        print("\n".join(tail(unit, int(args[args.index("-n") + 1]))))
        return 0
    if tool == "docker":
        if args[:1] == ["info"]:
            print("27.0.0")
            return 0
        # docker compose -f FILE [-p P] VERB [options] SERVICE
        verb, *rest = positional(args[1:])
        name = rest[-1]
        if verb == "ps":
            compose_ps(name)
            return 0
        if verb == "logs":
            lines = tail(name, int(args[args.index("--tail") + 1]))
            print("\n".join(f"{name}-1  | {line}" for line in lines))
            return 0
    else:
        args = [a for a in args if a != "--user"]
        if args == ["is-system-running"]:
            print("running")
            return 0
        verb, name = positional(args)[:2]
        if verb == "show":
            systemctl_show(name)
            return 0
    if verb in ("up", "start"):
        start(name)
    elif verb == "stop":
        stop(name)
    elif verb == "restart":
        stop(name)
        start(name)
    else:
        print(f"fake {tool}: unknown verb {verb}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
