"""The ``enduro`` command's entry point: light, so that a Ctrl-C or SIGTERM while the rest of
enduro is still being imported ends with exit 130 and one line, like one at any later moment."""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import NoReturn

__all__ = ["main"]


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> NoReturn:
    """Import the command line and run it; exit with its code."""
    # SIGTERM ends the command as SIGINT does (exit 130, one line) at every moment, not with
    # the default 143 before a run installs its own handlers or after it restores these.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        from enduro.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        raise SystemExit(130) from None
    raise SystemExit(cli_main())
