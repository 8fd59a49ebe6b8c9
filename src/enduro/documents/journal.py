"""``faults.journal.jsonl``: the undo journal, one JSON object per line, fsynced. Each fault's
undo is written (``apply``) before the fault is applied; ``undone`` or ``recovered`` closes
it; ``undo_failed`` keeps it pending with the error. ``enduro recover`` and ``enduro stop`` of
a dead runner undo what is still pending."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, RootModel

from enduro.documents.document import Document

__all__ = ["Applied", "Closed", "CommandUndo", "JournalRecord", "OtherUndo", "ProxyUndo",
           "SignalUndo", "Undo", "UndoFailedRecord", "UndoRecord"]


class SignalUndo(Document):
    """Send ``signal`` to each process (a pause fault's SIGCONT), if it is still the same
    process (pid, start time, command line)."""

    type: Literal["signal"]
    signal: str = "SIGCONT"
    processes: list[dict[str, Any]] = Field(default_factory=list)
    """Pid, create_time, ..."""


class CommandUndo(Document):
    """Run a command fault's ``undo`` (only on the machine whose run wrote it)."""

    type: Literal["command"]
    argv: str | list[str]
    """A string runs in a shell."""
    cwd: str | None = None
    timeout: float = 60.0


class ProxyUndo(Document):
    """A proxy fault: it ends with the runner's proxy, so there is nothing to run."""

    type: Literal["proxy"]


class OtherUndo(Document):
    """An undo of a kind this enduro does not know, or one it cannot read: kept, so that
    ``recover`` says it left it alone rather than forgetting it."""

    type: str


Undo = Annotated[
    Annotated[SignalUndo | CommandUndo | ProxyUndo, Field(discriminator="type")] | OtherUndo,
    Field(union_mode="left_to_right")]


class UndoRecord(RootModel[Undo]):
    """An undo on its own (a fault runner keeps it while the fault is in force)."""


class Applied(Document):
    """A fault about to be applied, and how to undo it (null: nothing to undo)."""

    op: Literal["apply"]
    id: int
    kind: str
    targets: list[str]
    undo: Undo | None
    host: str | None = None
    """The machine that wrote it; absent in journals before it."""
    wall: float


class Closed(Document):
    """The fault's undo succeeded: by the runner (undone) or by recover/stop (recovered)."""

    op: Literal["undone", "recovered"]
    id: int
    wall: float


class UndoFailedRecord(Document):
    """The undo ran and failed: the fault stays pending."""

    op: Literal["undo_failed"]
    id: int
    error: str
    wall: float


class JournalRecord(RootModel[Annotated[Applied | Closed | UndoFailedRecord,
                                        Field(discriminator="op")]]):
    """One line of faults.journal.jsonl."""

    model_config = ConfigDict(title="faults.journal.jsonl (one line)")
