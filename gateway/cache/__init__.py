"""Response cache storage: one ``Store`` protocol, one module per backend.

Which requests are cached, and under which key, is the caller's policy; this package
only keeps encoded entries (``entry.encode``) and hands them back.
"""

from __future__ import annotations

from gateway.cache.base import CacheError, CorruptEntry, PurgeFilter, Store, StoreStats
from gateway.cache.disk import DiskStore
from gateway.cache.entry import Entry, EntryMeta, decode, encode, peek_meta
from gateway.cache.memory import MemoryStore

__all__ = [
    "CacheError",
    "CorruptEntry",
    "DiskStore",
    "Entry",
    "EntryMeta",
    "MemoryStore",
    "PurgeFilter",
    "Store",
    "StoreStats",
    "decode",
    "encode",
    "open_store",
    "peek_meta",
]


def open_store(backend: str, *, dir: str, max_bytes: int, ttl_seconds: float) -> Store:
    """The store for a configured backend: "disk" or "memory" ("off" is the caller's).

    Does no blocking I/O: a disk store opens on its own worker thread, and an unusable
    directory surfaces as ``CacheError`` on first use (``await store.stats()`` at
    startup makes that loud).
    """
    if backend == "disk":
        return DiskStore(dir, max_bytes, ttl_seconds)
    if backend == "memory":
        return MemoryStore(max_bytes, ttl_seconds)
    raise ValueError(f"unknown cache backend {backend!r}; expected 'disk' or 'memory'")
