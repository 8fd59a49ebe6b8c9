"""Run features end to end in-process: TLS, ramps, heartbeats, snapshots, live view, aborts."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from enduro.plan import load_plan
from enduro.run.correctness import Correctness
from enduro.run.run import Run, RunOptions
from tests.conftest import HELPERS
from tests.helpers.plans import http_plan, run_plan, write_plan
from tests.helpers.procs import free_port, python_server


def token(demo: tuple[str, Path]) -> str:
    return (demo[1] / "demo.token").read_text().strip()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def test_tls_with_a_trusted_ca(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    with python_server(HELPERS / "stall_server.py", "0", "1000", "0", str(cert[0]),
                       str(cert[1])) as url:
        assert url.startswith("https://")
        plan = http_plan(url, connections=2, duration="2s", tls={"ca": str(cert[0])},
                         requests=[{"name": "get"}], rules=["availability == 100%"])
        ok = run_plan(tmp_path / "ok", plan)
        assert ok.exit_code == 0, ok.results
        assert ok.results is not None and ok.results["total"]["requests"] > 50
        # Without the CA the certificate is refused, and the errors say so.
        plan = http_plan(url, connections=2, duration="1s", requests=[{"name": "get"}])
        bad = run_plan(tmp_path / "bad", plan)
        assert bad.results is not None
        assert set(bad.results["errors_by_class"]) == {"tls"}


def test_ramping_stages_follow_the_schedule(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    plan = http_plan(url, duration="4s", stages=[{"duration": "2s", "target": "200/s"},
                                                 {"duration": "2s", "target": "200/s"}],
                     requests=[{"name": "health", "path": "/health"}])
    results = run_plan(tmp_path, plan).results
    assert results is not None
    # 0 -> 200/s over 2 s is 200 arrivals, then 2 s at 200/s is 400.
    assert results["total"]["requests"] == pytest.approx(600, rel=0.03)


def test_heartbeats_snapshots_and_events(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    plan = http_plan(url, rate="50/s", duration="3.5s",
                     requests=[{"name": "health", "path": "/health"}])
    plan["observe"] = {"heartbeat": "1s", "snapshot": "2s"}
    outcome = run_plan(tmp_path, plan)
    run_dir = outcome.run_dir
    assert run_dir is not None
    log = (run_dir / "logs" / "enduro.log").read_text()
    assert log.count("alive t=") >= 2
    assert "rps=" in log and "p95=" in log
    first, snap = sorted((run_dir / "snapshots").iterdir())
    assert first.name == "snapshot-0000-t0s.json"  # the state the run started from
    assert json.loads(first.read_text())["t"] < 0.5
    data = json.loads(snap.read_text())
    assert data["ops"]["health"]["requests"] >= 90
    assert "resources" in data and "scraped" in data and data["faults_in_force"] == []
    events = [json.loads(line)["event"] for line in (run_dir / "events.jsonl").open()]
    assert events.count("heartbeat") >= 2 and events.count("snapshot") == 2


def test_heartbeat_shows_flows_and_faults_in_force(tmp_path: Path,
                                                   demo: tuple[str, Path]) -> None:
    url, _ = demo
    plan = {"name": "hb", "duration": "3.5s", "grace": "2s",
            "observe": {"heartbeat": "0.5s"},
            "workloads": {"f": {"flow": {"base": url, "rate": "10/s", "steps": [
                {"name": "health", "request": {"path": "/health"}}]}}},
            "faults": [{"at": "1s", "for": "2s", "command": {"run": "true", "undo": "true"}}]}
    run_dir = run_plan(tmp_path / "a", plan).run_dir
    assert run_dir is not None
    lines = [line for line in (run_dir / "logs" / "enduro.log").read_text().splitlines()
             if "alive t=" in line]
    assert all(" rps=" in line and " flows=" in line and " faults=" in line
               for line in lines), lines
    assert any("faults=command" in line for line in lines), lines
    assert "faults=none" in lines[0], lines

    plan["observe"] = {"heartbeat": "0.5s", "heartbeat_fields": ["p99", "restarts"]}
    run_dir = run_plan(tmp_path / "b", plan).run_dir
    assert run_dir is not None
    lines = [line for line in (run_dir / "logs" / "enduro.log").read_text().splitlines()
             if "alive t=" in line]
    assert lines and all(" p99=" in line and " restarts=0" in line and "rps=" not in line
                         for line in lines), lines


def test_live_view_renders_on_a_terminal(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    path = write_plan(tmp_path, http_plan(url, rate="50/s", duration="2.5s",
                                          requests=[{"name": "health", "path": "/health"}]))
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    outcome = Run(load_plan(path), RunOptions(out=tmp_path / "runs", live=True,
                                              handle_signals=False),
                  console=console).main()
    assert outcome.exit_code == 0
    text = screen.getvalue()
    assert "left=" in text and "rps (5s)" in text and "health" in text
    assert "verdict: pass" in text


def test_abort_on_fail_stops_the_run_early(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    plan = http_plan(url, rate="50/s", duration="60s",
                     requests=[{"name": "list", "path": "/api/v1/downloads"}],  # no token: 401
                     rules=[{"rule": "availability >= 90%", "abort_on_fail": True,
                             "grace": "1s"}])
    outcome = run_plan(tmp_path, plan)
    assert outcome.exit_code == 1
    results = outcome.results
    assert results is not None
    assert results["state"] == "stopped" and results["verdict"] == "fail"
    assert results["stop_reason"].startswith("aborted: rule 'availability >= 90%' failed")
    assert results["duration_s"] < 10


def test_authorized_demo_flow(tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    plan = http_plan(url, rate="40/s", duration="2s",
                     headers={"Authorization": f"Bearer {token(demo)}"},
                     requests=[{"name": "create", "method": "POST", "path": "/api/v1/downloads",
                                "headers": {"Idempotency-Key": "{{uuid}}"},
                                "json": {"url": "https://x/{{seq}}"},
                                "expect": {"status": 201, "json": {"$.parts": 4}}}],
                     rules=["availability == 100%"])
    assert run_plan(tmp_path, plan).exit_code == 0


async def _broken_final_phase(_self: object) -> None:
    """A final phase with a defect: it raises after the load."""
    raise KeyError("no such service")


def _results_of(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "results.json").read_text())
    return data


def test_a_crash_in_the_final_phase_still_writes_every_result(
        tmp_path: Path, demo: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = demo
    plan = http_plan(url, rate="20/s", duration="1s", requests=[{"name": "health",
                                                                  "path": "/health"}],
                     rules=["availability == 100%"])
    run = Run(load_plan(write_plan(tmp_path, plan)),
              RunOptions(out=tmp_path / "runs", live=False, handle_signals=False))
    monkeypatch.setattr(Correctness, "final_phase", _broken_final_phase)
    with pytest.raises(KeyError) as caught:
        run.main()
    run_dir = getattr(caught.value, "run_dir", None)
    saved = getattr(caught.value, "traceback_file", None)
    assert isinstance(run_dir, Path) and isinstance(saved, Path)
    assert "final_phase" in saved.read_text() and saved.is_relative_to(run_dir.resolve())
    results = _results_of(run_dir)
    assert results["verdict"] == "incomplete" and results["state"] == "failed"
    assert "KeyError" in results["error"] and results["total"]["requests"] > 0
    assert results["rules_passed"] is True  # what the rules said of the part that ran
    junit = (run_dir / "junit.xml").read_text()
    assert "the run completed" in junit and 'failures="1"' in junit
    assert (run_dir / "report.html").stat().st_size > 1000
    state = json.loads((run_dir / "state.json").read_text())
    assert state["state"] == "failed" and "KeyError" in state["stop_reason"]


def test_a_defect_in_verdict_assembly_still_writes_results(tmp_path: Path,
                                                           demo: tuple[str, Path]) -> None:
    url, _ = demo
    plan = http_plan(url, rate="20/s", duration="1s", requests=[{"name": "health",
                                                                  "path": "/health"}],
                     rules=["availability == 100%"])
    run = Run(load_plan(write_plan(tmp_path, plan)),
              RunOptions(out=tmp_path / "runs", live=False, handle_signals=False))

    def broken(*_args: object) -> None:
        raise ZeroDivisionError("in verdict assembly")

    run.rulebook.final = broken  # type: ignore[method-assign]
    with pytest.raises(ZeroDivisionError) as caught:
        run.main()
    run_dir = getattr(caught.value, "run_dir", None)
    assert isinstance(run_dir, Path)
    results = _results_of(run_dir)
    assert results["verdict"] == "incomplete" and "ZeroDivisionError" in results["error"]
    assert (run_dir / "junit.xml").exists()
    assert json.loads((run_dir / "state.json").read_text())["state"] == "failed"


def test_an_unwritable_results_file_costs_no_other_artefact(tmp_path: Path,
                                                            demo: tuple[str, Path]) -> None:
    url, _ = demo
    run_dir = tmp_path / "runs" / "chosen"
    (run_dir / "results.json").mkdir(parents=True)  # results.json cannot be written
    plan = http_plan(url, rate="20/s", duration="1s", requests=[{"name": "health",
                                                                  "path": "/health"}])
    outcome = run_plan(tmp_path, plan, run_dir=run_dir)
    assert outcome.exit_code == 3 and outcome.error is not None
    assert "results.json" in outcome.error
    assert "the run completed" not in (run_dir / "junit.xml").read_text()
    state = json.loads((run_dir / "state.json").read_text())
    assert state["state"] == "completed"
    assert any(json.loads(line).get("event") == "write_failed"
               for line in (run_dir / "events.jsonl").read_text().splitlines())


@pytest.mark.slow(6)
def test_faults_with_workers_start_at_the_workers_go(tmp_path: Path,
                                                     demo: tuple[str, Path]) -> None:
    """The restart-like outage at 1.5 s must land in windows labelled chaos, not in the
    baseline: with --workers the fault timeline starts when the workers go, not before they
    are spawned."""
    url, _ = demo
    front = free_port()
    plan = http_plan(f"http://127.0.0.1:{front}", rate="100/s", duration="5s",
                     requests=[{"name": "health", "path": "/health"}],
                     rules=["errors{phase=baseline} == 0", "errors{phase=chaos} > 0"])
    plan["proxies"] = {"front": {"listen": f"127.0.0.1:{front}",
                                 "upstream": url.split("//")[1], "http": True}}
    plan["faults"] = [{"at": "1.5s", "for": "1s", "http": {"proxy": "front", "status": 503}}]
    outcome = run_plan(tmp_path, plan, workers=2)
    assert outcome.results is not None
    assert outcome.results["errors_by_class"], "the fault caused no error at all"
    assert outcome.exit_code == 0, outcome.results["rules"]


def test_rules_about_faults_are_not_applicable_to_a_plan_without_faults(
        tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, _ = demo
    plan = http_plan(url, rate="20/s", duration="1.5s",
                     requests=[{"name": "health", "path": "/health"}],
                     rules=["p99(latency{phase=chaos}) < 100ms", "max(recover_s) < 5s",
                            "availability{phase=recovery} >= 99%", "availability >= 99%"])
    results = run_plan(tmp_path, plan).results
    assert results is not None
    assert results["verdict"] == "pass"
    by = {r["rule"]: r for r in results["rules"]}
    for text in ("p99(latency{phase=chaos}) < 100ms", "max(recover_s) < 5s",
                 "availability{phase=recovery} >= 99%"):
        assert by[text]["applicable"] is False and by[text]["passed"] is True, by[text]
        assert "no faults" in by[text]["reason"]
    assert "applicable" not in by["availability >= 99%"]
