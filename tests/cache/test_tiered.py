from pathlib import Path

from gateway.cache import MemoryStore, PurgeFilter, TieredStore, encode, open_store
from gateway.cache.entry import Entry


def entry_bytes(model: str = "m", created_at: float = 1000.0) -> bytes:
    return encode(
        Entry(
            status=200, headers=(), kind="body", chunks=(b"{}",), model=model, created_at=created_at
        )
    )


async def test_reads_from_the_back_fill_the_front() -> None:
    back = MemoryStore(1 << 20, 3600)
    store = TieredStore(1 << 20, back)
    value = entry_bytes()
    await back.put("k", value, model="m", created_at=1000.0)
    assert await store.get("k") == value
    await back.delete("k")
    assert await store.get("k") == value, "served from the front now"


async def test_writes_deletes_and_purges_reach_both_tiers() -> None:
    back = MemoryStore(1 << 20, 3600)
    store = TieredStore(1 << 20, back)
    await store.put("a", entry_bytes("alpha"), model="alpha", created_at=1000.0)
    await store.put("b", entry_bytes("beta"), model="beta", created_at=1000.0)
    assert await back.get("a") is not None
    await store.delete("a")
    assert await store.get("a") is None and await back.get("a") is None
    assert await store.purge(PurgeFilter(model_glob="b*")) == 1
    assert await store.get("b") is None
    assert (await store.stats()).entries == 0


async def test_front_entries_expire_after_the_front_ttl() -> None:
    back = MemoryStore(1 << 20, 3600)
    store = TieredStore(1 << 20, back, front_ttl=0.05)
    await store.put("k", entry_bytes(), model="m", created_at=1000.0)
    await back.delete("k")
    import asyncio

    await asyncio.sleep(0.1)
    assert await store.get("k") is None


async def test_corrupt_values_pass_through_for_the_caller_to_handle() -> None:
    back = MemoryStore(1 << 20, 3600)
    store = TieredStore(1 << 20, back)
    await back.put("k", b"garbage", model="m", created_at=1.0)
    assert await store.get("k") == b"garbage"


async def test_open_store_puts_a_front_on_disk_only_when_asked(tmp_path: Path) -> None:
    tiered = open_store(
        "disk", dir=str(tmp_path), max_bytes=1 << 20, ttl_seconds=60, memory_bytes=1 << 16
    )
    plain = open_store("disk", dir=str(tmp_path / "p"), max_bytes=1 << 20, ttl_seconds=60)
    assert isinstance(tiered, TieredStore) and not isinstance(plain, TieredStore)
    await tiered.close()
    await plain.close()
