"""The demo service's answers: a status, a body and headers, JSON unless said otherwise."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["REASONS", "Response", "json_response"]

REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
           401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 410: "Gone", 422: "Unprocessable Entity", 500: "Internal Server Error"}


@dataclass
class Response:
    """One answer of the demo service."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, doc: Any, **headers: str) -> Response:
    """An answer with ``doc`` as its compact JSON body."""
    return Response(status, json.dumps(doc, separators=(",", ":")).encode(), headers=headers)
