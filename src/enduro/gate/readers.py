"""Benchmark results in, one shape out: {case: samples in seconds}.

Reads pytest-benchmark JSON (raw samples with ``--benchmark-save-data``), Criterion's output
directory (``estimates.json`` and ``sample.json``), hyperfine JSON (``--export-json``),
enduro's run directories (per-window figures from metrics.sqlite: each window of a load
run is one sample), enduro's own results.json (the windows of its run directory when they
are there, else one estimate per percentile), and enduro's summary JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from enduro.base.errors import PlanError
from enduro.documents.document import DocumentError
from enduro.documents.results import Results

__all__ = ["read_results"]

Cases = dict[str, list[float]]


def _pytest_benchmark(doc: dict[str, Any]) -> Cases:
    out: Cases = {}
    for bench in doc["benchmarks"]:
        stats = bench.get("stats", {})
        name = bench.get("fullname") or bench["name"]
        data = stats.get("data")
        out[name] = [float(x) for x in data] if data else [float(stats["median"])]
    return out


def _hyperfine(doc: dict[str, Any]) -> Cases:
    return {r["command"]: [float(t) for t in r.get("times") or [r["median"]]]
            for r in doc["results"]}


def _enduro_results(doc: dict[str, Any], path: Path) -> Cases:
    try:
        results = Results.from_json(doc, f"{path}: not a results.json enduro can read")
    except DocumentError as exc:  # the gate's input is the user's: a usage error
        raise PlanError(str(exc)) from exc
    out: Cases = {}
    for op, s in results.ops.items():
        lat = s.latency_ms
        for q, ms in (("p50", lat.p50), ("p95", lat.p95), ("p99", lat.p99)):
            out[f"{op}:{q}"] = [ms / 1000.0]
    return out


# A window with under this share of its op's median request count is partial (the first and
# last windows of a run, a pause) and not a sample: its percentiles rest on a few requests.
PARTIAL_WINDOW_SHARE = 0.25


def _enduro_run(db: Path) -> Cases:
    """Samples from a run's windows: per op, each full window's p50, p95 and p99 (s) and its
    time per request (s: the inverse of its throughput, so that, as for every other case,
    more is worse)."""
    import sqlite3
    import statistics
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT op, t, span, requests, p50_ms, p95_ms, p99_ms "
                               "FROM windows ORDER BY op, t").fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise PlanError(f"{db}: not a metrics store enduro can read ({exc})") from exc
    by_op: dict[str, dict[float, tuple[Any, ...]]] = {}
    for row in rows:
        windows = by_op.setdefault(row[0], {})
        # One row per op and window; keep the fuller one should a window be split.
        if row[1] not in windows or (row[3] or 0) > (windows[row[1]][3] or 0):
            windows[row[1]] = row
    out: Cases = {}
    for op, windows in by_op.items():
        full = [w for w in windows.values() if w[3]]
        if not full:
            continue
        typical = statistics.median(w[3] for w in full)
        full = [w for w in full if w[3] >= PARTIAL_WINDOW_SHARE * typical]
        for q, column in (("p50", 4), ("p95", 5), ("p99", 6)):
            values = [w[column] / 1000.0 for w in full if w[column] is not None]
            if values:
                out[f"{op}:{q}"] = values
        out[f"{op}:time_per_request"] = [w[2] / w[3] for w in full]
    if not out:
        raise PlanError(f"{db}: the run recorded no windows with requests")
    return out


def _criterion(root: Path) -> Cases:
    out: Cases = {}
    for sample in sorted(root.rglob("new/sample.json")):
        case = sample.parent.parent.relative_to(root).as_posix()
        doc = json.loads(sample.read_text())
        iters, times = doc["iters"], doc["times"]
        out[case] = [t / i / 1e9 for t, i in zip(times, iters, strict=True) if i]
    if not out:
        for est in sorted(root.rglob("new/estimates.json")):
            case = est.parent.parent.relative_to(root).as_posix()
            doc = json.loads(est.read_text())
            out[case] = [doc["median"]["point_estimate"] / 1e9]
    return out


def read_results(path: Path) -> Cases:
    """Cases and samples from any supported format; ``PlanError`` when unreadable."""
    if path.is_dir() and (path / "metrics.sqlite").is_file():
        return _enduro_run(path / "metrics.sqlite")
    if path.name == "results.json" and (path.parent / "metrics.sqlite").is_file():
        return _enduro_run(path.parent / "metrics.sqlite")
    if path.is_dir():
        cases = _criterion(path)
        if not cases:
            raise PlanError(f"{path}: no Criterion results (new/sample.json) under it")
        return cases
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: not a readable JSON benchmark result ({exc})") from exc
    if isinstance(doc, dict):
        if "benchmarks" in doc and "machine_info" in doc:
            return _pytest_benchmark(doc)
        if "results" in doc and doc["results"] and "command" in doc["results"][0]:
            return _hyperfine(doc)
        if doc.get("schema") is not None and "ops" in doc:
            return _enduro_results(doc, path)
        if doc.get("format") == "enduro-gate-summary":
            return {k: [float(x) for x in v] for k, v in doc["cases"].items()}
        if ("mean" in doc and "median" in doc and "slope" in doc) or ("median" in doc \
                and "point_estimate" in doc.get("median", {})):
            return {path.parent.parent.name: [doc["median"]["point_estimate"] / 1e9]}
    raise PlanError(f"{path}: not a format the gate reads (pytest-benchmark JSON, hyperfine "
                    "JSON, a Criterion directory, an enduro run directory or results.json, or "
                    "a gate summary)")
