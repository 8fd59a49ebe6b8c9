"""Keeping the generator's memory flat over days.

Each window allocates and frees a few HdrHistogram count arrays of ~190 KB. glibc serves
blocks that size with mmap at first, then raises its mmap threshold after the first free and
serves them from the heap, where a churn of large blocks fragments and the resident size
creeps up by megabytes per hour. Fixing the threshold keeps such blocks mmapped, so each free
returns its memory at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["pin_malloc_thresholds"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def pin_malloc_thresholds(mmap_threshold: int = 128 * 1024) -> bool:
    """Fix glibc's mmap threshold (which also stops its dynamic adjustment); False where
    the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, 2 * mmap_threshold) == 1 and ok
    return bool(ok)
