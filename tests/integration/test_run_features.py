"""Run features end to end in-process: TLS, ramps, heartbeats, snapshots, live view, aborts."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from enduro.plan import load_plan
from enduro.run.run import Run, RunOptions
from tests.conftest import HELPERS
from tests.helpers.plans import http_plan, run_plan, write_plan
from tests.helpers.procs import python_server


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
    (snap,) = sorted((run_dir / "snapshots").iterdir())
    data = json.loads(snap.read_text())
    assert data["ops"]["health"]["requests"] >= 90
    events = [json.loads(line)["event"] for line in (run_dir / "events.jsonl").open()]
    assert events.count("heartbeat") >= 2 and "snapshot" in events


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
