"""A poll that never held is a failure with its elapsed time as latency, and latency rules read
it as "never": they cannot pass by leaving out the cases that never became visible."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_streams_flows import run, token


@pytest.mark.slow(5)
def test_a_poll_that_never_held_fails_the_latency_rule(tmp_path: Path,
                                                       demo: tuple[str, Path]) -> None:
    url, _ = demo
    # One flow in four picks a listing whose limit never satisfies the poll.
    code, results, err = run(tmp_path, {
        "name": "never", "duration": "3s", "seed": 5,
        "workloads": {"f": {"flow": {
            "base": url, "connections": 1,
            "headers": {"Authorization": f"Bearer {token(demo)}"},
            "steps": [
                {"name": "pick", "request": {"path": "/api/v1/downloads",
                                             "query": {"limit": "{{choice(1|1|1|200)}}"}},
                 "capture": {"n": "$.limit"}},
                {"name": "visible", "request": {"path": "/api/v1/downloads",
                                                "query": {"limit": "{{n}}"}},
                 "until": "$.limit < 100", "within": "300ms", "every": "50ms"}]}}},
        "rules": ["max(latency{op=f.visible}) < 10s", "p50(latency{op=f.visible}) < 10s"]})
    assert code == 1, err
    visible = results["ops"]["f.visible"]
    never = visible["errors_by_class"].get("until_timeout", 0)
    assert 0 < never < visible["requests"], visible
    # The time it waited is recorded: it is the worst latency of the op.
    assert visible["latency_ms"]["max"] >= 250
    rules = {r["rule"]: r for r in results["rules"]}
    worst = rules["max(latency{op=f.visible}) < 10s"]
    assert not worst["passed"] and worst["observed_text"] == "never"
    assert rules["p50(latency{op=f.visible}) < 10s"]["passed"]
