"""DiskStore on a real temporary directory: persistence, limits, TTL, purge, and damage.

Damage is done with plain file writes and sqlite3, between a close and a reopen.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from gateway.cache import open_store
from gateway.cache.base import CacheError, CorruptEntry, PurgeFilter
from gateway.cache.disk import DiskStore
from gateway.cache.entry import Entry, decode, encode

SMALL, LARGE = 1024, 64 * 1024  # diskcache keeps values under 32 KiB inside SQLite


def entry_bytes(size: int, model: str = "m", created_at: float = 1.0) -> bytes:
    body = random.Random(size).randbytes(size)
    return encode(
        Entry(200, (("content-type", "application/json"),), "body", (body,), model, created_at)
    )


async def put(
    store: DiskStore, key: str, value: bytes, model: str = "m", created: float = 1.0
) -> None:
    await store.put(key, value, model=model, created_at=created)


def value_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.val"))


def rows(directory: Path) -> list[tuple[str, int, str | None, bytes | None]]:
    with closing(sqlite3.connect(directory / "cache.db")) as con:
        return con.execute("SELECT key, mode, filename, value FROM Cache ORDER BY key").fetchall()


def update_row(directory: Path, key: str, **columns: object) -> None:
    assignments = ", ".join(f"{name} = ?" for name in columns)
    with closing(sqlite3.connect(directory / "cache.db")) as con, con:
        con.execute(f"UPDATE Cache SET {assignments} WHERE key = ?", (*columns.values(), key))


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
async def store(directory: Path) -> AsyncIterator[DiskStore]:
    disk = DiskStore(directory, 10_000_000, 60)
    yield disk
    await disk.close()


async def test_put_get_delete(store: DiskStore) -> None:
    small, large = entry_bytes(SMALL), entry_bytes(2 * 1024 * 1024)
    await put(store, "small", small)
    await put(store, "large", large)
    assert await store.get("small") == small
    assert await store.get("large") == large
    assert await store.get("missing") is None
    await store.delete("small")
    await store.delete("small")
    assert await store.get("small") is None
    assert (await store.stats()).entries == 1


async def test_values_are_stored_raw(directory: Path, store: DiskStore) -> None:
    small, large = entry_bytes(SMALL), entry_bytes(LARGE)
    await put(store, "a-small", small)
    await put(store, "b-large", large)
    await store.close()
    (small_row, large_row) = rows(directory)
    assert small_row[:2] == ("a-small", 1) and small_row[3] == small  # MODE_RAW, in SQLite
    assert large_row[:2] == ("b-large", 2) and large_row[3] is None  # MODE_BINARY, a file
    assert (directory / str(large_row[2])).read_bytes() == large


async def test_entries_survive_reopen(directory: Path, store: DiskStore) -> None:
    value = entry_bytes(LARGE)
    await put(store, "k", value)
    await store.close()
    reopened = DiskStore(directory, 10_000_000, 60)
    try:
        assert await reopened.get("k") == value
    finally:
        await reopened.close()


async def test_size_limit_evicts_least_recently_used(directory: Path) -> None:
    limit = 1_000_000
    store = DiskStore(directory, limit, 60)
    try:
        volumes = []
        for i in range(60):  # about 4x the limit
            await put(store, f"k{i:02d}", entry_bytes(LARGE))
            assert await store.get("k00") is not None  # keep k00 recently used
            volumes.append((await store.stats()).size_bytes)
        assert max(volumes) <= limit + LARGE + 8192
        assert volumes[-1] > limit // 2
        assert await store.get("k00") is not None
        assert await store.get("k01") is None
        assert await store.get("k59") is not None
    finally:
        await store.close()


async def test_oversize_value_is_not_stored_and_clears_the_key(directory: Path) -> None:
    store = DiskStore(directory, 100_000, 60)
    try:
        await put(store, "k", entry_bytes(SMALL))
        await put(store, "k", b"x" * 100_001)
        assert await store.get("k") is None
    finally:
        await store.close()


async def test_ttl_expires(directory: Path) -> None:
    store = DiskStore(directory, 10_000_000, 0.2)
    try:
        await put(store, "k", entry_bytes(SMALL))
        assert await store.get("k") is not None
        await asyncio.sleep(0.3)
        assert await store.get("k") is None
        assert await store.purge(PurgeFilter(model_glob="nothing")) == 0
        assert (await store.stats()).entries == 0  # purge culled the expired row
    finally:
        await store.close()


async def test_purge_by_model_glob_and_age(store: DiskStore) -> None:
    now, value = time.time(), entry_bytes(SMALL)
    await put(store, "a", value, "gemini-3.1-flash-image", created=now - 500)
    await put(store, "b", value, "gemini-3.1-flash-image-preview", created=now - 10)
    await put(store, "c", value, "gemini-2.5-pro", created=now - 500)
    await put(store, "d", entry_bytes(LARGE), "gemini-2.5-pro", created=now - 10)

    assert await store.purge(PurgeFilter(model_glob="gemini-3.1-*", older_than_seconds=100)) == 1
    assert await store.get("a") is None
    assert await store.purge(PurgeFilter(older_than_seconds=100)) == 1
    assert await store.get("c") is None
    assert await store.purge(PurgeFilter(model_glob="*-preview")) == 1
    assert await store.get("d") is not None
    assert await store.purge(PurgeFilter()) == 1
    assert (await store.stats()).entries == 0


async def test_purge_many_entries_in_batches(store: DiskStore) -> None:
    for i in range(250):
        await put(store, f"k{i}", b"v", model="old" if i % 2 else "new")
    assert await store.purge(PurgeFilter(model_glob="old")) == 125
    assert (await store.stats()).entries == 125


async def test_concurrent_calls(store: DiskStore) -> None:
    values = {f"k{i}": entry_bytes(SMALL + i) for i in range(40)}
    await asyncio.gather(*(put(store, k, v) for k, v in values.items()))
    got = await asyncio.gather(*(store.get(k) for k in values))
    assert got == list(values.values())


async def test_garbage_value_file_is_caught_by_decode(directory: Path, store: DiskStore) -> None:
    await put(store, "k", entry_bytes(LARGE))
    (path,) = value_files(directory)
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CorruptEntry):
        decode(await store.get("k") or b"")


async def test_missing_value_file_is_a_miss(directory: Path, store: DiskStore) -> None:
    await put(store, "k", entry_bytes(LARGE))
    (path,) = value_files(directory)
    path.unlink()
    assert await store.get("k") is None


async def test_garbage_database_raises_cache_error(directory: Path, store: DiskStore) -> None:
    await put(store, "k", entry_bytes(SMALL))
    await store.close()
    with open(directory / "cache.db", "r+b") as db:
        db.write(b"this is not a sqlite database" * 4)
    broken = DiskStore(directory, 10_000_000, 60)
    try:
        for call in (broken.get("k"), broken.stats(), put(broken, "k", b"v")):
            with pytest.raises(CacheError, match="unusable"):
                await call
    finally:
        await broken.close()


async def test_random_database_damage_never_escapes_as_other_errors(tmp_path: Path) -> None:
    rng = random.Random(2024)
    outcomes: set[str] = set()
    for round_ in range(25):
        directory = tmp_path / f"r{round_}"
        store = DiskStore(directory, 10_000_000, 60)
        for i in range(6):
            await put(store, f"k{i}", entry_bytes(SMALL if i % 2 else LARGE))
        await store.close()
        data = bytearray((directory / "cache.db").read_bytes())
        for _ in range(rng.randrange(1, 200)):
            data[rng.randrange(100, len(data))] = rng.randrange(256)
        (directory / "cache.db").write_bytes(bytes(data))
        store = DiskStore(directory, 10_000_000, 60)
        try:
            for i in range(6):
                outcomes.add(await read_outcome(store, f"k{i}"))
            for call in (
                store.stats(),
                store.purge(PurgeFilter(model_glob="x")),
                put(store, "n", b"v"),
            ):
                try:
                    await call
                except CacheError:
                    outcomes.add("error")
        finally:
            await store.close()
    assert outcomes <= {"hit", "miss", "corrupt", "error"}


async def test_random_row_tampering_never_escapes_as_other_errors(directory: Path) -> None:
    """Type-confused columns (what a damaged or hostile index could hold) per row."""
    rng = random.Random(7)
    choices: dict[str, list[object]] = {
        "mode": [0, 1, 2, 3, 4, 99, None, "1"],
        "value": [None, "text", b"bytes", 3, 1.5, entry_bytes(SMALL)],
        "filename": [
            None,
            "../x.val",
            "ab/cd/" + "e" * 28 + ".val",
            7,
            str(directory.parent / "abs.val"),
        ],
        "tag": [None, 3, b"\xff", "[", '["m", "x"]', '{"a": 1, "b": 2}', '["m", 1e999]'],
        "raw": [0, 1, 2],
    }
    store = DiskStore(directory, 10_000_000, 60)
    keys = [f"k{i}" for i in range(40)]
    for i, key in enumerate(keys):
        await put(store, key, entry_bytes(SMALL if i % 2 else LARGE))
    await store.close()
    for key in keys:
        columns = rng.sample(sorted(choices), rng.randrange(1, 4))
        update_row(directory, key, **{name: rng.choice(choices[name]) for name in columns})
    store = DiskStore(directory, 10_000_000, 60)
    try:
        outcomes = {await read_outcome(store, key) for key in keys}
        assert outcomes <= {"hit", "miss", "corrupt", "error"}
        assert "error" in outcomes and "hit" in outcomes
        assert await store.purge(PurgeFilter(model_glob="m")) >= 0
        await store.purge(PurgeFilter())
    finally:
        await store.close()


async def read_outcome(store: DiskStore, key: str) -> str:
    """The only acceptable results of reading from a damaged store."""
    try:
        value = await store.get(key)
    except CacheError:
        return "error"
    if value is None:
        return "miss"
    try:
        decode(value)
    except CorruptEntry:
        return "corrupt"
    return "hit"


class _MakesDir:
    """Unpickling this creates a directory: proof that a pickle was (not) loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.path,))


async def test_tampered_pickle_row_is_refused(directory: Path, tmp_path: Path) -> None:
    key = "scope-abcdef0123456789-secret-part"
    marker = tmp_path / "unpickled"
    store = DiskStore(directory, 10_000_000, 60)
    await put(store, key, entry_bytes(SMALL))
    await store.close()
    update_row(directory, key, mode=4, value=pickle.dumps(_MakesDir(str(marker))))
    store = DiskStore(directory, 10_000_000, 60)
    try:
        with pytest.raises(CacheError) as raised:
            await store.get(key)
        assert "secret-part" not in str(raised.value)
        assert not marker.exists()
    finally:
        await store.close()


async def test_tampered_file_name_outside_directory_is_refused(
    directory: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"private")
    store = DiskStore(directory, 10_000_000, 60)
    await put(store, "k", entry_bytes(LARGE))
    await store.close()
    update_row(directory, "k", filename="../outside.txt")
    store = DiskStore(directory, 10_000_000, 60)
    try:
        with pytest.raises(CacheError):
            await store.get("k")
        await store.delete("k")
        assert outside.read_bytes() == b"private"
    finally:
        await store.close()


@pytest.mark.parametrize("make_bad", ["under_a_file", "is_a_file"])
async def test_unusable_directory_raises_cache_error(tmp_path: Path, make_bad: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    path = blocker / "cache" if make_bad == "under_a_file" else blocker
    store = DiskStore(path, 10_000_000, 60)
    try:
        with pytest.raises(CacheError, match="is unusable"):
            await store.get("k")
        with pytest.raises(CacheError):
            await store.stats()
    finally:
        await store.close()  # closing an unusable store is quiet


async def test_closed_store_raises_cache_error(store: DiskStore) -> None:
    await store.close()
    await store.close()
    with pytest.raises(CacheError, match="closed"):
        await store.get("k")


async def test_open_store_factory(directory: Path) -> None:
    store = open_store("disk", dir=str(directory), max_bytes=10_000, ttl_seconds=5)
    try:
        assert isinstance(store, DiskStore)
        assert (await store.stats()).max_bytes == 10_000
    finally:
        await store.close()
