"""A managed local process: launched in its own session, output captured, stopped by policy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

import psutil

from enduro.base.errors import RunError
from enduro.plan.models import Service
from enduro.services.identity import ProcessIdentity, kill_group, signal_number
from enduro.services.output import OutputLog
from enduro.services.stage import argv, contained, render_string

__all__ = ["ManagedProcess", "describe_exit"]


def describe_exit(code: int | None) -> str:
    """``exited with code 3`` or ``was killed by SIGKILL``."""
    if code is None:
        return "is running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class ManagedProcess:
    """One incarnation at a time of a service's process."""

    def __init__(self, name: str, service: Service, service_dir: Path,
                 variables: dict[str, object], output: OutputLog) -> None:
        self.name = name
        self.service = service
        self.dir = service_dir
        self.variables = variables
        self.output = output
        self.proc: asyncio.subprocess.Process | None = None
        self.identity: ProcessIdentity | None = None
        self._pump: asyncio.Task[None] | None = None
        self.pid_file = service_dir / "pid.json"
        self.start_line = 0  # the output line count when this incarnation started

    @property
    def cwd(self) -> Path:
        if self.service.cwd is None:
            return self.dir
        cwd = Path(render_string(self.service.cwd, dict(self.variables)))
        return cwd if cwd.is_absolute() else self.dir / cwd

    async def start(self) -> ProcessIdentity:
        assert self.service.command is not None
        command = self.service.command
        env = {**os.environ, **{k: render_string(v, dict(self.variables))
                                for k, v in self.service.env.items()}}
        cwd = self.cwd
        if cwd.is_absolute() and not cwd.is_relative_to(self.dir):
            # An absolute cwd is used as it is (validation saw it exists), never created.
            if not cwd.is_dir():
                raise RunError(f"service {self.name}: cwd {cwd} is not a directory")
        else:
            contained(self.name, cwd, self.dir).mkdir(parents=True, exist_ok=True)
        self.start_line = self.output.lines_seen
        try:
            if isinstance(command, str):
                self.proc = await asyncio.create_subprocess_shell(
                    render_string(command, dict(self.variables)), cwd=cwd, env=env,
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT, start_new_session=True, limit=1 << 20)
            else:
                args = [render_string(a, dict(self.variables)) for a in argv(command)]
                self.proc = await asyncio.create_subprocess_exec(
                    *args, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True, limit=1 << 20)
        except OSError as exc:
            raise RunError(f"service {self.name}: cannot start {command!r}: "
                           f"{exc.strerror or exc}") from exc
        assert self.proc.stdout is not None
        self._pump = asyncio.get_running_loop().create_task(self.output.pump(self.proc.stdout))
        try:
            self.identity = ProcessIdentity.of(self.proc.pid)
        except psutil.Error:
            # It died at once; the identity is what we know.
            self.identity = ProcessIdentity(self.proc.pid, 0.0, [], str(cwd))
        tmp = self.pid_file.with_name(".pid.json.tmp")
        tmp.write_text(json.dumps(self.identity.to_json()))
        os.replace(tmp, self.pid_file)
        self.output.mark(f"started pid {self.proc.pid}")
        return self.identity

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    async def wait(self) -> int:
        assert self.proc is not None
        code = await self.proc.wait()
        if self._pump is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._pump), 2.0)
        return code

    def signal(self, sig: int) -> bool:
        """Signal the process group, after checking the process is still ours."""
        if self.proc is None or self.proc.returncode is not None:
            return False
        if self.identity is not None and self.identity.create_time and \
                not self.identity.alive():
            return False
        return kill_group(self.proc.pid, sig)

    async def stop(self) -> int | None:
        """The stop policy: the plan's signal to the group, then SIGKILL after the grace."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            policy = self.service.stop
            self.output.mark(f"stopping with {policy.signal} (grace {policy.grace:g}s)")
            self.signal(signal_number(policy.signal))
            try:
                await asyncio.wait_for(self.proc.wait(), policy.grace)
            except TimeoutError:
                self.output.mark("grace over: SIGKILL to the process group")
                self.signal(signal.SIGKILL)
                await self.proc.wait()
        # Children that outlived the leader still belong to the group.
        kill_group(self.proc.pid, signal.SIGKILL, alone_too=False)
        code = await self.wait()
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        return code
