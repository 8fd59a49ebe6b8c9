"""Services started by another tool: ``docker compose`` and ``systemctl``.

Besides start, stop and restart, the driver reads the service's state the way an operator
would (``docker compose ps --format json``; ``systemctl show`` for MainPID, ActiveState,
ExecMainStatus and NRestarts) and its last log lines (``docker compose logs --tail N``;
``journalctl -u UNIT -n N``), so that a crash is noticed and kept as for a process enduro
launched itself."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enduro.base.errors import RunError
from enduro.plan.models import Service

__all__ = ["DriverUnavailable", "ToolDriver", "ToolState"]


# States of ``systemctl is-system-running`` in which units can be started.
_SYSTEMD_UP = frozenset({"running", "degraded", "starting", "initializing", "maintenance"})


class DriverUnavailable(RunError):
    """The tool a service's driver needs is missing or cannot work here."""


@dataclass(frozen=True)
class ToolState:
    """A tool-run service as its tool reports it."""

    running: bool
    exit_code: int | None = None
    pid: int | None = None
    restarts: int | None = None  # restarts the tool made itself (systemd's NRestarts)
    detail: str = ""  # the tool's own words: "exited (137)", "failed (killed, 9)"


# systemd states in which the unit's process runs (or is being brought up by us).
_SYSTEMD_RUNNING = frozenset({"active", "reloading", "activating", "deactivating"})
# docker compose states in which the container runs.
_COMPOSE_RUNNING = frozenset({"running", "paused"})


def _compose_rows(text: str) -> list[dict[str, Any]]:
    """``docker compose ps --format json``: a JSON array before Compose 2.21, one JSON object
    per line since."""
    text = text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = data if isinstance(data, list) else [data]
    return [r for r in rows if isinstance(r, dict)]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class ToolDriver:
    """start / stop / restart a compose service or a systemd unit through its tool."""

    def __init__(self, name: str, service: Service, base_dir: Path) -> None:
        self.name = name
        self.service = service
        self.base_dir = base_dir

    def _argv(self, action: str) -> list[str]:
        if self.service.compose is not None:
            verb = {"start": ["up", "-d"], "stop": ["stop"], "restart": ["restart"]}[action]
            return [*self._compose_base(), *verb, self.service.compose.service]
        assert self.service.systemd is not None
        s = self.service.systemd
        return ["systemctl", *(["--user"] if s.user else []), action, s.unit]

    async def check(self) -> None:
        """Fail with a clear reason when the tool or its engine is not there."""
        if self.service.compose is not None:
            if shutil.which("docker") is None:
                raise DriverUnavailable(f"service {self.name}: 'docker' is not installed, so "
                                        "the compose driver cannot run")
            code, out = await self._run(["docker", "info", "--format", "{{.ServerVersion}}"])
            if code != 0:
                raise DriverUnavailable(f"service {self.name}: the Docker engine is not "
                                        f"reachable (docker info: {out.strip()[:200]})")
        else:
            if shutil.which("systemctl") is None:
                raise DriverUnavailable(f"service {self.name}: 'systemctl' is not installed, "
                                        "so the systemd driver cannot run")
            # Asked of systemctl itself, so a user manager or a container with systemd counts.
            user = ["--user"] if self.service.systemd and self.service.systemd.user else []
            code, out = await self._run(["systemctl", *user, "is-system-running"])
            state = out.strip().splitlines()[-1] if out.strip() else ""
            if state not in _SYSTEMD_UP:
                raise DriverUnavailable(
                    f"service {self.name}: systemd is not running on this machine "
                    f"(systemctl is-system-running: {state or code})")

    @staticmethod
    async def _run(args: list[str], timeout: float = 120.0) -> tuple[int, str]:
        """Run the tool; a call that hangs (an engine that does not answer) is killed after
        ``timeout`` and reported as failed, so that no call can hold up a run's end."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            return 127, str(exc)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return 124, f"no answer within {timeout:g}s"
        return proc.returncode or 0, out.decode(errors="replace")

    def _compose_base(self) -> list[str]:
        assert self.service.compose is not None
        c = self.service.compose
        return ["docker", "compose", "-f", str(self.base_dir / c.file),
                *(["-p", c.project] if c.project else [])]

    async def state(self) -> ToolState | None:
        """The service's state as its tool reports it; None when the tool could not say
        (the call failed or its output did not parse), which is not a crash."""
        if self.service.compose is not None:
            name = self.service.compose.service
            code, out = await self._run([*self._compose_base(), "ps", "--all", "--format",
                                         "json", name], timeout=15.0)
            if code != 0:
                return None
            try:
                rows = _compose_rows(out)
            except ValueError:
                return None
            rows = [r for r in rows if r.get("Service", name) == name] or rows
            if not rows:
                return ToolState(False, detail="no container")
            row = rows[0]
            state = str(row.get("State", "")).lower()
            exit_code = _int(row.get("ExitCode"))
            return ToolState(state in _COMPOSE_RUNNING, exit_code=exit_code,
                             detail=f"{state} ({exit_code})" if exit_code is not None else state)
        assert self.service.systemd is not None
        s = self.service.systemd
        code, out = await self._run([
            "systemctl", *(["--user"] if s.user else []), "show", s.unit,
            "--property=ActiveState,SubState,MainPID,ExecMainStatus,ExecMainCode,NRestarts"],
            timeout=15.0)
        if code != 0:
            return None
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        active, sub = props.get("ActiveState", ""), props.get("SubState", "")
        if not active:
            return None
        pid = _int(props.get("MainPID"))
        # "activating (auto-restart)": the process died and systemd is about to restart it.
        running = active in _SYSTEMD_RUNNING and sub != "auto-restart"
        status = _int(props.get("ExecMainStatus"))
        return ToolState(running, exit_code=status, pid=pid or None,
                         restarts=_int(props.get("NRestarts")),
                         detail=f"{active} ({sub}, status {status})")

    async def logs(self, lines: int) -> list[str]:
        """The service's last ``lines`` log lines from its tool (empty if it cannot say)."""
        if self.service.compose is not None:
            argv = [*self._compose_base(), "logs", "--no-color", "--tail", str(lines),
                    self.service.compose.service]
        else:
            assert self.service.systemd is not None
            s = self.service.systemd
            argv = ["journalctl", *(["--user"] if s.user else []), "-u", s.unit, "-n",
                    str(lines), "--no-pager", "-o", "cat"]
        code, out = await self._run(argv, timeout=15.0)
        text = out.splitlines()
        return text[-lines:] if code == 0 else [f"({' '.join(argv[:3])} ... failed ({code}): "
                                                 f"{out.strip()[-300:]})"]

    async def act(self, action: str) -> None:
        code, out = await self._run(self._argv(action))
        if code != 0:
            raise RunError(f"service {self.name}: {' '.join(self._argv(action))} failed "
                           f"({code}): {out.strip()[-500:]}")
