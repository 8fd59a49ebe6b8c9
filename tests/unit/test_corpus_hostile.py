"""A hostile user's corpus, beyond test_corpus_load, test_corpus_semantic and test_corpus_cli:
TOML with the YAML corpus's hostile content, ``--set`` and profiles that bring bad values in
after loading, unicode in names and rules, thresholds no measurement could cross, YAML streams,
binary junk, environment values holding CR/LF or YAML, servers answering with something that is
not HTTP/1.1, and ``status``/``stop``/``recover``/``report`` on directories that are not runs or
whose files are corrupt.

Each case asserts its exit code, its message (with file:line, or ``--set``, where one applies)
and that no traceback reaches the terminal. Cases marked "was:" failed before their fix.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from enduro.cli import main
from enduro.observe.store import Store
from tests.helpers.hostile_server import hostile_server

HEAD = "name: t\nduration: 2s\n"
HTTP = ("workloads:\n  w:\n    http:\n      base: 'http://127.0.0.1:9'\n      rate: 5/s\n"
        "      requests:\n        - {name: a, path: /x}\n")
SERVICE = ("services:\n  a:\n    command: ['true']\n    stage: {from: '.', fresh: [data]}\n")


def ruled(*rules: str) -> str:
    """The one-workload plan with ``rules``; the first rule is on line 11."""
    return HEAD + HTTP + "rules:\n" + "".join(f"  - {json.dumps(r, ensure_ascii=False)}\n"
                                               for r in rules)


TOML = """\
name = "t"
duration = "2s"

[workloads.w.http]
base = "http://127.0.0.1:9"
rate = "5/s"
requests = [{{name = "a", path = "/x"{extra}}}]
"""


@dataclass(frozen=True)
class Case:
    id: str
    text: str | bytes
    code: int
    needle: str
    where: str | None  # "LINE" for plan.yaml:LINE:, "--set", "" for the plan file, None: none
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    suffix: str = ".yaml"
    setup: Callable[[Path], None] | None = None


def _symlink_to_passwd(d: Path) -> None:
    (d / "plan.yaml").symlink_to("/etc/passwd")


CASES: list[Case] = [
    # --- rules no measurement could decide (was: accepted, exit 0) ------------------------
    Case("rule-availability-200pct", ruled("availability >= 200%"), 2,
         "availability is a share from 0% to 100%", "11"),
    Case("rule-availability-negative", ruled("availability >= -5%"), 2,
         "availability is a share from 0% to 100%", "11"),
    Case("rule-error-rate-bare-2", ruled("error_rate < 2"), 2,
         "error_rate is a share from 0% to 100%", "11"),
    Case("rule-errors-nan", ruled("errors < nan"), 2, "is not a finite number", "11"),
    Case("rule-error-rate-inf", ruled("error_rate < inf%"), 2, "is not a finite number", "11"),
    Case("rule-errors-400-digits", ruled("errors == " + "9" * 400), 2,
         "is not a finite number", "11"),
    Case("rule-errors-negative", ruled("errors > -1"), 2, "errors is never below zero", "11"),
    Case("rule-label-twice", ruled("errors{class=5xx, class=4xx} == 0"), 2,
         "label 'class' is given twice", "11"),
    # was: exit 70 (ZeroDivisionError)
    Case("rule-rate-per-zero", ruled("rps < 5/0s"), 2, "threshold '5/0s' is not a rate", "11"),
    # was: "no op named 'a'; ops: " with nothing after it
    Case("rule-op-without-workloads", HEAD + "rules:\n  - 'p95(latency{op=a}) < 1s'\n", 2,
         "no op named 'a'; the plan has no ops", "4"),
    # --- rules refused as before, documented ------------------------------------------------
    Case("rule-negative-latency", ruled("p95(latency) < -1ms"), 2, "is not a duration", "11"),
    Case("rule-latency-1e400ms", ruled("p95(latency) < 1e400ms"), 2, "is not a duration", "11"),
    Case("rule-percent-as-latency", ruled("p95(latency) < 50%"), 2, "is not a duration", "11"),
    Case("rule-p101", ruled("p101(latency) < 1s"), 2, "p101() does not apply", "11"),
    Case("rule-emoji-op", ruled("p95(latency{op=💥}) < 1s"), 2, "no op named '💥'", "11"),
    Case("rule-rtl-override", ruled("p95(latency{op=\u202ea}) < 1s 💥"), 2, "does not parse",
         "11"),
    Case("rule-zero-width-space", ruled("availability >= 99%\u200b"), 2,
         "is not a percentage", "11"),
    Case("rule-empty", ruled(""), 2, "does not parse", "11"),
    Case("rule-nested-call", ruled("p95(p95(latency)) < 1s"), 2, "does not parse", "11"),
    Case("rule-5000-parens", ruled("(" * 5000 + "availability" + ")" * 5000 + " >= 99%"), 2,
         "does not parse", "11"),
    # --- --set after loading ----------------------------------------------------------------
    # was: exit 70 (RecursionError on a self-referencing alias)
    Case("set-alias-self", HEAD + HTTP, 2, "the value does not parse: an alias refers",
         "--set description", args=("--set", "description=&a [*a]")),
    Case("set-deep", HEAD + HTTP, 2, "nested more than 100 levels", "--set description",
         args=("--set", "description=" + "[" * 5000)),
    Case("set-duplicate-key", HEAD + HTTP, 2, "duplicate key 'a'",
         "--set workloads.w.http.headers", args=("--set", "workloads.w.http.headers={a: 1, a: 2}")),
    Case("set-python-tag", HEAD + HTTP, 2, "could not determine a constructor",
         "--set description", args=("--set", "description=!!python/object/apply:os.system [id]")),
    # was: reported at the plan's line 6 (`fresh: [data]`), not at --set
    Case("set-fresh-etc", HEAD + SERVICE + HTTP, 2,
         "services.a.stage.fresh[0]: must be a relative path", "--set",
         args=("--set", "services.a.stage.fresh=[/etc]")),
    Case("set-fresh-dotdot", HEAD + SERVICE + HTTP, 2, "which leaves it", "--set",
         args=("--set", "services.a.stage.fresh=[../..]")),
    # was: reported at the plan's rule line
    Case("set-rule-unknown-op", ruled("availability >= 99%"), 2,
         "rules[0]: rule 'p95(latency{op=zz}) < 1s': no op named 'zz'", "--set",
         args=("--set", "rules=['p95(latency{op=zz}) < 1s']")),
    Case("set-duration-inf", HEAD + HTTP, 2, "duration: a duration must be a finite", "--set",
         args=("--set", "duration=.inf")),
    Case("set-duration-1e23d", HEAD + HTTP, 2, "expected a duration", "--set",
         args=("--set", "duration=1e23d")),
    Case("set-rate-0-per-s", HEAD + HTTP, 2, "must be positive", "--set",
         args=("--set", "workloads.w.http.rate=0/s")),
    Case("set-header-crlf", HEAD + HTTP, 2, "control character", "--set",
         args=("--set", 'workloads.w.http.requests[0].headers={X-A: "a\\r\\nB: c"}')),
    Case("set-name-emoji", HEAD + HTTP, 2, "a name is letters", "--set",
         args=("--set", "name=💥")),
    Case("set-into-a-scalar", HEAD + HTTP, 2, "the parent is not a mapping or list", None,
         args=("--set", "duration.x=1")),
    Case("set-comment-only", HEAD + HTTP, 0, "is a valid plan", None,
         args=("--set", "description=#x")),
    # --- profiles bringing bad values in: reported at the profile's lines -------------------
    Case("profile-bad-rule", HEAD + HTTP + "profiles:\n  evil:\n"
         "    rules: ['p95(latency{op=nosuch}) < 1s']\n", 2, "no op named 'nosuch'", "12",
         args=("--profile", "evil")),
    Case("profile-fresh-etc", HEAD + SERVICE + HTTP + "profiles:\n  evil:\n"
         "    services: {a: {stage: {fresh: [/etc]}}}\n", 2, "must be a relative path", "16",
         args=("--profile", "evil")),
    Case("profile-rate-zero", HEAD + HTTP + "profiles:\n  evil:\n"
         "    workloads: {w: {http: {rate: 0/s}}}\n", 2, "must be positive", "12",
         args=("--profile", "evil")),
    Case("profile-share-300pct", HEAD + HTTP + "profiles:\n  evil:\n"
         "    rules: ['availability > 300%']\n", 2, "share from 0% to 100%", "12",
         args=("--profile", "evil")),
    # --- files that are not one plan -------------------------------------------------------
    Case("yaml-stream", HEAD + "---\nname: u\n", 2, "but found another document", "3"),
    Case("yaml-stream-leading", "---\n" + HEAD + "---\n", 2, "but found another document", "4"),
    Case("yaml-binary-junk", bytes(range(256)) * 8, 2, "not UTF-8", "2"),  # a LF at byte 10
    Case("plan-symlink-to-passwd", "", 2, "a plan must be a mapping", "1",
         setup=_symlink_to_passwd),
    # was: reported at line 1 (a null key was indexed as "~", the models name it "None")
    Case("null-key", HEAD + "~: 3\n", 2, "keys should be strings (got None)", "3"),
    Case("null-workload-name", HEAD + "workloads:\n  null: {}\n", 2, "workloads.None", "4"),
    Case("number-as-workload-name", HEAD + "workloads:\n  1:\n    http: {base: "
         "'http://127.0.0.1:9', rate: 1/s, requests: [{name: a}]}\n", 2,
         "input should be a valid string", "3"),
    Case("emoji-workload-name", HEAD + HTTP.replace("  w:", "  w💥:"), 2, "a name is letters",
         "4"),
    # --- TOML with the YAML corpus's hostile content ---------------------------------------
    # was: reported at line 1 (a quoted key with dots split at its dots)
    Case("toml-service-dotdot", 'name = "t"\nduration = "2s"\n[services."../../x"]\n'
         'url = "http://127.0.0.1:1"\n', 2, "a name is letters", "3", suffix=".toml"),
    Case("toml-header-crlf", TOML.format(extra=', headers = {X-A = "1\\r\\nX-E: 2"}'), 2,
         "control character", "7", suffix=".toml"),
    Case("toml-path-lf", TOML.format(extra="").replace('path = "/x"', 'path = "/x\\nGET /a"'), 2,
         "control character", "7", suffix=".toml"),
    Case("toml-fresh-etc", 'name = "t"\nduration = "2s"\n[services.api]\ncommand = ["true"]\n'
         'stage = {from = ".", fresh = ["/etc"]}\n', 2, "absolute path '/etc'", "5",
         suffix=".toml"),
    Case("toml-duration-1e400", 'name = "t"\nduration = 1e400\n', 2, "finite", "2",
         suffix=".toml"),
    Case("toml-duration-date", 'name = "t"\nduration = 2024-01-01\n', 2, "expected a duration",
         "2", suffix=".toml"),
    Case("toml-seed-huge", 'name = "t"\nduration = "2s"\nseed = 99999999999999999999\n', 2,
         "less than", "3", suffix=".toml"),
    Case("toml-binary-junk", bytes(range(255, -1, -1)) * 8, 2, "not UTF-8", "1",
         suffix=".toml"),
    Case("toml-empty", "", 2, "name: required key is missing", "1", suffix=".toml"),
    Case("toml-workloads-list", 'name = "t"\nduration = "2s"\nworkloads = [1, 2]\n', 2,
         "valid dictionary", "3", suffix=".toml"),
    # --- ${file:...} of kernel files that claim to be regular (was: exit 70) ----------------
    # (root reads "it would block"; others are refused at open: either way, exit 2)
    Case("file-proc-kmsg", HEAD + "description: '${file:/proc/kmsg}'\n", 2,
         "cannot read /proc/kmsg: ", "3"),
    Case("file-proc-self-mem", HEAD + "description: '${file:/proc/self/mem}'\n", 2,
         "cannot read /proc/self/mem: ", "3"),
    Case("file-dev-stdin", HEAD + "description: '${file:/dev/stdin}'\n", 2,
         "not a regular file", "3"),
    # --- ${env:...} holding CR/LF or YAML: values, never syntax -----------------------------
    Case("env-header-crlf", HEAD + HTTP.replace("{name: a, path: /x}",
                                                "{name: a, path: /x, headers: {X-A: '${env:V}'}}"),
         2, "control character", "9", env=(("V", "a\r\nX-Evil: 1"),)),
    Case("env-path-lf", HEAD + HTTP.replace("path: /x", "path: '/x${env:V}'"), 2,
         "control character", "9", env=(("V", "\nGET /admin"),)),
    Case("env-rate-yaml", HEAD + HTTP.replace("rate: 5/s", "rate: '${env:V}'"), 2,
         "expected a rate", "7", env=(("V", "{a: [1"),)),
    Case("env-name-yaml", "name: '${env:V}'\nduration: 2s\n", 2, "a name is letters", "1",
         env=(("V", "x\nduration: 1s"),)),
    Case("env-duration-inf", "name: t\nduration: '${env:V}'\n", 2, "expected a duration", "2",
         env=(("V", ".inf"),)),
]


def _where(case: Case, plan: Path) -> str | None:
    if case.where is None:
        return None
    if case.where.startswith("--set"):
        return f"error: {case.where}: "
    return f"error: {plan}:{case.where}: " if case.where else f"error: {plan}: "


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_plan(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    plan = tmp_path / f"plan{case.suffix}"
    if case.setup is not None:
        case.setup(tmp_path)
    else:
        plan.write_bytes(case.text if isinstance(case.text, bytes) else case.text.encode())
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    start = time.monotonic()
    code = main(["validate", str(plan), *case.args])
    out, err = capsys.readouterr()
    assert time.monotonic() - start < 5
    assert "Traceback" not in out + err
    assert code == case.code, out + err
    where = _where(case, plan)
    lines = (out + err).splitlines()
    assert any(case.needle in line and (where is None or line.startswith(where))
               for line in lines), out + err


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


# --- servers that do not speak HTTP/1.1 -------------------------------------------------------

def _workload(kind: str, url: str) -> dict[str, object]:
    if kind == "http":
        return {"http": {"base": url, "rate": "10/s", "timeout": "5s",
                         "requests": [{"name": "get", "path": "/x"}]}}
    if kind == "flow":
        return {"flow": {"base": url, "rate": "5/s", "timeout": "5s", "steps": [
            {"name": "get", "request": {"path": "/x"}, "capture": {"id": "$.id"}},
            {"name": "next", "request": {"path": "/y/{{id}}"}}]}}
    return {"burst": {"base": url, "size": 3, "rounds": 2, "every": "200ms", "timeout": "5s",
                      "request": {"path": "/x"}}}


# (kind, mode, op that carries the errors). Before: a flow against `garbage`, `nocolon` or
# `bighead` lost every iteration to an IndexError ("Task exception was never retrieved"),
# counted 0 requests and passed; status 000 counted as a success in every kind; a burst's
# bad Content-Length or chunk size was `unfinished` or `check_failed`.
SERVERS: list[tuple[str, str, str]] = [
    ("http", "status0", "get"),
    ("http", "status999", "get"),
    ("http", "garbage", "get"),
    ("flow", "garbage", "w.get"),
    ("flow", "status0", "w.get"),
    ("flow", "nocolon", "w.get"),
    ("flow", "hugelength", "w.get"),
    ("flow", "neglength", "w.get"),
    ("flow", "bighead", "w.get"),
    ("burst", "garbage", "w"),
    ("burst", "status0", "w"),
    ("burst", "hugelength", "w"),
    ("burst", "badchunk", "w"),
    ("burst", "twolengths", "w"),
]


@pytest.mark.parametrize(("kind", "mode", "op"), SERVERS, ids=[f"{k}-{m}" for k, m, _ in SERVERS])
def test_a_response_that_is_not_http_is_a_protocol_error(
        kind: str, mode: str, op: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with hostile_server(mode) as server:
        plan = {"name": "raw", "duration": "1500ms", "seed": 1, "grace": "1s",
                "workloads": {"w": _workload(kind, server.url)}, "rules": ["errors == 0"]}
        path = tmp_path / "plan.yaml"
        path.write_text(yaml.safe_dump(plan, sort_keys=False))
        start = time.monotonic()
        code = main(["run", str(path), "--out", str(tmp_path / "runs"), "--no-live"])
        elapsed = time.monotonic() - start
        seen = server.snapshot()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "Task exception" not in err, err
    assert code == 1, out + err
    assert elapsed < 20
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == "fail"
    classes = results["ops"][op]["errors_by_class"]
    # Every request the server received is one protocol error, or still out at the end;
    # nothing is a success, nothing is charged to another class.
    assert set(classes) <= {"protocol", "unfinished"}, classes
    assert classes.get("protocol", 0) > 0, classes
    assert classes["protocol"] + classes.get("unfinished", 0) == seen["received"], (classes,
                                                                                  seen)


def test_json_nested_deeper_than_the_parser_fails_its_request_not_the_driver(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Before: a RecursionError in the JSON parser killed every flow iteration (0 requests,
    verdict pass). Now each such answer fails its capture, counted once per request."""
    with hostile_server("deepjson") as server:
        plan = {"name": "deep", "duration": "1500ms", "seed": 1, "grace": "1s",
                "workloads": {"w": _workload("flow", server.url)}, "rules": ["errors == 0"]}
        path = tmp_path / "plan.yaml"
        path.write_text(yaml.safe_dump(plan, sort_keys=False))
        code = main(["run", str(path), "--out", str(tmp_path / "runs"), "--no-live"])
        seen = server.snapshot()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "Task exception" not in err, err
    assert code == 1, out + err
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    step = results["ops"]["w.get"]
    assert step["requests"] == seen["received"] > 0
    assert set(step["errors_by_class"]) <= {"capture_failed", "unfinished"}, step
    assert step["errors_by_class"].get("capture_failed", 0) > 0


def test_an_event_stream_line_that_never_ends_is_a_protocol_error_not_a_hang(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Before: the SSE reader kept one growing line and searched it again on every read, so
    the event loop stalled and the watchdog ended a 2 s run after ~25 s (exit 3); and with
    no event at all `sse_duplicates == 0` passed."""
    with hostile_server("endless_line") as server:
        plan = {"name": "sse", "duration": "2s", "seed": 1, "grace": "1s",
                "workloads": {"st": {"sse": {"base": server.url, "path": "/events",
                                             "clients": 2}}},
                "rules": ["sse_duplicates == 0"]}
        path = tmp_path / "plan.yaml"
        path.write_text(yaml.safe_dump(plan, sort_keys=False))
        start = time.monotonic()
        code = main(["run", str(path), "--out", str(tmp_path / "runs"), "--no-live"])
        elapsed = time.monotonic() - start
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert code == 1, out + err
    assert elapsed < 15
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == "fail" and results["complete"] is True
    connect = results["ops"]["st:connect"]
    assert set(connect["errors_by_class"]) == {"protocol"} and connect["errors"] > 0
    (rule,) = results["rules"]
    assert rule["observed_text"] == "no data" and not rule["passed"]


def test_a_burst_round_longer_than_the_run_ends_with_it(tmp_path: Path) -> None:
    """Before: a round waiting on a silent server (or ``every: 1h``) kept the load going until
    the watchdog stopped it: verdict incomplete, exit 3, 10 s for a 2 s plan."""
    with hostile_server("silent") as server:
        plan = {"name": "late", "duration": "1s", "seed": 1, "grace": "500ms",
                "workloads": {"w": {"burst": {"base": server.url, "size": 2, "rounds": 3,
                                              "every": "1h", "timeout": "60s",
                                              "request": {"path": "/x"}}}},
                "rules": ["errors == 0"]}
        path = tmp_path / "plan.yaml"
        path.write_text(yaml.safe_dump(plan, sort_keys=False))
        start = time.monotonic()
        code = main(["run", str(path), "--out", str(tmp_path / "runs"), "--no-live"])
        elapsed = time.monotonic() - start
        seen = server.snapshot()
    assert code == 1
    assert elapsed < 8
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == "fail"
    assert seen["received"] == 2  # one round of two; the next would have come in an hour
    assert results["ops"]["w"]["errors_by_class"] == {"unfinished": 2}


# --- status / stop / recover / report on what is not a run, or a corrupt one ------------------

def _state(**fields: object) -> Callable[[Path], None]:
    def make(run: Path) -> None:
        run.mkdir(parents=True)
        (run / "state.json").write_text(json.dumps(fields))
    return make


def _raw_state(data: bytes) -> Callable[[Path], None]:
    def make(run: Path) -> None:
        run.mkdir(parents=True)
        (run / "state.json").write_bytes(data)
    return make


def _empty(run: Path) -> None:
    run.mkdir(parents=True)


def _not_a_run(run: Path) -> None:
    run.mkdir(parents=True)
    (run / "notes.txt").write_text("hello\n")


DEAD_PLAN = {"name": "d", "duration": "5s", "workloads": {"w": {"http": {
    "base": "http://127.0.0.1:9", "rate": "5/s", "requests": [{"name": "a"}]}}}}


def _dead_run(store: str, events: bytes = b"") -> Callable[[Path], None]:
    """A run whose runner died: state running, a pid that is no process, no results."""
    def make(run: Path) -> None:
        _state(state="running", pid=2**22 + 12345, duration_s=5, started_at=1.0,
               updated_at=2.0)(run)
        (run / "plan.resolved.yaml").write_text(yaml.safe_dump(DEAD_PLAN))
        (run / "events.jsonl").write_bytes(events)
        if store == "empty":
            Store(run / "metrics.sqlite").close()
        elif store == "junk":
            (run / "metrics.sqlite").write_bytes(os.urandom(4096))
    return make


# (id, command, setup of runs/r, exit code, a piece of the output)
RUN_DIRS: list[tuple[str, str, Callable[[Path], None], int, str]] = [
    ("status-empty-dir", "status", _empty, 2, "not a run directory (it has no state.json)"),
    ("stop-not-a-run", "stop", _not_a_run, 2, "not a run directory"),
    ("report-not-a-run", "report", _not_a_run, 2, "not a run directory"),
    ("recover-empty-dir", "recover", _empty, 2, "not a run directory"),
    # was: exit 70 (RecursionError) for this run, and for every other run under runs/
    ("status-deep-state", "status", _raw_state(b'{"a":' * 100_000), 0,
     "state.json cannot be read"),
    ("stop-deep-state", "stop", _raw_state(b"[" * 100_000), 0, "nothing was running"),
    ("status-random-state", "status", _raw_state(bytes(range(256))), 0,
     "state.json cannot be read"),
    # was: exit 70 (TypeError, AttributeError, ValueError, OverflowError)
    ("status-elapsed-text", "status", _state(elapsed_s="x", duration_s=5), 0, "remaining 5.0s"),
    ("stop-services-list", "stop", _state(services=[1]), 0, "nothing was running"),
    ("status-services-list", "status", _state(services=[1]), 0, "heartbeat unknown"),
    ("status-live-text", "status", _state(live={"rps": "x", "requests_total": "y"}), 0,
     "rps 0.0"),
    ("status-heartbeat-1e308", "status", _state(state="running", pid=1, updated_at=1e308), 0,
     "no heartbeat recorded"),
    ("stop-heartbeat-1e308", "stop", _state(state="running", pid=2**22 + 1, updated_at=1e308),
     0, "marked the run dead (no heartbeat recorded)"),
    # pid -1 or 0 name process groups: never signalled, never looked up
    ("status-pid-minus-1", "status", _state(state="running", pid=-1), 0,
     "runner pid unknown (not running)"),
    ("stop-pid-minus-1", "stop", _state(state="running", pid=-1), 0, "marked the run dead"),
    ("recover-pid-0", "recover", _state(state="running", pid=0), 0, "no fault left to undo"),
    ("stop-pid-true", "stop", _state(state="running", pid=True), 0, "marked the run dead"),
    # was: exit 70 (sqlite3.DatabaseError)
    ("report-junk-store", "report", _dead_run("junk"), 3,
     "metrics.sqlite cannot be read (file is not a database)"),
    ("stop-junk-store", "stop", _dead_run("junk"), 0, "could not rebuild the results"),
    ("report-no-store", "report", _dead_run("none"), 3, "no metrics.sqlite"),
    # was: exit 70 (UnicodeDecodeError) on a torn, non-UTF-8 events.jsonl
    ("report-torn-events", "report", _dead_run("empty", b'{"event": "run_started", "t": 1}\n'
                                               b'{"event": "x", "t": "soon"}\n{"ev\xff\xfe'),
     0, "report.html"),
]


@pytest.mark.parametrize(("command", "setup", "code", "needle"), [c[1:] for c in RUN_DIRS],
                         ids=[c[0] for c in RUN_DIRS])
def test_run_commands_on_hostile_run_directories(
        command: str, setup: Callable[[Path], None], code: int, needle: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    setup(runs / "r")
    start = time.monotonic()
    got = main([command, "r", "--runs", str(runs)])
    out, err = capsys.readouterr()
    assert time.monotonic() - start < 10
    assert "Traceback" not in out + err
    assert got == code, out + err
    assert needle in out + err


def test_one_corrupt_run_does_not_stop_the_others(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    _raw_state(b'{"a":' * 100_000)(runs / "corrupt")
    _state(state="completed", plan="p", started_at=time.time())(runs / "good")
    assert main(["runs", "--runs", str(runs)]) == 0
    assert main(["status", "good", "--runs", str(runs)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "good" in out and "corrupt" in out and "state completed" in out


def test_a_rebuilt_report_skips_events_it_cannot_read(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _dead_run("empty", b'{"event": "load_started", "t": "x"}\n\xff\xfe\n')(runs / "r")
    assert main(["report", "r", "--runs", str(runs)]) == 0
    results = json.loads((runs / "r" / "results.json").read_text())
    assert results["verdict"] == "incomplete" and results["state"] == "dead"
    with sqlite3.connect(runs / "r" / "metrics.sqlite") as db:
        assert db.execute("SELECT count(*) FROM windows").fetchone() == (0,)
