"""``enduro run|start --dashboard``: the dashboard started with a run, in a process of its own
(so it adds no work to the runner), serving until the run's runner has ended.

The command binds the address itself before the run starts, so a busy port is known at
once: the next free port is taken (and said), and the listening socket is handed to the
dashboard's process. The token of an address off loopback travels in its environment, never
on a command line others can read."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from enduro.base.errors import RunError
from enduro.dashboard.access import Listen, new_token
from enduro.run.rundir import RunDir

__all__ = ["PORTS_TRIED", "TOKEN_ENV", "Bound", "bind", "fresh_run_dir", "spawn"]

PORTS_TRIED = 10
"""A busy port: this many ports after it are tried, the first free one taken."""
TOKEN_ENV = "ENDURO_DASHBOARD_TOKEN"


@dataclass
class Bound:
    """A listening socket for the dashboard, where it is, and the token it requires (off
    loopback). ``note`` says why the port is not the one asked for."""

    sock: socket.socket
    listen: Listen
    port: int
    token: str | None
    note: str | None

    @property
    def url(self) -> str:
        base = self.listen.url(self.port)
        return f"{base}?token={self.token}" if self.token else base

    def lines(self) -> list[str]:
        """What the command prints, once."""
        out = [self.note] if self.note else []
        out.append(f"dashboard: {self.url}")
        if self.token:
            out.append("every request must carry this token (?token= or 'Authorization: "
                       "Bearer'); it is not shown again")
        return out


def _listener(listen: Listen, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if listen.family_v6 else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listen.host, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


def bind(listen: Listen) -> Bound:
    """Listen on ``listen``, or on the first free one of the ``PORTS_TRIED`` ports after a
    busy one; a ``RunError`` (exit 3) when none is free or the address is not this
    machine's."""
    where = listen.url().removeprefix("http://").rstrip("/")
    last = min(listen.port + PORTS_TRIED, 65535) if listen.port else 0
    for port in range(listen.port, last + 1):
        try:
            sock = _listener(listen, port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise RunError(f"--dashboard {where}: cannot listen there "
                               f"({exc.strerror or exc})") from None
            continue
        note = None if port == listen.port else (
            f"{where} is in use: the dashboard listens on port {port} instead")
        return Bound(sock, listen, sock.getsockname()[1],
                     None if listen.loopback else new_token(), note)
    raise RunError(f"--dashboard {where}: the port and the {PORTS_TRIED} after it are in use; "
                   "give another, e.g. --dashboard 127.0.0.1:0 for any free port")


def fresh_run_dir(out: Path, plan_name: str, tag: str | None) -> Path:
    """A new run directory's path for the plan (made, empty), so the dashboard can be
    pointed at it before the run begins."""
    run_dir = out / RunDir.name_for(plan_name, tag, time.time())
    base, n = run_dir, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    RunDir.adopt(run_dir)
    return run_dir


def spawn(bound: Bound, run_dir: Path, until_pid: int) -> subprocess.Popen[bytes]:
    """Start ``enduro dashboard`` on the bound socket in a session of its own, serving
    ``run_dir`` until process ``until_pid`` (the run's runner) has ended; its output goes to
    ``logs/dashboard.out`` of the run directory. The socket is closed here."""
    log_dir = run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    if bound.token:
        env[TOKEN_ENV] = bound.token
    fd = bound.sock.fileno()
    # The run named apart from its parent: `enduro stop` ends every process whose command
    # line holds the run directory, and this one is to show the end before it goes.
    args = [sys.executable, "-m", "enduro", "dashboard", run_dir.name, "--runs",
            str(run_dir.resolve().parent), "--listen", bound.listen.url(bound.port).removeprefix("http://").rstrip("/"),
            "--listen-fd", str(fd),
            "--until-pid", str(until_pid)]
    with (log_dir / "dashboard.out").open("ab") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                pass_fds=(fd,), start_new_session=True, env=env)
    bound.sock.close()
    return proc
