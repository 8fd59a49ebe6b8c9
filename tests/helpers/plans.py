"""Writing small plans for tests and running them in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from enduro.plan import load_plan
from enduro.run.run import Run, RunOptions, RunOutcome


def write_plan(tmp_path: Path, plan: dict[str, Any], name: str = "plan.yaml") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def run_plan(tmp_path: Path, plan: dict[str, Any], **options: Any) -> RunOutcome:
    """Run a plan in this process, without signal handlers or a live view."""
    loaded = load_plan(write_plan(tmp_path, plan))
    opts = RunOptions(out=tmp_path / "runs", live=False, handle_signals=False, **options)
    return Run(loaded, opts).main()


def http_plan(base: str, *, requests: list[dict[str, Any]], rules: list[Any] | None = None,
              duration: str = "3s", **http: Any) -> dict[str, Any]:
    return {"name": "t", "duration": duration, "seed": 1, "grace": "2s",
            "workloads": {"w": {"http": {"base": base, **http, "requests": requests}}},
            "rules": rules or []}
