"""The one exception a rule's figure may raise: too few points for its statistic."""

from __future__ import annotations

__all__ = ["NotEnoughData"]


class NotEnoughData(Exception):
    """A trend rule's series is too short for its statistic; the message says how short.
    (Defined apart from the trend code, so that judging a rule live never imports
    scipy on the engine's event loop.)"""
