"""The storage contract every cache backend meets, and the errors it may raise.

A store deals only in opaque bytes (encoded entries, see ``entry.py``); which requests
are cached and under which key is the caller's policy. Callers treat any ``CacheError``
as "pass through to upstream and count it", so backends translate every failure of
their own (sqlite, OSError, timeouts) into one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Protocol


class CacheError(Exception):
    """The cache could not answer; the request should go upstream as if uncached."""


class CorruptEntry(CacheError):
    """Stored bytes are not a valid entry (truncated, tampered with, or another format)."""


@dataclass(frozen=True)
class StoreStats:
    """Point-in-time size of a store, for the admin API and gauges."""

    entries: int
    size_bytes: int
    max_bytes: int


@dataclass(frozen=True)
class PurgeFilter:
    """Which entries an admin purge removes; every given condition must hold.

    With both fields ``None`` it matches everything. ``model_glob`` is a case-sensitive
    shell glob (``fnmatchcase``) so results do not depend on the platform.
    """

    model_glob: str | None = None
    older_than_seconds: float | None = None

    def __post_init__(self) -> None:
        age = self.older_than_seconds
        if age is not None and not (math.isfinite(age) and age >= 0):
            raise ValueError("older_than_seconds must be a finite number >= 0")

    def matches(self, model: str, created_at: float, now: float | None = None) -> bool:
        """True when an entry with this model and creation time should be purged."""
        if self.model_glob is not None and not fnmatchcase(model, self.model_glob):
            return False
        if self.older_than_seconds is None:
            return True
        current = time.time() if now is None else now
        return current - created_at > self.older_than_seconds


class Store(Protocol):
    """Async byte store with a size bound and a TTL; one implementation per backend."""

    async def get(self, key: str) -> bytes | None:
        """The stored bytes, or ``None`` when missing or expired."""
        ...

    async def put(self, key: str, value: bytes, *, model: str, created_at: float) -> None:
        """Store ``value``; ``model`` and ``created_at`` are kept only for purge."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        ...

    async def stats(self) -> StoreStats:
        """Current entry count and size."""
        ...

    async def purge(self, flt: PurgeFilter) -> int:
        """Remove every entry ``flt`` matches; returns how many were removed."""
        ...

    async def close(self) -> None:
        """Release files, connections and threads; later calls raise ``CacheError``."""
        ...


def key_hint(key: str) -> str:
    """A short key prefix for error messages: enough to correlate, too little to replay."""
    return key[:8] + "…" if len(key) > 8 else key
