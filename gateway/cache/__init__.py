"""Response cache storage: one ``Store`` protocol, one module per backend.

Which requests are cached, and under which key, is the caller's policy; this package
only keeps encoded entries (``entry.encode``) and hands them back.
"""

from __future__ import annotations

from gateway.cache.base import CacheError, CorruptEntry, PurgeFilter, Store, StoreStats
from gateway.cache.disk import DiskStore
from gateway.cache.entry import Entry, EntryMeta, decode, encode, peek_meta
from gateway.cache.memory import MemoryStore
from gateway.cache.tiered import TieredStore

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
    "TieredStore",
    "decode",
    "encode",
    "open_store",
    "peek_meta",
]


def open_store(
    backend: str, *, dir: str, max_bytes: int, ttl_seconds: float, memory_bytes: int = 0
) -> Store:
    """The store for a configured backend: "disk" or "memory" ("off" is the caller's);
    a disk store gets an in-memory front of `memory_bytes` when that is not 0.

    Does no blocking I/O: a disk store opens on its own worker thread, and an unusable
    directory surfaces as ``CacheError`` on first use (``await store.stats()`` at
    startup makes that loud).
    """
    if backend == "disk":
        disk = DiskStore(dir, max_bytes, ttl_seconds)
        return TieredStore(min(memory_bytes, max_bytes), disk) if memory_bytes > 0 else disk
    if backend == "memory":
        return MemoryStore(max_bytes, ttl_seconds)
    raise ValueError(f"unknown cache backend {backend!r}; expected 'disk' or 'memory'")
