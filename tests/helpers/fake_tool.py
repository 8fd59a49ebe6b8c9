"""A stand-in for ``docker`` and ``systemctl`` that runs a real HTTP server per service.

Installed on PATH by the tests under both names (``fake_tool.py docker ...``). It records every
call in ``$FAKE_TOOL_STATE/calls.log``; start runs ``python3 -m http.server $FAKE_TOOL_PORT`` in
its own session and keeps its pid, stop ends exactly that pid, restart does both. So the drivers
are tested against real processes, without a Docker engine or a running systemd.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.environ["FAKE_TOOL_STATE"])
PORT = os.environ.get("FAKE_TOOL_PORT", "0")


def pid_file(name: str) -> Path:
    return STATE / f"{name}.pid"


def start(name: str) -> None:
    if pid_file(name).exists():
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", PORT, "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        cwd=STATE)
    pid_file(name).write_text(str(proc.pid))


def alive(pid: int) -> bool:
    """False once the process is gone or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def stop(name: str) -> None:
    path = pid_file(name)
    if not path.exists():
        return
    pid = int(path.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child any more: poll for it to be gone
            if not alive(pid):
                break
            time.sleep(0.05)
            continue
        if done:
            break
        time.sleep(0.05)
    path.unlink()


def main(argv: list[str]) -> int:
    tool, args = argv[0], argv[1:]
    with (STATE / "calls.log").open("a") as log:
        log.write(" ".join([tool, *args]) + "\n")
    if tool == "docker":
        if args[:1] == ["info"]:
            print("27.0.0")
            return 0
        # docker compose -f FILE [-p P] VERB... SERVICE
        verb, name = args[args.index("-f") + 2:][0], args[-1]
        if verb == "-p":
            verb = args[args.index("-p") + 2]
    else:
        args = [a for a in args if a != "--user"]
        if args == ["is-system-running"]:
            print("running")
            return 0
        verb, name = args[0], args[-1]
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
