"""``enduro band``: scenarios with their own duration and overrides, names from the plan and
profile, flow latency apart from request latency, and a fresh output folder every time."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers.plans import write_plan


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(), delimiter="\t"))


@pytest.mark.slow(12)
def test_band_scenarios_durations_overrides_and_fresh_folders(
        tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, directory = demo
    token = (directory / "demo.token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    plan = write_plan(tmp_path, {
        "name": "shop", "duration": "30s",  # every scenario below runs shorter
        "profiles": {"quick": {"rules": ["availability == 100%"]}},
        "workloads": {
            "w": {"http": {"base": url, "rate": "20/s", "headers": auth,
                           "requests": [{"name": "list", "path": "/api/v1/downloads"}]}},
            "f": {"flow": {"base": url, "rate": "5/s", "headers": auth, "steps": [
                {"name": "one", "request": {"path": "/api/v1/downloads"}},
                {"name": "two", "request": {"path": "/api/v1/downloads"}}]}}},
        "rules": ["availability >= 99%"]}, "shop.yaml")
    (tmp_path / "band.yaml").write_text(
        "scenarios:\n"
        "  - {plan: shop.yaml, duration: 1s, set: ['workloads.w.http.rate=10/s']}\n")
    runs = tmp_path / "runs"
    proc = run_cli("band", f"{plan}:quick@1s", "--scenarios", str(tmp_path / "band.yaml"),
                   "--runs", str(runs), "--poll", "0.3s", "--out", str(tmp_path / "out"),
                   timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = _rows(tmp_path / "out" / "results.tsv")
    assert [r["scenario"] for r in rows] == ["shop:quick", "shop"]  # plan name and profile
    assert rows[0]["run_id"].startswith("shop-") and rows[0]["run_id"].endswith("-quick")
    assert all(r["state"] == "completed" and r["verdict"] == "pass" for r in rows)
    assert all(float(r["duration_s"]) < 5 for r in rows)  # 1 s each, not the plan's 30 s
    # 10/s from the file's override, for about 1 s (the flow's steps are not requests)
    assert int(rows[1]["requests"]) < int(rows[0]["requests"])
    for row in rows:  # the flow's whole-iteration latency, apart from the requests'
        assert float(row["flow_p95_ms"]) > 0 and float(row["p95_ms"]) > 0
        assert float(row["flow_p99_ms"]) >= float(row["flow_p95_ms"])

    # The same --out again: the first band's results stay; this one gets its own folder.
    again = run_cli("band", f"{plan}@1s", "--runs", str(runs), "--poll", "0.3s", "--out",
                    str(tmp_path / "out"), timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(_rows(tmp_path / "out" / "results.tsv")) == 2
    (inner,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert [r["scenario"] for r in _rows(inner / "results.tsv")] == ["shop"]


@pytest.mark.slow(6)
def test_band_refuses_bad_scenarios(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, {"name": "p", "duration": "1s"}, "p.yaml")
    (tmp_path / "bad.yaml").write_text("scenarios:\n  - {plan: p.yaml, duratio: 1s}\n")
    for args, message in (([f"{plan}@soon"], "@soon"), ([f"{plan}@0s"], "above 0"),
                          (["--scenarios", str(tmp_path / "bad.yaml")], "scenario 1: duratio"),
                          ([], "name at least one scenario")):
        proc = run_cli("band", *args, "--runs", str(tmp_path / "runs"), cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stdout + proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "band").exists()  # nothing was started or written
