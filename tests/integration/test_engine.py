"""The engine against real servers on loopback: the demo service, nginx, a stalling server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.plans import http_plan, run_plan
from tests.helpers.procs import free_port


def token(demo: tuple[str, Path]) -> str:
    return (demo[1] / "demo.token").read_text().strip()


def test_open_model_holds_its_rate_against_the_demo(tmp_path: Path,
                                                    demo: tuple[str, Path]) -> None:
    url, _ = demo
    plan = http_plan(url, rate="200/s", duration="4s",
                     headers={"Authorization": f"Bearer {token(demo)}"},
                     requests=[{"name": "list", "path": "/api/v1/downloads", "weight": 3,
                                "expect": {"status": 200, "json": {"$.limit": 50}}},
                               {"name": "health", "path": "/health", "weight": 1}],
                     rules=["availability == 100%", "rate(requests) > 190/s"])
    outcome = run_plan(tmp_path, plan)
    assert outcome.exit_code == 0, outcome.results
    results = outcome.results
    assert results is not None
    total = results["total"]
    assert total["requests"] == pytest.approx(800, abs=3)
    # The weights split the ops about 3:1.
    assert 0.65 < results["ops"]["list"]["requests"] / total["requests"] < 0.85
    assert results["ops"]["list"]["latency_ms"]["p50"] > 0


def test_closed_model_against_the_demo_with_auth_errors(tmp_path: Path,
                                                        demo: tuple[str, Path]) -> None:
    url, _ = demo
    plan = http_plan(url, connections=4, duration="2s",
                     requests=[{"name": "noauth", "path": "/api/v1/downloads"}],
                     rules=["availability >= 99%"])
    outcome = run_plan(tmp_path, plan)
    assert outcome.exit_code == 1
    results = outcome.results
    assert results is not None
    assert results["errors_by_class"] == {"4xx": results["total"]["requests"]}
    assert results["total"]["requests"] > 100
    (rule,) = results["rules"]
    first_failed = rule.pop("first_failed_s")  # the first live status: the first window or two
    assert rule == {"rule": "availability >= 99%", "observed": 0.0, "observed_text": "0.00%",
                    "passed": False}
    assert 0 < first_failed <= 2


@pytest.mark.nginx
@pytest.mark.parametrize("model", [{"connections": 20}, {"rate": "2000/s"}])
def test_both_models_against_nginx(tmp_path: Path, nginx_url: str,
                                   model: dict[str, object]) -> None:
    plan = http_plan(nginx_url, duration="3s", **model, requests=[
        {"name": "root", "path": "/", "weight": 2, "expect": {"contains": "ok"}},
        {"name": "json", "path": "/json", "expect": {"json": {"$.state": "completed"}}},
        {"name": "boom", "path": "/boom", "weight": 0.5},
        {"name": "missing", "path": "/missing", "weight": 0.5, "expect": {"status": 200}},
    ])
    outcome = run_plan(tmp_path, plan)
    results = outcome.results
    assert results is not None and outcome.exit_code == 0
    ops = results["ops"]
    assert ops["root"]["errors"] == 0 and ops["json"]["errors"] == 0
    assert ops["boom"]["errors"] == ops["boom"]["requests"] > 0
    assert ops["boom"]["errors_by_class"] == {"5xx": ops["boom"]["requests"]}
    assert ops["missing"]["errors_by_class"] == {"4xx": ops["missing"]["requests"]}
    if "rate" in model:
        assert results["total"]["requests"] == pytest.approx(6000, rel=0.02)
    else:
        assert results["total"]["requests"] > 3000


def test_refused_connections_are_classified(tmp_path: Path) -> None:
    # Nothing listens there; the probe at start fails fast with exit code 3 instead of load.
    plan = http_plan(f"http://127.0.0.1:{free_port()}", connections=2, duration="1s",
                     requests=[{"name": "x"}])
    outcome = run_plan(tmp_path, plan)
    assert outcome.exit_code == 3
    assert outcome.error is not None and "cannot connect" in outcome.error
    run_dir = outcome.run_dir
    assert run_dir is not None
    state = json.loads((run_dir / "state.json").read_text())
    assert state["state"] == "failed" and "cannot connect" in state["stop_reason"]


@pytest.mark.slow(5)
def test_timeouts_are_classified(tmp_path: Path, stall_url: str) -> None:
    plan = http_plan(stall_url, connections=2, duration="5s", timeout="300ms",
                     requests=[{"name": "slow"}])
    results = run_plan(tmp_path, plan).results
    assert results is not None
    assert results["errors_by_class"].get("timeout", 0) >= 2
    assert results["ops"]["slow"]["requests"] > results["errors_by_class"]["timeout"]


@pytest.mark.slow(9)
def test_open_model_does_not_omit_the_stall(tmp_path: Path, stall_url: str) -> None:
    """A server that stalls 1 s of every 4 s: requests meant to go out during a stall wait
    for it, so the p99 from the intended send time is near 1 s, as wrk2 reports it. The
    service time (from the actual send) is reported beside it."""
    plan = http_plan(stall_url, rate="100/s", duration="8s", timeout="5s",
                     requests=[{"name": "get"}])
    results = run_plan(tmp_path, plan).results
    assert results is not None
    op = results["ops"]["get"]
    assert op["errors"] == 0
    assert op["requests"] == pytest.approx(800, abs=3)
    lat = op["latency_ms"]
    # About a quarter of the arrivals fall in a stall and wait 0..1 s for it to end.
    assert lat["p99"] >= 800, lat
    assert lat["p50"] < 100, lat
    assert lat["p90"] >= 300, lat
