"""The gate's threshold rule for single estimates, its filters and its settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enduro.base.errors import PlanError
from enduro.gate.run import load_thresholds, run_compare
from enduro.gate.stats import Thresholds, compare_cases, patterns


def test_one_estimate_per_case_is_judged_by_the_threshold_rule() -> None:
    base = {"fast": [1.0], "slow": [1.0], "same": [1.0]}
    head = {"fast": [0.5], "slow": [1.5], "same": [1.02]}
    results, _ = compare_cases(base, head, Thresholds(regression_pct=3.0))
    by = {r.case: r for r in results}
    assert {r.rule for r in results} == {"threshold"}
    assert by["slow"].verdict == "regressed" and round(by["slow"].delta_pct) == 50
    assert by["fast"].verdict == "improved"
    assert by["same"].verdict == "inconclusive"  # 2% is under the 3% threshold


def test_samples_are_judged_by_statistics() -> None:
    base = {"a": [1.0 + i * 0.001 for i in range(30)]}
    head = {"a": [1.5 + i * 0.001 for i in range(30)]}
    (result,), _ = compare_cases(base, head, Thresholds())
    assert result.rule == "statistics" and result.verdict == "regressed"


def test_a_criterion_estimate_regression_fails_the_gate(tmp_path: Path) -> None:
    for side, ns in (("base", 1_000_000), ("head", 1_500_000)):
        est = tmp_path / side / "parse" / "new" / "estimates.json"
        est.parent.mkdir(parents=True)
        est.write_text(json.dumps({"mean": {"point_estimate": ns}, "slope": None,
                                   "median": {"point_estimate": ns}}))
    outcome = run_compare(tmp_path / "base", tmp_path / "head", Thresholds(),
                          tmp_path / "out")
    assert not outcome.passed and [r.case for r in outcome.regressed] == ["parse"]
    assert "| threshold |" in (tmp_path / "out" / "comparison.md").read_text()
    stats = json.loads((tmp_path / "out" / "base_summary.json").read_text())["stats"]
    assert stats["parse"]["median_ns"] == pytest.approx(1e6)
    assert stats["parse"]["mean_ns"] == pytest.approx(1e6)


def test_filters_take_comma_separated_names_and_regexes() -> None:
    assert patterns("a, b ,c") == ["a", "b", "c"]
    assert patterns(r"x{1,3},y") == [r"x{1,3}", "y"]
    cases = {"parse": [1.0], "render": [1.0], "io_read": [1.0], "io_write": [1.0]}
    results, _ = compare_cases(cases, cases, Thresholds(include="parse,io_.*",
                                                        exclude="io_write"))
    assert sorted(r.case for r in results) == ["io_read", "parse"]


def test_settings_in_ns_and_bad_settings(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text("min_base_time_ns = 5000\nregression_pct = 10\n")
    t = load_thresholds(config, env={})
    assert t.min_base_time_s == pytest.approx(5e-6) and t.regression_pct == 10
    for text, message in (("include = '('\n", "not a regex"),
                          ("regression_pct = 'nan'\n", "finite"),
                          ("nosuch = 1\n", "unknown gate setting")):
        config.write_text(text)
        with pytest.raises(PlanError, match=message):
            load_thresholds(config, env={})
