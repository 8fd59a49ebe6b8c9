"""``enduro gate snapshot`` and ``enduro gate compare``: summaries in, a decision out, with
markdown and JSON reports and a non-zero exit when the gate fails."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import yaml

from enduro.base.errors import PlanError, RunError
from enduro.gate.readers import read_results
from enduro.gate.stats import CaseResult, Thresholds, compare_cases
from enduro.gate.stats import patterns as _patterns

__all__ = ["GateOutcome", "load_thresholds", "run_compare", "snapshot"]

_ENV = {"ENDURO_GATE_REGRESSION_PCT": "regression_pct",
        "ENDURO_GATE_MAX_REGRESSED": "max_regressed",
        "ENDURO_GATE_MIN_COMPARED": "min_compared",
        "ENDURO_GATE_MIN_BASE_TIME": "min_base_time_s",
        "ENDURO_GATE_MIN_BASE_TIME_NS": "min_base_time_ns",
        "ENDURO_GATE_ALPHA": "alpha",
        "ENDURO_GATE_INCLUDE": "include",
        "ENDURO_GATE_EXCLUDE": "exclude"}


def load_thresholds(path: Path | None, env: Mapping[str, str] = os.environ) -> Thresholds:
    """Defaults, then the file (TOML or YAML, keys as in ``Thresholds``, and
    ``min_base_time_ns`` for inputs in ns), then the env."""
    t = Thresholds()
    types = {f.name: f.type for f in fields(Thresholds)}
    types["min_base_time_ns"] = "float"
    values = _file_thresholds(path, types) if path is not None else {}
    for var, key in _ENV.items():
        if var in env:
            values[key] = env[var]
    _convert_thresholds(values, types)
    if "min_base_time_ns" in values:
        values["min_base_time_s"] = values.pop("min_base_time_ns") / 1e9
    _check_patterns(values)
    return replace(t, **values)


def _file_thresholds(path: Path, types: Mapping[str, object]) -> dict[str, Any]:
    """The settings of a thresholds file, under its ``gate`` key if it has one."""
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise PlanError(f"{path}: cannot read gate thresholds: {exc}") from exc
    data = data.get("gate", data) if isinstance(data, dict) else {}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in types:
            raise PlanError(f"{path}: unknown gate setting {key!r} (known: "
                            f"{', '.join(types)})")
        values[key] = value
    return values


def _convert_thresholds(values: dict[str, Any], types: Mapping[str, object]) -> None:
    """Each setting (text from the env, or whatever the file held) as its field's type, in
    place; a number must be finite."""
    for key, value in values.items():
        kind = str(types[key])
        try:
            values[key] = (int(value) if "int" in kind else float(value) if "float" in kind
                           else str(value))
        except ValueError as exc:
            raise PlanError(f"gate setting {key}: {value!r} is not a number") from exc
        if isinstance(values[key], float) and not math.isfinite(values[key]):
            raise PlanError(f"gate setting {key}: {value!r} is not a finite number")


def _check_patterns(values: Mapping[str, Any]) -> None:
    """Every ``include`` and ``exclude`` pattern must compile as a regex."""
    for key in ("include", "exclude"):
        for pattern in _patterns(values.get(key)):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise PlanError(f"gate setting {key}: {pattern!r} is not a regex: {exc}") \
                    from None


def summary(cases: dict[str, list[float]], **extra: Any) -> dict[str, Any]:
    """A gate summary: the samples of each case (s) and, as teams read them, each case's
    ``median_ns`` and ``mean_ns``."""
    return {"format": "enduro-gate-summary", **extra, "cases": cases,
            "stats": {name: {"median_ns": statistics.median(v) * 1e9,
                             "mean_ns": statistics.fmean(v) * 1e9, "samples": len(v)}
                      for name, v in cases.items() if v}}


def snapshot(paths: list[Path], out: Path) -> Path:
    """A gate summary (one JSON file) of benchmark results, to compare against later."""
    cases: dict[str, list[float]] = {}
    for p in paths:
        cases.update(read_results(p))
    out.write_text(json.dumps(summary(cases, created_at=time.time(),
                                      sources=[str(p) for p in paths]), indent=1))
    return out


def baseline_from_ref(ref: str, command: str, result: str, repo: Path,
                      log: Path | None = None) -> Path:
    """Run ``command`` in a git worktree of ``ref``; return the result file it wrote. Its
    output is kept in ``log`` (``base.bench.log``)."""
    root = Path(tempfile.mkdtemp(prefix="enduro-gate-"))
    tree = root / "tree"
    add = subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree),
                          ref], capture_output=True, text=True)
    if add.returncode != 0:
        raise RunError(f"git worktree add {ref} failed: {add.stderr.strip()}")
    try:
        proc = subprocess.run(command, shell=True, cwd=tree, capture_output=True, text=True)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RunError(f"the benchmark command failed at {ref} (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-500:]}")
        produced = tree / result
        if not produced.exists():
            raise RunError(f"the benchmark command at {ref} did not write {result}")
        keep = root / Path(result).name
        shutil.copy(produced, keep) if produced.is_file() else shutil.copytree(produced, keep)
        return keep
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                       capture_output=True)


class GateOutcome:
    """Results, skipped cases, and the decision."""

    def __init__(self, results: list[CaseResult], skipped: list[str], t: Thresholds) -> None:
        self.results = results
        self.skipped = skipped
        self.thresholds = t
        self.regressed = [r for r in results if r.verdict == "regressed"]
        self.improved = [r for r in results if r.verdict == "improved"]
        reasons = []
        if len(self.regressed) > t.max_regressed:
            reasons.append(f"{len(self.regressed)} case(s) regressed (at most "
                           f"{t.max_regressed} allowed)")
        if len(results) < t.min_compared:
            reasons.append(f"only {len(results)} case(s) compared (at least "
                           f"{t.min_compared} needed)")
        self.reasons = reasons
        self.passed = not reasons

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons,
                "thresholds": {f.name: getattr(self.thresholds, f.name)
                               for f in fields(Thresholds)},
                "cases": [r.to_json() for r in self.results], "skipped": self.skipped}

    def markdown(self) -> str:
        mark = {"regressed": "🔴 regressed", "improved": "🟢 improved",
                "inconclusive": "⚪ no change"}
        lines = [f"## Performance gate: {'PASS' if self.passed else 'FAIL'}", ""]
        lines += [f"- {r}" for r in self.reasons]
        lines += ["", "| case | base | head | delta | 95% CI | p (adj.) | noise floor | rule | |",
                  "|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for r in sorted(self.results, key=lambda r: -abs(r.delta_pct)):
            p = f"{r.p_adjusted:.3g}" if r.p_adjusted is not None else "-"
            lines.append(f"| `{r.case}` | {_t(r.base_median)} | {_t(r.head_median)} | "
                         f"{r.delta_pct:+.2f}% | {r.ci_pct[0]:+.1f}%..{r.ci_pct[1]:+.1f}% | "
                         f"{p} | ±{r.noise_floor_pct:.1f}% | {r.rule} | {mark[r.verdict]} |")
        if self.skipped:
            lines += ["", "Skipped:", *(f"- {s}" for s in self.skipped)]
        lines += ["", "The noise floor is the smallest change this many samples with the "
                  "baseline's spread could reveal. Rule `threshold`: one estimate per case, "
                  f"so no significance test; regressed beyond {self.thresholds.regression_pct:g}%."]
        return "\n".join(lines) + "\n"


def _t(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def run_compare(base: Path, head: Path, t: Thresholds, out: Path) -> GateOutcome:
    """Compare two result files (any supported format); write the reports into ``out``."""
    base_cases, head_cases = read_results(base), read_results(head)
    out.mkdir(parents=True, exist_ok=True)
    for name, cases in (("base_summary.json", base_cases), ("head_summary.json", head_cases),
                        ("head_snapshot.json", head_cases)):
        (out / name).write_text(json.dumps(summary(cases), indent=1))
    results, skipped = compare_cases(base_cases, head_cases, t)
    outcome = GateOutcome(results, skipped, t)
    (out / "comparison.json").write_text(json.dumps(outcome.to_json(), indent=2))
    (out / "comparison.md").write_text(outcome.markdown())
    return outcome
