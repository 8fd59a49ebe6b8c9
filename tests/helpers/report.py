"""The data report.html embeds (what its page draws), read back for assertions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_DATA = re.compile(r'<script id="enduro-data" type="application/json">(.*?)</script>', re.S)


def embedded(report: Path) -> dict[str, Any]:
    """The JSON of ``report.html``'s ``#enduro-data`` element."""
    found = _DATA.search(report.read_text(encoding="utf-8"))
    assert found is not None, f"{report}: no embedded data"
    data: dict[str, Any] = json.loads(found.group(1))
    return data
