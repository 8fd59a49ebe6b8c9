"""Field types shared by the plan models: unit values with their bounds, names, request
paths and headers, and paths that must stay inside a directory.

Limits (documented in the README):

- names of the plan, services, workloads, ops, groups, proxies and profiles: 1 to 64
  characters, letters, digits, ``_``, ``-`` and ``.``, starting with a letter or digit (they
  become file and directory names, so ``/`` and ``..`` can never appear);
- durations are finite, at most 30 days; rates at most 1,000,000/s; sizes at most 1 TiB;
- request paths and header values are latin-1 text without control characters (CR/LF can
  never reach the wire from a plan); header names are HTTP tokens;
- paths written or deleted in a service's directory are relative and stay inside it.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field

from enduro.base.units import parse_duration, parse_percent, parse_rate, parse_size

__all__ = [
    "MAX_NAME",
    "Count",
    "Duration",
    "Fraction",
    "Grace",
    "HeaderMap",
    "HttpStatus",
    "Interval",
    "Name",
    "OpName",
    "Percent",
    "PositiveRate",
    "Rate",
    "RelPath",
    "Size",
    "Url",
    "UrlPath",
    "check_name",
    "check_url",
    "check_url_path",
    "inside_path",
]

MAX_NAME = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Op names of flows are "<workload>.<step>"; a step name has no dot of its own.
_STEP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\$\{[^}]*\}", re.S)


def check_name(value: str) -> str:
    """``value`` if it is a safe name (see the module docstring), else ``ValueError``."""
    if len(value) > MAX_NAME:
        raise ValueError(f"a name is at most {MAX_NAME} characters, got {len(value)} "
                         f"({value[:20]!r}...)")
    if not _NAME.fullmatch(value):
        raise ValueError("a name is letters, digits, '_', '-' and '.', starting with a letter "
                         f"or digit, got {value!r}")
    return value


def _check_step(value: str) -> str:
    check_name(value)
    if not _STEP.fullmatch(value):
        raise ValueError(f"a step name is letters, digits, '_' and '-', got {value!r}")
    return value


def _finite_positive(value: float) -> float:
    if value <= 0:
        raise ValueError(f"must be positive, got {value:g}")
    return value


def _interval(value: float) -> float:
    # Timeouts and polling intervals: below a millisecond a loop polls as fast as it can.
    if value <= 0:
        raise ValueError(f"must be positive, got {value:g}")
    if value < 0.001:
        raise ValueError(f"must be at least 1ms, got {value:g}s")
    return value


def _fraction(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be between 0% and 100%, got {value * 100:g}%")
    return value


def _text(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"{what} contains a control character (such as CR or LF), which "
                         f"could split the request: {value!r}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{what} has characters outside latin-1, which HTTP cannot carry "
                         f"as they are (percent-encode them): {value!r}") from None
    return value


def check_url(value: str) -> str:
    """An http(s) URL enduro can send to: a host, a port in range, no spaces or control
    characters (they would end up in the request line or the Host header)."""
    _text(value, "the URL")
    if " " in value:
        raise ValueError(f"the URL contains a space: {value!r}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"URL {value!r} does not parse: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
    if port == 0:
        raise ValueError(f"URL {value!r}: port 0 cannot be connected to")
    return value


def check_url_path(value: str) -> str:
    """A request path: starts with '/', latin-1, no control characters, no spaces outside
    ``{{ }}`` templates."""
    _text(value, "the path")
    # A path that is one template (a captured Location header) is checked when it is sent.
    if not value.startswith(("/", "{{")):
        raise ValueError(f"path must start with '/', got {value!r}")
    if " " in _TEMPLATE.sub("", value):
        raise ValueError(f"the path contains a space (write %20): {value!r}")
    return value


def _check_headers(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"header name {name!r} is not an HTTP token (letters, digits and "
                             "!#$%&'*+.^_`|~-)")
        _text(text, f"header {name}")
    return value


def inside_path(value: str) -> str:
    """A relative path that stays inside the directory it is relative to (no absolute path,
    no ``..`` out of it, not the directory itself)."""
    if not value or "\x00" in value:
        raise ValueError(f"expected a relative path inside the service's directory, got "
                         f"{value!r}")
    if value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", value):
        raise ValueError(f"must be a relative path inside the service's directory, got "
                         f"the absolute path {value!r}")
    norm = posixpath.normpath(value.replace("\\", "/"))
    if norm == "." or norm == ".." or norm.startswith("../"):
        raise ValueError(f"must be a path inside the service's directory, got {value!r}, "
                         "which leaves it")
    return value


Name = Annotated[str, AfterValidator(check_name)]
OpName = Annotated[str, AfterValidator(check_name)]
StepName = Annotated[str, AfterValidator(_check_step)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
Interval = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_interval)]
# Stop grace, command timeouts: what teardown may wait for, so at most an hour.
Grace = Annotated[float, BeforeValidator(parse_duration), Field(le=3600)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
PositiveRate = Annotated[float, BeforeValidator(parse_rate), AfterValidator(_finite_positive)]
Size = Annotated[int, BeforeValidator(parse_size)]
Percent = Annotated[float, BeforeValidator(parse_percent), Field(ge=0)]
Fraction = Annotated[float, BeforeValidator(parse_percent), AfterValidator(_fraction)]
Count = Annotated[int, Field(gt=0, le=1_000_000)]
HttpStatus = Annotated[int, Field(ge=100, le=599)]
Url = Annotated[str, AfterValidator(check_url)]
UrlPath = Annotated[str, AfterValidator(check_url_path)]
HeaderMap = Annotated[dict[str, str], AfterValidator(_check_headers)]
RelPath = Annotated[str, AfterValidator(inside_path)]
