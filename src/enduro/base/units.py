"""Parsing of the unit strings used everywhere in plans: one place for all of them.

Durations ``250ms``, ``15m``, ``1h30m``; rates ``100/s``, ``3/min``; sizes ``10MB``, ``1GiB``;
percentages ``99.9%``. Every parser raises ``ValueError`` with a message naming what was
expected; plan loading turns that into a located ``PlanError``.

Every value is finite and bounded, so that no plan can ask for a schedule that never ends or
a division by zero: durations at most ``MAX_DURATION`` (30 days), rates at most ``MAX_RATE``
(1,000,000/s), sizes at most ``MAX_SIZE`` (1 TiB).
"""

from __future__ import annotations

import math
import re

__all__ = [
    "MAX_DURATION",
    "MAX_RATE",
    "MAX_SIZE",
    "format_duration",
    "parse_duration",
    "parse_percent",
    "parse_rate",
    "parse_size",
]

MAX_DURATION = 30 * 86400.0
MAX_RATE = 1_000_000.0
MAX_SIZE = 1024**4

_DURATION_UNITS = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(us|µs|ms|min|s|m|h|d)")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*(us|ms|s|sec|m|min|h)\s*$")
_RATE_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?i?[bB]?)\s*$")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}


def parse_duration(value: str | float | int) -> float:
    """Seconds in ``value``: ``"250ms"``, ``"15m"``, ``"1h30m"``, or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '30s' or '15m', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return _bounded_duration(float(value), value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return _bounded_duration(float(text), value)
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos and text[pos : match.start()].strip():
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(
            f"expected a duration such as '250ms', '30s', '15m' or '1h30m', got {value!r}"
        )
    return _bounded_duration(total, value)


def _bounded_duration(seconds: float, value: object) -> float:
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be a finite number of seconds, got {value!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration can be at most 30 days ({MAX_DURATION:g}s), got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form of ``seconds``: ``850ms``, ``42s``, ``12m05s``, ``2h03m``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def parse_rate(value: str | float | int) -> float:
    """Events per second in ``value``: ``"100/s"``, ``"3/min"``, ``"5/10s"``, or a bare number."""
    if isinstance(value, bool):
        raise ValueError(f"expected a rate such as '100/s' or '3/min', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a rate cannot be negative, got {value!r}")
        return _bounded_rate(float(value), value)
    match = _RATE.match(str(value))
    if not match:
        text = str(value).strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            return _bounded_rate(float(text), value)
        raise ValueError(f"expected a rate such as '100/s', '3/min' or '5/10s', got {value!r}")
    count = float(match.group(1))
    per = float(match.group(2) or 1) * _RATE_UNITS[match.group(3)]
    if per <= 0:
        raise ValueError(f"the interval of a rate must be positive, got {value!r}")
    return _bounded_rate(count / per, value)


def _bounded_rate(per_s: float, value: object) -> float:
    if not math.isfinite(per_s):
        raise ValueError(f"a rate must be a finite number, got {value!r}")
    if per_s > MAX_RATE:
        raise ValueError(f"a rate can be at most {MAX_RATE:,.0f}/s, got {value!r}")
    return per_s


def parse_size(value: str | int) -> int:
    """Bytes in ``value``: ``"10MB"`` (decimal), ``"1GiB"`` (binary), or a bare number."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as '10MB' or '1GiB', got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match or match.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(f"expected a size such as '512KB', '10MB' or '1GiB', got {value!r}")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    if size < 0:
        raise ValueError(f"a size cannot be negative, got {value!r}")
    if size > MAX_SIZE:
        raise ValueError(f"a size can be at most 1TiB, got {value!r}")
    return size


def parse_percent(value: str | float | int) -> float:
    """A fraction in ``value``: ``"99.9%"`` gives 0.999; a bare number is taken as a fraction."""
    if isinstance(value, bool):
        raise ValueError(f"expected a percentage such as '99.9%', got {value!r}")
    if isinstance(value, int | float):
        fraction = float(value)
    else:
        text = str(value).strip()
        try:
            fraction = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(
                f"expected a percentage such as '99.9%', got {value!r}") from None
    if not math.isfinite(fraction):
        raise ValueError(f"a percentage must be a finite number, got {value!r}")
    return fraction
