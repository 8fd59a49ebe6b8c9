"""``enduro dashboard``: the page and its JSON endpoints over a real run's directory, finished
and running detached; usage errors and how it stops. Every listener is on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HELPERS, run_cli
from tests.helpers.plans import write_plan
from tests.helpers.procs import free_port, python_server, stop, wait_for


@contextlib.contextmanager
def dashboard(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``enduro dashboard`` on a free loopback port; yield its URL and the process."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    proc = subprocess.Popen([sys.executable, "-m", "enduro", "dashboard", *args, "--listen",
                             f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.stderr else "")
        yield line.split(": ", 1)[1].strip(), proc
    finally:
        stop(proc)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read().decode()
            status = answer.status
            kind = answer.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        body, status, kind = exc.read().decode(), exc.code, exc.headers["Content-Type"]
    return status, json.loads(body) if kind.startswith("application/json") else body


def demo_plan(tmp_path: Path, url: str, duration: str, **extra: Any) -> Path:
    return write_plan(tmp_path, {
        "name": "dash", "duration": duration, "seed": 1, "observe": {"sample": "500ms"},
        "workloads": {"w": {"http": {"base": url, "rate": "50/s", "requests": [
            {"name": "health", "path": "/health"},
            {"name": "nope", "path": "/nope", "weight": 0.5,
             "expect": {"status": 200}}]}}},
        "rules": ["availability >= 99%"], **extra})


@pytest.fixture()
def runs(tmp_path: Path) -> Iterator[Path]:
    """The runs directory; a run a failing test left going is stopped."""
    out = tmp_path / "runs"
    yield out
    if out.is_dir():
        for run_dir in out.iterdir():
            results = run_dir / "results.json"
            if not results.exists():
                run_cli("stop", str(run_dir), "--grace", "5s")


@pytest.mark.slow(8)
def test_a_finished_run_serves_its_figures(tmp_path: Path, runs: Path,
                                           demo: tuple[str, Path]) -> None:
    url, _ = demo
    done = run_cli("run", str(demo_plan(tmp_path, url, "3s")), "--out", str(runs), "--no-live")
    assert done.returncode == 1, done.stderr  # /nope fails its expectation: the rule fails
    (run_dir,) = runs.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    with dashboard("--runs", str(runs)) as (base, proc):
        status, run = get(base + "api/run")
        assert status == 200
        assert run["run_id"] == run_dir.name and run["state"] == "completed"
        assert run["verdict"] == results["verdict"] == "fail" and not run["live"]
        assert [r["rule"] for r in run["rules"]] == ["availability >= 99%"]
        for op in ("health", "nope"):
            figures = run["ops"][op]
            assert figures["requests_total"] == results["ops"][op]["requests"] > 0
            assert figures["errors_total"] == results["ops"][op]["errors"]
            assert figures["rps"] > 0
        assert run["ops"]["health"]["p95_ms"] > 0 and run["ops"]["health"]["errors"] == 0
        # every request of /nope failed: no latency to show, not "0 ms"
        assert run["ops"]["nope"]["errors"] == run["ops"]["nope"]["requests"]

        status, series = get(base + "api/series")
        assert status == 200 and not series["more"]
        for op in ("health", "nope"):
            cols = series["ops"][op]
            assert sum(cols["requests"]) == results["ops"][op]["requests"]
            assert sum(cols["errors"]) == results["ops"][op]["errors"]
            assert len({len(v) for v in cols.values()}) == 1  # columns of one length
            assert cols["t"] == sorted(cols["t"])
        assert series["windows_until"] == max(series["ops"]["health"]["t"])
        assert "rss_mb" in series["resources"]["generator"]
        # nothing after the last window
        status, rest = get(base + f"api/series?since={series['windows_until']}"
                           f"&samples_since={series['samples_until']}")
        assert status == 200 and rest["ops"] == {} and rest["resources"] == {}
        half = series["ops"]["health"]["t"][len(series["ops"]["health"]["t"]) // 2]
        status, later = get(base + f"api/series?since={half}")
        assert all(t > half for t in later["ops"]["health"]["t"])

        status, events = get(base + "api/events")
        kinds = [e["event"] for e in events["events"]]
        assert status == 200 and events["load_started"]
        assert "phase" in kinds and kinds[-1] == "run_finished" and "heartbeat" not in kinds
        assert any(e["label"] == "phase load" for e in events["events"])
        status, none_after = get(base + f"api/events?after={events['last_seq']}")
        assert none_after["events"] == []

        status, page = get(base)
        assert status == 200 and "<title>enduro \u00b7 dashboard</title>" in page
        # the page fetches its own endpoints, nothing from elsewhere (uPlot is inlined)
        assert "api/run" in page and "src=" not in page and "<link" not in page
        assert "http" not in page.replace("https://github.com/leeoniya/uPlot", "")
        assert "enduro-data" not in page.split("<body>")[1].split("<script>")[0]
        for bad, word in (("api/series?since=abc", "since"), ("api/series?since=nan", "since"),
                          ("api/events?after=-1", "after"), ("api/run?x=1", "x"),
                          ("api/series?since=1&since=2", "once")):
            status, answer = get(base + bad)
            assert status == 400 and word in answer["error"], (bad, answer)
        assert get(base + "nothing")[0] == 404
        # a name made to point at loopback is not a loopback listener's Host
        assert get(base + "api/run", {"Host": "evil.example:80"})[0] == 403
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


@pytest.mark.slow(14)
def test_a_detached_run_shows_figures_that_change(tmp_path: Path, runs: Path,
                                                  demo: tuple[str, Path]) -> None:
    url, _ = demo
    front = free_port()
    plan = demo_plan(tmp_path, f"http://127.0.0.1:{front}", "60s", proxies={
        "front": {"listen": f"127.0.0.1:{front}", "upstream": url.split("//")[1]}},
        faults=[{"at": "1s", "for": "2s", "latency": {"proxy": "front", "add": "20ms"}}])
    started = run_cli("start", str(plan), "--out", str(runs))
    assert started.returncode == 0, started.stderr
    with dashboard("--runs", str(runs)) as (base, _):

        def totals() -> int:
            status, run = get(base + "api/run")
            assert status == 200 and run["state"] in ("starting", "running"), run
            return sum(op["requests_total"] for op in run["ops"].values())

        first = wait_for(totals, 30, "figures of the running run")
        wait_for(lambda: totals() > first, 15, "figures that change")
        status, run = get(base + "api/run")
        assert run["live"] and run["verdict"] is None and 0 < run["remaining_s"] <= 60
        status, series = get(base + "api/series")
        assert status == 200
        until = series["windows_until"]
        assert until is not None and series["ops"]["health"]["t"][-1] == until

        def newer() -> Any:
            return get(base + f"api/series?since={until}")[1]["ops"].get("health")

        assert min(wait_for(newer, 15, "newer windows")["t"]) > until
        labels = wait_for(lambda: [e["label"] for e in get(base + "api/events")[1]["events"]
                                   if e["category"] == "fault"] or None, 15, "fault events")
        assert labels[0].startswith("fault ") and "latency on front" in labels[0]
    assert run_cli("stop", "--runs", str(runs), "--grace", "10s").returncode == 0


@pytest.mark.slow(6)
def test_a_bad_listen_is_a_usage_error_of_one_line(tmp_path: Path) -> None:
    for bad in ("nowhere:80", "127.0.0.1:99999", "127.0.0.1", "::1:80", "[::1]"):
        done = run_cli("dashboard", "--listen", bad, "--runs", str(tmp_path))
        assert done.returncode == 2, (bad, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "--listen" in done.stderr, \
            done.stderr
    done = run_cli("dashboard", "--runs", str(tmp_path / "none"))
    assert done.returncode == 2 and "no runs under" in done.stderr


@contextlib.contextmanager
def served(run_dir: Path, token: str | None = None) -> Iterator[str]:
    """The dashboard of ``run_dir`` in this process, on 127.0.0.1; yield its base URL."""
    from enduro.dashboard.access import Listen
    from enduro.dashboard.server import Dashboard
    board = Dashboard(run_dir, Listen("127.0.0.1", free_port()), token)
    board.start()
    try:
        yield board.listen.url(board.port)
    finally:
        board.close()


def bare_run(tmp_path: Path) -> Path:
    """A run directory as a runner leaves it at its start: state.json alone."""
    run_dir = tmp_path / "runs" / "bare-20261122T000000Z"
    run_dir.mkdir(parents=True)
    (run_dir / "state.json").write_text(json.dumps({
        "run_id": run_dir.name, "plan": "bare", "state": "starting", "pid": 1,
        "started_at": 1.0, "updated_at": 1.0, "duration_s": 60.0, "seed": 1,
        "stop_reason": None, "elapsed_s": float("nan")}))  # NaN: not JSON, still read
    return run_dir


def test_a_token_listener_answers_401_without_it_and_200_with_it(tmp_path: Path) -> None:
    # Only loopback is ever bound in tests: the token is forced on, as an address off
    # loopback would have it (the choice itself is tested with parse_listen).
    with served(bare_run(tmp_path), token="s3cret") as base:
        for path in ("", "api/run", "api/series", "api/events"):
            status, answer = get(base + path)
            assert status == 401 and "token" in answer["error"], path
            assert get(base + path + "?token=wrong")[0] == 401
            assert get(base + path, {"Authorization": "Bearer s3cret"})[0] == 200
            assert get(base + path + "?token=s3cret")[0] == 200
        # the token stands in for the Host check
        assert get(base + "api/run?token=s3cret", {"Host": "dashboard.example"})[0] == 200


def test_a_run_that_has_only_begun_reads_as_such(tmp_path: Path) -> None:
    with served(bare_run(tmp_path)) as base:
        status, run = get(base + "api/run")
        # pid 1 is not its runner: the run is dead, as `enduro status` says
        assert status == 200 and run["state"] == "dead" and run["ops"] == {}
        assert run["elapsed_s"] == 0.0
        status, series = get(base + "api/series?since=5")
        assert status == 200 and series["ops"] == {} and series["windows_until"] == 5.0
        status, events = get(base + "api/events?since=0")
        assert status == 200 and events == {"load_started": False, "events": [],
                                             "last_seq": 0}


def test_idle_connections_do_not_hold_the_server(tmp_path: Path) -> None:
    import socket

    from enduro.dashboard.server import MAX_CONNECTIONS
    with served(bare_run(tmp_path)) as base:
        port = int(base.rsplit(":", 1)[1].strip("/"))
        idle = []
        try:
            for _ in range(MAX_CONNECTIONS - 1):  # each sends half a request, then nothing
                s = socket.create_connection(("127.0.0.1", port), 5)
                s.sendall(b"GET /api/run HTTP/1.1\r\n")
                idle.append(s)
            assert get(base + "api/run")[0] == 200
            more = [socket.create_connection(("127.0.0.1", port), 5) for _ in range(2)]
            idle += more
            # beyond the bound: answered 503 at once, not queued behind the idle ones
            assert more[-1].recv(200).startswith(b"HTTP/1.0 503")
        finally:
            for s in idle:
                s.close()
        wait_for(lambda: get(base + "api/run")[0] == 200, 10, "the server free again")


def test_the_token_is_printed_once_and_sigterm_ends_it(tmp_path: Path) -> None:
    from enduro.dashboard.access import Listen
    from enduro.dashboard.server import serve
    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        if line.startswith("Ctrl-C"):  # serving: check it, then stop it as a user would
            url = said[0].split(": ", 1)[1]
            assert get(url.replace("?token=", "api/run?token="))[0] == 200
            assert get(url.split("?")[0] + "api/run")[0] == 401
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    serve(bare_run(tmp_path), Listen("127.0.0.1", free_port()), "s3cret", say)
    assert said[0].endswith("/?token=s3cret") and sum("s3cret" in line for line in said) == 1
    assert signal.getsignal(signal.SIGTERM) == before  # the handler it found, restored


@pytest.mark.slow(12)
def test_a_rule_that_starts_failing_mid_run_is_told_when(tmp_path: Path, runs: Path) -> None:
    """A server that answers 500 from 4 s on: the rules' live status goes from pass to fail
    in events.jsonl, results.json says when each first failed, and /api/events lists it."""
    sliding, whole = "error_rate < 5% over 2s", "availability >= 90%"
    with python_server(HELPERS / "turn_server.py", str(free_port()), "4") as url:
        plan = write_plan(tmp_path, {
            "name": "turn", "duration": "8s", "seed": 1,
            "workloads": {"w": {"http": {"base": url, "rate": "50/s",
                                         "requests": [{"name": "get", "path": "/"}]}}},
            "rules": [sliding, whole, "p95(latency) < 5s"]})
        done = run_cli("run", str(plan), "--out", str(runs), "--no-live")
    assert done.returncode == 1, done.stderr
    (run_dir,) = runs.iterdir()
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    load_t = next(e["t"] for e in events if e["event"] == "load_started")
    told = [e for e in events if e["event"] == "rule_status"]
    # Pending until there is data (a full window of a sliding rule, latencies added up by
    # the writer thread), then one event per change.
    by_rule = {rule: [e["status"] for e in told if e["rule"] == rule and
                      (e["status"] != "pending" or e["at_s"] > 2)]
               for rule in (sliding, whole, "p95(latency) < 5s")}
    assert by_rule == {sliding: ["pass", "fail"], whole: ["pass", "fail"],
                       "p95(latency) < 5s": ["pass"]}, told
    failed = {e["rule"]: e for e in told if e["status"] == "fail"}
    for e in failed.values():
        # The server turns 4 s after its first request: told within a few seconds after.
        assert 4 < e["at_s"] <= 8 and e["t"] > load_t
        assert e["at_s"] == pytest.approx(e["t"] - load_t, abs=1.5)
    assert float(failed[whole]["observed"].rstrip("%")) < 90
    results = json.loads((run_dir / "results.json").read_text())
    first = {r["rule"]: r["first_failed_s"] for r in results["rules"]}
    assert first[whole] == failed[whole]["at_s"]  # a whole-run rule: when its status failed
    assert 3 < first[sliding] <= failed[sliding]["at_s"]  # its first failed window, told later
    assert {rule: e["first_failed_s"] for rule, e in failed.items()} == \
        {sliding: first[sliding], whole: first[whole]}
    assert first["p95(latency) < 5s"] is None
    with dashboard("--runs", str(runs)) as (base, _):
        status, answer = get(base + "api/events")
        assert status == 200
        rules = [e for e in answer["events"] if e["category"] == "rule"]
        assert [e["data"]["status"] for e in rules if e["data"]["rule"] == whole] == \
            ["pass", "fail"]
        fail = next(e for e in rules if e["data"]["rule"] == whole and
                    e["data"]["status"] == "fail")
        assert fail["label"].startswith(f"rule {whole}: fail (")
        assert fail["t"] == pytest.approx(failed[whole]["at_s"], abs=1.5)
        status, run = get(base + "api/run")
        rows = {r["rule"]: r for r in run["rules"]}
        assert (rows[whole]["status"], rows[whole]["first_failed_s"]) == ("fail", first[whole])
