"""The messages between the runner and its ``--workers`` load workers: over a pipe to a local
process, or through actor calls to a Ray actor (``--cluster``).

A message travels as a plain dict (pickled by ``multiprocessing`` or Ray) and is read back
through its model on the other side, so that both ends agree on one definition. Windows travel
in ``WindowStats.to_wire`` form, which ``observe.window`` owns: here they are opaque."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

__all__ = [
    "Done",
    "Force",
    "FromWorker",
    "Go",
    "Held",
    "InForce",
    "Ready",
    "Settled",
    "Stop",
    "ToWorker",
    "Tokens",
    "Windows",
]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump()


# The runner to a worker.
class Go(_Message):
    """Start the load at ``start_wall`` (wall-clock seconds on the worker's own clock: the
    runner's common go, moved by the worker's measured clock offset)."""

    kind: Literal["go"] = "go"
    start_wall: float


class Stop(_Message):
    """End the load: in-flight requests finish within the grace."""

    kind: Literal["stop"] = "stop"


class Force(_Message):
    """End the load now."""

    kind: Literal["force"] = "force"


class Tokens(_Message):
    """The services' credentials changed (``${token:...}`` in requests)."""

    kind: Literal["tokens"] = "tokens"
    tokens: dict[str, str]


class InForce(_Message):
    """SSE churn or a fault (``reason``) came into force somewhere in the run, or ended:
    the workloads that stay clear of it pause or resume."""

    kind: Literal["in_force"] = "in_force"
    reason: str
    on: bool


class ToWorker(RootModel[Annotated[Go | Stop | Force | Tokens | InForce,
                                   Field(discriminator="kind")]]):
    """What a worker reads from the runner."""


# A worker to the runner.
class Ready(_Message):
    """The worker is up and waits for ``Go``; where it runs: ``node`` (the Ray node id, or
    the host name of a local process) and its process id."""

    kind: Literal["ready"] = "ready"
    index: int
    node: str = ""
    pid: int = 0


class Windows(_Message):
    """Sealed windows, in ``WindowStats.to_wire`` form."""

    kind: Literal["windows"] = "windows"
    windows: list[dict[str, Any]]


class Done(_Message):
    """The worker's load ended and its last windows were sent. ``saturation``: the CPU
    seconds its process used per second of load (1.0: a core kept busy)."""

    kind: Literal["done"] = "done"
    index: int
    saturation: float | None = None


class Held(_Message):
    """This worker's SSE churn (``reason``) came into force, or ended."""

    kind: Literal["held"] = "held"
    reason: str
    on: bool


class Settled(_Message):
    """The workloads of this worker that stay clear of ``reason`` have stopped and have
    nothing in flight (the answer to an ``InForce`` that put it in force)."""

    kind: Literal["settled"] = "settled"
    reason: str


class FromWorker(RootModel[Annotated[Ready | Windows | Done | Held | Settled,
                                     Field(discriminator="kind")]]):
    """What the runner reads from a worker."""
