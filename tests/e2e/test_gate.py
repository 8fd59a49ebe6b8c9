"""The gate on real pytest-benchmark and hyperfine output produced here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

BENCH = """
def work(n):
    return sum(i * i for i in range(n))

def test_squares(benchmark):
    benchmark(work, {n})

def test_steady(benchmark):
    benchmark(work, 500)
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def project(tmp_path: Path) -> Path:
    repo = tmp_path / "proj"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "test_bench.py").write_text(BENCH.format(n=2000))
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    return repo


COMMAND = (f"{sys.executable} -m pytest -q -p no:cacheprovider test_bench.py "
           "--benchmark-json=bench.json --benchmark-save-data --benchmark-min-rounds=40 "
           "--benchmark-max-time=0.5")


# Two runs of the same code on a shared machine differ by a few percent (drift between runs,
# which no within-run statistic sees), so the real-output tests allow 20%.
LAX = {"ENDURO_GATE_REGRESSION_PCT": "20"}
# Runs of the same code a minute apart drifted by up to +85% on a busy 2-core machine (the
# gate compares sequential runs; no within-run statistic sees drift between them). The git-ref
# test allows 200% and makes the real regression far larger (16x the work).
LAXER = {"ENDURO_GATE_REGRESSION_PCT": "200"}


@pytest.mark.slow(15)
def test_gate_against_a_git_ref_passes_the_same_code(tmp_path: Path) -> None:
    repo = project(tmp_path)
    same = run_cli("gate", "compare", "--base-ref", "HEAD", "--command", COMMAND,
                   "--result", "bench.json", "--out", str(tmp_path / "same"), cwd=repo,
                   timeout=300, env=LAXER)
    assert same.returncode == 0, same.stdout + same.stderr
    report = json.loads((tmp_path / "same" / "comparison.json").read_text())
    assert report["passed"] and len(report["cases"]) == 2


@pytest.mark.slow(15)
def test_gate_against_a_git_ref_catches_a_regression(tmp_path: Path) -> None:
    repo = project(tmp_path)
    # Head does 16x the work in one case: that case regresses, the other does not.
    (repo / "test_bench.py").write_text(BENCH.format(n=32000))
    slower = run_cli("gate", "compare", "--base-ref", "HEAD", "--command", COMMAND,
                     "--result", "bench.json", "--out", str(tmp_path / "slower"), cwd=repo,
                     timeout=300, env=LAXER)
    assert slower.returncode == 1, slower.stdout + slower.stderr
    report = json.loads((tmp_path / "slower" / "comparison.json").read_text())
    verdicts = {c["case"].split("::")[-1]: c for c in report["cases"]}
    assert verdicts["test_squares"]["verdict"] == "regressed"
    assert 400 < verdicts["test_squares"]["delta_pct"] < 5000
    assert verdicts["test_steady"]["verdict"] == "inconclusive"
    md = (tmp_path / "slower" / "comparison.md").read_text()
    assert "FAIL" in md and "regressed" in md and "noise floor" in md
    for name in ("base_summary.json", "head_summary.json"):
        assert (tmp_path / "slower" / name).exists()


@pytest.mark.skipif(shutil.which("hyperfine") is None, reason="hyperfine is not installed")
@pytest.mark.slow(9)
def test_gate_on_hyperfine_files_with_thresholds(tmp_path: Path) -> None:
    def run(out: str, seconds: str) -> Path:
        path = tmp_path / out
        subprocess.run(["hyperfine", "-N", "--runs", "30", "--warmup", "2", "--export-json",
                        str(path), "-n", "sleeper", f"sleep {seconds}"], check=True,
                       capture_output=True)
        return path
    # Twice as slow: +50% (0.03 s) drowned in a busy machine's wake-up delays (not flagged).
    base, same, slow = run("a.json", "0.02"), run("b.json", "0.02"), run("c.json", "0.04")
    snap = run_cli("gate", "snapshot", str(base), "--out", str(tmp_path / "base.json"))
    assert snap.returncode == 0
    ok = run_cli("gate", "compare", "--base", str(tmp_path / "base.json"), "--head", str(same),
                 "--out", str(tmp_path / "g1"), env=LAX)
    assert ok.returncode == 0, ok.stdout
    bad = run_cli("gate", "compare", "--base", str(base), "--head", str(slow), "--out",
                  str(tmp_path / "g2"), env=LAX)
    assert bad.returncode == 1 and "sleeper" in bad.stdout
    # Thresholds from a file and the environment: 150% regression allowed; one case must be
    # compared, so an exclude-all filter fails the gate.
    config = tmp_path / "gate.toml"
    config.write_text("[gate]\nregression_pct = 150\n")
    lax = run_cli("gate", "compare", "--base", str(base), "--head", str(slow), "--config",
                  str(config), "--out", str(tmp_path / "g3"))
    assert lax.returncode == 0, lax.stdout
    none = run_cli("gate", "compare", "--base", str(base), "--head", str(slow), "--out",
                   str(tmp_path / "g4"), env={"ENDURO_GATE_EXCLUDE": "sleeper"})
    assert none.returncode == 1 and "only 0 case(s) compared" in none.stdout
