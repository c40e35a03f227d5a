"""Entry byte format: exact round trips, and CorruptEntry (only) for every bad input."""

from __future__ import annotations

import json
import random
import struct

import pytest

from gateway.cache.base import CacheError, CorruptEntry
from gateway.cache.entry import MAGIC, VERSION, Entry, EntryMeta, decode, encode, peek_meta

JSON = (("content-type", "application/json; charset=UTF-8"),)
SSE = (("content-type", "text/event-stream"),)


def make(kind: str = "body", chunks: tuple[bytes, ...] = (b'{"a":1}',)) -> Entry:
    return Entry(
        status=200,
        headers=SSE if kind == "sse" else JSON,
        kind=kind,  # type: ignore[arg-type]
        chunks=chunks,
        model="gemini-3.1-flash-image",
        created_at=1_700_000_000.25,
    )


def raw(
    header: object, body: bytes = b"", *, magic: bytes = MAGIC, version: int = VERSION
) -> bytes:
    """Hand-built bytes in the entry layout, for headers encode() would never write."""
    text = json.dumps(header).encode()
    return magic + bytes([version]) + struct.pack(">I", len(text)) + text + body


def good_header(**changes: object) -> dict[str, object]:
    header: dict[str, object] = {
        "status": 200,
        "headers": [["content-type", "application/json"]],
        "kind": "body",
        "model": "m",
        "created_at": 1.5,
        "chunks": [2],
    }
    header.update(changes)
    return header


@pytest.mark.parametrize(
    "entry",
    [
        make("body"),
        make("sse", (b'data: {"x":1}\r\n\r\n', b'data: {"x":2}\r\n\r\n')),
        make("array", (b"[", b'{"x":1}', b",\r\n", b'{"x":2}', b"]")),
        make("array", ()),
        make("body", (b"",)),
    ],
    ids=["body", "sse", "array", "array-empty", "body-empty"],
)
def test_round_trip(entry: Entry) -> None:
    data = encode(entry)
    assert data.startswith(MAGIC + bytes([VERSION]))
    assert decode(data) == entry
    assert peek_meta(data) == EntryMeta(entry.model, entry.created_at, len(data))


def test_large_body_round_trips_raw() -> None:
    body = random.Random(7).randbytes(2 * 1024 * 1024)
    data = encode(make("body", (body,)))
    assert data.endswith(body)  # stored raw: no base64, no re-encoding
    assert len(data) < len(body) + 512
    assert decode(data).body == body


def test_unicode_headers_and_model() -> None:
    entry = Entry(200, (("x-note", "café ✓"),), "body", (b"{}",), "mödel/ü", 0.0)
    assert decode(encode(entry)) == entry


def test_body_and_age() -> None:
    entry = make("sse", (b"a\r\n\r\n", b"b\r\n\r\n"))
    assert entry.body == b"a\r\n\r\nb\r\n\r\n"
    assert entry.age(entry.created_at + 5) == 5
    assert entry.age(entry.created_at - 5) == 0  # a clock that stepped back


@pytest.mark.parametrize(
    ("status", "kind", "chunks"),
    [(200, "html", (b"",)), (200, "body", (b"a", b"b")), (200, "body", ()), (42, "body", (b"",))],
)
def test_invalid_entry_rejected_at_construction(
    status: int, kind: str, chunks: tuple[bytes, ...]
) -> None:
    with pytest.raises(ValueError):
        Entry(status, (), kind, chunks, "m", 0.0)  # type: ignore[arg-type]


def test_corrupt_entry_is_a_cache_error() -> None:
    assert issubclass(CorruptEntry, CacheError)


def test_every_truncation_is_rejected() -> None:
    data = encode(make("sse", (b"data: 1\r\n\r\n", b"data: 2\r\n\r\n")))
    for end in range(len(data)):
        with pytest.raises(CorruptEntry):
            decode(data[:end])
        with pytest.raises(CorruptEntry):
            peek_meta(data[:end])


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(CorruptEntry):
        decode(encode(make()) + b"x")


def test_wrong_magic_and_version() -> None:
    data = bytearray(encode(make()))
    for index in range(len(MAGIC)):
        flipped = bytearray(data)
        flipped[index] ^= 0xFF
        with pytest.raises(CorruptEntry, match="magic"):
            decode(bytes(flipped))
    for version in (0, VERSION + 1, 255):
        data[len(MAGIC)] = version
        with pytest.raises(CorruptEntry, match="version"):
            decode(bytes(data))


def test_not_bytes_is_rejected() -> None:
    with pytest.raises(CorruptEntry):
        decode(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "header",
    [
        good_header(status="200"),
        good_header(status=True),
        good_header(status=1000),
        good_header(status=None),
        good_header(created_at="now"),
        good_header(created_at=10**400),
        good_header(model=3),
        good_header(kind="html"),
        good_header(kind=None),
        good_header(headers={"content-type": "x"}),
        good_header(headers=[["content-type"]]),
        good_header(headers=[["content-type", 1]]),
        good_header(chunks=[-1, 3]),
        good_header(chunks=[1.0, 1.0]),
        good_header(chunks=[True, True]),
        good_header(chunks=[1]),
        good_header(chunks=[3]),
        good_header(chunks=[1, 1]),  # two chunks for kind "body"
        good_header(chunks="2"),
        {k: v for k, v in good_header().items() if k != "model"},
        ["not", "an", "object"],
        "text",
        None,
    ],
)
def test_bad_header_fields_are_rejected(header: object) -> None:
    with pytest.raises(CorruptEntry):
        decode(raw(header, b"{}"))


def test_good_header_helper_is_valid() -> None:
    assert decode(raw(good_header(), b"{}")).body == b"{}"


@pytest.mark.parametrize(
    "text",
    [
        b'{"created_at": NaN}',
        b'{"created_at": Infinity}',
        b"\xff\xfe",
        b"{",
        b"[" * 100_000,
        b"1" * 5000,
    ],
    ids=["nan", "infinity", "utf8", "unterminated", "deep", "huge-int"],
)
def test_unreadable_header_is_rejected(text: bytes) -> None:
    data = MAGIC + bytes([VERSION]) + struct.pack(">I", len(text)) + text
    with pytest.raises(CorruptEntry):
        decode(data)


def test_header_length_beyond_data() -> None:
    with pytest.raises(CorruptEntry, match="truncated"):
        decode(MAGIC + bytes([VERSION]) + struct.pack(">I", 2**32 - 1) + b"{}")


def test_random_bytes_only_raise_corrupt_entry() -> None:
    rng = random.Random(1234)
    prefix = MAGIC + bytes([VERSION])
    for _ in range(2000):
        junk = rng.randbytes(rng.randrange(0, 64))
        for data in (junk, prefix + junk):
            with pytest.raises(CorruptEntry):
                decode(data)


def test_random_bit_flips_decode_or_raise_corrupt_entry() -> None:
    rng = random.Random(99)
    data = encode(make("sse", (b"data: 1\r\n\r\n", b"data: 2\r\n\r\n")))
    for _ in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
        try:
            entry = decode(bytes(mutated))
        except CorruptEntry:
            continue
        assert isinstance(entry, Entry)  # a flip inside a chunk or a string is still valid
