"""The lines `enduro status` prints for services."""

from __future__ import annotations

from typing import Any

from enduro.detach.control import format_status


def _status(services: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": "r", "state": "running", "elapsed_s": 1.0, "remaining_s": 1.0,
            "runner": {"pid": 1, "alive": True, "heartbeat_age_s": 0.5}, "live": {},
            "services": services, "stop_reason": None, "note": None, "plan": "p",
            "verdict": None}


def test_a_service_without_a_pid_names_its_kind_instead_of_pid_none() -> None:
    text = format_status(_status({
        "api": {"state": "up", "pid": 4242, "restarts": 1, "kind": "process"},
        "db": {"state": "up", "pid": None, "restarts": 0, "kind": "external"},
        "web": {"state": "up", "pid": None, "restarts": 0, "kind": "compose"}}))
    assert "service api: up  pid 4242  restarts 1" in text
    assert "service db: up  (external)  restarts 0" in text
    assert "service web: up  (compose)  restarts 0" in text
    assert "None" not in text
