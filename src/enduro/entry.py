"""The ``enduro`` command's entry point: light, so that a Ctrl-C while the rest of enduro is
still being imported ends with exit 130 and one line, like a Ctrl-C at any later moment."""

from __future__ import annotations

import sys
from typing import NoReturn

__all__ = ["main"]


def main() -> NoReturn:
    """Import the command line and run it; exit with its code."""
    try:
        from enduro.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        raise SystemExit(130) from None
    raise SystemExit(cli_main())
