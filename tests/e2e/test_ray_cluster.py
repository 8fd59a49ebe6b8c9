"""``--workers N --cluster ADDRESS`` on a real two-node Ray cluster, with nginx, inside network,
PID and mount namespaces of their own (``tests/helpers/ray_cluster.py``): loopback is the only
interface there, and the namespace's end takes every process the tests started in it.

One cluster serves the whole module (Ray takes several seconds to start on two cores), and its
scenarios run in one test. Each
run goes into the namespace with ``nsenter``; the process ids enduro records there (the
workers' in ``workers_ready``, the runner's in ``run_started``) are the namespace's."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from enduro.cli import main
from enduro.documents.results import Results
from tests.helpers.plans import write_plan
from tests.helpers.procs import REPO, free_port, wait_for

HELPER = REPO / "tests" / "helpers" / "ray_cluster.py"


@dataclass
class Cluster:
    proc: subprocess.Popen[str]
    init_pid: int  # the namespace's first process, as this machine sees it
    address: str
    client: str  # the head's Ray Client address (ray://), as KubeRay exposes it
    nodes: list[str]
    url: str
    access_log: Path
    # Ray keeps state under $HOME/.ray (an auth token it may write there makes nodes of a
    # later cluster refuse each other): every process of the test's cluster has a HOME of its
    # own.
    home: Path

    def run(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args, env=env), capture_output=True, text=True,
                              timeout=timeout)

    def command(self, *args: str, env: dict[str, str] | None = None) -> list[str]:
        """``args`` run inside the namespace (with ``env`` added to its environment)."""
        extra = [f"{k}={v}" for k, v in {"HOME": str(self.home), **(env or {})}.items()]
        return ["nsenter", "-t", str(self.init_pid), "-n", "-p", "-m", "--", "env", *extra,
                *args]

    def enduro(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "enduro", *args]

    def nginx_requests(self) -> int:
        try:
            return len(self.access_log.read_text().splitlines())
        except FileNotFoundError:
            return 0

    def load_actors(self) -> list[str]:
        """The processes of enduro's load actors still in the namespace."""
        ps = self.run("ps", "-eo", "pid,args", timeout=30).stdout.splitlines()
        return [line for line in ps if "LoadActor" in line]

    def cpus_in_use(self) -> float:
        """What ``ray status`` says the cluster's CPUs are held by (actors hold one each)."""
        out = self.run("ray", "status", "--address", self.address, timeout=60).stdout
        match = re.search(r"([\d.]+)/([\d.]+) CPU", out)
        assert match, out
        return float(match.group(1))

    def nothing_left(self) -> bool:
        return not self.load_actors() and self.cpus_in_use() == 0.0


def _init_pid(unshare_pid: int) -> int:
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children")
    return int(wait_for(lambda: children.read_text().split(), 10, "the namespace")[0])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Short: Ray's sockets live under it, and a socket's path is at most 107 bytes (pytest's
    # temporary folders under xdist are too long).
    workdir = Path(tempfile.mkdtemp(prefix="enduro-ray-", dir="/tmp"))
    try:
        yield from _cluster(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _cluster(workdir: Path) -> Iterator[Cluster]:
    ports = [free_port() for _ in range(7)]
    home = workdir / "home"
    home.mkdir()
    proc = subprocess.Popen(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", sys.executable, str(HELPER),
         str(workdir), *map(str, ports)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=(workdir / "helper.err").open("w"), text=True,
        env={**os.environ, "HOME": str(home)})
    init_pid = _init_pid(proc.pid)
    # The cluster is up when the helper says so; a helper that fails ends its output.
    guard = threading.Timer(180, proc.kill)
    guard.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
    finally:
        guard.cancel()
    assert line, f"the cluster did not start: {(workdir / 'helper.err').read_text()[-3000:]}"
    ready = json.loads(line)
    try:
        yield Cluster(proc, init_pid, ready["address"], ready["client"], ready["nodes"],
                      ready["url"], Path(ready["access_log"]), home)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the helper stops Ray and nginx, and the namespace ends with it
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            subprocess.run(["kill", "-KILL", str(init_pid)], check=False)
            proc.wait(10)
        # The namespace, and every process of the cluster with it, is gone.
        wait_for(lambda: not Path(f"/proc/{init_pid}").exists(), 10, "the namespace's end")


def _plan(tmp_path: Path, url: str, *, duration: str, rate: str = "100/s",
          **top: Any) -> Path:
    return write_plan(tmp_path, {
        "name": "ray", "duration": duration, "grace": "2s", **top,
        "observe": {"heartbeat": "1s"},  # a heartbeat event: the load is under way
        "workloads": {"w": {"http": {"base": url, "rate": rate,
                                     "requests": [{"name": "root", "path": "/"}]}}},
        "rules": ["errors == 0"]})


def _results(out: Path) -> tuple[Path, Results]:
    (run_dir,) = list(out.iterdir())
    return run_dir, Results.read(run_dir / "results.json")


def _events(run_dir: Path) -> list[dict[str, Any]]:
    try:
        text = (run_dir / "events.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def _event(run_dir: Path, kind: str) -> dict[str, Any] | None:
    return next((e for e in _events(run_dir) if e["event"] == kind), None)


def _under_way(run_dir: Path) -> bool:
    """Two heartbeats since the load started have seen requests: every worker has sent
    windows by then (one a second)."""
    events = _events(run_dir)
    started = next((i for i, e in enumerate(events) if e["event"] == "load_started"), None)
    return started is not None and sum(
        1 for e in events[started:]
        if e["event"] == "heartbeat" and " rps=0 " not in e["line"]) >= 2


def _both_nodes_and_nginx_count(cluster: Cluster, tmp_path: Path) -> None:
    plan = _plan(tmp_path, cluster.url, duration="3s", rate="150/s")
    before = cluster.nginx_requests()
    proc = cluster.run(*cluster.enduro("run", str(plan), "--workers", "2", "--cluster",
                                       cluster.address, "--no-live", "--out",
                                       str(tmp_path / "runs")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir, results = _results(tmp_path / "runs")
    assert results.worker_count == 2 and results.verdict == "pass"
    assert sorted(w.node for w in results.workers) == cluster.nodes  # one actor per node
    assert all(w.share == 0.5 and w.requests > 0 and w.saturation is not None
               for w in results.workers)
    # 150/s for 3 s; a machine busy with other tests may fall a little behind.
    assert results.total is not None and 430 <= results.total.requests <= 450
    assert sum(w.requests for w in results.workers) == results.total.requests
    # Every request enduro counted reached nginx, and no other.
    assert cluster.nginx_requests() - before == results.total.requests
    ready = _event(run_dir, "workers_ready")
    assert ready is not None and ready["cluster"] == cluster.address
    assert all(abs(w["clock_offset_ms"]) < 100 for w in ready["workers"])
    wait_for(cluster.nothing_left, 30, "no load actor left in the cluster")


def _through_the_client_address(cluster: Cluster, tmp_path: Path) -> None:
    plan = _plan(tmp_path, cluster.url, duration="2s")
    before = cluster.nginx_requests()
    proc = cluster.run(*cluster.enduro("run", str(plan), "--workers", "2", "--cluster",
                                       cluster.client, "--no-live", "--out",
                                       str(tmp_path / "runs")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _, results = _results(tmp_path / "runs")
    assert sorted(w.node for w in results.workers) == cluster.nodes
    assert results.total is not None and 190 <= results.total.requests <= 200
    assert cluster.nginx_requests() - before == results.total.requests
    wait_for(cluster.nothing_left, 30, "no load actor left in the cluster")


def _start_and_kill_worker(cluster: Cluster, tmp_path: Path, policy: str | None
                           ) -> tuple[subprocess.CompletedProcess[str], Path, Results]:
    top = {"on_worker_loss": policy} if policy else {}
    plan = _plan(tmp_path, cluster.url, duration="6s", **top)
    out = tmp_path / "runs"
    proc = subprocess.Popen(cluster.command(*cluster.enduro(
        "run", str(plan), "--workers", "2", "--cluster", cluster.address, "--no-live",
        "--out", str(out))), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run_dir = wait_for(lambda: next(iter(out.iterdir()), None) if out.exists() else None,
                           60, "the run directory")
        ready = wait_for(lambda: _event(run_dir, "workers_ready"), 60, "the workers")
        wait_for(lambda: _under_way(run_dir), 30, "some load")
        victim = ready["workers"][1]["pid"]
        cluster.run("kill", "-KILL", str(victim), timeout=30)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    _, results = _results(out)
    return subprocess.CompletedProcess(proc.args, proc.returncode, output, ""), run_dir, results


def _killed_actor_with_continue(cluster: Cluster, tmp_path: Path) -> None:
    proc, run_dir, results = _start_and_kill_worker(cluster, tmp_path, "continue")
    assert proc.returncode == 0, proc.stdout
    lost = _event(run_dir, "worker_lost")
    assert lost is not None and lost["index"] == 1 and lost["on_worker_loss"] == "continue"
    first, second = results.workers
    assert first.lost is None and second.lost is not None and "actor" in second.lost
    assert second.requests > 0  # its windows before it died are kept
    assert results.complete and results.duration_s >= 6
    named = [r for r in results.rules if r.rule == "no load worker is lost"]
    assert named and named[0].passed and "worker 1" in named[0].observed_text
    wait_for(cluster.nothing_left, 30, "no load actor left in the cluster")


def _killed_actor_fails_by_default(cluster: Cluster, tmp_path: Path) -> None:
    proc, _, results = _start_and_kill_worker(cluster, tmp_path, None)
    assert proc.returncode == 3, proc.stdout
    assert results.verdict != "pass" and results.stop_reason is not None
    assert "load worker 1" in results.stop_reason and "on_worker_loss: fail" in \
        results.stop_reason
    named = [r for r in results.rules if r.rule == "no load worker is lost"]
    assert named and not named[0].passed
    assert results.workers[1].lost is not None and results.workers[0].requests > 0
    wait_for(cluster.nothing_left, 30, "no load actor left in the cluster")


def _a_killed_runner_leaves_nothing(cluster: Cluster, tmp_path: Path) -> None:
    """SIGKILL gives the runner no chance to end its actors: Ray ends them with their owner."""
    plan = _plan(tmp_path, cluster.url, duration="60s")
    out = tmp_path / "runs"
    proc = subprocess.Popen(cluster.command(*cluster.enduro(
        "run", str(plan), "--workers", "2", "--cluster", cluster.address, "--no-live",
        "--out", str(out))), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_dir = wait_for(lambda: next(iter(out.iterdir()), None) if out.exists() else None,
                           60, "the run directory")
        wait_for(lambda: _under_way(run_dir), 60, "some load")
        runner = _event(run_dir, "run_started")
        assert runner is not None and len(cluster.load_actors()) == 2
        cluster.run("kill", "-KILL", str(runner["pid"]), timeout=30)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(cluster.nothing_left, 30, "no load actor left in the cluster")


def _start_then_stop(cluster: Cluster, tmp_path: Path) -> None:
    """``enduro start --cluster`` detaches the runner; ``enduro stop`` ends it, and it its
    actors."""
    plan = _plan(tmp_path, cluster.url, duration="60s")
    out = tmp_path / "runs"
    started = cluster.run(*cluster.enduro("start", str(plan), "--workers", "2", "--cluster",
                                          cluster.address, "--out", str(out)))
    assert started.returncode == 0, started.stdout + started.stderr
    (run_dir,) = list(out.iterdir())
    wait_for(lambda: _under_way(run_dir), 60, "some load")
    assert len(cluster.load_actors()) == 2
    stopped = cluster.run(*cluster.enduro("stop", run_dir.name, "--runs", str(out)))
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    results = Results.read(run_dir / "results.json")
    assert results.state == "stopped" and all(w.requests > 0 for w in results.workers)
    wait_for(cluster.nothing_left, 30, "no load actor left in the cluster")


def _ctrl_c_ends_every_actor(cluster: Cluster, tmp_path: Path) -> None:
    plan = _plan(tmp_path, cluster.url, duration="60s")
    out = tmp_path / "runs"
    proc = subprocess.Popen(cluster.command(*cluster.enduro(
        "run", str(plan), "--workers", "2", "--cluster", cluster.address, "--no-live",
        "--out", str(out))), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run_dir = wait_for(lambda: next(iter(out.iterdir()), None) if out.exists() else None,
                           60, "the run directory")
        wait_for(lambda: _under_way(run_dir), 60, "some load")
        assert len(cluster.load_actors()) == 2
        runner = _event(run_dir, "run_started")
        assert runner is not None
        cluster.run("kill", "-INT", str(runner["pid"]), timeout=30)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    _, results = _results(out)
    assert all(w.lost is None and w.requests > 0 for w in results.workers)
    wait_for(cluster.nothing_left, 30, "no load actor left in the cluster")


def _clock_beyond_the_bound_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    plan = _plan(tmp_path, cluster.url, duration="2s")
    before = cluster.nginx_requests()
    proc = cluster.run(*cluster.enduro("run", str(plan), "--workers", "2", "--cluster",
                                       cluster.address, "--no-live", "--out",
                                       str(tmp_path / "runs")),
                       env={"ENDURO_MAX_CLOCK_OFFSET_S": "0.000000001"})
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "above the bound of" in proc.stdout + proc.stderr
    assert cluster.nginx_requests() == before  # no load was sent
    wait_for(cluster.nothing_left, 30, "no load actor left in the cluster")


@pytest.mark.slow(130)
@pytest.mark.timeout(600)  # eight runs and a cluster's start, on a machine busy with others
def test_on_a_two_node_ray_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """Load on both nodes, counted as nginx counted it (through the cluster's address and
    its Ray Client address); a killed actor with
    ``on_worker_loss: continue`` and by default (fail); Ctrl-C; ``enduro start`` then
    ``enduro stop``; a runner killed outright; a clock beyond the bound.
    After each, no actor of enduro's is left in the cluster. One test, so that a parallel
    run (pytest-xdist hands tests to its workers one by one) starts one cluster, not one
    per worker."""
    for step in (_both_nodes_and_nginx_count, _through_the_client_address,
                 _killed_actor_with_continue,
                 _killed_actor_fails_by_default, _ctrl_c_ends_every_actor, _start_then_stop,
                 _a_killed_runner_leaves_nothing,
                 _clock_beyond_the_bound_is_refused):
        step(cluster, tmp_path / step.__name__.strip("_"))


def test_cluster_without_ray_says_how_to_install_it(tmp_path: Path, monkeypatch:
                                                    pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    plan = _plan(tmp_path, "http://127.0.0.1:9", duration="1s")
    assert main(["run", str(plan), "--workers", "2", "--cluster", "auto",
                 "--out", str(tmp_path / "runs")]) == 2
    assert "pip install 'enduro[ray]'" in capsys.readouterr().err


def test_importing_enduro_does_not_load_ray() -> None:
    code = ("import sys, enduro, enduro.cli, enduro.api, enduro.run.run, enduro.run.load; "
            "sys.exit('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
