"""``--cluster``: an address that is none, or ``local`` (Ray would start a cluster inside the
run), is a usage error before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from enduro.cli import main
from tests.helpers.plans import write_plan


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    return write_plan(tmp_path, {
        "name": "c", "duration": "1s",
        "workloads": {"w": {"http": {"base": "http://127.0.0.1:9", "rate": "1/s",
                                     "requests": [{"name": "r", "path": "/"}]}}}})


@pytest.mark.parametrize(("address", "said"), [
    ("", "expected a Ray address"),
    ("nonsense", "expected a Ray address"),
    ("head:0", "expected a Ray address"),
    ("local", "starts none"),
])
def test_a_cluster_address_that_is_none_is_refused(
        plan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, address: str, said: str) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code = main(["run", str(plan), "--workers", "2", "--cluster", address,
                 "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert said in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_auto_reads_ray_address(plan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "local")
    code = main(["start", str(plan), "--workers", "2", "--cluster", "auto",
                 "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "RAY_ADDRESS='local'" in err, err
    assert not (tmp_path / "runs").exists()
