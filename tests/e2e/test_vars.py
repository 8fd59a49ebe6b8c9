"""User variables (``vars:``, ``--var``, ``${env:...}``) in service templates, and template
mistakes found before the run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers.procs import only_run

PLAN = """\
name: vt
duration: 1s
vars:
  SAM_HOST: "${env:SAM_HOST:-127.0.0.1}"
  LOG_LEVEL: info
  WORKERS: 4
services:
  api:
    command: ["PY", "-c", "import time; print('level {{ LOG_LEVEL }}', flush=True); time.sleep(60)"]
    config: {template: cfg.toml.j2, path: etc/config.toml}
"""
TEMPLATE = """\
host = "{{ SAM_HOST }}"
level = "{{ LOG_LEVEL }}"
workers = {{ WORKERS }}
all = "{{ vars | dictsort | map('first') | join(',') }}"
service = "{{ service }}"
"""


def _plan(tmp_path: Path, template: str = TEMPLATE, plan: str = PLAN) -> Path:
    (tmp_path / "cfg.toml.j2").write_text(template)
    path = tmp_path / "p.yaml"
    path.write_text(plan.replace("PY", sys.executable))
    return path


@pytest.mark.slow(5)
def test_vars_reach_config_templates_and_commands(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    proc = run_cli("run", str(plan), "--var", "LOG_LEVEL=debug", "--out", str(tmp_path / "r"),
                   env={"SAM_HOST": "10.1.2.3"})
    assert proc.returncode == 0, proc.stderr
    service = only_run(tmp_path / "r") / "services" / "api"
    assert (service / "etc" / "config.toml").read_text() == (
        'host = "10.1.2.3"\nlevel = "debug"\nworkers = 4\n'
        'all = "LOG_LEVEL,SAM_HOST,WORKERS"\nservice = "api"\n')
    assert "level debug" in (service / "output.log").read_text()


def test_template_mistakes_are_plan_errors_at_their_lines(tmp_path: Path) -> None:
    plan = _plan(tmp_path, TEMPLATE.replace("{{ LOG_LEVEL }}", "{{ LOG_LEVL }}")
                 + "{% if %}\n",
                 PLAN.replace("print('level", "print('{{ nope }} level"))
    proc = run_cli("validate", str(plan))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert any(line.startswith("error: ") and "p.yaml:9: services.api.command[2]: {{ nope }} "
               "is not a variable" in line for line in lines), proc.stderr
    # a syntax error hides the rest of its file, so the unknown name comes out once fixed
    assert any("p.yaml:10: services.api.config.template: " in line and "cfg.toml.j2, line 6: "
               "template syntax" in line for line in lines), proc.stderr
    (tmp_path / "cfg.toml.j2").write_text(TEMPLATE.replace("{{ LOG_LEVEL }}", "{{ LOG_LEVL }}"))
    proc = run_cli("validate", str(plan))
    assert "cfg.toml.j2, line 2: {{ LOG_LEVL }} is not a variable (did you mean 'LOG_LEVEL'?)" \
        in proc.stderr, proc.stderr


@pytest.mark.slow(15)
def test_bad_variable_names_and_values(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    for args, message in (
            (["--var", "bad name=1"], "expected NAME=VALUE"),
            (["--var", "NOEQUALS"], "expected NAME=VALUE"),
            (["--var", "run_id=x"], "the name of a variable enduro sets itself"),
            (["--set", "vars.X=.nan"], "finite"),
            (["--set", "vars.X=[1, 2]"], "vars.X")):
        proc = run_cli("validate", str(plan), *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    # a value with '=' and spaces is kept whole, as a string
    proc = run_cli("plan", str(plan), "--var", "LOG_LEVEL=a = b")
    assert proc.returncode == 0, proc.stderr
    assert "LOG_LEVEL: a = b" in proc.stdout, proc.stdout
