from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from enduro.demo.launch import demo_service
from tests.helpers.procs import REPO, nginx, nginx_binary, python_server

HELPERS = REPO / "tests" / "helpers"


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The bundled demo service: (base URL, directory with demo.yaml and demo.token)."""
    with demo_service(tmp_path_factory.mktemp("demo")) as started:
        yield started


@pytest.fixture(scope="session")
def nginx_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if nginx_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing; scripts/test.sh installs nginx-light")
        pytest.skip("nginx is not installed (apt-get install -y nginx-light)")
    with nginx(tmp_path_factory.mktemp("nginx")) as url:
        yield url


@pytest.fixture()
def stall_url() -> Iterator[str]:
    """A server that stalls every answer for 1 s out of every 4 s."""
    with python_server(HELPERS / "stall_server.py", "0", "4", "1") as url:
        yield url


def run_cli(*args: str, timeout: float = 120, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``enduro`` command and wait for it."""
    return subprocess.run([sys.executable, "-m", "enduro", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, **(env or {})})
