"""enduro's pytest plugin, registered for every pytest session of the environment: the
fixtures alone. What they return lives in ``enduro.testing`` and is imported the first time a
test asks for a fixture, so a session that never uses them loads nothing of enduro."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from enduro.testing import History

__all__ = ["enduro_burst", "enduro_history"]


@pytest.fixture()
def enduro_burst() -> Any:
    """Fire a burst of identical requests released together (see ``enduro.testing.burst``)."""
    from enduro.testing import burst
    return burst


@pytest.fixture()
def enduro_history() -> Iterator[History]:
    """A fresh operation history for the test (see ``enduro.testing.History``)."""
    from enduro.testing import History
    yield History()
