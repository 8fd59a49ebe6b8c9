"""Plan models of test-suite layers, loops and soak cycles."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from enduro.plan.fields import Duration, Interval

__all__ = ["Cycles", "Layer", "Suite"]



class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Layer(_Model):
    """Commands of one layer (``{threads}`` is replaced by ``--threads``), its timeout per
    command, retries of a failed command, and extra environment (failpoints)."""

    commands: Annotated[list[str], Field(min_length=1)]
    timeout: Interval = 3600.0
    retries: Annotated[int, Field(ge=0, le=100)] = 0
    env: dict[str, str] = {}
    failpoints: dict[str, str] = {}


class Cycles(_Model):
    """Long soak orchestration: cycles of the stress layer, the chaos layer every
    ``chaos_every`` cycles, a performance snapshot every ``perf_every`` (``perf_command``
    writing ``perf_result``), a ``pause`` between cycles, and the fast layer at the end.
    Cycles run ``count`` times or, with ``duration``, until that much time has passed (no
    cycle starts after it; with both, whichever comes first)."""

    count: Annotated[int, Field(gt=0, le=100_000)] | None = None
    duration: Duration | None = None
    chaos_every: Annotated[int, Field(ge=0, le=100_000)] = 0
    perf_every: Annotated[int, Field(ge=0, le=100_000)] = 1
    perf_command: str | None = None
    perf_result: str | None = None
    pause: Duration = 0.0


class Suite(_Model):
    """Layered test runs: ``fast``, ``stress``, ``chaos`` (any names work), shared env, and
    cleanup commands run between loop iterations."""

    layers: dict[str, Layer]
    order: list[str] = ["fast", "stress", "chaos"]
    env: dict[str, str] = {}
    cleanup: list[str] = []
    cycles: Cycles | None = None
