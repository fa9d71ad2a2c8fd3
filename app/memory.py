"""Handing freed heap memory back to the system."""
from __future__ import annotations

import ctypes
import sys


def release_memory() -> None:
    """Return the heap's free pages to the system (glibc keeps them otherwise: after a burst of large
    photos, or a model rebuilt, the process would stay at its peak). A no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
