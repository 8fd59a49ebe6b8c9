"""Tables read from services' JSON monitoring endpoints (``scrape.json.tables``): one row per
named entry (a NATS stream, a queue, a bucket), as ``state.json`` and ``results.json`` hold
them. Each numeric cell is also stored in ``metrics.sqlite`` as a scraped series named
``<table>.<field>`` with the labels ``{"row": <name>}``."""

from __future__ import annotations

from pydantic import Field

from enduro.documents.document import Document

__all__ = ["Cell", "ScrapedTable"]

# A cell: a number, a string (a leader's name, a state), or null when the row lacks it.
Cell = float | str | None


class ScrapedTable(Document):
    """One table of one service as last scraped."""

    at_s: float
    """When it was scraped, in seconds from the start of the load."""
    fields: list[str]
    """The columns, in the plan's order."""
    rows: dict[str, dict[str, Cell]] = Field(default_factory=dict)
    """Per entry (its name): each field's value."""
    truncated: int = 0
    """Entries left out beyond the table's ``max_rows``."""
