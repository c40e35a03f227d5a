"""glibc heap tuning, so memory follows the calls in flight.

Request bodies of tens of megabytes come and go. With glibc's defaults each one is a
fresh mmap (page faults on every byte, measured at half the CPU of a 20 MB call here)
and freed heap is kept by the process, so RSS after a burst depends on luck. We raise
the mmap threshold (large buffers are reused from the heap) and trim the heap back to
the OS whenever the gateway is idle. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import Any

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
LARGE = 1 << 30


def _glibc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def tune() -> bool:
    """Reuse large buffers from the heap; only `trim_when_idle` gives memory back."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, LARGE) and libc.mallopt(_M_TRIM_THRESHOLD, LARGE))


async def trim_when_idle(
    in_flight: Callable[[], int],
    served: Callable[[], int],
    interval: float = 1.0,
    trim: Callable[[], object] | None = None,
) -> None:
    """Every `interval`, if nothing is in flight and calls were served since the last
    trim, return the free heap to the OS (`trim` defaults to glibc's malloc_trim)."""
    if trim is None:
        libc = _glibc()
        if libc is None:
            return
        trim = functools.partial(libc.malloc_trim, 0)
    trimmed_at = served()
    while True:
        await asyncio.sleep(interval)
        if in_flight() == 0 and served() != trimmed_at:
            trimmed_at = served()
            trim()
