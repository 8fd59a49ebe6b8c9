"""The documents other tools read (results.json, state.json, events, the undo journal, worker
messages): one model each, the committed JSON Schemas equal to the models, writers and readers
going through the same model, and old, newer or corrupt files read with a one-line error."""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
from pathlib import Path
from typing import Any

import pytest

from enduro.base.files import json_bytes
from enduro.cli import main
from enduro.documents.document import DocumentError, NewerDocument
from enduro.documents.events import (
    Event,
    FaultStart,
    RunStarted,
    ServiceEvent,
    event_from_json,
    read_events,
)
from enduro.documents.journal import Applied, CommandUndo, JournalRecord, SignalUndo
from enduro.documents.results import SCHEMA, Results
from enduro.documents.schemas import SCHEMA_NAMES, json_schema, schema_text
from enduro.documents.state import State, read_state
from enduro.documents.worker_messages import (
    Done,
    Force,
    FromWorker,
    Go,
    Ready,
    Stop,
    Tokens,
    ToWorker,
    Windows,
)
from enduro.faults.journal import Journal, run_undo
from enduro.report.results import write_junit, write_results
from enduro.run.rundir import EventLog, RunDir
from tests.helpers.documents import figures, results_json

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schema"


# --- the exported schemas ---------------------------------------------------------------------

@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_the_committed_schema_is_the_models(name: str) -> None:
    committed = SCHEMAS / f"{name}.schema.json"
    assert committed.exists(), f"regenerate: enduro schema {name} > {committed}"
    assert json.loads(committed.read_text()) == json_schema(name), (
        f"the {name} model changed: regenerate with `enduro schema {name} > "
        f"docs/schema/{name}.schema.json` (and bump results' SCHEMA if a key was renamed)")


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_enduro_schema_prints_the_committed_file(name: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", name]) == 0
    out, err = capsys.readouterr()
    assert out == schema_text(name) == (SCHEMAS / f"{name}.schema.json").read_text()
    assert err == ""


def test_enduro_schema_of_an_unknown_document_is_a_usage_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["schema", "verdict"])
    assert exited.value.code == 2
    assert "invalid choice: 'verdict'" in capsys.readouterr().err


def test_the_results_schema_says_what_is_always_there() -> None:
    schema = json_schema("results")
    for key in ("schema", "run_id", "verdict", "complete", "duration_s", "seed", "ops",
                "errors_by_class", "rules", "faults", "services"):
        assert key in schema["required"]
    assert schema["properties"]["verdict"]["enum"] == ["pass", "fail", "incomplete"]
    assert schema["additionalProperties"] is True  # keys are added freely within a schema
    op = schema["$defs"]["OpFigures"]
    assert {"requests", "errors", "rps", "latency_ms", "kind"} <= set(op["required"])
    assert set(schema["$defs"]["Percentiles"]["required"]) == {"p50", "p90", "p95", "p99",
                                                               "p999", "max"}


# --- results.json -----------------------------------------------------------------------------

# The keys in the order the runner has always written them (byte compatibility).
RUNNER_SECTIONS: dict[str, Any] = {
    "resources": {"generator": {"last": {"rss_mb": 70.5, "fds": 40.0}, "rss_mb_max": 71.0,
                                "rss_mb_trend": {"leak": None, "reasons": ["short"]}}},
    "generator": {"saturated": False, "saturated_samples": 0, "samples": 5,
                  "loop_lag_worst_ms": 2.5},
    "trends": {"drift(p95(latency)) < 10%": {"drift": 0.01, "first": 1.0, "last": 1.01,
                                             "span_points": 10, "points": 100}},
    "checkers": {"duplicate_effect": []}, "checker_counts": {"duplicate_effect": 0},
    "loop": None, "canaries": [],
    "streams": {"st": {"streams": 2, "events_per_stream": {"min": 3, "median": 4, "max": 5},
                       "connects": 3, "resumed_with_last_event_id": 1,
                       "streams_with": {"duplicates": 0, "gaps": 0, "stalls": 0, "failed": 0},
                       "streams_without_events": 0, "worst_ttfe_s": 0.1, "longest_gap_s": 0.5,
                       "worst_streams": [], "file": "sse_streams.jsonl"}},
    "bursts": {}, "faults_skipped": 0, "phases": {"baseline": 3.0},
}


def test_a_results_file_round_trips_byte_for_byte() -> None:
    legacy = results_json(**RUNNER_SECTIONS)
    legacy["rules"] = [{"rule": "errors == 0", "observed": 0.0, "observed_text": "0",
                        "passed": True},
                       {"rule": "p99(latency) < 1ms", "observed": None,
                        "observed_text": "no data", "passed": False, "reason": "no requests",
                        "insufficient": True}]
    doc = Results.from_json(legacy)
    assert doc.unknown_keys() == []
    assert json_bytes(doc.to_json()) == json_bytes(legacy)
    assert doc.streams["st"].events_per_stream.median == 4  # an int stays an int


def test_keys_no_model_declares_are_kept_and_found() -> None:
    """What the drift tests rest on: a key a writer adds without its model is not lost, and
    ``unknown_keys`` names it wherever it is."""
    doc = Results.from_json(results_json(
        colour="blue", ops={"a": figures(workload="w", kind="request", colour="red")},
        faults=[{"id": 1, "name": "k", "kind": "kill", "target": "api", "start_s": 1.0,
                 "end_s": None, "error": None, "blast_radius": 3}]))
    assert doc.unknown_keys() == ["colour", "faults.0.blast_radius", "ops.a.colour"]
    assert doc.to_json()["ops"]["a"]["colour"] == "red"


def test_written_results_read_back_the_same(tmp_path: Path) -> None:
    legacy = results_json(**RUNNER_SECTIONS)
    write_results(tmp_path / "results.json", legacy)
    assert (tmp_path / "results.json").read_bytes() == json_bytes(legacy)
    assert Results.read(tmp_path / "results.json").to_json() == legacy


def test_the_writer_refuses_what_readers_could_not_read(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    drifted = results_json(ops={"a": {**figures(workload="w", kind="request"),
                                      "requests": "many"}})
    with pytest.raises(DocumentError, match=r"ops\.a\.requests"):
        write_results(path, drifted)
    assert not path.exists()


def test_a_new_section_must_be_a_field_first() -> None:
    from enduro.observe.metrics import Metrics
    from enduro.report.results import results_document
    from enduro.verdict.evaluate import Verdict
    with pytest.raises(TypeError, match="no section colour"):
        results_document(run_id="r", plan_name="p", verdict=Verdict(True, []),
                         metrics=Metrics(1.0), ops={}, elapsed_s=1.0, seed=1,
                         state="completed", started_wall=1.0, stop_reason=None, worker_count=1,
                         profile=None, extra={"colour": "blue"})


def test_bare_results_without_figures_are_read(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """What the watchdog writes when the full results could not be assembled: no ``total``,
    no ops. Before: ``enduro compare`` of such a run ended with a KeyError (exit 70)."""
    bare = results_json(verdict="incomplete", complete=False, ops={}, total=None)
    del bare["total"]
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.json").write_text("{}")
        (tmp_path / name / "results.json").write_text(json.dumps(bare))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "(total)" in out and "present" in out


def test_a_schema_1_file_reads_as_schema_2() -> None:
    old = results_json(schema=1, verdict="fail")
    for key in ("complete", "rules_passed", "mode"):
        del old[key]
    del old["ops"]["a"]["kind"]
    doc = Results.from_json(old)
    assert (doc.complete, doc.rules_passed, doc.mode) == (True, False, "run")
    assert doc.ops["a"].kind == "request"


def test_a_schema_2_file_reads_its_workers_as_the_count() -> None:
    old = results_json(schema=2)
    del old["worker_count"]
    old["workers"] = 4
    doc = Results.from_json(old)
    assert (doc.worker_count, doc.workers) == (4, [])


def test_a_newer_schema_is_refused_in_one_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r" / "results.json"
    path.parent.mkdir()
    (tmp_path / "r" / "state.json").write_text(json.dumps({"state": "completed"}))
    path.write_text(json.dumps(results_json(schema=SCHEMA + 1)))
    with pytest.raises(NewerDocument, match=f"schema {SCHEMA + 1} is newer"):
        Results.read(path)
    assert main(["report", "r", "--runs", str(tmp_path)]) == 3
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and f"{path}: schema {SCHEMA + 1} is newer" in err
    assert path.exists()  # not taken for a corrupt file and replaced


@pytest.mark.parametrize(("content", "needle"), [
    (b"", "no readable results.json"),
    (b"[1, 2]", "results.json is not a JSON object"),
    (b'{"schema": 2, "verdict": "pass"}', "not a results.json enduro can read: run_id"),
    (json.dumps(results_json(verdict="maybe")).encode(), "verdict: Input should be"),
])
def test_compare_of_a_corrupt_results_file_says_so_in_one_line(
        content: bytes, needle: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.json").write_text("{}")
        (tmp_path / name / "results.json").write_bytes(
            content if name == "b" else json.dumps(results_json()).encode())
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 3
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert err.count("\n") == 1 and needle in err, err
    assert "'enduro report b' rebuilds it" in err


def test_junit_comes_from_the_model(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml", results_json(
        verdict="incomplete", complete=False, stop_reason="SIGINT",
        rules=[{"rule": "errors == 0", "observed": 0.0, "observed_text": "0",
                "passed": True}]))
    text = (tmp_path / "junit.xml").read_text()
    assert 'tests="2" failures="1"' in text and "incomplete: SIGINT" in text


def test_the_gate_reads_results_through_the_model(tmp_path: Path) -> None:
    from enduro.base.errors import PlanError
    from enduro.gate.readers import read_results
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results_json()))
    assert read_results(path) == {"a:p50": [0.001], "a:p95": [0.002], "a:p99": [0.003]}
    path.write_text(json.dumps(results_json(ops={"a": {"latency_ms": {}}})))
    with pytest.raises(PlanError, match=r"not a results.json enduro can read: ops\.a\."):
        read_results(path)


# --- the pieces each writer hands in, checked against their models without a run ---------------

def _declared(model: type[Any], data: object) -> list[str]:
    return model.model_validate(data).unknown_keys()  # type: ignore[no-any-return]


def test_the_pieces_of_results_fit_their_models() -> None:
    """Each producer's ``to_json`` against the model of its place in results.json: a key added
    on either side alone fails here, at unit speed (the runs in
    tests/integration/test_documents_from_runs.py check whole files)."""
    from dataclasses import fields

    from pydantic import TypeAdapter

    from enduro.documents.results import (
        CheckerViolation,
        DriftDetail,
        Figures,
        LeakTrend,
        RuleOutcome,
        TrendDetail,
    )
    from enduro.documents.service import ServiceRecord
    from enduro.observe.metrics import Metrics
    from enduro.services.supervisor import ServiceStatus
    from enduro.verdict.checkers import Violation
    from enduro.verdict.rules import RuleResult
    from enduro.verdict.trends import drift_verdict, leak, leak_by_incarnation

    assert _declared(RuleOutcome, RuleResult("r", 1.0, "1", False, "why", True).to_json()) == []
    assert _declared(Figures, Metrics(1.0).view(elapsed_s=1.0).summary()) == []
    assert [f.name for f in fields(ServiceStatus)] + ["rss_mb"] == list(
        ServiceRecord.model_fields)
    assert _declared(CheckerViolation, Violation("c", "k", "m", [{"f": "x"}]).to_json()) == []
    times = [float(i) for i in range(300)]
    grows = [100.0 + i for i in range(300)]
    assert _declared(LeakTrend, {"leak": None, "reasons": ["short"]}) == []
    assert _declared(LeakTrend, leak(times, grows, min_abs=1.0).to_json()) == []
    restarted = leak_by_incarnation(times, grows, [1.0] * 150 + [2.0] * 150, min_abs=1.0)
    assert _declared(LeakTrend, restarted.to_json()) == []
    assert _declared(DriftDetail, drift_verdict(times, grows).to_json()) == []
    assert _declared(DriftDetail, drift_verdict(times[:3], grows[:3]).to_json()) == []
    trend = TypeAdapter(TrendDetail)
    assert isinstance(trend.validate_python(drift_verdict(times, grows).to_json()), DriftDetail)
    assert isinstance(trend.validate_python(restarted.to_json()), LeakTrend)


def test_every_workload_kind_s_summary_has_a_place_in_results() -> None:
    """A kind whose output is summed up in results.json (engine/kinds.py) needs its field in
    ``Results`` first: results_document refuses a section the model does not know."""
    from enduro.engine.kinds import KINDS
    keys = {kind.output.key for kind in KINDS.values() if kind.output is not None}
    assert keys and keys <= set(Results.model_fields)


# --- state.json -------------------------------------------------------------------------------

def test_status_shows_what_can_be_read_of_a_corrupt_state() -> None:
    state = State.salvage({"state": "running", "pid": True, "elapsed_s": "x",
                           "duration_s": 5, "live": {"rps": "x", "errors": 3},
                           "services": {"api": {"state": "up", "pid": "12", "restarts": "x"},
                                        "db": 7},
                           "colour": "blue"})
    assert state.state == "running" and state.pid is None and state.elapsed_s is None
    assert state.duration_s == 5.0
    assert state.live is not None and (state.live.rps, state.live.errors) == (None, 3)
    assert state.services is not None and set(state.services) == {"api"}
    assert state.services["api"].state == "up" and state.services["api"].pid is None
    assert state.model_extra == {"colour": "blue"}  # kept, and written back as it was


@pytest.mark.parametrize("pid", [0, -1, True, "12", 1.5])
def test_a_pid_that_names_no_single_process_is_never_read(pid: object) -> None:
    assert State.salvage({"pid": pid}).pid is None


def test_read_state_of_what_is_not_a_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert read_state(path) is None
    for content in (b"[1]", b"\xff\xfe", b'{"a":' * 100_000):
        path.write_bytes(content)
        assert read_state(path) is None


def test_the_state_writer_goes_through_the_model(tmp_path: Path) -> None:
    rundir = RunDir.adopt(tmp_path / "r")
    state = {"run_id": "r", "plan": "p", "state": "running", "pid": 4242, "started_at": 1.5,
             "updated_at": 2.5, "duration_s": 10.0, "seed": 1, "stop_reason": None,
             "live": {}, "services": {}}
    rundir.write_state(state)
    assert rundir.file("state.json").read_bytes() == json_bytes(state)
    with pytest.raises(ValueError, match="pid"):
        rundir.write_state({**state, "pid": "4242"})
    assert json.loads(rundir.file("state.json").read_text()) == state  # left as it was


# --- events.jsonl -----------------------------------------------------------------------------

def test_events_are_written_through_their_models(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with path.open("a", encoding="utf-8") as fh:
        log = EventLog(fh)
        started = log.append("run_started", 0.0081, 100.1234, plan="p", seed=1,
                             duration_s=2.0, workers=1, pid=7, profile=None)
        assert isinstance(started, RunStarted)
        assert isinstance(log.append("service_exit", 1.0, 101.0, service="api",
                                     message="exited 1", exit_code=1, crash_log="c.log"),
                          ServiceEvent)
        # A record that does not fit its kind's model is still written (nothing lost).
        assert log.append("fault_start", 2.0, 102.0, id="one") is None
        assert isinstance(log.append("custom", 3.0, 103.0, anything=[1]), Event)
    lines = path.read_text().splitlines()
    # What the runner wrote before the models, byte for byte.
    assert lines[0] == json.dumps({"t": 0.008, "wall": 100.123, "event": "run_started",
                                   "plan": "p", "seed": 1, "duration_s": 2.0, "workers": 1,
                                   "pid": 7, "profile": None})
    assert json.loads(lines[2]) == {"t": 2.0, "wall": 102.0, "event": "fault_start",
                                    "id": "one"}
    assert [type(e) for e in read_events(path)] == [RunStarted, ServiceEvent, Event]
    with pytest.raises(ValueError, match=r"events.jsonl:3: .*id"):
        read_events(path, strict=True)


def test_torn_and_foreign_event_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"event": "load_started", "t": 1.5, "workers": 2}\n'
                     b'{"event": "x", "t": "soon"}\n[1]\n\xff\xfe\n'
                     b'{"event": "fault_start", "t": 2, "id": 1, "name": "k", '
                     b'"fault_kind": "kill", "targets": ["api"]}\n{"ev')
    events = read_events(path)
    assert [e.event for e in events] == ["load_started", "fault_start"]
    assert isinstance(events[1], FaultStart) and events[1].targets == ["api"]
    assert read_events(tmp_path / "missing.jsonl") == []


def test_an_unknown_kind_reads_as_a_plain_event() -> None:
    event = event_from_json({"t": 1, "wall": 2, "event": "new_kind", "x": 1})
    assert type(event) is Event and event.model_extra == {"x": 1}


# --- the undo journal -------------------------------------------------------------------------

def test_journal_records_keep_their_bytes(tmp_path: Path) -> None:
    """The lines a runner wrote before the models, read and written back unchanged."""
    journal = Journal(tmp_path / "faults.journal.jsonl")
    undo = {"type": "command", "argv": ["true"], "cwd": "/tmp", "timeout": 5.0}
    journal.applying(3, "command", ["api"], undo)
    journal.applying(4, "pause", ["api"], {"type": "signal", "signal": "SIGCONT",
                                           "processes": []})
    journal.undo_failed(3, "exit 1")
    journal.undone(4)
    lines = [json.loads(line) for line in journal.path.read_text().splitlines()]
    assert list(lines[0]) == ["op", "id", "kind", "targets", "undo", "host", "wall"]
    assert lines[0]["undo"] == undo
    assert list(lines[2]) == ["op", "id", "error", "wall"] and list(lines[3]) == ["op", "id",
                                                                                 "wall"]
    for line in journal.path.read_text().splitlines():
        record = JournalRecord.model_validate_json(line).root
        assert record.unknown_keys() == []
        assert json.dumps(record.to_json()) == line
    (pending,) = journal.pending_records()
    assert isinstance(pending.record, Applied) and isinstance(pending.undo, CommandUndo)
    assert pending.last_error == "exit 1"
    assert journal.pending() == [{**lines[0], "last_error": "exit 1"}]


def test_an_undo_of_an_unknown_kind_is_reported_not_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "faults.journal.jsonl"
    path.write_text(json.dumps({"op": "apply", "id": 1, "kind": "x", "targets": [],
                                "undo": {"type": "teleport"}, "wall": 0.0}) + "\n"
                    + json.dumps({"op": "apply", "id": 2, "kind": "pause", "targets": [],
                                  "undo": {"type": "signal", "processes": 3},
                                  "wall": 0.0}) + "\n{\"op\": \"apply\", \"id\n")
    pending = Journal(path).pending_records()
    assert [p.record.id for p in pending] == [1, 2]
    assert [run_undo(p.undo) for p in pending] == [
        "unknown undo 'teleport' (or one this enduro cannot read); left alone",
        "unknown undo 'signal' (or one this enduro cannot read); left alone"]


def test_run_undo_takes_a_model_or_a_mapping() -> None:
    assert "no live process" in run_undo(SignalUndo(type="signal", processes=[]))
    assert "no live process" in run_undo({"type": "signal", "signal": "SIGCONT",
                                          "processes": []})


# --- worker messages --------------------------------------------------------------------------

def test_worker_messages_cross_a_real_pipe() -> None:
    parent, child = mp.get_context("spawn").Pipe()
    try:
        for message in (Go(start_wall=12.5), Stop(), Force(), Tokens(tokens={"api": "t"})):
            parent.send(message.to_wire())
            assert ToWorker.model_validate(child.recv()).root == message
        window = {"op": "a", "index": 3, "requests": 1, "errors": 0, "late": 0,
                  "dropped": 0, "classes": {}, "latency": b"\x01\x02",
                  "service": (b"\x00", b"\x01", 1, 2)}
        for message in (Ready(index=1), Windows(windows=[window]), Done(index=1)):
            child.send(message.to_wire())
            assert FromWorker.model_validate(parent.recv()).root == message
    finally:
        parent.close()
        child.close()


def test_a_worker_message_of_another_shape_is_refused() -> None:
    from pydantic import ValidationError
    with pytest.raises(ValidationError):
        ToWorker.model_validate({"kind": "go"})  # no start time
    with pytest.raises(ValidationError):
        FromWorker.model_validate(("windows", []))  # the former tuple form


def test_the_documents_layer_stays_light() -> None:
    """``enduro schema`` and the command line's parser import no model until asked."""
    import subprocess
    code = ("import sys, enduro.documents.schemas, enduro.cli; "
            "print(sorted(m for m in sys.modules if m.startswith(('pydantic', "
            "'enduro.documents.results'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
