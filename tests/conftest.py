from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enduro.demo.launch import demo_service
from tests.helpers.procs import REPO, nginx, nginx_binary, python_server

HELPERS = REPO / "tests" / "helpers"


# -- in CI a skipped test is a failure: a missing server or tool must fail loudly -------------
def in_ci() -> bool:
    """True when the CI environment variable is set to anything but empty, 0, false or no."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _skipped(config: pytest.Config) -> list[str]:
    """Skipped tests of this session, as "nodeid: reason" (expected failures excluded)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    found = []
    for report in getattr(reporter, "stats", {}).get("skipped", []):
        if hasattr(report, "wasxfail"):
            continue
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        found.append(f"{report.nodeid}: {reason}")
    return found


def expected_seconds(item: pytest.Item) -> float:
    """How long ``item`` takes, as its ``slow(seconds)`` mark says; 0 for an unmarked test."""
    mark = item.get_closest_marker("slow")
    return float(mark.args[0]) if mark is not None and mark.args else 0.0


def start_order(item: pytest.Item) -> tuple[bool, float]:
    """Sort key, first to start first: ``timing`` tests, then the longest."""
    return item.get_closest_marker("timing") is None, -expected_seconds(item)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Longest first: xdist hands tests out in collection order (one at a time with
    # --maxschedchunk=1, see pyproject), so the long runs overlap at the start and the last
    # tests to start are short ones; started last, a 30 s test kept the others idle. Tests that
    # hold latencies to a millisecond go before them: the start, where the runs mostly wait, is
    # the quietest part of a parallel run. The sort is stable: unmarked tests keep pytest's order.
    items.sort(key=start_order)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if in_ci() and exitstatus == pytest.ExitCode.OK and _skipped(session.config):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    skipped = _skipped(config)
    if in_ci() and skipped:
        terminalreporter.section("skipped tests fail the session in CI", sep="=", red=True)
        for line in skipped:
            terminalreporter.line(f"SKIPPED IN CI: {line}", red=True)
        terminalreporter.line("CI is set: install what these tests need (scripts/test.sh "
                              "installs the OS packages) instead of skipping them.", red=True)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The bundled demo service: (base URL, directory with demo.yaml and demo.token)."""
    with demo_service(tmp_path_factory.mktemp("demo")) as started:
        yield started


@pytest.fixture(scope="session")
def nginx_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if nginx_binary() is None:
        if in_ci():
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
    """Run the real ``enduro`` command and wait for it. The child does not inherit the marks
    of a parallel test worker (pytest-benchmark in a gate's command turns itself off when it
    sees ``PYTEST_XDIST_WORKER``)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    return subprocess.run([sys.executable, "-m", "enduro", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env={**base, **(env or {})})
