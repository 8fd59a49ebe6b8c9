"""The pytest plugin's fixtures, used as a project's own battle tests would use them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.procs import free_port


@pytest.fixture(scope="module")
def racy_demo() -> Any:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "enduro.demo.server", "--port", str(port),
                             "--token", "t0k", "--defect", "idempotency-race"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().startswith("listening")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_burst_fixture_on_a_correct_service(enduro_burst: Any,
                                            demo: tuple[str, Path]) -> None:
    url, directory = demo
    token = (directory / "demo.token").read_text().strip()
    result = enduro_burst(f"{url}/api/v1/downloads", size=40, method="POST",
                          headers={"Authorization": f"Bearer {token}",
                                   "Idempotency-Key": f"plugin-{free_port()}"},
                          json={"url": "https://plugin/1"})
    assert result.split == {201: 1, 200: 39}
    assert not result.errors and len(result.latencies) == 40


def test_burst_fixture_catches_the_race(enduro_burst: Any, racy_demo: str) -> None:
    result = enduro_burst(f"{racy_demo}/api/v1/downloads", size=20, method="POST",
                          headers={"Authorization": "Bearer t0k", "Idempotency-Key": "k"},
                          json={"url": "https://plugin/2"})
    assert result.count(201) > 1  # the defect: one key, several creates


def test_history_fixture(enduro_history: Any) -> None:
    h = enduro_history
    w = h.invoke("c1", "write", "k", 1)
    h.ok(w)
    r = h.invoke("c2", "read", "k")
    h.ok(r, [1])
    h.assert_valid("lost_writes", "garbage_reads")
    w2 = h.invoke("c1", "write", "k", 2)
    h.ok(w2)
    r2 = h.invoke("c2", "read", "k")
    h.ok(r2, [1])
    with pytest.raises(AssertionError, match="lost_writes: write of 2 was acknowledged"):
        h.assert_valid("lost_writes")
