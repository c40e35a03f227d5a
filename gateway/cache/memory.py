"""In-process store: an LRU bounded by bytes, with TTL. For tests and single runs.

Everything runs on the event loop with no awaits inside a method, so each call is
atomic without locks. ``size_bytes`` counts stored values only, not keys or overhead.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gateway.cache.base import CacheError, PurgeFilter, StoreStats


@dataclass(frozen=True, slots=True)
class _Slot:
    value: bytes
    model: str
    created_at: float
    expires_at: float


class MemoryStore:
    """LRU by bytes: reads refresh recency; puts evict the least recently used."""

    def __init__(
        self, max_bytes: int, ttl_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        if max_bytes <= 0 or ttl_seconds <= 0:
            raise ValueError("max_bytes and ttl_seconds must be positive")
        self._max_bytes = max_bytes
        self._ttl = ttl_seconds
        self._clock = clock
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._size = 0
        self._closed = False

    async def get(self, key: str) -> bytes | None:
        self._check_open()
        slot = self._slots.get(key)
        if slot is None:
            return None
        if slot.expires_at <= self._clock():
            self._remove(key)
            return None
        self._slots.move_to_end(key)
        return slot.value

    async def put(self, key: str, value: bytes, *, model: str, created_at: float) -> None:
        """Store ``value``; one larger than the whole budget is dropped (and its key
        cleared, so an older value is not served in its place)."""
        self._check_open()
        self._remove(key)
        if len(value) > self._max_bytes:
            return
        expires_at = self._clock() + self._ttl
        self._slots[key] = _Slot(value, model, created_at, expires_at)
        self._size += len(value)
        while self._size > self._max_bytes:
            self._remove(next(iter(self._slots)))

    async def delete(self, key: str) -> None:
        self._check_open()
        self._remove(key)

    async def stats(self) -> StoreStats:
        """Counts live entries only: expired ones are swept first."""
        self._check_open()
        self._sweep()
        return StoreStats(len(self._slots), self._size, self._max_bytes)

    async def purge(self, flt: PurgeFilter) -> int:
        self._check_open()
        self._sweep()
        now = self._clock()
        doomed = [k for k, s in self._slots.items() if flt.matches(s.model, s.created_at, now)]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    async def close(self) -> None:
        self._slots.clear()
        self._size = 0
        self._closed = True

    def _remove(self, key: str) -> None:
        slot = self._slots.pop(key, None)
        if slot is not None:
            self._size -= len(slot.value)

    def _sweep(self) -> None:
        """Drop expired entries; reads expire lazily, this keeps counts honest."""
        now = self._clock()
        for key in [k for k, s in self._slots.items() if s.expires_at <= now]:
            self._remove(key)

    def _check_open(self) -> None:
        if self._closed:
            raise CacheError("memory cache is closed")
