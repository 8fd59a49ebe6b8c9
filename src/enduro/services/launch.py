"""Launching a service's process and waiting until it is ready, with the token it wrote."""

from __future__ import annotations

from collections.abc import Callable

from enduro.services.entry import ServiceEntry
from enduro.services.monitor import Monitor
from enduro.services.ports import check_ports
from enduro.services.process import describe_exit
from enduro.services.ready import TokenWait, wait_ready

__all__ = ["Launcher"]


class Launcher:
    """Launches services and waits for their readiness; keeps the tokens they wrote."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.tokens: dict[str, str] = {}
        # Called when a restarted service wrote a token other than the one in use.
        self.on_token: Callable[[str, str], None] | None = None

    async def launch(self, entry: ServiceEntry) -> None:
        """Start ``entry``'s process (its ports free) and wait until it is ready."""
        assert entry.process is not None
        check_ports(entry.name, entry.service.ports)
        wait = None
        if entry.service.token_file is not None:
            # Noted before the process starts: after a restart the previous incarnation's
            # file is still there, and its token would be rejected by the new process.
            ready = entry.service.ready
            wait = TokenWait.before_launch(entry.dir / entry.service.token_file,
                                           fresh=ready is None or ready.fresh_token)
        identity = await entry.process.start()
        entry.status.pid = identity.pid
        self.monitor.note(entry, "start", f"started pid {identity.pid}", pid=identity.pid)
        await self.ready(entry, wait)
        if wait is not None:
            token = wait.token
            assert token is not None  # wait_ready returns once it was read
            previous = self.tokens.get(entry.name)
            self.tokens[entry.name] = token
            if previous is not None and previous != token and self.on_token is not None:
                self.monitor.note(entry, "token", "the service wrote a new token")
                self.on_token(entry.name, token)

    async def ready(self, entry: ServiceEntry, token: TokenWait | None = None) -> None:
        """Wait for ``entry``'s readiness probe (and its token file written since the launch,
        ``token``); with neither a probe nor a token file it is ready at once."""
        service = entry.service
        ready = service.ready
        if ready is None and service.token_file is not None:
            from enduro.plan.models import Ready
            ready = Ready(file=service.token_file)
        if ready is None:
            return
        proc = entry.process

        def exited() -> str | None:
            if proc is None or proc.returncode is None:
                return None
            return describe_exit(proc.returncode)

        took = await wait_ready(entry.name, ready, service_dir=entry.dir, output=entry.output,
                                exited=exited, log_from=proc.start_line if proc else 0,
                                token=token, tokens=self.tokens)
        entry.status.ready_s = round(took, 3)
        self.monitor.note(entry, "ready", f"ready after {took:.2f}s", took_s=round(took, 3))
