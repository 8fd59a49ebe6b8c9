"""The one place where a request line and its headers become bytes, and the encoders for
values substituted into a path or a query.

Every serializer of the engine (the load engine's compiled requests, the flow/burst client,
SSE connects) goes through ``request_head``, so nothing from a template or a response can put
CR, LF, NUL or another control character on the wire: in the request target such characters
(and spaces and non-ASCII) are percent-encoded; in a method, a header name or a header value
they make the request unsendable (``UnsafeValue``), and the engine counts it as an error of
class ``unsafe_value`` instead of sending it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["ProtocolError", "UnsafeValue", "encode_path", "encode_path_value",
           "encode_query_value", "request_head"]

# RFC 9110 token (methods, header names).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A header value may hold visible characters, spaces and tabs, and obs-text; nothing else.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Printable ASCII but space: what may stand in a request target as it is.
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7f))
_BAD_TARGET = re.compile(r"[^\x21-\x7e]")
# RFC 3986: a path segment keeps unreserved characters (quote keeps them always), sub-delims
# and ":" "@"; "/" "?" "#" and "%" are encoded so a value stays one segment.
_PATH_SAFE = "!$&'()*+,;=:@"
# A query value also keeps "/" "?" but encodes "&" "=" "#" "+" (read as a space by many).
_QUERY_SAFE = "!$'()*,;:@/?"
# A whole path (with its query) keeps its structure and existing escapes; "#" starts a
# fragment, which is never sent.
_WHOLE_PATH_SAFE = "!$&'()*+,;=:@/?%"


class UnsafeValue(ValueError):
    """A request could not be sent as it stood: a method, header name or header value holds a
    character (CR, LF, NUL, another control) that would change the request on the wire."""


class ProtocolError(OSError):
    """A response that is not HTTP/1.1 as RFC 9112 writes it (a garbled status line, a
    status outside 100-599, a header line without a colon, a bad Content-Length or chunk
    size, a head too large): the engine counts it as an error of class ``protocol``."""


def encode_path_value(value: object) -> str:
    """``value`` percent-encoded to stand inside one path segment."""
    return quote(str(value), safe=_PATH_SAFE)


def encode_path(value: object) -> str:
    """``value`` as a whole path and query (a captured ``Location``): slashes, ``?`` and
    existing ``%XX`` kept; controls, spaces, ``#`` and non-ASCII encoded."""
    return quote(str(value), safe=_WHOLE_PATH_SAFE)


def encode_query_value(value: object) -> str:
    """``value`` percent-encoded to stand as (part of) one query value."""
    return quote(str(value), safe=_QUERY_SAFE)


def request_head(method: str, target: str, headers: Iterable[tuple[str, object]]) -> bytes:
    """``METHOD target HTTP/1.1`` and the header lines, ending with the blank line. The
    target's spaces, controls and non-ASCII are percent-encoded; a method or header that
    would carry control characters raises ``UnsafeValue`` (nothing is sent)."""
    if not _TOKEN.fullmatch(method):
        raise UnsafeValue(f"method {method!r} is not an HTTP token")
    if _BAD_TARGET.search(target):
        target = quote(target, safe=_TARGET_SAFE)
    lines = [f"{method} {target} HTTP/1.1"]
    for name, raw in headers:
        value = raw if isinstance(raw, str) else str(raw)
        if not _TOKEN.fullmatch(name):
            raise UnsafeValue(f"header name {name!r} is not an HTTP token")
        if _BAD_VALUE.search(value):
            raise UnsafeValue(f"header {name}: the value holds a control character "
                              f"(CR, LF, NUL or another): {value[:60]!r}")
        lines.append(f"{name}: {value}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:
        raise UnsafeValue(f"a header holds a character outside latin-1: {exc.object[:60]!r}"
                          ) from exc
