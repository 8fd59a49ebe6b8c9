"""The documents real runs write, read back through their models and checked against the
committed JSON Schemas: a key a writer adds, renames or retypes without its model (or the model
without the writer) fails here.

Each document must (1) validate through its model with no key the model does not declare,
(2) come out of the model as it went in, and (3) validate against docs/schema/."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from enduro.documents.events import Event, events_in
from enduro.documents.journal import JournalRecord
from enduro.documents.results import Results
from enduro.documents.state import State
from tests.conftest import HELPERS, run_cli
from tests.helpers.plans import write_plan
from tests.helpers.procs import free_port, only_run, wait_for

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schema"
CHATTY = [sys.executable, str(HELPERS / "chatty_service.py")]


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def check_results(run_dir: Path) -> Results:
    raw = json.loads((run_dir / "results.json").read_text())
    doc = Results.read(run_dir / "results.json")
    assert doc.unknown_keys() == [], "results.json keys its model does not declare"
    assert doc.to_json() == raw
    assert list(doc.to_json()) == list(raw)  # the order of the keys too
    _validator("results").validate(raw)
    return doc


def check_state(run_dir: Path) -> State:
    raw = json.loads((run_dir / "state.json").read_text())
    doc = State.model_validate(raw)  # strict: the runner's own file, nothing to salvage
    assert doc.unknown_keys() == [], "state.json keys its model does not declare"
    assert doc.to_json() == raw
    validator = _validator("state")
    validator.validate(raw)
    # What the runner always writes, the schema promises.
    assert set(validator.schema["required"]) <= set(raw)
    return doc


def check_events(run_dir: Path) -> list[Event]:
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    events = list(events_in(lines, strict=True))
    validator = _validator("events")
    for line, event in zip(lines, events, strict=True):
        raw = json.loads(line)
        assert event.to_json() == raw
        if type(event) is not Event:  # a kind with a model of its own declares every key
            assert event.unknown_keys() == [], line
        validator.validate(raw)
    return events


def check_journal(run_dir: Path) -> list[Any]:
    path = run_dir / "faults.journal.jsonl"
    validator = _validator("journal")
    records = []
    for line in path.read_text().splitlines():
        record = JournalRecord.model_validate_json(line).root
        assert record.unknown_keys() == [], line
        assert json.dumps(record.to_json()) == line  # byte for byte
        validator.validate(json.loads(line))
        records.append(record)
    return records


@pytest.mark.slow(12)
def test_a_run_with_every_section_writes_documents_its_models_read(
        tmp_path: Path, demo: tuple[str, Path]) -> None:
    url, directory = demo
    auth = {"Authorization": f"Bearer {(directory / 'demo.token').read_text().strip()}"}
    front = free_port()
    touched = tmp_path / "undo-ran"
    plan = write_plan(tmp_path, {
        "name": "docs", "duration": "5s", "seed": 3, "grace": "2s",
        "observe": {"heartbeat": "2s", "snapshot": "3s"},
        "canaries": {"generate": 1},
        "services": {"svc": {"command": [*CHATTY, "--lines", "3"], "restart": "always"}},
        "proxies": {"front": {"listen": f"127.0.0.1:{front}", "upstream": url.split("//")[1]}},
        "workloads": {
            "browse": {"http": {"base": f"http://127.0.0.1:{front}", "rate": "40/s",
                                "headers": auth, "requests": [
                                    {"name": "list", "path": "/api/v1/downloads"},
                                    {"name": "echo", "method": "POST",
                                     "path": "/api/v1/downloads",
                                     "json": {"url": "https://x/{{canary}}"}}]}},
            "life": {"flow": {"base": url, "rate": "5/s", "headers": auth, "steps": [
                {"name": "create", "request": {"method": "POST", "path": "/api/v1/downloads",
                                               "json": {"url": "https://f/{{uuid}}"}},
                 "capture": {"id": "$.id"}},
                {"name": "get", "request": {"path": "/api/v1/downloads/{{id}}"}}]}},
            "stream": {"sse": {"base": url, "path": "/api/v1/events", "headers": auth,
                               "clients": 3, "churn": {"every": "2s", "fraction": "50%"}}},
            "battle": {"burst": {
                "base": url, "size": 4, "rounds": 2, "every": "2s", "headers": auth,
                "vars": {"key": "{{uuid}}"},
                "request": {"method": "POST", "path": "/api/v1/downloads",
                            "headers": {"Idempotency-Key": "{{key}}"},
                            "json": {"url": "https://f/{{prefix}}{{round}}.bin"}},
                "history": {"f": "create", "key": "{{key}}", "value": "$.id"},
                "after": [{"name": "never_holds", "http": {"path": "/health"},
                           "check": "$.nothing == 1"}]}}},
        "checkers": ["duplicate_effect"],
        "faults": [
            {"at": "1s", "for": "1s", "latency": {"proxy": "front", "add": "5ms"}},
            {"at": "1500ms", "kill": "svc"},
            {"at": "2s", "for": "1s", "pause": "svc"},
            {"at": "2500ms", "for": "1s", "command": {"run": "true",
                                                      "undo": f"touch {touched}"}}],
        "rules": ["errors{op=list} < 1000000", "p95(latency{op=list}) < 10s",
                  "leak(rss{service=svc}) == false", "drift(p95(latency{op=list})) < 1000%",
                  "max(recover_s) < 60s"]})
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"), "--no-live")
    assert proc.returncode in (0, 1), proc.stderr
    run_dir = only_run(tmp_path / "runs")
    results = check_results(run_dir)
    # The sections this run was built to fill are all there, typed.
    assert {"browse", "list", "life", "life.create", "stream:connect", "battle"} & set(
        results.ops) and results.total is not None
    assert {f.kind for f in results.faults} == {"latency", "kill", "pause", "command"}
    assert results.streams and results.bursts and results.trends and results.generator
    assert "duplicate_effect" in results.checker_counts and results.canaries
    assert results.services["svc"].restarts >= 1
    state = check_state(run_dir)
    assert state.state == results.state and state.pid is not None
    kinds = {e.event for e in check_events(run_dir)}
    assert {"run_started", "load_started", "fault_start", "fault_end", "service_exit",
            "run_finished", "snapshot", "heartbeat"} <= kinds
    ops = [r.op for r in check_journal(run_dir)]
    assert "apply" in ops and "undone" in ops
    assert touched.exists()


@pytest.mark.slow(6)
def test_a_run_on_two_workers_and_its_rebuilt_results(tmp_path: Path,
                                                      demo: tuple[str, Path]) -> None:
    """Windows come over the worker pipes as typed messages; a results.json rebuilt from the
    store by ``enduro report`` is read by the same model."""
    url, _ = demo
    plan = write_plan(tmp_path, {
        "name": "two", "duration": "2s", "seed": 1,
        "workloads": {"w": {"http": {"base": url, "rate": "40/s",
                                     "requests": [{"name": "health", "path": "/health"}]}}},
        "rules": ["errors == 0", "availability >= 50%"]})
    proc = run_cli("run", str(plan), "--out", str(tmp_path / "runs"), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    run_dir = only_run(tmp_path / "runs")
    results = check_results(run_dir)
    assert results.worker_count == 2 and results.ops["health"].requests > 0
    # Each worker's requests add up to the run's.
    assert [w.index for w in results.workers] == [0, 1]
    assert sum(w.requests for w in results.workers) == results.ops["health"].requests
    assert all(w.share == 0.5 and w.node and w.lost is None for w in results.workers)
    check_state(run_dir)
    check_events(run_dir)
    # As if its runner had died before writing the results.
    (run_dir / "results.json").unlink()
    state = json.loads((run_dir / "state.json").read_text())
    (run_dir / "state.json").write_text(json.dumps({**state, "state": "running",
                                                    "pid": 2**22 + 99}))
    proc = run_cli("report", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    rebuilt = check_results(run_dir)
    assert rebuilt.rebuilt is not None and rebuilt.verdict == "incomplete"
    assert rebuilt.state == "dead" and rebuilt.total is not None
    assert rebuilt.total.requests == results.total.requests if results.total else False
    assert [r.evaluated for r in rebuilt.rules] == [True, True]


@pytest.mark.slow(8)
def test_supervise_and_a_stopped_run_write_documents_their_models_read(
        tmp_path: Path) -> None:
    port = free_port()
    plan = write_plan(tmp_path, {
        "name": "sup", "duration": "1h",
        "services": {"web": {
            "command": [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            "ports": [port],
            "ready": {"http": f"http://127.0.0.1:{port}/", "status": 200, "timeout": "30s"}}},
        "faults": [{"at": "500ms", "for": "1h", "command": {"run": "true", "undo": "true"}}],
        "rules": ["errors == 0"]})
    out = tmp_path / "runs"
    proc = run_cli("start", str(plan), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    run_dir = only_run(out)

    def serving() -> bool:
        try:
            state = State.model_validate_json((run_dir / "state.json").read_text())
        except (OSError, ValueError):
            return False
        return state.state == "running" and bool(state.services) and \
            (run_dir / "faults.journal.jsonl").exists()

    wait_for(serving, 60, "the run serving, its fault applied")
    check_state(run_dir)  # a state written while the run goes
    status = run_cli("status", run_dir.name, "--runs", str(out), "--json")
    assert json.loads(status.stdout)["state"] == "running"
    pid = State.model_validate_json((run_dir / "state.json").read_text()).pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: (run_dir / "results.json").exists() and
             State.model_validate_json((run_dir / "state.json").read_text()).state
             == "stopped", 60, "the stopped run's results")
    results = check_results(run_dir)
    assert results.verdict == "incomplete" and results.complete is False
    check_state(run_dir)
    kinds = {e.event for e in check_events(run_dir)}
    assert {"stop_requested", "fault_undone", "run_finished"} <= kinds
    assert [r.op for r in check_journal(run_dir)] == ["apply", "undone"]
    supervise = run_cli("supervise", str(plan), "--out", str(tmp_path / "sup"),
                        "--duration", "1s")
    assert supervise.returncode == 0, supervise.stderr
    sup = check_results(only_run(tmp_path / "sup"))
    assert sup.mode == "supervise" and sup.rules_passed is None
