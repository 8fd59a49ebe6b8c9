"""Python workloads: an ``async def op(ctx)`` driven in the open or closed model, timed and
classified like HTTP requests."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import random
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from enduro.base.errors import Fatal, PlanError, PlanProblem, fatal_class
from enduro.engine.http import classify
from enduro.engine.schedule import ArrivalSchedule, RateStage
from enduro.engine.tasks import TaskDriver, closed_loops, open_arrivals
from enduro.net.wire import UnsafeValue
from enduro.observe.window import UNSAFE_VALUE, OpCounter, Recorder
from enduro.plan.models import PythonWorkload
from enduro.plan.tokens import Credentials, Filled

__all__ = ["OpContext", "PythonDriver", "load_function"]

_monotonic = time.monotonic


@dataclass
class OpContext:
    """What an op function receives: a sequence number, a seeded RNG, a per-connection (or
    per-worker in the open model) ``state`` dict, the plan's ``params``, and ``vu``."""

    seq: int
    rng: random.Random
    state: dict[str, Any]
    params: dict[str, Any]
    vu: int
    worker: int
    extra: dict[str, Any] = field(default_factory=dict)


def load_function(spec: str, plan_dir: Path | None, *,
                  arity: int | None = None) -> Callable[..., Awaitable[Any]]:
    """``module:name``: the module is looked for beside the plan first, then on sys.path.
    The function must be an ``async def``; with ``arity``, callable with that many positional
    arguments. Every failure is a ``PlanError``; one inside the module (a syntax error, an
    exception at import) names the module's file and line."""
    module_name, attr = _split_spec(spec)
    module = _module_beside_plan(spec, module_name, plan_dir)
    if module is None:
        module = _module_on_path(spec, module_name, plan_dir)
    fn = _coroutine_function(spec, module, module_name, attr)
    if arity is not None:
        _check_arity(spec, attr, fn, arity)
    return fn  # type: ignore[no-any-return]


def _split_spec(spec: str) -> tuple[str, str]:
    """``module:function`` as its module and function names, each checked to be dotted
    identifiers."""
    module_name, _, attr = spec.partition(":")
    if not module_name or any(not p.isidentifier() for p in module_name.split(".")):
        raise PlanError(f"function {spec!r}: {module_name!r} is not a module name; write "
                        "module:function with an absolute dotted module, such as ops:create "
                        "(ops.py beside the plan)")
    if not attr or any(not p.isidentifier() for p in attr.split(".")):
        raise PlanError(f"function {spec!r}: {attr!r} is not a function name; write "
                        "module:function, such as ops:create")
    return module_name, attr


def _module_beside_plan(spec: str, module_name: str,
                        plan_dir: Path | None) -> ModuleType | None:
    """The module imported from its file beside the plan; None when there is no such file."""
    if plan_dir is None:
        return None
    candidate = plan_dir / (module_name.replace(".", "/") + ".py")
    if not candidate.is_file():
        return None
    mod_spec = importlib.util.spec_from_file_location(
        f"enduro_plan_{module_name.replace('.', '_')}", candidate)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[mod_spec.name] = module
    try:
        mod_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # the user's module may raise anything
        sys.modules.pop(mod_spec.name, None)
        raise _import_problem(spec, exc, candidate) from None
    return module


def _module_on_path(spec: str, module_name: str, plan_dir: Path | None) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            where = f" (looked for {plan_dir / (module_name.replace('.', '/') + '.py')} " \
                "and on sys.path)" if plan_dir is not None else ""
            raise PlanError(f"function {spec!r}: no module {module_name!r}{where}") \
                from None
        raise _import_problem(spec, exc, None) from None
    except (Exception, SystemExit) as exc:  # the user's module may raise anything
        raise _import_problem(spec, exc, None) from None


def _coroutine_function(spec: str, module: ModuleType, module_name: str, attr: str) -> Any:
    """The (possibly dotted) attribute of the module, checked to be an async callable."""
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise PlanError(f"function {spec!r}: {module_name} has no {attr!r}")
    if not callable(fn):
        raise PlanError(f"function {spec!r}: {attr!r} is not callable")
    if not (inspect.iscoroutinefunction(fn)
            or inspect.iscoroutinefunction(type(fn).__call__)):
        raise PlanError(f"function {spec!r}: {attr!r} must be a coroutine function "
                        f"(async def {attr.rsplit('.', 1)[-1]}(...))")
    return fn


def _check_arity(spec: str, attr: str, fn: Any, arity: int) -> None:
    """The function can be called with ``arity`` positional arguments."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # not introspectable: the run will tell
    try:
        signature.bind(*range(arity))
    except TypeError:
        wanted = "(ctx)" if arity == 1 else "(client, ctx)"
        raise PlanError(f"function {spec!r}: it is called as {attr}{wanted}, but its "
                        f"signature is {attr}{signature}") from None


def _import_problem(spec: str, exc: BaseException, module_file: Path | None) -> PlanError:
    """A failure inside a plan-side module, located at the module's file and line."""
    if isinstance(exc, SyntaxError):
        return PlanError([PlanProblem(
            f"function {spec!r}: the module does not compile: {exc.msg}",
            exc.filename or (str(module_file) if module_file else None), exc.lineno)])
    frames = traceback.extract_tb(exc.__traceback__)
    # The deepest frame outside the import machinery: the user's own code.
    mine = [f for f in frames if "importlib" not in f.filename and f.filename != __file__]
    if module_file is not None:
        mine = [f for f in mine if Path(f.filename) == module_file] or mine
    last = mine[-1] if mine else None
    return PlanError([PlanProblem(
        f"function {spec!r}: importing the module raised {type(exc).__name__}: {exc}",
        last.filename if last else (str(module_file) if module_file else None),
        last.lineno if last else None)])


def _error_class(exc: BaseException) -> str:
    if isinstance(exc, Fatal):
        return fatal_class(exc)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return classify(exc)
    if isinstance(exc, UnsafeValue):
        return UNSAFE_VALUE
    return f"error:{type(exc).__name__}"


class PythonDriver(TaskDriver):
    """Drives one python workload."""

    def __init__(self, workload: PythonWorkload, op: str, recorder: Recorder,
                 rng: random.Random, *, share: float, connections: int | None,
                 plan_dir: Path | None, worker: int,
                 credentials: Credentials | None = None) -> None:
        self.workload = workload
        # ``${token:name}`` in params: the current token at each call.
        self._params = Filled(workload.params, credentials)
        self.fn = load_function(workload.function, plan_dir)
        self.counter: OpCounter = recorder.counter(op)
        self.rng = rng
        self.share = share
        self.connections = connections
        self.worker = worker
        self.sending = False
        self.seq = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.shared_state: dict[str, Any] = {}

    async def _call(self, ctx: OpContext, intended: float) -> None:
        sent = _monotonic()
        c = self.counter
        if sent - intended > self.workload.late_after:
            c.late += 1
        # Still out when the run ends: counted ``unfinished`` by close_all.
        token = self.in_flight.begin((c, intended, sent))
        try:
            await asyncio.wait_for(self.fn(ctx), self.workload.timeout)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the user's code may raise anything
            c.requests += 1
            c.error(_error_class(exc))
            return
        finally:
            self.in_flight.end(token)
        now = _monotonic()
        c.requests += 1
        c.lat.append(int((now - intended) * 1_000_000))
        c.svc.append(int((now - sent) * 1_000_000))

    def _ctx(self, vu: int, state: dict[str, Any]) -> OpContext:
        self.seq += 1
        return OpContext(self.seq, self.rng, state, self._params.get(), vu, self.worker)

    async def run(self, duration: float) -> None:
        self.sending = True
        end = _monotonic() + duration
        if self.connections is not None:
            await closed_loops(self.connections, self._vu, end, self.tasks)
            return
        w = self.workload
        stages = [RateStage(s.duration, s.target) for s in w.stages or []]
        schedule = ArrivalSchedule(rate=w.rate, stages=stages, poisson=w.arrivals == "poisson",
                                   rng=self.rng, share=self.share)
        await open_arrivals(
            schedule, end=end, sending=lambda: self.sending, tasks=self.tasks,
            max_concurrency=w.max_concurrency, expire_after=w.timeout, on_drop=self._drop,
            start=lambda intended: self._call(self._ctx(0, self.shared_state), intended),
            on_unstarted=lambda intended: self.counter.unfinished(intended, None,
                                                                  _monotonic()))

    def _drop(self) -> None:
        self.counter.dropped += 1
        self.counter.requests += 1
        self.counter.error("dropped")

    async def _vu(self, vu: int, end: float) -> None:
        state: dict[str, Any] = {}
        while self.sending and _monotonic() < end:
            now = _monotonic()
            await self._call(self._ctx(vu, state), now)
            if self.workload.think:
                await asyncio.sleep(self.workload.think)
