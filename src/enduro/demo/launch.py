"""``enduro demo``: start the demo service on a free loopback port and run the bundled plan."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from enduro.base.errors import RunError

__all__ = ["bundled_plan", "demo_service", "restartable_port"]


def restartable_port() -> int:
    """A free loopback port for a demo service enduro will kill and start again on the same
    port. It lies below the kernel's ephemeral range: a port from ``bind(0)`` lies inside it,
    and while the service is down an outgoing connection may take it, so the restart fails
    with "address already in use"."""
    import random
    import socket

    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    # From 24000: below it, enduro's own tests hand out ports to their servers.
    candidates = range(24000, max(low, 26000))
    start = random.randrange(len(candidates))
    for step in range(len(candidates)):
        port = candidates[(start + step) % len(candidates)]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RunError("no free loopback port for the demo service")


def bundled_plan(name: str = "demo") -> str:
    """The text of a plan shipped with enduro (``demo`` or ``durability``)."""
    return resources.files("enduro.demo").joinpath(f"plans/{name}.yaml").read_text()


@contextlib.contextmanager
def demo_service(workdir: Path | None = None, timeout: float = 20.0,
                 defects: tuple[str, ...] = ()) -> Iterator[tuple[str, Path]]:
    """Start the demo service; yield its base URL and a directory holding ``demo.yaml`` and
    ``demo.token``. The service is stopped (SIGTERM, then SIGKILL) on exit."""
    own = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="enduro-demo-")) if workdir is None else workdir
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "demo.yaml").write_text(bundled_plan())
    token_file = directory / "demo.token"
    log = (directory / "demo-service.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "enduro.demo.server", "--port", "0", "--token-file",
         str(token_file), *(a for d in defects for a in ("--defect", d))],
        stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("listening on ") or not line:
                break
        if not line.startswith("listening on "):
            raise RunError(f"the demo service did not start (see {directory}/demo-service.log)")
        url = line.split()[-1]
        yield url, directory
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if own:
            shutil.rmtree(directory, ignore_errors=True)


