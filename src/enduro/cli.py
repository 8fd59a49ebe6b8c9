"""The ``enduro`` command: argument parsing only; each command calls one library function."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from enduro import __version__
from enduro.errors import EXIT_PASS, EXIT_PLAN, EnduroError, PlanError
from enduro.units import parse_duration

if TYPE_CHECKING:
    from enduro.run.run import RunOptions

EXIT_CODES = """exit codes:
  0    pass: every rule held
  1    fail: a rule failed (or an abort_on_fail rule stopped the run)
  2    plan or usage error: the message says file:line and what was expected
  3    the run could not proceed: service never ready, target unreachable, worker crashed
  130  interrupted (SIGINT/SIGTERM); results measured so far are still written
"""


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_PLAN, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="enduro",
        description="Prove a service is ready for production: soak, stress and chaos tests "
                    "from one plan file.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"enduro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def plan_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("plan", type=Path, help="the plan file (YAML or TOML)")
        p.add_argument("--profile", "-p", help="a named override set from the plan's profiles")
        p.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE",
                       help="override a field, e.g. workloads.browse.http.rate=20/s "
                            "(repeatable)")

    def run_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--duration", "-d", type=_duration, help="override the plan's duration")
        p.add_argument("--out", "-o", type=Path, default=Path("runs"),
                       help="where run directories go (default: ./runs)")
        p.add_argument("--workers", "-w", type=_positive_int, default=1,
                       help="shard the load over N processes (default 1)")
        p.add_argument("--seed", type=int, help="override the plan's seed")
        p.add_argument("--tag", help="appended to the run directory's name")
        p.add_argument("--no-live", action="store_true",
                       help="no live view; heartbeat lines only")
        p.add_argument("--metrics-port", type=int, metavar="PORT",
                       help="serve the live figures in Prometheus text on 127.0.0.1:PORT")
        p.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)

    def runs_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--runs", type=Path, default=Path("runs"),
                       help="where run directories are (default: ./runs)")

    p = sub.add_parser("validate", help="check a plan and report every problem",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    plan_args(p)
    p = sub.add_parser("plan", help="print the resolved plan (profile and overrides applied)")
    plan_args(p)
    p.add_argument("--faults", action="store_true",
                   help="print the expanded fault schedule instead (nothing is run)")
    p.add_argument("--seed", type=int, help="the seed for --faults (default: the plan's)")
    p.add_argument("--duration", "-d", type=_duration, help="the duration for --faults")
    p = sub.add_parser("run", help="run a plan in the foreground", epilog=EXIT_CODES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    plan_args(p)
    run_args(p)
    p = sub.add_parser("supervise", help="run only the plan's services, supervised, with a "
                       "live status table, until stopped")
    plan_args(p)
    run_args(p)
    for name, text in (("suite", "run the plan's test-suite layers (fast, stress, chaos, all)"),
                       ("loop", "run test layers in a loop, with the plan's services and "
                                "faults around them"),
                       ("cycles", "long soak cycles: stress, chaos every N, perf every M")):
        p = sub.add_parser(name, help=text, epilog=EXIT_CODES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        plan_args(p)
        if name != "cycles":
            p.add_argument("layer", nargs="?", default="all" if name == "suite" else "fast")
        p.add_argument("--threads", type=_positive_int, default=os.cpu_count() or 1,
                       help="passed to commands as {threads} and ENDURO_THREADS")
        p.add_argument("--out", "-o", type=Path, default=Path("runs"))
        if name == "loop":
            p.add_argument("--duration", "-d", type=_duration, default=3600.0,
                           help="how long to loop (default 1h)")
            p.add_argument("--iterations", "-n", type=_positive_int)
            p.add_argument("--no-live", action="store_true", help=argparse.SUPPRESS)
    p = sub.add_parser("start", help="start a run detached from the terminal",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    plan_args(p)
    run_args(p)
    p = sub.add_parser("status", help="state, progress, services and figures of a run")
    p.add_argument("run", nargs="?", help="run id or directory (default: the latest)")
    p.add_argument("--json", action="store_true", help="print JSON")
    runs_arg(p)
    p = sub.add_parser("stop", help="stop a run and everything it started")
    p.add_argument("run", nargs="?", help="run id or directory (default: the latest)")
    p.add_argument("--grace", type=_duration, default=30.0,
                   help="how long the runner may take to stop gracefully (default 30s)")
    runs_arg(p)
    p = sub.add_parser("collect", help="a tarball of a run directory, secrets redacted")
    p.add_argument("run", nargs="?", help="run id or directory (default: the latest)")
    p.add_argument("--out", "-o", type=Path, default=Path("."),
                   help="where the tarball goes (default: .)")
    runs_arg(p)
    p = sub.add_parser("report", help="regenerate report.html of a run; rebuild results.json "
                       "and junit.xml of a run whose runner died")
    p.add_argument("run", nargs="?", help="run id or directory (default: the latest)")
    runs_arg(p)
    p = sub.add_parser("compare", help="two runs side by side, with the change of each figure")
    p.add_argument("run_a")
    p.add_argument("run_b")
    runs_arg(p)
    gate = sub.add_parser("gate", help="a performance gate against a baseline")
    gsub = gate.add_subparsers(dest="gate_command", metavar="snapshot|compare",
                               parser_class=_Parser)
    g = gsub.add_parser("snapshot", help="store benchmark results as a baseline summary")
    g.add_argument("results", nargs="+", type=Path,
                   help="pytest-benchmark/hyperfine JSON, Criterion dir or results.json")
    g.add_argument("--out", "-o", type=Path, default=Path("base_summary.json"))
    g = gsub.add_parser("compare", help="compare head with a baseline; exit 1 when it fails")
    g.add_argument("--base", type=Path, help="a baseline result file or summary")
    g.add_argument("--head", type=Path, help="the head result file (default: run --command)")
    g.add_argument("--base-ref", help="a git ref: run --command in a worktree of it")
    g.add_argument("--command", dest="bench_command",
                   help="the benchmark command (with --base-ref or no --head)")
    g.add_argument("--result", help="the file --command writes (relative to the tree)")
    g.add_argument("--config", type=Path, help="thresholds (TOML or YAML)")
    g.add_argument("--out", "-o", type=Path, default=Path("gate"))
    p = sub.add_parser("triage", help="crashes and error lines of runs, tarballs or logs, "
                       "grouped into root causes")
    p.add_argument("targets", nargs="*", help="run ids or directories, tarballs, log files "
                   "(default: the latest run)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--baseline", help="a run (or file) to mark what is new against")
    runs_arg(p)
    p = sub.add_parser("recover", help="undo the faults a killed runner left in force")
    p.add_argument("run", nargs="?", help="run id or directory (default: the latest)")
    runs_arg(p)
    p = sub.add_parser("runs", help="list runs with state and verdict")
    p.add_argument("--json", action="store_true", help="print JSON")
    runs_arg(p)
    p = sub.add_parser("band", help="run several plans one after another, collecting each",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="+", metavar="PLAN[:PROFILE]")
    p.add_argument("--out", "-o", type=Path, default=Path("band"),
                   help="where status.tsv, results.tsv and tarballs go (default: ./band)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first scenario "
                   "that does not pass")
    p.add_argument("--poll", type=_duration, default=2.0, help="status poll interval")
    runs_arg(p)
    p = sub.add_parser("demo", help="start the bundled demo service and run a plan against it",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run_args(p)
    p.add_argument("--profile", "-p", help="a profile of the demo plan (smoke)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE")
    p.add_argument("--print-plan", action="store_true",
                   help="print the bundled demo plan and exit")
    p.add_argument("--plan", dest="demo_plan", choices=["demo", "durability", "soak"],
                   default="demo",
                   help="which bundled plan: demo (default), durability (crashes while "
                        "writing) or soak (resources, scraping, trends)")
    p.add_argument("--defect", choices=["sse-duplicates", "idempotency-race", "lost-write",
                                        "queue-growth", "leak", "fd-leak", "slow-drift"],
                   help="turn on one realistic bug in the demo service; the run must catch "
                        "it (exit 1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``enduro`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Files and pipes get a wide console, so tables are not squeezed to 80 columns.
    out = Console(width=None if sys.stdout.isatty() else 120)
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
    if args.command is None:
        parser.print_help()
        return EXIT_PLAN
    try:
        if args.command == "validate":
            return _validate(args, out)
        if args.command == "plan":
            return _plan(args, out)
        if args.command == "run":
            return _run(args, err)
        if args.command == "demo":
            return _demo(args, out, err)
        if args.command == "triage":
            return _triage(args, out)
        if args.command == "gate":
            return _gate(args, out)
        if args.command in ("suite", "loop", "cycles"):
            return _suites(args, out, err)
        if args.command == "supervise":
            return _supervise(args, err)
        if args.command in ("start", "status", "stop", "collect", "runs", "band", "recover",
                            "report", "compare"):
            handler = {"start": _start, "status": _status, "stop": _stop,
                       "collect": _collect, "runs": _runs, "band": _band,
                       "recover": _recover, "report": _report,
                       "compare": _compare}[args.command]
            return handler(args, out)
    except PlanError as exc:
        for problem in exc.problems:
            # User text (names, paths) may look like Rich markup: print it as it is.
            err.print(f"[red]error:[/] {escape(str(problem))}", highlight=False,
                      soft_wrap=True)
        return exc.exit_code
    except EnduroError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command!r}")
    return EXIT_PLAN


def _validate(args: argparse.Namespace, out: Console) -> int:
    from enduro.api import load_checked
    plan = load_checked(args.plan, profile=args.profile, sets=args.sets).plan
    out.print(f"ok: {args.plan} is a valid plan {plan.name!r}: {len(plan.workloads)} "
              f"workload(s), {len(plan.rules)} rule(s), duration {plan.duration:g}s",
              highlight=False)
    return EXIT_PASS


def _plan(args: argparse.Namespace, out: Console) -> int:
    from enduro.api import load_checked
    loaded = load_checked(args.plan, profile=args.profile, sets=args.sets)
    if args.faults:
        import random

        from enduro.faults.timeline import expand, format_schedule
        plan = loaded.plan
        seed = args.seed if args.seed is not None else plan.seed
        if seed is None:
            seed = random.SystemRandom().randrange(1, 2**31)
            out.print(f"the plan has no seed; this schedule used {seed} (pass --seed {seed} "
                      "to see it again)", highlight=False)
        duration = args.duration if args.duration is not None else plan.duration
        schedule, skipped = expand(plan, duration, seed)
        out.print(format_schedule(schedule, skipped, seed), highlight=False, soft_wrap=True)
        return EXIT_PASS
    sys.stdout.write(loaded.resolved_yaml())
    return EXIT_PASS


def _options(args: argparse.Namespace, **extra: object) -> RunOptions:
    from enduro.run.run import RunOptions
    return RunOptions(out=args.out, duration=args.duration, workers=args.workers,
                      seed=args.seed, tag=args.tag, live=False if args.no_live else None,
                      run_dir=getattr(args, "run_dir", None),
                      metrics_port=args.metrics_port, **extra)  # type: ignore[arg-type]


def _suites(args: argparse.Namespace, out: Console, err: Console) -> int:
    import time as _time

    from enduro.api import load_checked
    from enduro.errors import EXIT_FAIL
    from enduro.gate.readers import read_results
    from enduro.suite.runner import run_cycles, run_layers, run_loop
    loaded = load_checked(args.plan, profile=args.profile, sets=args.sets)
    plan = loaded.plan
    if plan.suite is None:
        raise PlanError(f"{args.plan}: the plan has no 'suite' section")
    suite = plan.suite
    cwd = loaded.source.parent.resolve()
    stamp = _time.strftime("%Y%m%dT%H%M%SZ", _time.gmtime())
    outdir = args.out / f"{plan.name}-{args.command}-{stamp}"

    def say(line: str) -> None:
        err.print(line, highlight=False, soft_wrap=True)

    if args.command == "suite":
        results = run_layers(suite, args.layer, cwd=cwd, out=outdir, threads=args.threads,
                             say=say)
        failures = [(r.layer, c) for r in results for c in r.commands if not c.passed]
        out.print(f"failures: {len(failures)}", highlight=False)
        for layer, c in failures:
            out.print(f"  {layer}: {c.command} (exit {c.exit_code}"
                      + (", timed out" if c.timed_out else "") + f"; log {c.log})",
                      highlight=False)
        return EXIT_PASS if not failures else EXIT_FAIL
    if args.command == "cycles":
        ok, csv_path = run_cycles(suite, cwd=cwd, out=outdir, threads=args.threads, say=say,
                                  read_perf=read_results)
        out.print(f"{csv_path}\n{csv_path.parent / 'cycles.html'}", highlight=False)
        return EXIT_PASS if ok else EXIT_FAIL

    def job(stop: Any) -> Any:
        return run_loop(suite, args.layer, cwd=cwd, out=outdir, threads=args.threads,
                        duration=args.duration, iterations=args.iterations, say=say,
                        stop=stop)

    if plan.services or plan.faults:
        from enduro.run.run import Run, RunOptions
        options = RunOptions(out=args.out, duration=args.duration + 3600.0, live=False,
                             job=job)
        outcome = Run(loaded, options, console=err).main()
        out.print(f"run directory: {outcome.run_dir}\nloop: {outdir}/loop.tsv",
                  highlight=False)
        return outcome.exit_code
    rows = job(lambda: False)
    failed = sum(1 for r in rows if not r["passed"])
    out.print(f"{len(rows)} iteration(s), {failed} failed: {outdir}/loop.tsv",
              highlight=False)
    return EXIT_PASS if not failed else EXIT_FAIL


def _supervise(args: argparse.Namespace, err: Console) -> int:
    from enduro.api import run_plan
    if args.duration is None:
        args.duration = 10 * 365 * 86400.0  # until stopped
    outcome = run_plan(args.plan, _options(args, services_only=True), profile=args.profile,
                       sets=args.sets, console=err)
    return outcome.exit_code


def _start(args: argparse.Namespace, out: Console) -> int:
    from enduro.api import load_checked
    from enduro.detach.control import start_detached
    loaded = load_checked(args.plan, profile=args.profile, sets=args.sets)
    started = start_detached(args.plan, out=args.out, plan_name=loaded.plan.name,
                             profile=args.profile, sets=args.sets, duration=args.duration,
                             tag=args.tag, workers=args.workers, seed=args.seed,
                             metrics_port=args.metrics_port)
    out.print(f"started {started.run_id} (pid {started.pid})\nrun directory: "
              f"{started.run_dir}", highlight=False)
    return EXIT_PASS


def _status(args: argparse.Namespace, out: Console) -> int:
    import json

    from enduro.detach.control import format_status, run_status
    from enduro.detach.locate import find_run
    status = run_status(find_run(args.run, args.runs))
    if args.json:
        sys.stdout.write(json.dumps(status, indent=2) + "\n")
    else:
        out.print(format_status(status), highlight=False, soft_wrap=True)
    return EXIT_PASS


def _stop(args: argparse.Namespace, out: Console) -> int:
    from enduro.detach.control import run_status, stop_run
    from enduro.detach.locate import find_run
    run_dir = find_run(args.run, args.runs)
    for action in stop_run(run_dir, grace=args.grace) or ["nothing was running"]:
        out.print(action, highlight=False, soft_wrap=True)
    out.print(f"{run_dir.name}: {run_status(run_dir)['state']}", highlight=False)
    return EXIT_PASS


def _collect(args: argparse.Namespace, out: Console) -> int:
    from enduro.detach.collect import collect_run
    from enduro.detach.locate import find_run, read_json
    run_dir = find_run(args.run, args.runs)
    plan_file = (read_json(run_dir / "state.json") or {}).get("plan_file")
    tarball = collect_run(run_dir, args.out,
                          plan_dir=Path(plan_file).parent if plan_file else None)
    out.print(str(tarball), highlight=False)
    return EXIT_PASS


def _report(args: argparse.Namespace, out: Console) -> int:
    from enduro.detach.locate import find_run
    from enduro.detach.rebuild import report_run
    run_dir = find_run(args.run, args.runs)
    done = report_run(run_dir)
    if done.rebuilt:
        out.print(f"{run_dir.name}: results rebuilt from the store (state "
                  f"{done.results['state']}, verdict {done.results['verdict']})",
                  highlight=False, markup=False, soft_wrap=True)
        for note in done.notes:
            out.print(f"  {note}", highlight=False, markup=False, soft_wrap=True)
    out.print(str(done.report), highlight=False, markup=False)
    return EXIT_PASS


def _compare(args: argparse.Namespace, out: Console) -> int:
    from enduro.detach.locate import find_run
    from enduro.report.compare import compare_table
    a, b = find_run(args.run_a, args.runs), find_run(args.run_b, args.runs)
    out.print(compare_table(a, b))
    return EXIT_PASS


def _triage(args: argparse.Namespace, out: Console) -> int:
    import json

    from enduro.detach.locate import find_run
    from enduro.triage.report import markdown, triage

    def resolve(text: str | None) -> Path:
        if text is not None and Path(text).exists():
            return Path(text)
        return find_run(text, args.runs)

    targets = [resolve(t) for t in args.targets] or [resolve(None)]
    baseline = resolve(args.baseline) if args.baseline else None
    result = triage(targets, baseline)
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.json else markdown(result))
    return EXIT_PASS


def _gate(args: argparse.Namespace, out: Console) -> int:
    import subprocess

    from enduro.errors import EXIT_FAIL
    from enduro.gate.run import baseline_from_ref, load_thresholds, run_compare, snapshot
    if args.gate_command == "snapshot":
        out.print(str(snapshot(args.results, args.out)), highlight=False)
        return EXIT_PASS
    if args.gate_command != "compare":
        raise PlanError("enduro gate snapshot|compare: say which")
    base, head = args.base, args.head
    if base is None:
        if not (args.base_ref and args.bench_command and args.result):
            raise PlanError("gate compare needs --base FILE, or --base-ref REF with "
                            "--command CMD and --result PATH")
        base = baseline_from_ref(args.base_ref, args.bench_command, args.result, Path.cwd())
    if head is None:
        if not (args.bench_command and args.result):
            raise PlanError("gate compare needs --head FILE, or --command and --result")
        proc = subprocess.run(args.bench_command, shell=True, stdout=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise PlanError(f"the benchmark command failed (exit {proc.returncode})")
        head = Path(args.result)
    outcome = run_compare(base, head, load_thresholds(args.config), args.out)
    sys.stdout.write(outcome.markdown())
    out.print(f"reports: {args.out}/comparison.md, comparison.json", highlight=False)
    return EXIT_PASS if outcome.passed else EXIT_FAIL


def _recover(args: argparse.Namespace, out: Console) -> int:
    from enduro.detach.locate import find_run
    from enduro.faults.journal import recover
    run_dir = find_run(args.run, args.runs)
    actions = recover(run_dir)
    for action in actions or [f"{run_dir.name}: no fault left to undo"]:
        out.print(action, highlight=False, soft_wrap=True)
    return EXIT_PASS


def _runs(args: argparse.Namespace, out: Console) -> int:
    import json

    from enduro.detach.control import runs_table
    rows = runs_table(args.runs)
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_PASS
    if not rows:
        out.print(f"no runs under {args.runs}", highlight=False)
    for r in rows:
        out.print(f"{r['run_id']:<48} {r['state']:<10} {r['verdict'] or '-':<6} "
                  f"{r['elapsed_s']:>9.1f}s", highlight=False)
    return EXIT_PASS


def _band(args: argparse.Namespace, out: Console) -> int:
    from enduro.api import load_checked
    from enduro.detach.band import Scenario, run_band
    scenarios = [Scenario.parse(s) for s in args.scenarios]
    for sc in scenarios:  # every plan is checked before the first one starts
        load_checked(sc.plan, profile=sc.profile)
    return run_band(scenarios, out=args.out, runs_dir=args.runs, fail_fast=args.fail_fast,
                    load=lambda sc: load_checked(sc.plan, profile=sc.profile).plan.name,
                    poll_s=args.poll, say=lambda line: out.print(line, highlight=False))


def _run(args: argparse.Namespace, err: Console) -> int:
    from enduro.api import run_plan
    outcome = run_plan(args.plan, _options(args), profile=args.profile, sets=args.sets,
                       console=err)
    if outcome.run_dir is not None:
        err.print(f"run directory: {outcome.run_dir}", highlight=False)
    return outcome.exit_code


def _demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.api import run_demo
    from enduro.demo.launch import bundled_plan
    if args.print_plan:
        sys.stdout.write(bundled_plan(args.demo_plan))
        return EXIT_PASS
    outcome = run_demo(_options(args), profile=args.profile, sets=args.sets, console=err,
                       defect=args.defect, plan=args.demo_plan)
    if outcome.run_dir is not None:
        out.print(f"run directory: {outcome.run_dir}", highlight=False)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
