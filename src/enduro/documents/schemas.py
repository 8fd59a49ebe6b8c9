"""The JSON Schemas of the documents other tools read. ``enduro schema NAME`` prints one;
``docs/schema/NAME.schema.json`` holds each as committed, and a test fails when a model and
its committed schema differ (regenerate with ``enduro schema NAME > docs/schema/...``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the command line imports this module to list the names: keep it light
    from pydantic import BaseModel

__all__ = ["SCHEMA_NAMES", "json_schema", "schema_text"]

SCHEMA_NAMES = ("results", "state", "events", "journal")


def _model(name: str) -> type[BaseModel]:
    if name == "results":
        from enduro.documents.results import Results
        return Results
    if name == "state":
        from enduro.documents.state import State
        return State
    if name == "events":
        from enduro.documents.events import EventLine
        return EventLine
    if name == "journal":
        from enduro.documents.journal import JournalRecord
        return JournalRecord
    raise ValueError(f"no document named {name!r}; documents: {', '.join(SCHEMA_NAMES)}")


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the document ``name``, from its model."""
    schema = _model(name).model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text(name: str) -> str:
    """``json_schema(name)`` as the committed files hold it."""
    return json.dumps(json_schema(name), indent=2, ensure_ascii=False) + "\n"
