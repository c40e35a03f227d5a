"""MemoryStore: LRU by bytes, TTL on an injected clock, purge filters, stats."""

from __future__ import annotations

import pytest

from gateway.cache import open_store
from gateway.cache.base import CacheError, PurgeFilter, StoreStats
from gateway.cache.memory import MemoryStore


class FakeClock:
    """A clock the test moves by hand, injected instead of patching time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def put(
    store: MemoryStore, key: str, size: int, model: str = "m", created: float = 0.0
) -> None:
    await store.put(key, key.encode()[:1] * size, model=model, created_at=created)


async def test_put_get_delete() -> None:
    store = MemoryStore(100, 60)
    await store.put("k", b"value", model="m", created_at=1.0)
    assert await store.get("k") == b"value"
    await store.delete("k")
    await store.delete("k")  # missing is fine
    assert await store.get("k") is None
    assert await store.get("never") is None


async def test_lru_evicts_least_recently_used_by_bytes() -> None:
    store = MemoryStore(100, 60)
    await put(store, "a", 40)
    await put(store, "b", 40)
    assert await store.get("a") is not None  # a is now more recent than b
    await put(store, "c", 40)
    assert await store.get("b") is None
    assert await store.get("a") is not None
    assert await store.get("c") is not None
    assert await store.stats() == StoreStats(entries=2, size_bytes=80, max_bytes=100)


async def test_one_large_put_evicts_several() -> None:
    store = MemoryStore(100, 60)
    for key in "abcde":
        await put(store, key, 20)
    await put(store, "z", 90)
    assert [await store.get(k) for k in "abcde"] == [None] * 5  # 20 + 90 > 100: e goes too
    assert await store.stats() == StoreStats(1, 90, 100)


async def test_oversize_value_is_not_stored_and_clears_the_key() -> None:
    store = MemoryStore(100, 60)
    await put(store, "a", 10)
    await put(store, "a", 101)
    assert await store.get("a") is None
    assert (await store.stats()).size_bytes == 0


async def test_replacing_a_key_keeps_size_exact() -> None:
    store = MemoryStore(100, 60)
    await put(store, "a", 30)
    await put(store, "a", 50)
    assert await store.stats() == StoreStats(1, 50, 100)


async def test_ttl_expires_on_read() -> None:
    clock = FakeClock()
    store = MemoryStore(100, 10, clock=clock)
    await put(store, "a", 10)
    clock.now += 9.9
    assert await store.get("a") is not None
    clock.now += 0.1
    assert await store.get("a") is None
    assert (await store.stats()).entries == 0


async def test_ttl_counts_from_put_not_from_reads() -> None:
    clock = FakeClock()
    store = MemoryStore(100, 10, clock=clock)
    await put(store, "a", 10)
    for _ in range(3):
        clock.now += 4
        await store.get("a")
    assert await store.get("a") is None


async def test_stats_sweep_expired_entries() -> None:
    clock = FakeClock()
    store = MemoryStore(100, 10, clock=clock)
    await put(store, "a", 10)
    clock.now += 5
    await put(store, "b", 20)
    clock.now += 6
    assert await store.stats() == StoreStats(1, 20, 100)


async def test_purge_by_model_glob_and_age() -> None:
    clock = FakeClock()
    store = MemoryStore(1000, 10_000, clock=clock)
    await put(store, "a", 1, "gemini-3.1-flash-image", created=clock.now - 500)
    await put(store, "b", 1, "gemini-3.1-flash-image-preview", created=clock.now - 10)
    await put(store, "c", 1, "gemini-2.5-pro", created=clock.now - 500)
    await put(store, "d", 1, "gemini-2.5-pro", created=clock.now - 10)

    assert await store.purge(PurgeFilter(model_glob="gemini-3.1-*", older_than_seconds=100)) == 1
    assert await store.get("a") is None
    assert await store.purge(PurgeFilter(older_than_seconds=100)) == 1
    assert await store.get("c") is None
    assert await store.purge(PurgeFilter(model_glob="GEMINI-*")) == 0  # case-sensitive
    assert await store.purge(PurgeFilter(model_glob="*-preview")) == 1
    assert await store.purge(PurgeFilter()) == 1
    assert await store.stats() == StoreStats(0, 0, 1000)


def test_purge_filter_matching() -> None:
    assert PurgeFilter().matches("anything", 0.0, now=0.0)
    assert PurgeFilter(older_than_seconds=10).matches("m", 0.0, now=10.5)
    assert not PurgeFilter(older_than_seconds=10).matches("m", 0.0, now=10.0)
    assert not PurgeFilter(model_glob="a*", older_than_seconds=1).matches("b", 0.0, now=5.0)
    with pytest.raises(ValueError):
        PurgeFilter(older_than_seconds=-1)


async def test_closed_store_raises_cache_error() -> None:
    store = MemoryStore(100, 60)
    await put(store, "a", 10)
    await store.close()
    with pytest.raises(CacheError):
        await store.get("a")


@pytest.mark.parametrize(("max_bytes", "ttl"), [(0, 60), (100, 0)])
def test_invalid_limits(max_bytes: int, ttl: float) -> None:
    with pytest.raises(ValueError):
        MemoryStore(max_bytes, ttl)


async def test_open_store_factory() -> None:
    store = open_store("memory", dir="unused", max_bytes=10, ttl_seconds=1)
    assert isinstance(store, MemoryStore)
    with pytest.raises(ValueError, match="unknown cache backend"):
        open_store("off", dir="unused", max_bytes=10, ttl_seconds=1)
