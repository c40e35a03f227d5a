"""A cached response and its byte format.

Layout (all integers big-endian)::

    b"GGCE"                 magic
    u8   version            currently 1
    u32  header length N
    N    UTF-8 JSON object  {"status", "headers", "kind", "model", "created_at", "chunks"}
    ...  chunk bytes        concatenated; "chunks" in the header lists their lengths

The format is ours so that nothing read back from a store is ever unpickled, and the
bodies stay raw (no base64) so a 2 MB image response costs one join to encode and one
slice per chunk to decode. Unknown header fields are ignored; anything else unexpected
raises ``CorruptEntry``.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

from gateway.cache.base import CorruptEntry

Kind = Literal["body", "sse", "array"]
KINDS: frozenset[str] = frozenset(get_args(Kind))

MAGIC = b"GGCE"
VERSION = 1
_PREFIX = struct.Struct(">4sBI")


@dataclass(frozen=True, slots=True)
class Entry:
    """A complete upstream answer, kept exactly as received so replay is byte-identical.

    ``kind`` says how to replay ``chunks``: "body" is one JSON body (one chunk), "sse"
    is one raw event per chunk including its blank-line terminator, "array" is the raw
    chunks of a streamed JSON array.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    kind: Kind
    chunks: tuple[bytes | memoryview, ...]
    model: str
    created_at: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown entry kind {self.kind!r}")
        if self.kind == "body" and len(self.chunks) != 1:
            raise ValueError("a 'body' entry has exactly one chunk")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status {self.status} is not an HTTP status")

    @property
    def body(self) -> bytes:
        """All chunks as one byte string."""
        return b"".join(self.chunks)

    def age(self, now: float) -> float:
        """Seconds since creation, never negative (clocks may step back)."""
        return max(0.0, now - self.created_at)


class EntryMeta(NamedTuple):
    """What purge needs, read from the header alone. ``size`` is the encoded length."""

    model: str
    created_at: float
    size: int


def encode(entry: Entry) -> bytes:
    """Serialize ``entry``; the chunks are copied once, by the final join."""
    header = json.dumps(
        {
            "status": entry.status,
            "headers": [list(pair) for pair in entry.headers],
            "kind": entry.kind,
            "model": entry.model,
            "created_at": entry.created_at,
            "chunks": [len(chunk) for chunk in entry.chunks],
        },
        separators=(",", ":"),
        allow_nan=False,
    ).encode()
    return b"".join((_PREFIX.pack(MAGIC, VERSION, len(header)), header, *entry.chunks))


def decode(data: bytes) -> Entry:
    """Parse bytes from a store; raises ``CorruptEntry`` and nothing else on bad input."""
    fields, offset = _read_header(data)
    view = memoryview(data)
    # Slices of `data`, not copies: a 2 MB answer replayed from memory costs no memcpy.
    chunks: list[bytes | memoryview] = []
    for length in fields["chunks"]:
        chunks.append(view[offset : offset + length])
        offset += length
    try:
        return Entry(
            status=fields["status"],
            headers=tuple((name, value) for name, value in fields["headers"]),
            kind=fields["kind"],
            chunks=tuple(chunks),
            model=fields["model"],
            created_at=float(fields["created_at"]),
        )
    except ValueError as exc:
        raise CorruptEntry(f"invalid entry: {exc}") from None


def peek_meta(data: bytes) -> EntryMeta:
    """Read model and creation time without touching the body (cheap for purge)."""
    fields, _ = _read_header(data)
    return EntryMeta(fields["model"], float(fields["created_at"]), len(data))


def _read_header(data: bytes) -> tuple[dict[str, Any], int]:
    """Validated header fields and the offset where chunk bytes start."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CorruptEntry(f"expected bytes, got {type(data).__name__}")
    if len(data) < _PREFIX.size:
        raise CorruptEntry("truncated before the header")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise CorruptEntry("not a gateway cache entry (bad magic)")
    if version != VERSION:
        raise CorruptEntry(f"unsupported entry version {version}")
    start = _PREFIX.size
    if len(data) < start + header_len:
        raise CorruptEntry("truncated inside the header")
    fields = _parse_json(bytes(memoryview(data)[start : start + header_len]))
    _check_fields(fields)
    body_start = start + header_len
    if body_start + sum(fields["chunks"]) != len(data):
        raise CorruptEntry("chunk lengths do not add up to the entry size")
    return fields, body_start


def _parse_json(raw: bytes) -> dict[str, Any]:
    def reject_constant(name: str) -> Any:
        raise ValueError(f"non-finite number {name}")

    try:
        fields = json.loads(raw.decode(), parse_constant=reject_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise CorruptEntry(f"unreadable header: {type(exc).__name__}") from None
    if not isinstance(fields, dict):
        raise CorruptEntry("header is not a JSON object")
    return fields


def _check_fields(fields: dict[str, Any]) -> None:
    """Type-check everything ``decode`` relies on, so it cannot fail any other way."""
    status, created_at = fields.get("status"), fields.get("created_at")
    if not _is_int(status):
        raise CorruptEntry("header field 'status' is not an integer")
    if not _is_finite_number(created_at):
        raise CorruptEntry("header field 'created_at' is not a finite number")
    if not isinstance(fields.get("model"), str):
        raise CorruptEntry("header field 'model' is not a string")
    if fields.get("kind") not in KINDS:
        raise CorruptEntry("header field 'kind' is not a known kind")
    headers = fields.get("headers")
    if not isinstance(headers, list) or not all(_is_str_pair(h) for h in headers):
        raise CorruptEntry("header field 'headers' is not a list of [name, value]")
    chunks = fields.get("chunks")
    if not isinstance(chunks, list) or not all(_is_int(n) and n >= 0 for n in chunks):
        raise CorruptEntry("header field 'chunks' is not a list of lengths")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _is_str_pair(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
