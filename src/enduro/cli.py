"""The ``enduro`` command: argument parsing only; each command calls one library function.

Every command runs through :func:`handle`, the one place where errors become exit codes: a
mistake of the user prints ``error: ...`` lines and exits 2, the world 3, an interruption 130,
and anything unexpected is an enduro defect: its traceback goes to a file, the terminal gets one
line naming that file, and the exit code is 70.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from enduro import __version__
from enduro.base.errors import (
    EXIT_DEFECT,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    EXIT_PLAN,
    Defect,
    EnduroError,
    PlanError,
)
from enduro.base.units import parse_duration
from enduro.documents.schemas import SCHEMA_NAMES

if TYPE_CHECKING:
    from enduro.run.run import RunOptions

__all__ = ["EXIT_CODES", "build_parser", "handle", "main", "make_console"]

EXIT_CODES = """exit codes:
  0    pass: every rule held
  1    fail: a rule failed (or an abort_on_fail rule stopped the run)
  2    plan or usage error: the message says file:line (or the flag) and what was expected
  3    the run could not proceed: service never ready, target unreachable, worker crashed
  70   enduro defect (a bug in enduro): one line names the file holding the traceback
       (logs/traceback.txt in the run directory, else ~/.cache/enduro/defects/)
  130  interrupted (SIGINT/SIGTERM); results measured so far are still written
  141  the output's reader went away (a closed pipe, as with `| head`)
"""
SUPERVISE_EXIT = """supervise runs the services without load and judges nothing: results.json
always has verdict "incomplete" with mode "supervise" (never "pass"), and junit.xml a failed
case, so no CI step can read it as a passed test.

exit codes:
  0    supervision ended: stopped (Ctrl-C, SIGTERM, 'enduro stop') or --duration passed
  2    plan or usage error (--workers is refused: there is no load to shard)
  3    the services could not be run: never ready, a port busy, a build failed
  70   enduro defect: one line names the file holding the traceback
"""
DASHBOARD_EXIT = """The page polls /api/run, /api/series and /api/events every two seconds (see
the README); the run's files are read, and the runner is never asked anything.

exit codes:
  0    stopped (Ctrl-C, SIGTERM): stopping is how it ends
  2    usage error: a bad --listen, no such run
  3    cannot listen there (address in use, not this machine's)
  70   enduro defect: one line names the file holding the traceback
"""
DEFAULT_DASHBOARD = "127.0.0.1:8089"
# What `--dashboard VALUE` reads as an address; anything else (the plan) is not taken as one.
_LISTEN_LIKE = re.compile(r"^(\d+|\[[0-9a-fA-F:.]*\]:\d+|[\w.-]*:\d+)$")
# A Ray address: SCHEME://REST (ray://head:10001) or HOST:PORT ([V6]:PORT); `auto` apart.
_CLUSTER_LIKE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://\S+|(?:\[[0-9a-fA-F:.]+\]|[\w.-]+):"
                           r"(?:[1-9]\d{0,4}))$")
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a process the pipe ended

MAX_WORKERS = 1024  # processes; more is a typo, not a plan
MAX_PORT = 65535


class _Console(Console):
    """Rich's console ends the process with exit 1 when its reader goes away, which reads as
    "a rule failed"; here the pipe's end reaches :func:`handle` instead (exit 141)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def make_console(*, stderr: bool = False) -> Console:
    """A console that never reads markup or highlights: everything printed through it (plan
    names, paths, service output, server values) comes out exactly as written. Styles are
    given with :class:`rich.text.Text` instead."""
    stream = sys.stderr if stderr else sys.stdout
    # Files and pipes get a wide console, so tables are not squeezed to 80 columns.
    return _Console(stderr=stderr, width=None if stream.isatty() else 120, markup=False,
                   highlight=False, emoji=False)


def _error_line(text: str) -> Text:
    return Text.assemble(("error:", "red"), " ", text)


def handle(command: Callable[[], int], err: Console) -> int:
    """Run ``command`` and turn what it raises into an exit code: PlanError 2 (one line per
    problem), RunError 3, Interrupted/KeyboardInterrupt 130, any other ``EnduroError`` its own
    code; any other exception is a defect: its traceback is saved to a file (see
    :func:`enduro.base.errors.save_traceback`), one line names that file, and the code is 70. No
    traceback ever reaches the terminal."""
    try:
        return command()
    except PlanError as exc:
        for problem in exc.problems:
            err.print(_error_line(str(problem)), soft_wrap=True)
        return exc.exit_code
    except EnduroError as exc:
        err.print(_error_line(str(exc)), soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print(_error_line("interrupted"), soft_wrap=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`enduro runs | head`): not a defect. Further writes go nowhere,
        # and the code is the one a shell gives a process ended by SIGPIPE.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # the defect boundary: nothing unexpected escapes as a traceback
        try:
            # A run saves the traceback in its run directory and says where on the exception.
            saved = getattr(exc, "traceback_file", None)
            defect = (Defect(saved, type(exc).__name__) if isinstance(saved, Path)
                      and saved.is_file() else Defect.saved(exc))
        except OSError:
            err.print(_error_line(f"internal error in enduro ({type(exc).__name__}); this is a "
                                  "bug, and no file could be written for its traceback"),
                      soft_wrap=True)
            return EXIT_DEFECT
        err.print(_error_line(str(defect)), soft_wrap=True)
        return EXIT_DEFECT


# -- argument types: each rejects a bad value with a message argparse turns into exit 2 --------
def _duration(text: str) -> float:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration above zero, got {text!r}")
    return value


def _grace(text: str) -> float:
    """A duration that may be zero (stop at once)."""
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a duration of zero or more, got {text!r}")
    return value


def _bounded_int(low: int, high: int, what: str = "a whole number") -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what} from {low} to {high}, got {value}")
        return value
    return parse


def _positive_int(text: str) -> int:
    return _bounded_int(1, MAX_WORKERS)(text)


_port = _bounded_int(1, MAX_PORT, "a TCP port number")
_seed = _bounded_int(-(2**63), 2**63 - 1)


def _var(text: str) -> str:
    """``--var NAME=VALUE``: the plan's ``vars.NAME``, as a string, through ``--set``."""
    name, eq, value = text.partition("=")
    if not eq or not name or len(name) > 64 or not (name[0].isalpha() or name[0] == "_") \
            or not all(c.isascii() and (c.isalnum() or c == "_") for c in name):
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with NAME letters, digits and _ (not first), got {text!r}")
    return f"vars.{name}={json.dumps(value)}"


def _tag(text: str) -> str:
    if not text or len(text) > 64 or not all(c.isascii() and (c.isalnum() or c in "._-")
                                             for c in text) or text.startswith("."):
        raise argparse.ArgumentTypeError(
            f"expected up to 64 letters, digits, '.', '_' or '-' (not starting with '.'), "
            f"got {text!r}")
    return text


# -- paths: checked before anything runs, so a bad one is a usage error, not a traceback -------
def _exists(path: Path) -> bool:
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False


def check_plan_file(path: Path, what: str = "plan") -> None:
    """A plan argument must name a regular, readable file (a directory, FIFO or device is a
    usage error: reading a FIFO would block forever)."""
    import stat
    try:
        st = path.stat()
    except FileNotFoundError:
        raise PlanError(f"{path}: no such {what} file") from None
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: cannot read the {what} file ({_reason(exc)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise PlanError(f"{path}: is a directory, not a {what} file")
    if not stat.S_ISREG(st.st_mode):
        raise PlanError(f"{path}: is not a regular file (a FIFO, socket or device); give the "
                        f"{what} file itself")
    if not os.access(path, os.R_OK):
        raise PlanError(f"{path}: cannot read the {what} file (permission denied)")


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or \
        type(exc).__name__


def check_out_dir(path: Path, flag: str = "--out") -> None:
    """``path`` must be a directory enduro can write, or one it can create. Nothing is left
    behind by the check: directories it had to create to prove that are removed again."""
    where = f"{flag} {path}"
    if _exists(path):
        if not path.is_dir():
            raise PlanError(f"{where}: is a file, not a directory")
        _probe_write(path, where)
        return
    existing = next((p for p in path.absolute().parents if _exists(p)), None)
    if existing is not None and not existing.is_dir():
        raise PlanError(f"{where}: {existing} is a file, not a directory")
    created: list[Path] = []
    try:
        try:
            for part in reversed([path.absolute(), *path.absolute().parents]):
                if not _exists(part):
                    part.mkdir()
                    created.append(part)
        except OSError as exc:
            raise PlanError(f"{where}: cannot create the directory ({_reason(exc)})") from None
        _probe_write(path, where)
    finally:
        for part in reversed(created):
            try:
                part.rmdir()
            except OSError:
                pass


def _probe_write(directory: Path, where: str) -> None:
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise PlanError(f"{where}: cannot write there ({_reason(exc)})") from None


def check_out_file(path: Path, flag: str = "--out") -> None:
    """``path`` is a file enduro will write: not a directory, in a directory it can write."""
    if _exists(path) and path.is_dir():
        raise PlanError(f"{flag} {path}: is a directory; give a file name")
    check_out_dir(path.absolute().parent, flag)


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
        p.add_argument("--var", dest="sets", action="append", type=_var, metavar="NAME=VALUE",
                       help="set the plan's vars.NAME, seen by service templates as "
                            "{{ NAME }} (repeatable; a string)")

    def run_args(p: argparse.ArgumentParser, *, load: bool = True) -> None:
        if load:
            p.add_argument("--duration", "-d", type=_duration,
                           help="override the plan's duration")
        else:  # supervise: the plan's duration is the load's; supervision lasts until stopped
            p.add_argument("--duration", "-d", type=_duration,
                           help="stop after this long (default: until Ctrl-C, SIGTERM or "
                                "'enduro stop'; the plan's duration does not apply)")
        p.add_argument("--out", "-o", type=Path, default=Path("runs"),
                       help="where run directories go (default: ./runs)")
        if load:
            p.add_argument("--workers", "-w", type=_positive_int, default=1,
                           help="shard the load over N processes (default 1)")
            p.add_argument("--cluster", metavar="ADDRESS",
                           help="run the --workers as actors on this Ray cluster (a Ray "
                                "address such as 10.0.0.5:6379 or ray://head:10001, or "
                                "'auto' for RAY_ADDRESS); needs pip install 'enduro[ray]'")
        else:  # accepted only to be refused with a reason (check_args), not a bare usage line
            p.add_argument("--workers", "-w", default=None, help=argparse.SUPPRESS)
        p.add_argument("--seed", type=_seed, help="override the plan's seed"
                       + ("" if load else " (the fault timeline's)"))
        p.add_argument("--tag", type=_tag, help="appended to the run directory's name")
        p.add_argument("--no-live", action="store_true",
                       help="no live view; heartbeat lines only" if load else
                       "no live services table; a services line at each heartbeat")
        p.add_argument("--metrics-port", type=_port, metavar="PORT",
                       help="serve the live figures in Prometheus text on 127.0.0.1:PORT")
        p.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)

    def dashboard_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dashboard", nargs="?", const=DEFAULT_DASHBOARD, metavar="HOST:PORT",
                       help="serve the run's live page while it runs (default "
                            f"{DEFAULT_DASHBOARD}; a busy port: the next free one); an "
                            "address off loopback requires a token, printed once")

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
    p.add_argument("--seed", type=_seed, help="override the plan's seed (and the seed of "
                   "--faults)")
    p.add_argument("--duration", "-d", type=_duration, help="override the plan's duration")
    p.add_argument("--list", action="store_true",
                   help="list the plan's scenarios (name, duration, workloads)")
    p = sub.add_parser("run", help="run a plan in the foreground", epilog=EXIT_CODES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    plan_args(p)
    run_args(p)
    dashboard_arg(p)
    p.add_argument("--only", action="append", default=[], metavar="SCENARIO",
                   help="run only this scenario of the plan (repeatable)")
    p = sub.add_parser("supervise", help="run only the plan's services, supervised, with a "
                       "live status table, until stopped (no load, no verdict)",
                       epilog=SUPERVISE_EXIT, formatter_class=argparse.RawDescriptionHelpFormatter)
    plan_args(p)
    run_args(p, load=False)
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
        if name == "cycles":
            p.add_argument("--duration", "-d", type=_duration,
                           help="run cycles until this much time has passed (no cycle starts "
                                "after it), then the final fast check; replaces the plan's "
                                "cycles.duration")
            p.add_argument("--count", "-n", type=_bounded_int(1, 100_000),
                           help="at most this many cycles (replaces the plan's cycles.count)")
        if name == "loop":
            p.add_argument("--duration", "-d", type=_duration, default=3600.0,
                           help="how long to loop (default 1h)")
            p.add_argument("--iterations", "-n", type=_bounded_int(1, 10**9))
            p.add_argument("--no-live", action="store_true", help=argparse.SUPPRESS)
    p = sub.add_parser("start", help="start a run detached from the terminal",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    plan_args(p)
    run_args(p)
    dashboard_arg(p)
    p.add_argument("--only", action="append", default=[], metavar="SCENARIO",
                   help="run only this scenario of the plan (repeatable)")
    p = sub.add_parser("status", help="state, progress, services and figures of a run")
    p.add_argument("run", nargs="?", help="run id or directory (default: the latest)")
    p.add_argument("--json", action="store_true", help="print JSON")
    runs_arg(p)
    p = sub.add_parser("stop", help="stop a run and everything it started")
    p.add_argument("run", nargs="?", help="run id or directory (default: the latest)")
    p.add_argument("--grace", type=_grace, default=30.0,
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
    p = sub.add_parser("schema", help="print the JSON Schema of a document other tools read")
    p.add_argument("document", choices=SCHEMA_NAMES,
                   help="results.json, state.json, one line of events.jsonl or of "
                        "faults.journal.jsonl")
    gate = sub.add_parser("gate", help="a performance gate against a baseline")
    gsub = gate.add_subparsers(dest="gate_command", metavar="snapshot|compare",
                               parser_class=_Parser)
    g = gsub.add_parser("snapshot", help="store benchmark results as a baseline summary")
    g.add_argument("results", nargs="+", type=Path,
                   help="pytest-benchmark/hyperfine JSON, Criterion dir or results.json")
    g.add_argument("--out", "-o", type=Path, default=Path("base_summary.json"))
    g = gsub.add_parser("compare", help="compare head with a baseline; exit 1 when it fails")
    g.add_argument("--base", type=Path, help="a baseline result file or summary, or an enduro "
                   "run directory (its per-window figures are the samples)")
    g.add_argument("--head", type=Path, help="the head result file or run directory (default: "
                   "run --command)")
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
    p.add_argument("--out", "-o", type=Path, metavar="DIR",
                   help="also write DIR/summary.md and, per service, DIR/<service>.summary.md "
                        "and DIR/<service>.errors.txt")
    runs_arg(p)
    p = sub.add_parser("recover", help="undo the faults a killed runner left in force")
    p.add_argument("run", nargs="?", help="run id or directory (default: the latest)")
    runs_arg(p)
    p = sub.add_parser("dashboard", help="a live page of a run (running, detached, dead or "
                       "finished), read from its run directory",
                       epilog=DASHBOARD_EXIT, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", help="run id or directory (default: the latest)")
    p.add_argument("--listen", default="127.0.0.1:8089", metavar="HOST:PORT",
                   help="where to serve it (default 127.0.0.1:8089); an address off loopback "
                        "requires a token, printed once at the start")
    p.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)  # run|start --dashboard
    p.add_argument("--until-pid", type=int, help=argparse.SUPPRESS)
    runs_arg(p)
    p = sub.add_parser("runs", help="list runs with state and verdict")
    p.add_argument("--json", action="store_true", help="print JSON")
    runs_arg(p)
    p = sub.add_parser("band", help="run several plans one after another, collecting each",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="*", metavar="PLAN[:PROFILE][@DURATION]")
    p.add_argument("--scenarios", dest="scenario_file", type=Path, metavar="FILE",
                   help="a YAML list of scenarios: {plan, profile, duration, set: [...]}")
    p.add_argument("--duration", "-d", type=_duration,
                   help="every scenario's duration (unless it sets its own)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE",
                   help="an override for every scenario (repeatable; a scenario's own win)")
    p.add_argument("--out", "-o", type=Path,
                   help="where status.tsv, results.tsv and tarballs go (default: "
                        "./band/<UTC time>; a folder that already holds results.tsv gets a "
                        "timestamped folder inside it, never appended to)")
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
    args = parser.parse_args(_dashboard_default(sys.argv[1:] if argv is None else argv))
    out = make_console()
    err = make_console(stderr=True)
    if args.command is None:
        parser.print_help()
        return EXIT_PLAN
    command = _COMMANDS.get(args.command)
    if command is None:
        parser.error(f"unknown command {args.command!r}")
        return EXIT_PLAN

    def call() -> int:
        check_args(args)
        assert command is not None
        return command(args, out, err)

    return handle(call, err)


def _dashboard_default(argv: Sequence[str]) -> list[str]:
    """``--dashboard`` followed by what is not an address (``run --dashboard plan.yaml``):
    the default address, so the plan stays the plan."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--dashboard" and not _taken_as_address(out[i + 1]):
            out[i] = f"--dashboard={DEFAULT_DASHBOARD}"
    return out


def _taken_as_address(value: str) -> bool:
    """Whether ``--dashboard VALUE`` means VALUE as the address: one that looks like an
    address, or anything that is not a plan (an option, an existing file, a YAML or JSON
    name), so that ``--dashboard garbage`` is reported as a bad address, not a stray plan."""
    if _LISTEN_LIKE.match(value):
        return True
    if value.startswith("-") or value.endswith((".yaml", ".yml", ".json")):
        return False
    return not Path(value).exists()


def check_args(args: argparse.Namespace) -> None:
    """Checks argparse cannot make: the plan is a regular file, the output places are usable.
    Raises PlanError (exit 2) naming the flag and what is wrong."""
    name = args.command
    if isinstance(getattr(args, "plan", None), Path):
        check_plan_file(args.plan)
    if name == "band":
        from enduro.detach.band import Scenario, read_scenarios
        if args.scenario_file is not None:
            check_plan_file(args.scenario_file)
        for scenario in [*(Scenario.parse(text) for text in args.scenarios),
                         *(read_scenarios(args.scenario_file) if args.scenario_file else [])]:
            check_plan_file(scenario.plan)
    if name == "gate" and args.gate_command == "snapshot":
        # Its --out is a file, not a directory: the output checks below do not apply.
        _check_snapshot_args(args)
        return
    if name == "gate":
        _check_gate_files(args)
    if name == "supervise" and args.workers is not None:
        raise PlanError("--workers: supervise runs no load, so there is nothing to shard "
                        "('enduro run' drives the load)")
    if getattr(args, "cluster", None) is not None:
        _check_cluster(args.cluster)
    _check_output_places(args)


def _check_cluster(address: str) -> None:
    """``--cluster`` needs Ray, an optional extra: say how to install it; and the address of
    a running cluster (exit 2). Ray reads ``local`` (also from RAY_ADDRESS, for ``auto``) as
    "start a cluster here", which the run would then own and could leave behind."""
    import importlib.util
    where = f"--cluster {address!r}"
    if address == "auto" and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
        where = f"--cluster auto (RAY_ADDRESS={address!r})"
    if address == "local":
        raise PlanError(f"{where}: enduro joins a running Ray cluster and starts none; give "
                        "its address (HOST:PORT, ray://HOST:10001 or auto), or leave out "
                        "--cluster for workers on this machine")
    if address != "auto" and not _CLUSTER_LIKE.match(address):
        raise PlanError(f"{where}: expected a Ray address such as 10.0.0.5:6379, "
                        "ray://head:10001 or auto")
    if importlib.util.find_spec("ray") is None:
        raise PlanError("--cluster: Ray is not installed; install it with "
                        "pip install 'enduro[ray]' (Ray itself must be the version the "
                        "cluster runs)")


def _check_snapshot_args(args: argparse.Namespace) -> None:
    for result in args.results:
        if not _exists(result):
            raise PlanError(f"{result}: no such benchmark result")
    check_out_file(args.out)


def _check_gate_files(args: argparse.Namespace) -> None:
    for flag in ("base", "head", "config"):
        given = getattr(args, flag, None)
        if given is not None and not _exists(given):
            raise PlanError(f"--{flag} {given}: no such file")


def _check_output_places(args: argparse.Namespace) -> None:
    """``--out``/``--run-dir`` can be made, and ``--runs`` is not a file."""
    out = getattr(args, "out", None)
    run_dir = getattr(args, "run_dir", None)
    if isinstance(run_dir, Path):  # `enduro start` names the run directory beforehand
        check_out_dir(run_dir.absolute().parent, "--run-dir")
    elif isinstance(out, Path):
        check_out_dir(out)
    runs = getattr(args, "runs", None)
    if isinstance(runs, Path) and _exists(runs) and not runs.is_dir():
        raise PlanError(f"--runs {runs}: is a file, not a directory")


def _validate(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.api import load_checked
    plan = load_checked(args.plan, profile=args.profile, sets=args.sets).plan
    if plan.scenarios:
        out.print(f"ok: {args.plan} is a valid plan {plan.name!r}: {len(plan.scenarios)} "
                  f"scenario(s) ({', '.join(s.name for s in plan.scenarios)})")
        return EXIT_PASS
    out.print(f"ok: {args.plan} is a valid plan {plan.name!r}: {len(plan.workloads)} "
              f"workload(s), {len(plan.rules)} rule(s), duration {plan.duration:g}s")
    return EXIT_PASS


def _plan(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.api import load_checked
    loaded = load_checked(args.plan, profile=args.profile, sets=args.sets)
    if args.list:
        for scenario in loaded.plan.scenarios:
            duration = scenario.duration if scenario.duration is not None \
                else loaded.plan.duration
            # Tab-separated as they are, for scripts (a console would expand the tabs).
            sys.stdout.write(f"{scenario.name}\t{duration:g}s\t"
                             f"{', '.join(scenario.workloads)}"
                             + (f"\t{scenario.description}" if scenario.description else "")
                             + "\n")
        if not loaded.plan.scenarios:
            out.print(f"the plan {loaded.plan.name!r} has no scenarios", markup=False,
                      highlight=False)
        return EXIT_PASS
    if args.faults:
        import random

        from enduro.faults.timeline import expand, format_schedule
        plan = loaded.plan
        seed = args.seed if args.seed is not None else plan.seed
        if seed is None:
            seed = random.SystemRandom().randrange(1, 2**31)
            out.print(f"the plan has no seed; this schedule used {seed} (pass --seed {seed} "
                      "to see it again)")
        duration = args.duration if args.duration is not None else plan.duration
        schedule, skipped = expand(plan, duration, seed)
        out.print(format_schedule(schedule, skipped, seed), soft_wrap=True)
        return EXIT_PASS
    # --duration and --seed change the plan a run would use; the printed plan shows them.
    import dataclasses
    resolved = dict(loaded.resolved)
    if args.duration is not None:
        resolved["duration"] = f"{args.duration:g}s"
    if args.seed is not None:
        resolved["seed"] = args.seed
    sys.stdout.write(dataclasses.replace(loaded, resolved=resolved).resolved_yaml())
    return EXIT_PASS


def _options(args: argparse.Namespace, **extra: object) -> RunOptions:
    from enduro.run.run import RunOptions
    return RunOptions(out=args.out, duration=args.duration, workers=args.workers or 1,
                      cluster=getattr(args, "cluster", None),
                      seed=args.seed, tag=args.tag, live=False if args.no_live else None,
                      run_dir=getattr(args, "run_dir", None),
                      metrics_port=args.metrics_port, **extra)  # type: ignore[arg-type]


def _suites(args: argparse.Namespace, out: Console, err: Console) -> int:
    import time as _time

    from enduro.api import load_checked
    from enduro.base.errors import EXIT_FAIL
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
        err.print(line, soft_wrap=True)

    if args.command == "suite":
        results = run_layers(suite, args.layer, cwd=cwd, out=outdir, threads=args.threads,
                             say=say)
        failures = [(r.layer, c) for r in results for c in r.commands if not c.passed]
        out.print(f"failures: {len(failures)}")
        for layer, c in failures:
            out.print(f"  {layer}: {c.command} (exit {c.exit_code}"
                      + (", timed out" if c.timed_out else "") + f"; log {c.log})")
        return EXIT_PASS if not failures else EXIT_FAIL
    if args.command == "cycles":
        ok, csv_path = run_cycles(suite, cwd=cwd, out=outdir, threads=args.threads, say=say,
                                  read_perf=read_results, count=args.count,
                                  duration=args.duration)
        out.print(f"{csv_path}\n{csv_path.parent / 'cycles.html'}")
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
        out.print(f"run directory: {outcome.run_dir}\nloop: {outdir}/loop.tsv")
        return outcome.exit_code
    rows = job(lambda: False)
    failed = sum(1 for r in rows if not r["passed"])
    out.print(f"{len(rows)} iteration(s), {failed} failed: {outdir}/loop.tsv")
    return EXIT_PASS if not failed else EXIT_FAIL


def _supervise(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.api import run_plan
    if args.duration is None:
        args.duration = 10 * 365 * 86400.0  # until stopped
    outcome = run_plan(args.plan, _options(args, services_only=True), profile=args.profile,
                       sets=args.sets, console=err)
    return outcome.exit_code


def _start(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.api import load_checked
    from enduro.detach.control import start_detached
    from enduro.plan.scenarios import select_scenarios
    loaded = load_checked(args.plan, profile=args.profile, sets=args.sets)
    select_scenarios(loaded.plan, args.only)  # an unknown name is refused before starting
    bound = _bind_dashboard(args.dashboard)
    started = start_detached(args.plan, out=args.out, plan_name=loaded.plan.name,
                             profile=args.profile, sets=args.sets, duration=args.duration,
                             tag=args.tag, workers=args.workers, seed=args.seed,
                             metrics_port=args.metrics_port, only=args.only,
                             cluster=args.cluster)
    out.print(f"started {started.run_id} (pid {started.pid})\nrun directory: "
              f"{started.run_dir}")
    if bound is not None:
        from enduro.dashboard.launch import spawn
        spawn(bound, started.run_dir, started.pid)
        for line in bound.lines():
            out.print(line, soft_wrap=True)
    return EXIT_PASS


def _bind_dashboard(address: str | None) -> Any:
    """``--dashboard``'s address bound (a busy port: the next free one), or None."""
    if address is None:
        return None
    from enduro.dashboard.access import parse_listen
    from enduro.dashboard.launch import bind
    return bind(parse_listen(address, "--dashboard"))


def _status(args: argparse.Namespace, out: Console, err: Console) -> int:
    import json

    from enduro.detach.control import format_status, run_status
    from enduro.detach.locate import find_run
    status = run_status(find_run(args.run, args.runs))
    if args.json:
        sys.stdout.write(json.dumps(status, indent=2) + "\n")
    else:
        out.print(format_status(status), soft_wrap=True)
    return EXIT_PASS


def _stop(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.base.errors import EXIT_RUN
    from enduro.detach.control import run_status, stop_run
    from enduro.detach.locate import find_run
    run_dir = find_run(args.run, args.runs)
    stopped = stop_run(run_dir, grace=args.grace)
    for action in stopped.actions or ["nothing was running"]:
        out.print(action, soft_wrap=True)
    out.print(f"{run_dir.name}: {run_status(run_dir)['state']}")
    # An undo that failed leaves a fault in force: the world is not as the run found it.
    return EXIT_RUN if stopped.failed else EXIT_PASS


def _collect(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.detach.collect import collect_run
    from enduro.detach.locate import find_run
    from enduro.documents.state import read_state
    run_dir = find_run(args.run, args.runs)
    state = read_state(run_dir / "state.json")
    plan_file = state.plan_file if state is not None else None
    tarball = collect_run(run_dir, args.out,
                          plan_dir=Path(plan_file).parent if plan_file else None)
    out.print(str(tarball))
    return EXIT_PASS


def _report(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.detach.locate import find_run
    from enduro.detach.rebuild import report_run
    run_dir = find_run(args.run, args.runs)
    done = report_run(run_dir)
    if done.rebuilt:
        out.print(f"{run_dir.name}: results rebuilt from the store (state "
                  f"{done.document.state}, verdict {done.document.verdict})", soft_wrap=True)
        for note in done.notes:
            out.print(f"  {note}", soft_wrap=True)
    out.print(str(done.report))
    return EXIT_PASS


def _compare(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.detach.locate import find_run
    from enduro.report.compare import compare_table
    a, b = find_run(args.run_a, args.runs), find_run(args.run_b, args.runs)
    out.print(compare_table(a, b))
    return EXIT_PASS


def _schema(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.documents.schemas import schema_text
    sys.stdout.write(schema_text(args.document))
    return EXIT_PASS


def _triage(args: argparse.Namespace, out: Console, err: Console) -> int:
    import json

    from enduro.detach.locate import find_run
    from enduro.triage.outputs import markdown, write_reports
    from enduro.triage.report import triage

    def resolve(text: str | None) -> Path:
        if text is not None and Path(text).exists():
            return Path(text)
        return find_run(text, args.runs)

    targets = [resolve(t) for t in args.targets] or [resolve(None)]
    baseline = resolve(args.baseline) if args.baseline else None
    result = triage(targets, baseline)
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.json else markdown(result))
    if args.out is not None:
        written = write_reports(result, args.out)
        err.print(f"reports: {args.out}/summary.md and {len(written) - 1} per-service file(s)",
                  soft_wrap=True)
    return EXIT_PASS


def _gate(args: argparse.Namespace, out: Console, err: Console) -> int:
    import subprocess

    from enduro.base.errors import EXIT_FAIL
    from enduro.gate.run import baseline_from_ref, load_thresholds, run_compare, snapshot
    if args.gate_command == "snapshot":
        out.print(str(snapshot(args.results, args.out)))
        return EXIT_PASS
    if args.gate_command != "compare":
        raise PlanError("enduro gate snapshot|compare: say which")
    base, head = args.base, args.head
    if base is None:
        if not (args.base_ref and args.bench_command and args.result):
            raise PlanError("gate compare needs --base FILE, or --base-ref REF with "
                            "--command CMD and --result PATH")
        base = baseline_from_ref(args.base_ref, args.bench_command, args.result, Path.cwd(),
                                 log=args.out / "base.bench.log")
    if head is None:
        if not (args.bench_command and args.result):
            raise PlanError("gate compare needs --head FILE, or --command and --result")
        args.out.mkdir(parents=True, exist_ok=True)
        with (args.out / "head.bench.log").open("wb") as log:  # kept, as teams keep it
            proc = subprocess.run(args.bench_command, shell=True, stdout=log,
                                  stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise PlanError(f"the benchmark command failed (exit {proc.returncode}); its "
                            f"output is in {args.out / 'head.bench.log'}")
        head = Path(args.result)
    outcome = run_compare(base, head, load_thresholds(args.config), args.out)
    sys.stdout.write(outcome.markdown())
    out.print(f"reports: {args.out}/comparison.md, comparison.json")
    return EXIT_PASS if outcome.passed else EXIT_FAIL


def _recover(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.base.errors import EXIT_RUN
    from enduro.detach.control import recover_run
    from enduro.detach.locate import find_run
    run_dir = find_run(args.run, args.runs)
    recovery = recover_run(run_dir)
    for action in recovery.lines or [f"{run_dir.name}: no fault left to undo"]:
        out.print(action, soft_wrap=True)
    # A failed undo stays pending in the journal; the exit code says a fault is in force.
    return EXIT_RUN if recovery.failed else EXIT_PASS


def _dashboard(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.dashboard.access import new_token, parse_listen
    from enduro.dashboard.server import serve
    from enduro.detach.locate import find_run
    listen = parse_listen(args.listen)
    run_dir = find_run(args.run, args.runs)

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    if args.listen_fd is not None:  # started by run|start --dashboard, on its socket
        import socket

        from enduro.dashboard.launch import TOKEN_ENV
        serve(run_dir, listen, None if listen.loopback else os.environ.get(TOKEN_ENV), say,
              sock=socket.socket(fileno=args.listen_fd), until_pid=args.until_pid)
        return EXIT_PASS
    serve(run_dir, listen, None if listen.loopback else new_token(), say)
    return EXIT_PASS


def _runs(args: argparse.Namespace, out: Console, err: Console) -> int:
    import json

    from enduro.detach.control import runs_table
    rows = runs_table(args.runs)
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_PASS
    if not rows:
        out.print(f"no runs under {args.runs}")
    for r in rows:
        # A supervise run judged nothing: its column says so, never a verdict word.
        word = "supervise" if r.get("mode") == "supervise" else r["verdict"] or "-"
        out.print(f"{r['run_id']:<48} {r['state']:<10} {word:<10} "
                  f"{r['elapsed_s']:>9.1f}s", markup=False, highlight=False)
    return EXIT_PASS


def _band(args: argparse.Namespace, out: Console, err: Console) -> int:
    import time as _t

    from enduro.api import load_checked
    from enduro.detach.band import Scenario, read_scenarios, run_band
    scenarios = [Scenario.parse(s) for s in args.scenarios]
    if args.scenario_file is not None:
        scenarios += read_scenarios(args.scenario_file)
    if not scenarios:
        raise PlanError("enduro band: name at least one scenario (PLAN[:PROFILE][@DURATION]) "
                        "or --scenarios FILE")
    scenarios = [sc.with_defaults(args.duration, args.sets) for sc in scenarios]
    for sc in scenarios:  # every plan is checked before the first one starts
        load_checked(sc.plan, profile=sc.profile, sets=list(sc.sets))
    stamp = _t.strftime("%Y%m%dT%H%M%SZ", _t.gmtime())
    where = args.out if args.out is not None else Path("band") / stamp
    if (where / "results.tsv").exists():
        where = where / stamp  # an earlier band's results stay as they are
        out.print(f"{args.out}/results.tsv exists; this band writes to {where}")
    return run_band(scenarios, out=where, runs_dir=args.runs, fail_fast=args.fail_fast,
                    load=lambda sc: load_checked(sc.plan, profile=sc.profile,
                                                 sets=list(sc.sets)).plan.name,
                    poll_s=args.poll, say=lambda line: out.print(line))


def _run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.api import run_plan
    # The summary, the verdict and the run directory go to stdout (`> summary.txt` keeps
    # them); progress, heartbeats and logs to stderr.
    if args.dashboard is not None:
        _run_dashboard(args, err)
    outcome = run_plan(args.plan, _options(args), profile=args.profile, sets=args.sets,
                       console=err, only=args.only, summary=out)
    if outcome.run_dir is not None:
        out.print(f"run directory: {outcome.run_dir}")
    return outcome.exit_code


def _run_dashboard(args: argparse.Namespace, err: Console) -> None:
    """``run --dashboard``: the address bound, the run directory chosen, the dashboard
    started on both before the run begins; its URL on stderr with the progress (stdout
    holds the summary)."""
    from enduro.api import load_checked
    from enduro.dashboard.access import parse_listen
    from enduro.dashboard.launch import bind, fresh_run_dir, spawn
    listen = parse_listen(args.dashboard, "--dashboard")
    plan = load_checked(args.plan, profile=args.profile, sets=args.sets).plan
    bound = bind(listen)
    try:
        if args.run_dir is None:
            args.run_dir = fresh_run_dir(args.out, plan.name, args.tag)
        spawn(bound, args.run_dir, os.getpid())
    finally:
        bound.sock.close()
    for line in bound.lines():
        err.print(line, soft_wrap=True)


def _demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    from enduro.api import run_demo
    from enduro.demo.launch import bundled_plan
    if args.print_plan:
        sys.stdout.write(bundled_plan(args.demo_plan))
        return EXIT_PASS
    outcome = run_demo(_options(args), profile=args.profile, sets=args.sets, console=err,
                       defect=args.defect, plan=args.demo_plan, summary=out)
    if outcome.run_dir is not None:
        out.print(f"run directory: {outcome.run_dir}")
    return outcome.exit_code


_Command = Callable[[argparse.Namespace, Console, Console], int]
_COMMANDS: dict[str, _Command] = {
    "validate": _validate, "plan": _plan, "run": _run, "demo": _demo, "triage": _triage,
    "gate": _gate, "suite": _suites, "loop": _suites, "cycles": _suites,
    "supervise": _supervise, "start": _start, "status": _status, "stop": _stop,
    "collect": _collect, "runs": _runs, "band": _band, "recover": _recover,
    "report": _report, "compare": _compare, "schema": _schema, "dashboard": _dashboard,
}


if __name__ == "__main__":
    sys.exit(main())
