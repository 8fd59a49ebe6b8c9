"""Preparing a service's directory: build, stage, fresh files, config templates."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import re
import shlex
import shutil
import signal
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from enduro.base.errors import RunError
from enduro.plan.models import SERVICE_VARIABLES, Plan, Service

__all__ = ["BuildFailed", "build", "contained", "render_string", "stage", "template_problems"]

# A config template larger than this is not checked before the run (it is still rendered).
_CHECK_MAX_BYTES = 4 << 20


class BuildFailed(RunError):
    """A service's build command failed."""


def argv(command: list[str] | str) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def render_string(text: str, variables: dict[str, Any]) -> str:
    """Render ``{{ var }}`` in a plan string with the run's variables."""
    if "{{" not in text and "{%" not in text:
        return text
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        return env.from_string(text).render(**variables)
    except jinja2.TemplateError as exc:
        raise RunError(f"template {text!r}: {exc}") from exc


async def build(name: str, service: Service, base_dir: Path, log_path: Path,
                timeout: float = 3600.0) -> None:
    """Run the service's build command once, in the plan's directory."""
    assert service.build is not None
    cmd = service.build
    shell = isinstance(cmd, str)
    with log_path.open("wb") as log:
        if shell:
            assert isinstance(cmd, str)
            proc = await asyncio.create_subprocess_shell(
                cmd, cwd=base_dir, stdout=log, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)
        else:
            proc = await asyncio.create_subprocess_exec(
                *argv(cmd), cwd=base_dir, stdout=log, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            _kill_build(proc.pid)
            await proc.wait()
            raise BuildFailed(f"service {name}: build timed out after {timeout:g}s") from None
        except BaseException:
            # The run was stopped mid-build: the build (its whole session) must not outlive it.
            _kill_build(proc.pid)
            raise
    if code != 0:
        tail = deque(log_path.read_text(errors="replace").splitlines(), maxlen=20)
        last = "\n    ".join(tail) or "(no output)"
        raise BuildFailed(f"service {name}: build {cmd!r} exited with {code}; last lines "
                          f"(full log {log_path}):\n    {last}")


def _kill_build(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def stage(name: str, service: Service, base_dir: Path, service_dir: Path,
          variables: dict[str, Any]) -> None:
    """Copy the stage source into ``service_dir``, remove ``fresh`` files, render configs."""
    if service.stage is not None:
        source = (base_dir / service.stage.from_).resolve()
        if not source.exists():
            raise RunError(f"service {name}: stage.from {source} does not exist")
        if source.is_dir():
            shutil.copytree(source, service_dir, dirs_exist_ok=True, symlinks=True)
        else:
            shutil.copy2(source, service_dir / source.name)
        for rel in service.stage.fresh:
            target = service_dir / rel
            # Validation keeps fresh paths relative; a staged symlink must not lead outside.
            contained(name, target.parent, service_dir)
            if target.is_symlink():
                target.unlink()
            elif target.is_dir():
                contained(name, target, service_dir)
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    for cfg in service.configs():
        template_path = (base_dir / cfg.template)
        try:
            text = template_path.read_text()
        except OSError as exc:
            raise RunError(f"service {name}: cannot read config template {template_path}: "
                           f"{exc.strerror}") from exc
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                 keep_trailing_newline=True)
        try:
            rendered = env.from_string(text).render(**variables)
        except jinja2.TemplateError as exc:
            raise RunError(f"service {name}: config template {template_path}: {exc}") from exc
        out = contained(name, service_dir / cfg.path, service_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(rendered)


def contained(name: str, path: Path, root: Path) -> Path:
    """``path`` with symlinks resolved, if it is ``root`` or inside it; else ``RunError``.
    Guards every delete and write a plan asks for in a service's directory."""
    resolved = path.resolve()
    base = root.resolve()
    if resolved != base and base not in resolved.parents:
        raise RunError(f"service {name}: {path} resolves to {resolved}, outside the service's "
                       f"directory {base}; refusing to write or delete there")
    return resolved


def _template_strings(name: str, service: Service
                      ) -> Iterator[tuple[tuple[str | int, ...], str]]:
    at: tuple[str | int, ...] = ("services", name)
    if isinstance(service.command, str):
        yield (*at, "command"), service.command
    elif service.command is not None:
        for i, arg in enumerate(service.command):
            yield (*at, "command", i), arg
    for key, value in service.env.items():
        yield (*at, "env", key), value
    if service.cwd is not None:
        yield (*at, "cwd"), service.cwd


def _check_template(text: str, known: frozenset[str], env: jinja2.Environment,
                    what: str) -> Iterator[str]:
    if "{{" not in text and "{%" not in text and "{#" not in text:
        return
    try:
        ast = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        yield (f"{what}, line {exc.lineno}: " if what else "") + f"template syntax: {exc.message}"
        return
    for unknown in sorted(jinja2.meta.find_undeclared_variables(ast) - known):
        close = difflib.get_close_matches(unknown, sorted(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        found = re.search(r"(\{\{|\{%)[^}]*\b" + re.escape(unknown) + r"\b", text)
        line = f", line {text.count(chr(10), 0, found.start()) + 1}" if found else ""
        where = f"{what}{line}: " if what else ""
        yield (f"{where}{{{{ {unknown} }}}} is not a variable{hint}; variables: "
               f"{', '.join(sorted(known - set(env.globals)))}")


def template_problems(plan: Plan, plan_dir: Path | None
                      ) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Service templates (``command``, ``env``, ``cwd`` and ``config`` files) that would fail
    to render: a syntax error, or a variable that is neither enduro's nor in the plan's
    ``vars``. Found before the run, not when the service is started at minute 40."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    known = frozenset(SERVICE_VARIABLES | set(plan.vars) | set(env.globals))
    for name, service in plan.services.items():
        for where, text in _template_strings(name, service):
            for message in _check_template(text, known, env, ""):
                yield where, message
        if plan_dir is None:
            continue
        for i, cfg in enumerate(service.configs()):
            where = (("services", name, "config", i, "template")
                     if isinstance(service.config, list)
                     else ("services", name, "config", "template"))
            path = plan_dir / cfg.template
            try:
                if path.stat().st_size > _CHECK_MAX_BYTES:
                    continue
                text = path.read_text(errors="replace")
            except OSError:
                continue  # missing inputs are reported by the plan's path checks
            for message in _check_template(text, known, env, str(path)):
                yield where, message
