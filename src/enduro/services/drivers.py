"""Services started by another tool: ``docker compose`` and ``systemctl``."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from enduro.base.errors import RunError
from enduro.plan.models import Service

__all__ = ["DriverUnavailable", "ToolDriver"]


# States of ``systemctl is-system-running`` in which units can be started.
_SYSTEMD_UP = frozenset({"running", "degraded", "starting", "initializing", "maintenance"})


class DriverUnavailable(RunError):
    """The tool a service's driver needs is missing or cannot work here."""


class ToolDriver:
    """start / stop / restart a compose service or a systemd unit through its tool."""

    def __init__(self, name: str, service: Service, base_dir: Path) -> None:
        self.name = name
        self.service = service
        self.base_dir = base_dir

    def _argv(self, action: str) -> list[str]:
        if self.service.compose is not None:
            c = self.service.compose
            base = ["docker", "compose", "-f", str(self.base_dir / c.file)]
            if c.project:
                base += ["-p", c.project]
            verb = {"start": ["up", "-d"], "stop": ["stop"], "restart": ["restart"]}[action]
            return [*base, *verb, c.service]
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
    async def _run(args: list[str]) -> tuple[int, str]:
        try:
            proc = await asyncio.create_subprocess_exec(
                *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        except OSError as exc:
            return 127, str(exc)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode(errors="replace")

    async def act(self, action: str) -> None:
        code, out = await self._run(self._argv(action))
        if code != 0:
            raise RunError(f"service {self.name}: {' '.join(self._argv(action))} failed "
                           f"({code}): {out.strip()[-500:]}")
