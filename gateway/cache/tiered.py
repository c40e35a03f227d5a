"""A small in-memory LRU in front of the disk store: hot answers skip SQLite and files.

The front keeps an entry for at most `front_ttl` seconds after it was last filled, so
a purge made by another process (`gemini-gateway cache purge`) or an expiry on disk is
seen within that time; purges through this store clear both tiers at once.
"""

from __future__ import annotations

from gateway.cache.base import CorruptEntry, PurgeFilter, Store, StoreStats
from gateway.cache.entry import peek_meta
from gateway.cache.memory import MemoryStore

FRONT_TTL = 60.0


class TieredStore:
    def __init__(self, front_bytes: int, back: Store, front_ttl: float = FRONT_TTL) -> None:
        self._front = MemoryStore(front_bytes, front_ttl)
        self._back = back

    async def get(self, key: str) -> bytes | None:
        value = await self._front.get(key)
        if value is not None:
            return value
        value = await self._back.get(key)
        if value is not None:
            try:
                meta = peek_meta(value)
            except CorruptEntry:
                return value  # the caller decodes, counts and deletes it
            await self._front.put(key, value, model=meta.model, created_at=meta.created_at)
        return value

    async def put(self, key: str, value: bytes, *, model: str, created_at: float) -> None:
        await self._front.delete(key)
        await self._back.put(key, value, model=model, created_at=created_at)
        await self._front.put(key, value, model=model, created_at=created_at)

    async def delete(self, key: str) -> None:
        await self._front.delete(key)
        await self._back.delete(key)

    async def stats(self) -> StoreStats:
        return await self._back.stats()

    async def purge(self, flt: PurgeFilter) -> int:
        await self._front.purge(flt)
        return await self._back.purge(flt)

    async def close(self) -> None:
        await self._front.close()
        await self._back.close()
