"""Running a project's own test commands: layers with timeouts and retries, loops with
cleanup, and soak cycles with performance snapshots."""

from __future__ import annotations

import csv
import json
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enduro.base.errors import PlanError
from enduro.plan.suites import Layer, Suite

__all__ = ["CommandResult", "LayerResult", "run_command", "run_cycles", "run_layers",
           "run_loop"]

Say = Callable[[str], None]


@dataclass
class CommandResult:
    command: str
    exit_code: int | None
    seconds: float
    attempts: int
    timed_out: bool = False
    log: str = ""

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass
class LayerResult:
    layer: str
    commands: list[CommandResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.commands)


def run_command(command: str, *, cwd: Path, env: dict[str, str], timeout: float,
                log: Path) -> tuple[int | None, bool]:
    """Run one shell command in its own process group; on timeout the whole group gets
    SIGTERM, then SIGKILL after 10 s. Returns (exit code, timed out)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {command}\n".encode())
        out.flush()
        proc = subprocess.Popen(command, shell=True, cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            return proc.wait(timeout), False
        except subprocess.TimeoutExpired:
            with_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with_group(proc.pid, signal.SIGKILL)
                proc.wait()
            out.write(f"[enduro] timed out after {timeout:g}s; process group stopped\n"
                      .encode())
            return proc.returncode, True


def with_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _env(suite: Suite, layer: Layer, threads: int) -> dict[str, str]:
    env = {**os.environ, **suite.env, **layer.env, "ENDURO_THREADS": str(threads)}
    env.update(layer.failpoints)
    return env


def run_layer(name: str, layer: Layer, suite: Suite, *, cwd: Path, out: Path, threads: int,
              say: Say) -> LayerResult:
    result = LayerResult(name)
    env = _env(suite, layer, threads)
    for i, raw in enumerate(layer.commands):
        command = raw.replace("{threads}", str(threads))
        started = time.monotonic()
        attempts = 0
        code: int | None = None
        timed_out = False
        log = out / f"{name}-{i + 1}.log"
        while attempts <= layer.retries:
            attempts += 1
            code, timed_out = run_command(command, cwd=cwd, env=env, timeout=layer.timeout,
                                          log=log)
            if code == 0 and not timed_out:
                break
            if attempts <= layer.retries:
                say(f"  {name}: {command!r} failed (attempt {attempts}); retrying")
        res = CommandResult(command, code, time.monotonic() - started, attempts, timed_out,
                            str(log))
        result.commands.append(res)
        state = "passed" if res.passed else ("timed out" if timed_out else f"failed ({code})")
        say(f"  {name}: {command} {state} in {res.seconds:.1f}s"
            + (f" after {attempts} attempts" if attempts > 1 else ""))
    return result


def _layers(suite: Suite, which: str) -> list[str]:
    if which == "all":
        names = [n for n in suite.order if n in suite.layers]
        return names + [n for n in suite.layers if n not in names]
    if which not in suite.layers:
        raise PlanError(f"no suite layer {which!r} (layers: {', '.join(suite.layers)})")
    return [which]


def run_layers(suite: Suite, which: str, *, cwd: Path, out: Path, threads: int,
               say: Say) -> list[LayerResult]:
    """``enduro suite``: the layers in order; a summary of failures at the end."""
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in _layers(suite, which):
        say(f"layer {name}")
        results.append(run_layer(name, suite.layers[name], suite, cwd=cwd, out=out,
                                 threads=threads, say=say))
    (out / "suite.json").write_text(json.dumps([
        {"layer": r.layer, "passed": r.passed, "commands": [c.__dict__ for c in r.commands]}
        for r in results], indent=2, default=str))
    return results


def run_loop(suite: Suite, which: str, *, cwd: Path, out: Path, threads: int,
             duration: float, iterations: int | None, say: Say,
             stop: Callable[[], bool] = lambda: False) -> list[dict[str, Any]]:
    """``enduro loop``: the layer(s) again and again, cleanup between iterations, each
    iteration's outcome in loop.log and loop.tsv."""
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    end = time.monotonic() + duration
    n = 0
    tsv = out / "loop.tsv"
    with tsv.open("w", newline="") as fh, (out / "loop.log").open("a") as log:
        writer = csv.writer(fh, delimiter="\t")
        writer.writerow(["iteration", "started", "seconds", "passed", "failed_commands"])
        while time.monotonic() < end and (iterations is None or n < iterations) \
                and not stop():
            n += 1
            started = time.time()
            t0 = time.monotonic()
            results = [run_layer(name, suite.layers[name], suite, cwd=cwd,
                                 out=out / f"iteration-{n}", threads=threads, say=lambda _: None)
                       for name in _layers(suite, which)]
            failed = [c.command for r in results for c in r.commands if not c.passed]
            row = {"iteration": n, "started": started, "seconds": round(time.monotonic() - t0, 3),
                   "passed": not failed, "failed_commands": failed}
            rows.append(row)
            writer.writerow([n, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                             row["seconds"], "pass" if not failed else "fail",
                             "; ".join(failed)])
            fh.flush()
            line = f"iteration {n}: {'pass' if not failed else 'FAIL ' + '; '.join(failed)}"
            log.write(line + "\n")
            log.flush()
            say(line)
            for command in suite.cleanup:
                run_command(command, cwd=cwd, env={**os.environ, **suite.env}, timeout=600,
                            log=out / "cleanup.log")
    return rows


# The columns of perf_cycles.csv, as teams chart them: per snapshot, the p50 and p95 over
# the cases of each case's median, in nanoseconds.
CYCLE_COLUMNS = ["cycle", "elapsed_secs", "cases", "median_ns_p50", "median_ns_p95", "passed"]
# Without a count or a duration, this many cycles run.
DEFAULT_CYCLES = 3


def _quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values``, interpolated between the closest ranks."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def cycle_row(n: int, elapsed: float, cases: dict[str, list[float]],
              passed: bool) -> list[Any]:
    """One row of perf_cycles.csv from a snapshot's cases (samples in seconds)."""
    medians = [statistics.median(v) * 1e9 for v in cases.values() if v]
    return [n, round(elapsed, 1), len(cases),
            round(_quantile(medians, 0.5)) if medians else "",
            round(_quantile(medians, 0.95)) if medians else "", passed]


def _snapshot(n: int, cases: dict[str, list[float]], out: Path) -> None:
    """perf_cycle_<n>.json: each case's median and mean in ns and its samples."""
    doc = {"cycle": n, "cases": {
        name: {"median_ns": statistics.median(v) * 1e9, "mean_ns": statistics.fmean(v) * 1e9,
               "samples_s": v} for name, v in cases.items() if v}}
    (out / f"perf_cycle_{n}.json").write_text(json.dumps(doc, indent=2) + "\n")


def run_cycles(suite: Suite, *, cwd: Path, out: Path, threads: int, say: Say,
               read_perf: Callable[[Path], dict[str, list[float]]],
               count: int | None = None, duration: float | None = None) -> tuple[bool, Path]:
    """``enduro cycles``: stress each cycle, chaos every N, a performance snapshot every M,
    a pause, and the fast layer as a final check; perf_cycles.csv, perf_cycle_<n>.json and
    cycles.html. ``count`` and ``duration`` (from the command line) replace the plan's; a
    duration alone replaces both (``--duration 6h`` runs six hours whatever the count)."""
    cycles = suite.cycles
    if cycles is None:
        raise PlanError("the plan's suite has no 'cycles' section")
    if duration is None or count is not None:  # a duration alone replaces the count too
        duration = duration if duration is not None else cycles.duration
        count = count if count is not None else cycles.count
    if count is None:
        count = 10**9 if duration is not None else DEFAULT_CYCLES
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "perf_cycles.csv"
    start = time.monotonic()
    deadline = start + duration if duration is not None else float("inf")
    ok = True
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CYCLE_COLUMNS)
        n = 0
        while n < count and time.monotonic() < deadline:
            n += 1
            say(f"cycle {n}" + (f"/{count}" if count < 10**9 else "")
                + (f" ({max(0.0, deadline - time.monotonic()):.0f}s left)"
                   if duration is not None else ""))
            passed = _one_cycle(n, suite, cwd=cwd, out=out, threads=threads, say=say)
            cases: dict[str, list[float]] = {}
            if cycles.perf_command and cycles.perf_every and n % cycles.perf_every == 0:
                code, _ = run_command(cycles.perf_command, cwd=cwd, env=os.environ.copy(),
                                      timeout=3600, log=out / f"cycle-{n}" / "perf.log")
                if code == 0 and cycles.perf_result:
                    cases = read_perf(cwd / cycles.perf_result)
                    _snapshot(n, cases, out)
            writer.writerow(cycle_row(n, time.monotonic() - start, cases, passed))
            fh.flush()
            ok = ok and passed
            if n < count and cycles.pause:
                time.sleep(max(0.0, min(cycles.pause, deadline - time.monotonic())))
    if "fast" in suite.layers:
        say("final check: fast layer")
        ok = run_layer("fast", suite.layers["fast"], suite, cwd=cwd, out=out / "final",
                       threads=threads, say=say).passed and ok
    _plot(csv_path, out / "cycles.html")
    return ok, csv_path


def _one_cycle(n: int, suite: Suite, *, cwd: Path, out: Path, threads: int,
               say: Say) -> bool:
    """The stress layer, and the chaos layer when this cycle is one of its turn."""
    cycles = suite.cycles
    assert cycles is not None
    chaos = cycles.chaos_every and n % cycles.chaos_every == 0
    passed = True
    for name in ("stress", *(("chaos",) if chaos else ())):
        if name in suite.layers:
            passed = run_layer(name, suite.layers[name], suite, cwd=cwd,
                               out=out / f"cycle-{n}", threads=threads, say=say).passed \
                and passed
    return passed


def _plot(csv_path: Path, html: Path) -> None:
    from enduro.report.page import line_chart_html
    rows = [r for r in csv.DictReader(csv_path.open()) if r["median_ns_p50"]]
    html.write_text(line_chart_html(
        "Performance over soak cycles", "cycle", [float(r["cycle"]) for r in rows],
        {f"{p} of the cases' medians (ms)": [float(r[f"median_ns_{p}"]) / 1e6
                                             if r[f"median_ns_{p}"] else None for r in rows]
         for p in ("p50", "p95")}, "milliseconds"), encoding="utf-8")
