"""Library functions the command line calls."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from pathlib import Path

from rich.console import Console

from enduro.base.errors import PlanError, PlanProblem
from enduro.engine.load import op_names
from enduro.engine.validate import workload_problems
from enduro.net.target import split_base
from enduro.plan.models import Plan, Workload
from enduro.plan.resolve import LoadedPlan, PlanSchemaError, load_plan, sort_problems
from enduro.plan.source import Lines, dotted
from enduro.plan.tokens import token_refs
from enduro.run.run import Run, RunOptions, RunOutcome
from enduro.services.stage import template_problems
from enduro.services.supervisor import start_order
from enduro.verdict.evaluate import rule_problems

__all__ = ["check_plan", "load_checked", "load_plan", "run_demo", "run_plan"]


def load_checked(path: Path | str, *, profile: str | None = None,
                 sets: list[str] | None = None,
                 env: Mapping[str, str] | None = None) -> LoadedPlan:
    """Load a plan and make every check a run would make, without running it."""
    try:
        loaded = load_plan(path, profile=profile, sets=sets, env=env)
    except PlanSchemaError as exc:
        if exc.partial is None:
            raise
        # The rest of the plan is checked too, so the problems come out together.
        problems = list(exc.problems)
        try:
            check_plan(exc.partial.plan, lines=exc.partial.lines,
                       plan_dir=exc.partial.source.parent.resolve())
        except PlanError as more:
            problems += more.problems
        raise PlanError(sort_problems(problems)) from None
    # With scenarios, the plan's rules are each scenario's default: checked in each one.
    plan = loaded.plan if not loaded.plan.scenarios else loaded.plan.model_copy(
        update={"rules": [], "abort_if": [], "checkers": []})
    check_plan(plan, lines=loaded.lines, plan_dir=loaded.source.parent.resolve())
    _check_scenarios(loaded)
    return loaded


def _check_scenarios(loaded: LoadedPlan) -> None:
    """Each scenario checked as the plan it runs; every problem at the scenario's lines."""
    from enduro.plan.scenarios import scenario_loaded
    problems: list[PlanProblem] = []
    for i in range(len(loaded.plan.scenarios)):
        one = scenario_loaded(loaded, i)
        try:
            check_plan(one.plan, lines=one.lines, plan_dir=loaded.source.parent.resolve())
        except PlanError as exc:
            problems += [PlanProblem(p.message, p.file, p.line,
                                     f"scenarios[{i}].{p.path}" if p.path else
                                     f"scenarios[{i}]") for p in exc.problems]
    if problems:
        raise PlanError(sort_problems(problems))


def run_plan(path: Path | str, options: RunOptions, *, profile: str | None = None,
             sets: list[str] | None = None, env: Mapping[str, str] | None = None,
             console: Console | None = None, only: Sequence[str] = (),
             summary: Console | None = None) -> RunOutcome:
    """``enduro run``: load, check and run a plan in the foreground; a plan of scenarios
    runs each one (or those named in ``only``) against services started once. The summary
    and verdict go to ``summary`` (default: ``console``)."""
    loaded = load_checked(path, profile=profile, sets=sets, env=env)
    # Supervision and loops run the services (and a job) alone: a plan of scenarios is then a
    # plan like any other.
    alone = options.services_only or options.job is not None
    if (loaded.plan.scenarios and not alone) or only:
        from enduro.run.scenarios import ScenarioRun
        return ScenarioRun(loaded, options, only=only, console=console,
                           summary=summary).main()
    return Run(loaded, options, console=console, summary=summary).main()


def run_demo(options: RunOptions, *, profile: str | None = None,
             sets: list[str] | None = None, console: Console | None = None,
             defect: str | None = None, plan: str = "demo",
             summary: Console | None = None) -> RunOutcome:
    """``enduro demo``: start the demo service on a free loopback port (with one ``defect``
    turned on, if asked), run the bundled plan against it, stop the service."""
    from enduro.demo.launch import demo_service

    console = console or Console(stderr=True, markup=False, highlight=False, emoji=False)
    if defect == "lost-write" or plan == "durability":
        return _run_managed("durability", options, defect=defect, profile=profile, sets=sets,
                            console=console, summary=summary)
    if defect in ("leak", "fd-leak", "slow-drift") or plan == "soak":
        return _run_managed("soak", options, defect=defect, profile=profile, sets=sets,
                            console=console, summary=summary)
    with demo_service(defects=(defect,) if defect else ()) as (url, directory):
        console.print(f"demo service listening on {url}"
                      + (f" with the defect {defect!r}" if defect else ""), highlight=False)
        env = {**os.environ, "ENDURO_DEMO_URL": url}
        return run_plan(directory / "demo.yaml", options, profile=profile, sets=sets, env=env,
                        console=console, summary=summary)


def check_plan(plan: Plan, *, lines: Lines | None = None,
               plan_dir: Path | None = None) -> None:
    """Checks across sections that the models alone cannot make, and a compile of everything
    the run compiles (templates, conditions, python functions, rules), so that a plan that
    passes never fails at run time for a reason that could be seen now. Every problem is
    raised at once, at its file:line when ``lines`` is given."""
    problems = [_placed(lines, where, message) for where, message in chain(
        _workload_problems(plan), _token_problems(plan), _start_order_problems(plan),
        template_problems(plan, plan_dir))]
    problems.extend(workload_problems(plan, lines, plan_dir))
    problems.extend(rule_problems(plan, op_names(plan), lines))
    if problems:
        raise PlanError(sort_problems(problems))


_Where = tuple[str | int, ...]


def _placed(lines: Lines | None, where: _Where, message: str) -> PlanProblem:
    """The problem at its file:line, at ``--set`` when an override put the field there, or at
    its dotted path alone when there are no lines."""
    if lines is None:
        return PlanProblem(message, path=dotted(where))
    if lines.line_of(where) == 0:  # from --set
        return PlanProblem(message, "--set", None, dotted(where))
    return lines.problem(where, message)


def _workload_problems(plan: Plan) -> Iterator[tuple[_Where, str]]:
    """Op names two workloads share, and targets whose base URL does not parse, workload by
    workload."""
    seen: dict[str, str] = {}
    for wname, workload in plan.workloads.items():
        for op in workload.op_names(wname):
            if op in seen:
                yield (("workloads", wname),
                       f"op name {op!r} is used by workloads {seen[op]!r} and {wname!r}; op "
                       "names must be unique across the plan")
            seen[op] = wname
        yield from _base_url_problems(plan, wname, workload)


def _base_url_problems(plan: Plan, wname: str,
                       workload: Workload) -> Iterator[tuple[_Where, str]]:
    target = workload.target
    if target is None:
        return
    try:
        split_base(plan.base_url(target))
    except PlanError as exc:
        field = "base" if target.base is not None else "service"
        for p in exc.problems:
            yield ("workloads", wname, workload.kind, field), p.message


def _token_problems(plan: Plan) -> Iterator[tuple[_Where, str]]:
    """``${token:name}`` references to services that do not write a token file."""
    for ref in sorted(token_refs(plan)):
        service = plan.services.get(ref)
        if service is None or service.token_file is None:
            yield (("workloads",), f"${{token:{ref}}} names a service without a token_file"
                   + ("" if service is not None else f" (no service {ref!r})"))


def _start_order_problems(plan: Plan) -> Iterator[tuple[_Where, str]]:
    try:
        start_order(plan.services)
    except PlanError as exc:
        for p in exc.problems:
            yield ("services",), p.message


def _run_managed(name: str, options: RunOptions, *, defect: str | None, profile: str | None,
                 sets: list[str] | None, console: Console,
                 summary: Console | None = None) -> RunOutcome:
    """The demos where enduro manages the demo service itself (to kill it, or to watch its
    resources)."""
    import tempfile

    from enduro.demo.launch import bundled_plan, restartable_port

    port = restartable_port()
    with tempfile.TemporaryDirectory(prefix="enduro-demo-") as directory:
        path = Path(directory) / f"{name}.yaml"
        path.write_text(bundled_plan(name))
        env = {**os.environ, "ENDURO_DEMO_PORT": str(port),
               "ENDURO_DEMO_DEFECT_FLAG": f"--defect {defect}" if defect else ""}
        what = {"durability": "the service is killed every few seconds while flows write",
                "soak": "the service's resources are sampled and its metrics scraped"}[name]
        console.print(f"{name} demo: {what}" + (f", with the defect {defect!r}" if defect
                                                 else ""), highlight=False)
        return run_plan(path, options, profile=profile, sets=sets, env=env, console=console,
                        summary=summary)
