"""Starting and stopping the processes tests need: only the ones the test started, by pid."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# Ports this test process already handed out: a test may take two before starting either.
_HANDED_OUT: set[int] = set()


def _port_slice() -> range:
    """The ports this test process hands out: below the kernel's ephemeral range, so an
    outgoing connection can never take a port between ``free_port`` and the server's bind,
    and one slice per xdist worker, so parallel workers never hand out the same port."""
    low_ephemeral = 32768
    with contextlib.suppress(OSError, ValueError):
        low_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    # 10000-23999: the demo's restartable ports (enduro.demo.launch) come from 24000 up.
    first, last = 10000, min(24000, max(10000 + 4000, low_ephemeral)) - 1
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker) if worker.isdigit() else 0
    width = (last - first) // max(count, 1)
    return range(first + index * width, first + (index + 1) * width)


def free_port() -> int:
    """A loopback port nothing listens on, outside the ephemeral range (see ``_port_slice``);
    successive calls in one process hand out different ports."""
    ports = _port_slice()
    if len(_HANDED_OUT) > len(ports) // 2:
        _HANDED_OUT.clear()  # long since released by the tests that took them
    start = random.randrange(len(ports))
    for step in range(len(ports)):
        port = ports[(start + step) % len(ports)]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            if port in _HANDED_OUT:
                continue
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError(f"no free loopback port in {ports}")


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true (returned), or fail after
    ``timeout`` seconds naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def only_run(out: Path) -> Path:
    """The one run directory under ``out``."""
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def python_server(script: Path, *args: str) -> Iterator[str]:
    """Run a helper server that prints ``listening on URL``; yield the URL."""
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), f"helper server said {line!r}"
        yield line.split()[-1]
    finally:
        stop(proc)


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "ok\\n"; }}
    location /json {{ default_type application/json; return 200 '{{"state":"completed"}}'; }}
    location /missing {{ return 404; }}
    location /boom {{ return 503; }}
  }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


@contextlib.contextmanager
def nginx(workdir: Path, cpu: int | None = None) -> Iterator[str]:
    """A throwaway nginx on a free loopback port; yield its base URL."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (apt-get install -y nginx-light)")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=port))
    cmd = [binary, "-c", str(conf), "-p", str(workdir)]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
