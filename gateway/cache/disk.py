"""Persistent store on diskcache: a SQLite index plus one file per value of 32 KiB or more.

Every diskcache call runs on one worker thread owned by the store, never on the event
loop. One thread is enough: with the LRU policy each ``get`` is a write transaction
(it bumps ``access_time``) that also reads the value file, so SQLite serializes reads
anyway. It also means one connection, which ``close`` can really close (diskcache keeps
a connection per thread and only ever closes the calling thread's).

What ``max_bytes`` means: the sum of the stored values' sizes. After each ``set`` the
store drops expired entries, then least-recently-used ones (never the one just stored)
until the values fit. diskcache's own cull is off (``cull_limit=0``): it drops a fixed
batch of ten entries whenever ``volume()`` is over, which empties a small cache, and
``volume()`` counts SQLite pages that never shrink. ``StoreStats.size_bytes`` still
reports ``volume()``, the real disk use.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW, UNKNOWN

from gateway.cache.base import CacheError, CorruptEntry, PurgeFilter, StoreStats, key_hint

T = TypeVar("T")

# Names diskcache's Disk.filename() generates: two hex dirs, 28 hex chars, ".val".
_VALUE_FILE = re.compile(r"[0-9a-f]{2}[/\\][0-9a-f]{2}[/\\][0-9a-f]{28}\.val")
_PURGE_BATCH = 100  # deletes per worker call, so gets interleave with a long purge


class _BytesOnlyDisk(diskcache.Disk):  # type: ignore[misc]  # diskcache ships no types
    """diskcache's Disk narrowed to str keys and bytes values, both stored raw.

    Stock ``Disk`` unpickles any row whose mode says "pickle" and joins any stored file
    name onto the directory; a tampered database could use either. Such rows are
    refused here instead of loaded, read or deleted.
    """

    def put(self, key: object) -> Any:
        if type(key) is not str:
            raise TypeError("cache keys must be str")
        return super().put(key)

    def get(self, key: object, raw: bool) -> str:
        if not raw or type(key) is not str:
            raise CorruptEntry("stored key is not a plain string")
        return key

    def store(self, value: object, read: bool, key: object = UNKNOWN) -> Any:
        if type(value) is not bytes or read:
            raise TypeError("cache values must be bytes")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: object, value: object, read: bool) -> bytes:
        if mode == MODE_RAW and type(value) is bytes:
            return value
        if mode == MODE_BINARY and not read and _is_value_file(filename):
            data = super().fetch(mode, filename, value, read)
            if isinstance(data, bytes):
                return data
        raise CorruptEntry("stored row is not a plain bytes value")

    def remove(self, file_path: object) -> None:
        if _is_value_file(file_path):
            super().remove(file_path)


@dataclass(frozen=True)
class _Unusable:
    """Why the cache could not be opened; reported afresh by every later call."""

    reason: str


class DiskStore:
    """``Store`` on a local directory; entries survive restarts."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_bytes: int,
        ttl_seconds: float,
        *,
        timeout: float = 2.0,
    ) -> None:
        """Start opening the cache in the worker; an unusable directory surfaces as
        ``CacheError`` on first use. ``timeout`` bounds waits on SQLite locks."""
        if max_bytes <= 0 or ttl_seconds <= 0:
            raise ValueError("max_bytes and ttl_seconds must be positive")
        self._max_bytes = max_bytes
        self._expire = ttl_seconds if math.isfinite(ttl_seconds) else None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="gateway-cache-disk")
        self._opening: Future[Any] = self._pool.submit(
            _open, os.fspath(directory), max_bytes, timeout
        )
        self._handle: Any = None
        self._closed = False

    async def get(self, key: str) -> bytes | None:
        return await self._run("get", key, lambda cache: _get(cache, key))

    async def put(self, key: str, value: bytes, *, model: str, created_at: float) -> None:
        """Store ``value``; one larger than the whole budget is dropped (and its key
        cleared, so an older value is not served in its place)."""
        if len(value) > self._max_bytes:
            await self.delete(key)
            return
        tag = json.dumps([model, created_at])
        put = functools.partial(
            _set_within_budget,
            key=key,
            value=value,
            expire=self._expire,
            tag=tag,
            max_bytes=self._max_bytes,
        )
        await self._run("put", key, put)

    async def delete(self, key: str) -> None:
        await self._run("delete", key, lambda cache: cache.delete(key))

    async def stats(self) -> StoreStats:
        return await self._run(
            "stats", "", lambda cache: StoreStats(len(cache), cache.volume(), self._max_bytes)
        )

    async def purge(self, flt: PurgeFilter) -> int:
        """Match on the tags (no value is read), then delete in batches."""
        now = time.time()
        rows = await self._run("purge", "", _tagged_keys)
        keys = [key for key, tag in rows if flt.matches(*_untag(tag), now)]
        removed = 0
        for start in range(0, len(keys), _PURGE_BATCH):
            batch = keys[start : start + _PURGE_BATCH]
            removed += await self._run("purge", "", functools.partial(_delete_all, keys=batch))
        return removed

    async def close(self) -> None:
        """Close the connection on the worker thread, then stop the thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if not isinstance(await asyncio.wrap_future(self._opening), _Unusable):
                await self._call("close", "", lambda cache: cache.close())
        finally:
            self._pool.shutdown(wait=False)

    async def _run(self, op: str, key: str, fn: Callable[[Any], T]) -> T:
        if self._closed:
            raise CacheError("disk cache is closed")
        return await self._call(op, key, fn)

    async def _call(self, op: str, key: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(cache)`` on the worker; every failure comes back as ``CacheError``."""
        if self._handle is None:
            self._handle = await asyncio.wrap_future(self._opening)
        if isinstance(self._handle, _Unusable):
            raise CacheError(self._handle.reason)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, self._handle)
        except CacheError:
            raise
        except Exception as exc:
            where = f" (key {key_hint(key)})" if key else ""
            raise CacheError(f"disk cache {op} failed{where}: {type(exc).__name__}: {exc}") from exc


def _open(directory: str, max_bytes: int, timeout: float) -> Any:
    """Runs on the worker, so the connection diskcache leaves open belongs to it."""
    try:
        return diskcache.Cache(
            directory,
            timeout=timeout,
            disk=_BytesOnlyDisk,
            size_limit=max_bytes,
            eviction_policy="least-recently-used",
            cull_limit=0,
        )
    except Exception as exc:
        return _Unusable(f"disk cache at {directory!r} is unusable: {type(exc).__name__}: {exc}")


def _set_within_budget(
    cache: Any, *, key: str, value: bytes, expire: float | None, tag: str, max_bytes: int
) -> None:
    cache.set(key, value, expire=expire, tag=tag)
    cache.expire()
    while (cache._sql("SELECT SUM(size) FROM Cache").fetchone()[0] or 0) > max_bytes:
        row = cache._sql(
            "SELECT key FROM Cache WHERE key != ? ORDER BY access_time LIMIT 1", (key,)
        ).fetchone()
        if row is None:
            return
        cache.delete(row[0])


def _get(cache: Any, key: str) -> bytes | None:
    value = cache.get(key)
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    raise CorruptEntry("stored value is not bytes")


def _tagged_keys(cache: Any) -> list[tuple[str, object]]:
    """Every (key, tag) pair, read from the index only.

    diskcache has no public way to list tags, and ``get(tag=True)`` would bump every
    entry's LRU time and read its file, so this reads the ``Cache`` table directly
    (schema stable across diskcache 5.x). Expired entries are culled first.
    """
    cache.expire()
    rows = cache._sql("SELECT key, tag FROM Cache WHERE raw = 1").fetchall()
    return [(key, tag) for key, tag in rows if type(key) is str]


def _untag(tag: object) -> tuple[str, float]:
    """(model, created_at) from a tag; an unreadable one counts as oldest, no model."""
    if not isinstance(tag, str):
        return "", 0.0
    try:
        model, created_at = json.loads(tag)
        if isinstance(model, str) and isinstance(created_at, int | float):
            return model, float(created_at)
    except (TypeError, ValueError, RecursionError, OverflowError):
        pass
    return "", 0.0


def _delete_all(cache: Any, keys: list[str]) -> int:
    return sum(1 for key in keys if cache.delete(key))


def _is_value_file(name: object) -> bool:
    return isinstance(name, str) and _VALUE_FILE.fullmatch(name) is not None
