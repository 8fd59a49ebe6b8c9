"""Headless Chromium from the OS packages, driven by Playwright (no browser download): a page
that records every console error and uncaught exception."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


def chromium() -> str:
    """The system Chromium; a test fails in CI without it (scripts/test.sh installs it)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing; scripts/test.sh installs it")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return binary


@dataclass
class Browsed:
    page: Any
    errors: list[str] = field(default_factory=list)


@contextlib.contextmanager
def browser_page(width: int = 1300, height: int = 900) -> Iterator[Browsed]:
    """A page in headless Chromium; ``errors`` collects console errors and page errors."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            seen = Browsed(page)
            page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error"
                    else None)
            page.on("pageerror", lambda exc: seen.errors.append(str(exc)))
            yield seen
        finally:
            browser.close()
